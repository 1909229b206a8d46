//! Event hooks on the real binary: uploads over every protocol reach an HTTP receiver as one
//! signed event each, a killed upload reaches it not at all, events wait (in order, on disk,
//! across a restart) for a receiver that is down, and a command hook gets a hostile file name
//! as data, never as shell code.
//!
//! Delivery is ordered per rule, so "nothing else arrived" is never checked by waiting for
//! time to pass: a last "sentinel" upload is matched by the same rule, and once its event has
//! arrived everything before it has too.

mod common;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{RawFtp, Running, serve, write, write_alice_and_devices};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use wharf_testkit::{TEST_PASSWORD, pattern, require_tool, run_bounded};

/// The longest any single wait of these tests may take.
const WAIT: Duration = Duration::from_secs(30);

/// The key of the signed rules, as written to its file (the trailing newline is not part of it).
const SECRET: &str = "correct horse battery staple";

// ---------------------------------------------------------------------------------------------
// The HTTP receiver

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Delivery {
    /// `POST /hook HTTP/1.1`.
    request_line: String,
    /// Header names in lower case, values trimmed.
    headers: Vec<(String, String)>,
    /// The raw body, as signed.
    body: Vec<u8>,
    /// The body parsed (`Null` when it is not JSON, which the assertions then report).
    event: Value,
}

impl Delivery {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn path(&self) -> &str {
        self.event["path"].as_str().unwrap_or_default()
    }
}

