//! The admin API on the real binary, driven by curl: tokens made by `wharf token create`, who
//! may call what, every call audited, bans made and lifted, reloads, metrics, and the OpenAPI
//! document — validated, and every route it documents exercised here.

mod common;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    RawFtp, Running, closes_unanswered, connect_from, finish, serve, wharf, write, write_alice,
};
use wharf_testkit::{TEST_PASSWORD, pattern, require_tool, run_bounded};

/// How long one curl call may take.
const CALL_LIMIT: Duration = Duration::from_secs(30);

/// The address the tests ban: FTP connections come from it, API calls from 127.0.0.1 (a
/// banned address could not reach the API to lift its own ban).
const BANNED: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

struct Api {
    tmp: tempfile::TempDir,
    config: PathBuf,
    server: Running,
    client: Client,
    admin: String,
    reader: String,
}

/// Where the clients go (shareable between the threads of a test, unlike the server).
#[derive(Debug, Clone, Copy)]
struct Client {
    admin: SocketAddr,
    ftp: SocketAddr,
    sftp: SocketAddr,
}

/// One answer: status and body.
struct Answer {
    status: u16,
    body: String,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|err| panic!("{err}: {}", self.body))
    }

    fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or_default().to_owned()
    }
}

/// `wharf token create` in `dir`; returns the token it printed.
fn create_token(dir: &Path, config: &Path, name: &str, scope: &str) -> String {
    let mut command = wharf(dir);
    command.args(["token", "create", "--name", name, "--scope", scope, "--config"]).arg(config);
    let output = run_bounded(&mut command, CALL_LIMIT);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let token = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert!(token.starts_with("wharf_") && token.len() == 70, "{token}");
    token
}

impl Api {
    fn start() -> Option<Api> {
        require_tool("curl")?;
        let tmp = tempfile::tempdir().expect("tempdir");
        write_alice(tmp.path());
        let config = write(
            tmp.path(),
            "wharf.yaml",
            "data_dir: data\n\
             access: { users_file: users.yaml, login_failure_delay: 10ms }\n\
             log: { audit_file: logs/audit.jsonl }\n\
             ftp: { listen: [\"127.0.0.1:0\"] }\n\
             ftps: { implicit_listen: [] }\n\
             sftp: { listen: [\"127.0.0.1:0\"] }\n\
             admin: { listen: \"127.0.0.1:0\" }\n",
        );
        let admin = create_token(tmp.path(), &config, "ops", "admin");
        let reader = create_token(tmp.path(), &config, "dashboard", "read");
        let tokens =
            std::fs::read_to_string(tmp.path().join("data/api-tokens.yaml")).expect("file");
        assert!(!tokens.contains(&admin) && !tokens.contains(&reader), "only hashes are kept");
        let server = serve(tmp.path(), &config);
        let client = Client {
            admin: server.listener("admin"),
            ftp: server.listener("FTP"),
            sftp: server.listener("SFTP"),
        };
        Some(Api { tmp, config, server, client, admin, reader })
    }

    /// Calls `method path` with `token` (if any) and `body` (JSON, if any).
    fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> Answer {
        self.client.call(method, path, token, body)
    }
}

impl Client {
    /// Calls `method path` with `token` (if any) and `body` (JSON, if any).
    fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> Answer {
        let mut command = Command::new("curl");
        command
            .args(["--silent", "--show-error", "--max-time", "20", "-X", method])
            .args(["--write-out", "\n%{http_code}"])
            .arg(format!("http://{}{path}", self.admin));
        if let Some(token) = token {
            command.args(["-H", &format!("Authorization: Bearer {token}")]);
        }
        if let Some(body) = body {
            command.args(["-H", "Content-Type: application/json", "--data", body]);
        }
        let output = run_bounded(&mut command, CALL_LIMIT);
        assert!(output.status.success(), "curl: {}", String::from_utf8_lossy(&output.stderr));
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').expect("a status line");
        Answer { status: status.trim().parse().expect("a status"), body: body.to_owned() }
    }