/// A web server on loopback recording every request and answering each with `200 OK`. It
/// checks nothing itself, so that the tests' assertions say what was wrong.
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<Delivery>>>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    /// A receiver on `port` (0: any free one).
    fn on(port: u16) -> Receiver {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the receiver");
        let port = listener.local_addr().expect("receiver address").port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (got_, stop_) = (got.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop_.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                // A thread per connection: a connection the client opens and leaves idle
                // must not hold up the next one.
                let got = got_.clone();
                std::thread::spawn(move || serve_connection(stream, &got));
            }
        });
        Receiver { port, got, stop }
    }

    fn url(&self) -> String {
        url(self.port)
    }

    fn snapshot(&self) -> Vec<Delivery> {
        self.got.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits (at most `limit`) until `n` requests arrived; returns all of them.
    fn wait_for_events(&self, n: usize, limit: Duration) -> Vec<Delivery> {
        let started = Instant::now();
        loop {
            let got = self.snapshot();
            if got.len() >= n {
                return got;
            }
            assert!(
                started.elapsed() < limit,
                "{} of {n} events within {limit:?}: {got:#?}",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (at most [`WAIT`]) for the event of `path`; returns the events before it.
    fn before(&self, path: &str) -> Vec<Delivery> {
        let started = Instant::now();
        loop {
            let mut got = self.snapshot();
            if let Some(at) = got.iter().position(|d| d.path() == path) {
                got.truncate(at);
                return got;
            }
            assert!(started.elapsed() < WAIT, "no event for {path} within {WAIT:?}: {got:#?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        // Wake the accepting thread so that it sees the flag and ends.
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Reads requests from `stream` (one, since every answer closes the connection), records them
/// and answers `200 OK`.
fn serve_connection(stream: TcpStream, got: &Mutex<Vec<Delivery>>) {
    let _ = stream.set_read_timeout(Some(WAIT));
    let mut reader = BufReader::new(stream.try_clone().expect("clone the connection"));
    let mut request_line = String::new();
    if reader.by_ref().take(8192).read_line(&mut request_line).unwrap_or(0) == 0 {
        return;
    }
    let mut headers = Vec::new();
    let mut head_bytes = request_line.len();
    loop {
        let mut line = String::new();
        let n = reader.by_ref().take(8192).read_line(&mut line).unwrap_or(0);
        head_bytes += n;
        if n == 0 || head_bytes > 64 * 1024 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    let body = if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        read_chunked(&mut reader)
    } else {
        let length: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        let mut body = vec![0; length.min(1 << 20)];
        reader.read_exact(&mut body).ok().map(|()| body)
    };
    let Some(body) = body else { return };
    let event = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let request_line = request_line.trim_end().to_owned();
    got.lock().unwrap_or_else(|p| p.into_inner()).push(Delivery {
        request_line,
        headers,
        body,
        event,
    });
    let mut stream = stream;
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
}

/// A chunked body (in case the client streams it), bounded to 1 MiB.
fn read_chunked(reader: &mut impl std::io::BufRead) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size).ok()?;
        let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
        if body.len() + size > 1 << 20 {
            return None;
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..]).ok()?;
        let mut end = String::new();
        reader.read_line(&mut end).ok()?;
        if size == 0 {
            return Some(body);
        }
    }
}

/// The receiver's URL on `port`.
fn url(port: u16) -> String {
    format!("http://127.0.0.1:{port}/hook")
}

/// A loopback port nothing listens on now (so deliveries to it fail until a receiver takes it).
fn reserve_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

/// HMAC-SHA256 (RFC 2104), written out so that the check needs nothing but `sha2`.
fn hmac_sha256(key: &[u8], message: &[u8]) -> String {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(message).finalize();
    let outer = Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize();
    outer.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn hmac_sha256_matches_rfc_4231() {
    // Test case 2 of RFC 4231: the signature check below relies on this function.
    assert_eq!(
        hmac_sha256(b"Jefe", b"what do ya want for nothing?"),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

// ---------------------------------------------------------------------------------------------
// The server

/// A scratch directory: a configuration serving FTP, implicit FTPS, SFTP and TFTP with the
/// audit log on and the given hook rules; users `alice` and `devices` (TFTP's identity).
struct Setup {
    tmp: tempfile::TempDir,
    config: PathBuf,
}

impl Setup {
    /// `rules`: the YAML list items of `hooks.rules`, each starting with `- `, at column 0;
    /// `$TMP` in them stands for the scratch directory.
    fn new(rules: &str) -> Setup {
        Setup::with_hooks("", rules)
    }

    /// As [`Setup::new`], with `settings` (YAML lines at column 0) added to `hooks`.
    fn with_hooks(settings: &str, rules: &str) -> Setup {
        let tmp = tempfile::tempdir().expect("tempdir");
        let rules = rules.replace("$TMP", &tmp.path().display().to_string());
        write_alice_and_devices(tmp.path());
        std::fs::create_dir_all(tmp.path().join("data/share/alice")).expect("alice's home");
        write(tmp.path(), "data/hook-secret", &format!("{SECRET}\n"));
        let rules: String = rules.lines().map(|line| format!("    {line}\n")).collect();
        let settings: String = settings.lines().map(|line| format!("  {line}\n")).collect();
        let config = write(
            tmp.path(),
            "wharf.yaml",
            &format!(
                "data_dir: data\nshutdown_grace: 5s\n\
                 access: {{ users_file: users.yaml, login_failure_delay: 10ms }}\n\
                 log: {{ audit_file: logs/audit.jsonl }}\n\
                 ftp: {{ listen: [\"127.0.0.1:0\"] }}\n\
                 ftps: {{ implicit_listen: [\"127.0.0.1:0\"] }}\n\
                 sftp: {{ listen: [\"127.0.0.1:0\"] }}\n\
                 tftp:\n  listen: [\"127.0.0.1:0\"]\n  rules: [{{ network: 127.0.0.0/8, identity: devices }}]\n\
                 hooks:\n{settings}  rules:\n{rules}"
            ),
        );
        Setup { tmp, config }
    }

    fn serve(&self) -> Running {
        serve(self.tmp.path(), &self.config)
    }

    /// Writes a local file of `len` bytes for curl to upload.
    fn local(&self, name: &str, len: usize) -> PathBuf {
        let path = self.tmp.path().join("client").join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, pattern(len)).expect("write");
        path
    }

    /// Waits (at most [`WAIT`]) for the audit log's line on the end of the upload of `path`.
    fn audited_upload(&self, path: &str) -> Value {
        let log = self.tmp.path().join("data/logs/audit.jsonl");
        let started = Instant::now();
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let found = text
                .lines()
                .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                .find(|event| event["op"] == "upload" && event["path"] == path);
            if let Some(event) = found {
                return event;
            }
            assert!(started.elapsed() < WAIT, "no audited upload of {path}:\n{text}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The spooled events of `rule` (`*.json` files in its spool folder).
    fn spooled(&self, rule: &str) -> usize {
        std::fs::read_dir(self.tmp.path().join("data/hooks").join(rule))
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                    .count()
            })
            .unwrap_or(0)
    }

    /// Waits (at most [`WAIT`]) until `rule`'s spool holds `n` events.
    fn wait_for_spooled(&self, rule: &str, n: usize) {
        let started = Instant::now();
        while self.spooled(rule) != n {
            let held = self.spooled(rule);
            assert!(started.elapsed() < WAIT, "{rule}'s spool holds {held} events, not {n}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// An HTTP rule on uploads posting to `url`, signed, retrying quickly.
fn upload_rule(name: &str, url: &str) -> String {
    format!(
        "- name: {name}\n  events: [upload]\n  \
         http: {{ url: \"{url}\", secret_file: hook-secret, timeout: 5s }}\n  \
         retry: {{ first: 200ms, max: 1s }}\n"
    )
}

/// Uploads `local` with curl to `url`; `extra` goes before the URL. Fails the test if curl does.
fn upload(curl: &Path, local: &Path, url: &str, extra: &[&str]) {
    let mut command = Command::new(curl);
    command.args(["-sS", "--max-time", "30"]).args(extra).arg("-T").arg(local).arg(url);
    let out = run_bounded(&mut command, Duration::from_secs(45));
    assert!(out.status.success(), "curl -T {url}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Uploads `len` bytes as alice over FTP to `path`.
fn ftp_upload(curl: &Path, setup: &Setup, server: &Running, path: &str, len: usize) {
    let local = setup.local(path.trim_start_matches('/'), len);
    let url = format!("ftp://alice:{TEST_PASSWORD}@{}{path}", server.listener("FTP"));
    upload(curl, &local, &url, &[]);
}

/// The paths of `events`, in order.
fn paths(events: &[Delivery]) -> Vec<&str> {
    events.iter().map(Delivery::path).collect()
}

// ---------------------------------------------------------------------------------------------
// The tests

/// One upload per protocol: (protocol, user, virtual path, size). TFTP clients on loopback
/// are `devices`, whose home is their root, as alice's is hers.
const UPLOADS: [(&str, &str, &str, usize); 4] = [
    ("ftp", "alice", "/ftp.bin", 1_001),
    ("ftps", "alice", "/ftps.bin", 20_002),
    ("sftp", "alice", "/sftp.bin", 300_003),
    ("tftp", "devices", "/tftp.bin", 4_004),
];

#[test]
fn an_upload_on_each_protocol_is_one_event_with_its_size_and_path() {
    let Some(curl) = require_tool("curl") else { return };
    let receiver = Receiver::on(0);
    let setup = Setup::new(&upload_rule("arrivals", &receiver.url()));
    let server = setup.serve();
    let alice = format!("alice:{TEST_PASSWORD}");
    for (protocol, _, path, size) in UPLOADS {
        let local = setup.local(path.trim_start_matches('/'), size);
        let listener = server.listener(&protocol.to_ascii_uppercase());
        let (url, extra) = match protocol {
            "sftp" => (format!("sftp://{listener}{path}"), vec!["-k", "--user", &alice]),
            "tftp" => (format!("tftp://{listener}{path}"), vec![]),
            scheme => (format!("{scheme}://{alice}@{listener}{path}"), vec!["-k"]),
        };
        upload(&curl, &local, &url, &extra);
    }
    // All four arrived; then the sentinel, after which any duplicate would have arrived too.
    receiver.wait_for_events(UPLOADS.len(), WAIT);
    ftp_upload(&curl, &setup, &server, "/sentinel.txt", 7);
    let events = receiver.before("/sentinel.txt");
    assert_eq!(events.len(), UPLOADS.len(), "one event per upload: {:?}", paths(&events));

    let mut ids = Vec::new();
    for (protocol, user, path, size) in UPLOADS {
        let matching: Vec<&Delivery> = events.iter().filter(|d| d.path() == path).collect();
        assert_eq!(matching.len(), 1, "{protocol}: one event for {path}: {events:#?}");
        let delivery = matching[0];
        let event = &delivery.event;
        let what = format!("{protocol}: {event}");
        assert_eq!(delivery.request_line, "POST /hook HTTP/1.1", "{what}");
        assert_eq!(event["event"], "upload", "{what}");
        assert_eq!(event["protocol"], protocol, "{what}");
        assert_eq!(event["user"], user, "{what}");
        assert_eq!(event["size"], size, "{what}");
        assert_eq!(event["outcome"], "ok", "{what}");
        assert_eq!(event["address"], "127.0.0.1", "{what}");
        assert!(event["port"].as_u64().is_some_and(|p| p > 0), "{what}");
        assert!(event["session"].is_u64() && event["duration_ms"].is_u64(), "{what}");
        assert!(event.get("to").is_none(), "no rename target on an upload: {what}");
        assert!(event.get("sha256").is_none(), "no digest unless asked for: {what}");
        let time = event["time"].as_str().unwrap_or_default();
        let rfc3339 = &time::format_description::well_known::Rfc3339;
        assert!(
            time.ends_with('Z') && time::OffsetDateTime::parse(time, rfc3339).is_ok(),
            "{what}"
        );
        let id = event["id"].as_str().unwrap_or_default();
        assert!(
            id.len() == 32 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "the id is 32 lowercase hex digits: {what}"
        );
        ids.push(id.to_owned());
        assert_eq!(delivery.header("x-wharf-event"), Some("upload"), "{what}");
        assert_eq!(delivery.header("x-wharf-event-id"), Some(id), "{what}");
        let content_type = delivery.header("content-type").unwrap_or_default();
        assert!(content_type.starts_with("application/json"), "{content_type}: {what}");
        // The key is the file's content less its trailing newline.
        let expected = format!("sha256={}", hmac_sha256(SECRET.as_bytes(), &delivery.body));
        assert_eq!(delivery.header("x-wharf-signature"), Some(expected.as_str()), "{what}");
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), UPLOADS.len(), "every event has an id of its own");
    assert!(server.stop().success());
}

/// Waits (at most [`WAIT`]) until an upload's temporary file shows in `dir`.
fn wait_for_upload_in_progress(dir: &Path) {
    let started = Instant::now();
    loop {
        let busy = std::fs::read_dir(dir).is_ok_and(|entries| {
            entries
                .filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().starts_with(".wharf-tmp-"))
        });
        if busy {
            return;
        }
        assert!(started.elapsed() < WAIT, "no upload in progress in {}", dir.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_killed_upload_produces_no_event() {
    let Some(curl) = require_tool("curl") else { return };
    let receiver = Receiver::on(0);
    let setup = Setup::new(&upload_rule("arrivals", &receiver.url()));
    let server = setup.serve();

    let mut ftp = RawFtp::connect(server.listener("FTP"));
    ftp.command("USER alice", 331);
    ftp.command(&format!("PASS {TEST_PASSWORD}"), 230);
    ftp.command("TYPE I", 200);
    let mut data = ftp.passive();
    ftp.command("STOR /killed.bin", 150);
    data.write_all(&pattern(256 * 1024)).expect("the first part of the file");
    wait_for_upload_in_progress(&setup.tmp.path().join("data/share/alice"));
    // A reset data connection (SO_LINGER 0), then a closed control connection: in stream mode
    // a clean close of the data connection would be the end of the file.
    rustix::net::sockopt::set_socket_linger(&data, Some(Duration::ZERO)).expect("SO_LINGER 0");
    drop(data);
    drop(ftp);
    let audited = setup.audited_upload("/killed.bin");
    assert_ne!(audited["outcome"], "ok", "the killed upload was not published: {audited}");

    ftp_upload(&curl, &setup, &server, "/sentinel.txt", 7);
    let events = receiver.before("/sentinel.txt");
    assert!(events.is_empty(), "no event before the sentinel's: {:?}", paths(&events));
    assert!(!setup.tmp.path().join("data/share/alice/killed.bin").exists());
    assert!(server.stop().success());
}

#[test]
fn events_wait_for_a_receiver_that_was_down_and_arrive_in_order() {
    let Some(curl) = require_tool("curl") else { return };
    let port = reserve_port();
    let setup = Setup::new(&upload_rule("arrivals", &url(port)));
    let server = setup.serve();
    for path in ["/one.bin", "/two.bin", "/three.bin"] {
        ftp_upload(&curl, &setup, &server, path, 1000);
        assert_eq!(setup.audited_upload(path)["outcome"], "ok", "{path}");
    }
    // The scenario itself: the receiver stays down a while, through several failed attempts.
    std::thread::sleep(Duration::from_secs(5));
    let receiver = Receiver::on(port);
    ftp_upload(&curl, &setup, &server, "/sentinel.txt", 7);
    let events = receiver.before("/sentinel.txt");
    assert_eq!(paths(&events), ["/one.bin", "/two.bin", "/three.bin"], "in order, once each");
    assert!(server.stop().success());
}

#[test]
fn undelivered_events_are_delivered_after_a_restart() {
    let Some(curl) = require_tool("curl") else { return };
    let port = reserve_port();
    let setup = Setup::new(&upload_rule("arrivals", &url(port)));
    let server = setup.serve();
    ftp_upload(&curl, &setup, &server, "/kept.bin", 12_345);
    setup.wait_for_spooled("arrivals", 1);
    assert!(server.stop().success());

    let receiver = Receiver::on(port);
    let server = setup.serve();
    let events = receiver.wait_for_events(1, WAIT);
    assert_eq!(events[0].event["event"], "upload", "{:?}", events[0].event);
    assert_eq!(events[0].path(), "/kept.bin", "{:?}", events[0].event);
    assert_eq!(events[0].event["size"], 12_345, "{:?}", events[0].event);
    // Delivered once, then dropped from the spool.
    ftp_upload(&curl, &setup, &server, "/sentinel.txt", 7);
    assert_eq!(paths(&receiver.before("/sentinel.txt")), ["/kept.bin"]);
    setup.wait_for_spooled("arrivals", 0);
    assert!(server.stop().success());
}

#[test]
fn a_hostile_file_name_reaches_a_command_hook_as_data() {
    let Some(curl) = require_tool("curl") else { return };
    // `sh -c SCRIPT sh OUT`: in the script `$0` is "sh" and `$1` is OUT.
    let script = r#"printf '%s' "$WHARF_PATH" > "$1""#;
    let args = serde_json::to_string(&["-c", script, "sh", "$TMP/hook-out"]).expect("args");
    let setup = Setup::new(&format!(
        "- name: scan\n  events: [upload]\n  \
         command: {{ program: /bin/sh, args: {args}, timeout: 10s }}\n"
    ));
    let out = setup.tmp.path().join("hook-out");
    // Wharf refuses control characters (a newline too) and '/' is the separator, so the name
    // runs its commands in $HOME (`cd` alone goes there), set to the scratch directory below.
    let name = "it's \"quoted\" $(cd;touch pwned) `cd;touch pwned`; cd; touch pwned; x.txt";
    let mut command = common::wharf(setup.tmp.path());
    command.env("HOME", setup.tmp.path()).arg("serve").arg("--config").arg(&setup.config);
    let server = common::start(command);
    let local = setup.local("hostile.txt", 100);
    let url = format!("sftp://{}/{}", server.listener("SFTP"), percent_encoded(name));
    upload(&curl, &local, &url, &["-k", "--user", &format!("alice:{TEST_PASSWORD}")]);
    assert!(setup.tmp.path().join("data/share/alice").join(name).exists(), "uploaded as named");

    let expected = format!("/{name}");
    let started = Instant::now();
    loop {
        let written = std::fs::read_to_string(&out).unwrap_or_default();
        if written == expected {
            break;
        }
        assert!(started.elapsed() < WAIT, "the hook wrote {written:?}, not {expected:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(server.stop().success());
    let pwned = files_named(setup.tmp.path(), "pwned");
    assert!(pwned.is_empty(), "the file name ran as shell code: {pwned:?}");
}

/// `text` with every byte but letters and digits percent-encoded, for a URL's path.
fn percent_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() { char::from(b).to_string() } else { format!("%{b:02X}") }
        })
        .collect()
}

/// Every file or folder called `name` under `dir`.
fn files_named(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().filter_map(Result::ok) {
        let path = entry.path();
        if entry.file_name() == name {
            found.push(path.clone());
        }
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            found.extend(files_named(&path, name));
        }
    }
    found
}

/// The SHA-256 of `data` in lowercase hex.
fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn with_upload_sha256_each_whole_upload_carries_the_digest_of_its_content() {
    let Some(curl) = require_tool("curl") else { return };
    let receiver = Receiver::on(0);
    let setup = Setup::with_hooks("upload_sha256: true", &upload_rule("arrivals", &receiver.url()));
    let server = setup.serve();
    let alice = format!("alice:{TEST_PASSWORD}");
    // Several blocks each, so that the digest spans many writes.
    let uploads = [("ftp", "/ftp.bin", 700_001), ("sftp", "/sftp.bin", 900_003)];
    for (protocol, path, size) in uploads {
        let local = setup.local(path.trim_start_matches('/'), size);
        let listener = server.listener(&protocol.to_ascii_uppercase());
        let (url, extra) = match protocol {
            "sftp" => (format!("sftp://{listener}{path}"), vec!["-k", "--user", &alice]),
            scheme => (format!("{scheme}://{alice}@{listener}{path}"), vec![]),
        };
        upload(&curl, &local, &url, &extra);
    }
    // A resumed upload (curl -C -: APPE of the rest) is not a whole file written by one
    // upload: its event has no digest.
    let longer = pattern(1_000_001);
    let local = setup.local("resumed.bin", 0);
    std::fs::write(&local, &longer[..400_000]).expect("write the first part");
    let url = format!("ftp://{alice}@{}/resumed.bin", server.listener("FTP"));
    upload(&curl, &local, &url, &[]);
    std::fs::write(&local, &longer).expect("write the whole file");
    upload(&curl, &local, &url, &["-C", "-"]);
    assert_eq!(
        std::fs::read(setup.tmp.path().join("data/share/alice/resumed.bin")).expect("resumed"),
        longer
    );

    let events = receiver.wait_for_events(4, WAIT);
    assert_eq!(paths(&events), ["/ftp.bin", "/sftp.bin", "/resumed.bin", "/resumed.bin"]);
    for ((protocol, path, size), delivery) in uploads.into_iter().zip(&events) {
        let expected = sha256_hex(&pattern(size));
        let event = &delivery.event;
        assert_eq!(event["size"], size, "{protocol}: {event}");
        assert_eq!(event["sha256"], expected.as_str(), "{protocol}: {event}");
        // The audit log shows it too.
        assert_eq!(setup.audited_upload(path)["sha256"], expected.as_str(), "{protocol}");
    }
    assert_eq!(events[2].event["sha256"], sha256_hex(&longer[..400_000]), "{}", events[2].event);
    assert!(events[3].event.get("sha256").is_none(), "a resume has none: {}", events[3].event);
    assert!(server.stop().success());
}