    /// curl logging in as `user` with `password` and listing `/` over `protocol` (`ftp`,
    /// `ftps` for explicit FTPS, `sftp`); whether it succeeded.
    fn lists(&self, protocol: &str, user: &str, password: &str) -> bool {
        let (scheme, at, extra): (&str, SocketAddr, &[&str]) = match protocol {
            "ftp" => ("ftp", self.ftp, &[]),
            "ftps" => ("ftp", self.ftp, &["--ssl-reqd", "--insecure"]),
            _ => ("sftp", self.sftp, &["--insecure"]),
        };
        let mut command = Command::new("curl");
        command
            .args(["--silent", "--show-error", "--max-time", "20", "--user"])
            .arg(format!("{user}:{password}"))
            .args(extra)
            .arg(format!("{scheme}://{at}/"));
        run_bounded(&mut command, CALL_LIMIT).status.success()
    }
}

impl Api {
    /// Waits (bounded) for the audit log to hold a line with every one of `needles`.
    fn audited(&self, needles: &[&str]) -> String {
        let log = self.tmp.path().join("data/logs/audit.jsonl");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(line) = text.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
                return line.to_owned();
            }
            assert!(Instant::now() < deadline, "no audit line with {needles:?}:\n{text}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Api {
    /// The sessions the API lists.
    fn sessions(&self) -> Vec<serde_json::Value> {
        let listed = self.call("GET", "/api/v1/sessions", Some(&self.reader), None);
        assert_eq!(listed.status, 200, "{}", listed.body);
        listed.json().as_array().expect("a list").clone()
    }

    /// Waits (bounded) until the API lists a session that `wanted` accepts, and returns it.
    fn session_where(&self, wanted: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let sessions = self.sessions();
            if let Some(session) = sessions.iter().find(|s| wanted(s)) {
                return session.clone();
            }
            assert!(Instant::now() < deadline, "no such session among {sessions:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (bounded) until the API lists no session.
    fn no_sessions_left(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let sessions = self.sessions();
            if sessions.is_empty() {
                return;
            }
            assert!(Instant::now() < deadline, "sessions still open: {sessions:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Whether an FTP client from [`BANNED`] is greeted (a banned one is closed at accept).
fn ftp_greets_banned_address(server: &Running) -> bool {
    use std::io::Read as _;
    let mut stream = connect_from(BANNED, server.listener("FTP"));
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut first = [0u8; 3];
    match stream.read(&mut first) {
        Ok(3) => &first == b"220",
        _ => {
            assert!(closes_unanswered(&mut stream));
            false
        }
    }
}

#[test]
fn a_call_without_a_token_is_refused_and_audited_and_a_read_token_cannot_write() {
    let Some(api) = Api::start() else { return };
    let refused = api.call("GET", "/api/v1/bans", None, None);
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (401, "unauthorized"),
        "{}",
        refused.body
    );
    api.audited(&[
        "\"protocol\":\"admin\"",
        "\"user\":\"-\"",
        "\"outcome\":\"denied\"",
        "GET /api/v1/bans 401",
    ]);
    let wrong = api.call("GET", "/api/v1/bans", Some("wharf_not-a-token"), None);
    assert_eq!(wrong.status, 401);

    let read = api.call("GET", "/api/v1/bans", Some(&api.reader), None);
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(read.json(), serde_json::json!([]));
    api.audited(&["\"user\":\"dashboard\"", "\"outcome\":\"ok\"", "GET /api/v1/bans 200"]);
    for (method, path, body) in [
        ("POST", "/api/v1/bans", Some("{\"address\":\"192.0.2.1\"}")),
        ("DELETE", "/api/v1/bans/192.0.2.1", None),
        ("POST", "/api/v1/reload", None),
    ] {
        let answer = api.call(method, path, Some(&api.reader), body);
        assert_eq!((answer.status, answer.code().as_str()), (403, "forbidden"), "{method} {path}");
    }
    api.audited(&["\"user\":\"dashboard\"", "\"outcome\":\"denied\"", "POST /api/v1/reload 403"]);
    let bans = api.call("GET", "/api/v1/bans", Some(&api.admin), None);
    assert_eq!(bans.json(), serde_json::json!([]), "the read-only token changed nothing");
}

#[test]
fn a_ban_made_through_the_api_holds_and_lifting_it_lets_the_address_in() {
    let Some(api) = Api::start() else { return };
    assert!(ftp_greets_banned_address(&api.server), "not banned yet");
    let made = api.call(
        "POST",
        "/api/v1/bans",
        Some(&api.admin),
        Some(&format!("{{\"address\":\"{BANNED}\",\"duration_secs\":600}}")),
    );
    assert_eq!(made.status, 201, "{}", made.body);
    assert_eq!(made.json()["address"], BANNED.to_string());
    assert!(!ftp_greets_banned_address(&api.server), "banned on FTP");
    let listed = api.call("GET", "/api/v1/bans", Some(&api.reader), None).json();
    assert_eq!(listed[0]["address"], BANNED.to_string(), "{listed}");

    let lifted = api.call("DELETE", &format!("/api/v1/bans/{BANNED}"), Some(&api.admin), None);
    assert_eq!(lifted.status, 204, "{}", lifted.body);
    assert!(ftp_greets_banned_address(&api.server), "let in again");
    let again = api.call("DELETE", &format!("/api/v1/bans/{BANNED}"), Some(&api.admin), None);
    assert_eq!((again.status, again.code().as_str()), (404, "not_found"));
    for bad in
        ["{\"address\":\"nowhere\"}", "{\"address\":\"10.0.0.1\",\"duration_secs\":0}", "not json"]
    {
        let answer = api.call("POST", "/api/v1/bans", Some(&api.admin), Some(bad));
        assert_eq!(
            (answer.status, answer.code().as_str()),
            (400, "bad_request"),
            "{bad}: {}",
            answer.body
        );
    }
}

#[test]
fn a_reload_through_the_api_takes_new_tokens_and_a_bad_one_changes_nothing() {
    let Some(api) = Api::start() else { return };
    let late = create_token(api.tmp.path(), &api.config, "late", "read");
    assert_eq!(api.call("GET", "/api/v1/version", Some(&late), None).status, 401, "not yet");
    let reloaded = api.call("POST", "/api/v1/reload", Some(&api.admin), None);
    assert_eq!(reloaded.status, 200, "{}", reloaded.body);
    let version = api.call("GET", "/api/v1/version", Some(&late), None);
    assert_eq!(version.json()["version"], env!("CARGO_PKG_VERSION"));

    let users = api.tmp.path().join("data/users.yaml");
    let good = std::fs::read_to_string(&users).expect("users");
    std::fs::write(&users, "users: [ { name: broken, password: plaintext } ]\n").expect("write");
    let refused = api.call("POST", "/api/v1/reload", Some(&api.admin), None);
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (422, "reload_failed"),
        "{}",
        refused.body
    );
    std::fs::write(&users, good).expect("write");
    assert_eq!(api.call("GET", "/api/v1/version", Some(&late), None).status, 200, "still served");
}

#[test]
fn the_openapi_document_validates_and_every_route_it_documents_answers() {
    let Some(api) = Api::start() else { return };
    let document = api.call("GET", "/api/v1/openapi.json", None, None);
    assert_eq!(document.status, 200);
    let spec = document.json();
    let documented: BTreeSet<(String, String)> = spec["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            let methods = item.as_object().expect("a path item").keys().cloned();
            methods.map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect();

    // The document is a valid OpenAPI document, by an independent validator.
    let file = api.tmp.path().join("openapi.json");
    std::fs::write(&file, &document.body).expect("write");
    if let Some(validator) = require_tool("openapi-spec-validator") {
        let output = run_bounded(Command::new(validator).arg(&file), CALL_LIMIT);
        assert!(
            output.status.success(),
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    // Every documented route, called as documented, answers as documented.
    let ban = "{\"address\":\"192.0.2.9\",\"duration_secs\":60}";
    let user = "{\"home\":\"bob\",\"passwordless\":true,\"protocols\":[\"tftp\"]}";
    let calls: [(&str, &str, &str, Option<&str>, u16); 19] = [
        ("GET", "/health", "/health", None, 200),
        ("GET", "/ready", "/ready", None, 200),
        ("GET", "/api/v1/openapi.json", "/api/v1/openapi.json", None, 200),
        ("GET", "/metrics", "/metrics", None, 200),
        ("GET", "/api/v1/version", "/api/v1/version", None, 200),
        ("POST", "/api/v1/bans", "/api/v1/bans", Some(ban), 201),
        ("GET", "/api/v1/bans", "/api/v1/bans", None, 200),
        ("DELETE", "/api/v1/bans/{address}", "/api/v1/bans/192.0.2.9", None, 204),
        ("POST", "/api/v1/reload", "/api/v1/reload", None, 200),
        ("PUT", "/api/v1/users/{name}", "/api/v1/users/bob", Some(user), 201),
        ("GET", "/api/v1/users", "/api/v1/users", None, 200),
        ("GET", "/api/v1/users/{name}", "/api/v1/users/bob", None, 200),
        ("PATCH", "/api/v1/users/{name}", "/api/v1/users/bob", Some("{\"disabled\":true}"), 200),
        ("GET", "/api/v1/users/{name}/quota", "/api/v1/users/bob/quota", None, 200),
        ("POST", "/api/v1/users/{name}/quota/reset", "/api/v1/users/bob/quota/reset", None, 200),
        ("DELETE", "/api/v1/users/{name}", "/api/v1/users/bob", None, 204),
        ("GET", "/api/v1/sessions", "/api/v1/sessions", None, 200),
        // (Sessions that are open are found and ended in the tests below.)
        ("GET", "/api/v1/sessions/{id}", "/api/v1/sessions/4000000000", None, 404),
        ("DELETE", "/api/v1/sessions/{id}", "/api/v1/sessions/4000000000", None, 404),
    ];
    let mut exercised = BTreeSet::new();
    for (method, documented_path, path, body, status) in calls {
        let answer = api.call(method, path, Some(&api.admin), body);
        assert_eq!(answer.status, status, "{method} {path}: {}", answer.body);
        let responses = &spec["paths"][documented_path][method.to_lowercase()]["responses"];
        assert!(
            responses[status.to_string()].is_object(),
            "{method} {documented_path}: {status} not documented"
        );
        exercised.insert((method.to_owned(), documented_path.to_owned()));
    }
    assert_eq!(exercised, documented, "every documented route is exercised, and only those");
    let metrics = api.call("GET", "/metrics", Some(&api.reader), None);
    assert!(metrics.body.contains("# TYPE wharf_logins_total counter"), "{}", metrics.body);
    let unknown = api.call("GET", "/api/v1/nothing", Some(&api.reader), None);
    assert_eq!((unknown.status, unknown.code().as_str()), (404, "not_found"));
}

#[test]
fn a_user_made_through_the_api_logs_in_on_every_protocol_until_disabled_or_deleted() {
    let Some(api) = Api::start() else { return };
    let password = "partner-Pa55word";
    let body = format!(
        "{{\"home\":\"partners/acme\",\"protocols\":[\"ftp\",\"sftp\"],\"password_plaintext\":\"{password}\"}}"
    );
    let made = api.call("PUT", "/api/v1/users/acme", Some(&api.admin), Some(&body));
    assert_eq!(made.status, 201, "{}", made.body);
    let user = made.json();
    assert_eq!((user["name"].as_str(), user["has_password"].as_bool()), (Some("acme"), Some(true)));
    assert!(user.get("password").is_none() && user.get("password_plaintext").is_none(), "{user}");
    let stored =
        std::fs::read_to_string(api.tmp.path().join("data/users.yaml")).expect("users file");
    assert!(stored.contains("$argon2id$") && !stored.contains(password), "hashed before stored");

    // The three protocols at once, each its own session of the new user.
    let client = api.client;
    let logged_in: Vec<bool> = std::thread::scope(|scope| {
        let logins: Vec<_> = ["ftp", "ftps", "sftp"]
            .into_iter()
            .map(|protocol| scope.spawn(move || client.lists(protocol, "acme", password)))
            .collect();
        logins.into_iter().map(|login| login.join().expect("login thread")).collect()
    });
    assert_eq!(logged_in, [true, true, true], "FTP, FTPS, SFTP");
    let listed = api.call("GET", "/api/v1/users/acme", Some(&api.reader), None);
    assert_eq!(listed.json()["home"], "partners/acme");

    let disabled =
        api.call("PATCH", "/api/v1/users/acme", Some(&api.admin), Some("{\"disabled\":true}"));
    assert_eq!(disabled.status, 200, "{}", disabled.body);
    assert_eq!(disabled.json()["disabled"], true);
    assert!(!client.lists("ftp", "acme", password), "a disabled user cannot log in");
    assert!(!client.lists("sftp", "acme", password), "on any protocol");
    let enabled =
        api.call("PATCH", "/api/v1/users/acme", Some(&api.admin), Some("{\"disabled\":null}"));
    assert_eq!(enabled.status, 200);
    assert!(client.lists("ftp", "acme", password), "enabled again");

    let bad = api.call(
        "PATCH",
        "/api/v1/users/acme",
        Some(&api.admin),
        Some("{\"password\":\"plaintext\"}"),
    );
    assert_eq!((bad.status, bad.code().as_str()), (400, "bad_request"), "{}", bad.body);
    assert!(client.lists("ftp", "acme", password), "a refused change changed nothing");
    assert_eq!(api.call("DELETE", "/api/v1/users/acme", Some(&api.admin), None).status, 204);
    assert!(!client.lists("ftp", "acme", password), "deleted");
    let gone = api.call("GET", "/api/v1/users/acme", Some(&api.reader), None);
    assert_eq!((gone.status, gone.code().as_str()), (404, "not_found"));
}

#[test]
fn fifty_api_changes_racing_reloads_and_logins_all_land_in_a_users_file_that_parses() {
    let Some(api) = Api::start() else { return };
    const CHANGES: usize = 50;
    let hash =
        wharf_access::hash_password(&wharf_access::Password::new(TEST_PASSWORD)).expect("hash");
    let done = std::sync::atomic::AtomicBool::new(false);
    let (client, admin) = (api.client, api.admin.as_str());
    let pid = rustix::process::Pid::from_raw(api.server.process.0.id() as i32).expect("pid");
    let (statuses, reloads, logins) = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..5)
            .map(|writer| {
                let hash = &hash;
                scope.spawn(move || {
                    (0..CHANGES / 5)
                        .map(|n| {
                            let name = format!("u{}", writer * 10 + n);
                            let body = format!("{{\"home\":\"{name}\",\"password\":\"{hash}\"}}");
                            let path = format!("/api/v1/users/{name}");
                            client.call("PUT", &path, Some(admin), Some(&body)).status
                        })
                        .collect::<Vec<u16>>()
                })
            })
            .collect();
        let signals = scope.spawn(|| {
            let mut sent = 0;
            while !done.load(std::sync::atomic::Ordering::Acquire) && sent < 1000 {
                rustix::process::kill_process(pid, rustix::process::Signal::HUP).expect("SIGHUP");
                sent += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            sent
        });
        let logins = scope.spawn(|| {
            let mut ok = 0;
            for _ in 0..200 {
                if done.load(std::sync::atomic::Ordering::Acquire) {
                    break;
                }
                ok += usize::from(api.client.lists("ftp", "alice", TEST_PASSWORD));
            }
            ok
        });
        let statuses: Vec<u16> =
            writers.into_iter().flat_map(|w| w.join().expect("writer")).collect();
        done.store(true, std::sync::atomic::Ordering::Release);
        (statuses, signals.join().expect("signals"), logins.join().expect("logins"))
    });
    assert_eq!(statuses, vec![201; CHANGES], "every change was made");
    assert!(reloads > 0 && logins > 0, "the changes raced {reloads} reloads and {logins} logins");

    let text = std::fs::read_to_string(api.tmp.path().join("data/users.yaml")).expect("users file");
    let file: wharf_access::UsersFile = serde_yaml::from_str(&text).expect("the users file parses");
    let names: BTreeSet<String> = file.users.into_iter().map(|u| u.name).collect();
    let expected: BTreeSet<String> =
        (0..CHANGES).map(|n| format!("u{n}")).chain(["alice".to_owned()]).collect();
    assert_eq!(names, expected, "every change is in the file, nothing else");
    let listed = api.call("GET", "/api/v1/users", Some(&api.reader), None).json();
    assert_eq!(listed.as_array().map(Vec::len), Some(CHANGES + 1));
    assert!(api.client.lists("ftp", "u49", TEST_PASSWORD), "the last user logs in");
}

#[test]
fn a_users_quota_usage_is_read_and_measured_again_through_the_api() {
    let Some(api) = Api::start() else { return };
    let hash =
        wharf_access::hash_password(&wharf_access::Password::new(TEST_PASSWORD)).expect("hash");
    let small = format!(
        "{{\"home\":\"small\",\"password\":\"{hash}\",\"quota\":{{\"bytes\":\"64KiB\",\"files\":10}}}}"
    );
    assert_eq!(api.call("PUT", "/api/v1/users/small", Some(&api.admin), Some(&small)).status, 201);
    let local = write(api.tmp.path(), "client/one.bin", &"x".repeat(1000));
    let mut upload = Command::new("curl");
    upload
        .args(["--silent", "--show-error", "--max-time", "20", "--user"])
        .arg(format!("small:{TEST_PASSWORD}"))
        .arg("-T")
        .arg(&local)
        .arg(format!("ftp://{}/one.bin", api.client.ftp));
    assert!(run_bounded(&mut upload, CALL_LIMIT).status.success(), "upload");

    let quota = api.call("GET", "/api/v1/users/small/quota", Some(&api.reader), None).json();
    assert_eq!(
        quota,
        serde_json::json!({"limited": true, "bytes_limit": 65536, "files_limit": 10,
                           "used_bytes": 1000, "used_files": 1})
    );
    // A file put in the home behind the server's back counts once the home is measured again.
    write(api.tmp.path(), "data/share/small/behind.bin", &"y".repeat(2000));
    let before = api.call("GET", "/api/v1/users/small/quota", Some(&api.reader), None).json();
    assert_eq!(before["used_bytes"], 1000, "the ledger has not seen it yet");
    let refused = api.call("POST", "/api/v1/users/small/quota/reset", Some(&api.reader), None);
    assert_eq!(refused.status, 403);
    let reset = api.call("POST", "/api/v1/users/small/quota/reset", Some(&api.admin), None);
    assert_eq!(reset.status, 200, "{}", reset.body);
    assert_eq!(
        (reset.json()["used_bytes"].as_u64(), reset.json()["used_files"].as_u64()),
        (Some(3000), Some(2))
    );
    let alice = api.call("GET", "/api/v1/users/alice/quota", Some(&api.reader), None).json();
    assert_eq!(alice["limited"], false, "no quota: usage is not kept");
    let nobody = api.call("GET", "/api/v1/users/nobody/quota", Some(&api.reader), None);
    assert_eq!((nobody.status, nobody.code().as_str()), (404, "not_found"));
}

#[test]
fn over_tls_the_api_answers_https_only_and_takes_a_password_in_the_clear() {
    require_tool("curl");
    let tmp = tempfile::tempdir().expect("tempdir");
    write_alice(tmp.path());
    // A certificate for 127.0.0.1, and the authority curl checks it against (itself).
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
    let certificate = params.self_signed(&key).expect("certificate");
    let chain = write(tmp.path(), "data/api-cert.pem", &certificate.pem());
    let key_file = write(tmp.path(), "data/api-key.pem", &key.serialize_pem());
    // A private key others can read is refused (as FTPS's is).
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let config = write(
        tmp.path(),
        "wharf.yaml",
        "data_dir: data\n\
         access: { users_file: users.yaml, login_failure_delay: 10ms }\n\
         ftp: { listen: [\"127.0.0.1:0\"] }\n\
         admin: { listen: \"127.0.0.1:0\", tls: { certificate_chain: api-cert.pem, private_key: api-key.pem } }\n",
    );
    let admin = create_token(tmp.path(), &config, "ops", "admin");
    let mut check = wharf(tmp.path());
    let checked = run_bounded(check.arg("check").arg("--config").arg(&config), CALL_LIMIT);
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stderr));
    let server = serve(tmp.path(), &config);
    assert!(server.banner.contains("https://"), "{}", server.banner);
    let addr = server.listener("admin");
    let https = |method: &str, path: &str, body: Option<&str>| {
        let mut command = Command::new("curl");
        command
            .args(["--silent", "--show-error", "--max-time", "20", "--cacert"])
            .arg(&chain)
            .args(["-X", method, "--write-out", "\n%{http_code}"])
            .args(["-H", &format!("Authorization: Bearer {admin}")]);
        if let Some(body) = body {
            command.args(["-H", "Content-Type: application/json", "--data", body]);
        }
        let output = run_bounded(command.arg(format!("https://{addr}{path}")), CALL_LIMIT);
        assert!(output.status.success(), "curl: {}", String::from_utf8_lossy(&output.stderr));
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.rsplit_once('\n').map(|(_, status)| status.trim().to_owned()).expect("status")
    };
    assert_eq!(https("GET", "/api/v1/version", None), "200");
    let body = "{\"home\":\"dora\",\"password_plaintext\":\"over-tls\"}";
    assert_eq!(https("PUT", "/api/v1/users/dora", Some(body)), "201");
    let client = Client { admin: addr, ftp: server.listener("FTP"), sftp: addr };
    assert!(client.lists("ftp", "dora", "over-tls"), "the password set over TLS logs in");
    // Plain HTTP on the TLS port is not answered as HTTP.
    let mut plain = Command::new("curl");
    plain.args(["--silent", "--max-time", "10"]).arg(format!("http://{addr}/health"));
    assert!(!run_bounded(&mut plain, CALL_LIMIT).status.success(), "no plain HTTP");
}

#[test]
fn a_live_upload_is_listed_with_its_bytes_and_ending_its_session_abandons_it() {
    let Some(api) = Api::start() else { return };
    let mut ftp = RawFtp::connect(api.client.ftp);
    ftp.command("USER alice", 331);
    ftp.command(&format!("PASS {TEST_PASSWORD}"), 230);
    ftp.command("TYPE I", 200);
    let mut data = ftp.passive();
    ftp.command("STOR /partial.bin", 150);
    use std::io::Write as _;
    data.write_all(&pattern(256 * 1024)).expect("the first part of the file");

    // Listed with the bytes that reached the server, as they reach it.
    let session = api.session_where(|s| s["transfers"][0]["bytes"] == 256 * 1024);
    assert_eq!(
        (session["user"].as_str(), session["protocol"].as_str()),
        (Some("alice"), Some("ftp"))
    );
    assert!(session["address"].as_str().is_some_and(|a| a.starts_with("127.0.0.1:")), "{session}");
    let transfer = &session["transfers"][0];
    assert_eq!(
        (transfer["direction"].as_str(), transfer["path"].as_str()),
        (Some("upload"), Some("/partial.bin"))
    );
    let id = session["id"].as_u64().expect("a session number");
    let one = api.call("GET", &format!("/api/v1/sessions/{id}"), Some(&api.reader), None);
    assert_eq!((one.status, one.json()["user"].as_str()), (200, Some("alice")));

    // Ending it takes an admin token; the client is told why, and the upload is not published.
    let path = format!("/api/v1/sessions/{id}");
    assert_eq!(api.call("DELETE", &path, Some(&api.reader), None).status, 403);
    assert_eq!(api.call("DELETE", &path, Some(&api.admin), None).status, 204);
    assert!(ftp.reply(426).contains("administrator"));
    assert!(ftp.reply(421).contains("administrator"));
    assert!(ftp.rest().is_some(), "the control connection is closed");
    api.no_sessions_left();
    assert_eq!(api.call("DELETE", &path, Some(&api.admin), None).status, 404, "gone");
    let audited = api.audited(&["\"op\":\"upload\"", "/partial.bin"]);
    assert!(!audited.contains("\"outcome\":\"ok\""), "{audited}");
    assert!(!api.tmp.path().join("data/share/alice/partial.bin").exists(), "not published");
    // The user logs in again at once: an ended session is not a ban.
    assert!(api.client.lists("ftp", "alice", TEST_PASSWORD));
}

#[test]
fn disabling_a_user_with_kill_sessions_ends_its_sessions_on_every_protocol() {
    let Some(api) = Api::start() else { return };
    let Some(curl) = require_tool("curl") else { return };
    let home = api.tmp.path().join("data/share/alice");
    std::fs::create_dir_all(&home).expect("alice's home");
    std::fs::write(home.join("big.bin"), pattern(4 << 20)).expect("a file to download");
    // An idle FTP session, and an SFTP download held back by its client.
    let mut ftp = RawFtp::connect(api.client.ftp);
    ftp.command("USER alice", 331);
    ftp.command(&format!("PASS {TEST_PASSWORD}"), 230);
    let download = Command::new(curl)
        .args(["--silent", "--insecure", "--limit-rate", "16K", "--output", "/dev/null"])
        .arg("--user")
        .arg(format!("alice:{TEST_PASSWORD}"))
        .arg(format!("sftp://{}/big.bin", api.client.sftp))
        .spawn()
        .expect("curl");
    let sftp = api
        .session_where(|s| s["protocol"] == "sftp" && s["transfers"][0]["direction"] == "download");
    assert_eq!(sftp["transfers"][0]["path"], "/big.bin");
    api.session_where(|s| s["protocol"] == "ftp" && s["user"] == "alice");

    // Disabled without ending them: both go on.
    let disabled =
        api.call("PATCH", "/api/v1/users/alice", Some(&api.admin), Some("{\"disabled\":true}"));
    assert_eq!(disabled.status, 200, "{}", disabled.body);
    assert_eq!(api.sessions().len(), 2, "open sessions go on unless asked");
    ftp.command("NOOP", 200);

    // Asked: both end at once, and the user cannot come back.
    let bad =
        api.call("PATCH", "/api/v1/users/alice?kill_sessions=maybe", Some(&api.admin), Some("{}"));
    assert_eq!((bad.status, bad.code().as_str()), (400, "bad_request"), "{}", bad.body);
    let ended = api.call(
        "PATCH",
        "/api/v1/users/alice?kill_sessions=true",
        Some(&api.admin),
        Some("{\"disabled\":true}"),
    );
    assert_eq!(ended.status, 200, "{}", ended.body);
    assert!(ftp.reply(421).contains("administrator"));
    assert!(ftp.rest().is_some(), "the control connection is closed");
    assert_ne!(finish(download, Duration::from_secs(30)), 0, "the download was cut");
    api.no_sessions_left();
    assert!(!api.client.lists("sftp", "alice", TEST_PASSWORD), "disabled");
}
