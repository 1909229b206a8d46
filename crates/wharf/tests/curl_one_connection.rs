//! curl moving many files over one control connection (`curl -K list`, `curl -T "{a,b,...}"`),
//! on the real binary, over FTP and explicit FTPS: every file arrives whole, in both
//! directions, however the client paces its data connections.
//!
//! curl before 8.7 waits a whole second for a data connection when the reply to `EPSV` is
//! already there the first time it looks, which a server on the same host used to make
//! happen for most files (`ftp.passive_reply_delay`, docs/protocols/ftp.md). That the reply is
//! held is tested without a clock's help in `crates/wharf-ftp/tests/data_connections.rs`;
//! how fast curl then goes is the benchmark's to measure, not a test's: on a loaded machine a
//! client may miss any hold this short, and a time bound here failed runs that were correct.
//! The runs print how long they took.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Running, serve, write, write_alice_and_devices};
use wharf_testkit::{TEST_PASSWORD, pattern, require_tool, run_bounded};

/// Files downloaded with one `curl -K`.
const DOWNLOADS: usize = 200;
/// Files uploaded with one `curl -T "{...}"`.
const UPLOADS: usize = 50;
/// Bytes in each file.
const FILE_SIZE: usize = 4096;

/// How long curl may run before the test gives up on it (far above what one-second waits for
/// every file would add up to).
const CURL_BOUND: Duration = Duration::from_secs(300);

/// A server with FTP (and `AUTH TLS` on it) serving alice's `many/` folder of [`DOWNLOADS`]
/// files.
fn start(tmp: &Path) -> Running {
    write_alice_and_devices(tmp);
    for index in 0..DOWNLOADS {
        let content = pattern(FILE_SIZE + index);
        let path = tmp.join(format!("data/share/alice/many/{index:03}.bin"));
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, &content[index..]).expect("file");
    }
    let config = write(
        tmp,
        "wharf.yaml",
        "data_dir: data\n\
         access: { users_file: users.yaml, login_failure_delay: 10ms }\n\
         ftp: { listen: [\"127.0.0.1:0\"] }\n\
         ftps: { implicit_listen: [] }\n",
    );
    serve(tmp, &config)
}

/// curl as alice, failing on FTP errors; over explicit FTPS (trusting the generated
/// certificate without checking it) when `tls`.
fn curl(tls: bool) -> Option<Command> {
    let mut command = Command::new(require_tool("curl")?);
    command.args(["--silent", "--show-error", "--fail", "--user"]);
    command.arg(format!("alice:{TEST_PASSWORD}"));
    if tls {
        command.args(["--ssl-reqd", "--insecure"]);
    }
    Some(command)
}

/// Runs `command` and prints how long it took; fails the test if curl failed.
fn timed(what: &str, mut command: Command) {
    let started = Instant::now();
    let output = run_bounded(&mut command, CURL_BOUND);
    eprintln!("{what}: {:?}", started.elapsed());
    assert!(
        output.status.success(),
        "{what} failed ({})\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

fn downloads_over_one_connection(tls: bool) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = start(tmp.path());
    let Some(mut command) = curl(tls) else { return };
    let out = tmp.path().join("out");
    let mut list = String::new();
    for index in 0..DOWNLOADS {
        let url = format!("ftp://{}/many/{index:03}.bin", server.listener("FTP"));
        let target = out.join(format!("{index:03}.bin"));
        list.push_str(&format!("url = \"{url}\"\noutput = \"{}\"\n", target.display()));
    }
    let list = write(tmp.path(), "list.curl", &list);
    command.arg("--create-dirs").arg("--config").arg(&list);
    let what = format!("curl -K of {DOWNLOADS} downloads (tls: {tls})");
    timed(&what, command);
    let share = tmp.path().join("data/share/alice/many");
    for index in 0..DOWNLOADS {
        let name = format!("{index:03}.bin");
        let got = std::fs::read(out.join(&name)).expect("downloaded");
        assert!(got == std::fs::read(share.join(&name)).expect("stored"), "{name}");
    }
}

fn uploads_over_one_connection(tls: bool) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = start(tmp.path());
    let Some(mut command) = curl(tls) else { return };
    let sources: Vec<PathBuf> = (0..UPLOADS)
        .map(|index| {
            let path = tmp.path().join(format!("client/{index:02}.up"));
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, &pattern(FILE_SIZE + index)[index..]).expect("source");
            path
        })
        .collect();
    let names: Vec<String> = sources.iter().map(|path| path.display().to_string()).collect();
    let url = format!("ftp://{}/up/", server.listener("FTP"));
    command.arg("--ftp-create-dirs").arg("-T").arg(format!("{{{}}}", names.join(","))).arg(url);
    let what = format!("curl -T of {UPLOADS} uploads (tls: {tls})");
    timed(&what, command);
    let stored = tmp.path().join("data/share/alice/up");
    for source in &sources {
        let name = source.file_name().expect("name");
        let got = std::fs::read(stored.join(name)).expect("uploaded");
        assert!(got == std::fs::read(source).expect("source"), "{name:?}");
    }
}

/// One test, so that its runs do not compete with each other for the CPU.
#[test]
fn curl_moves_many_files_over_one_connection() {
    downloads_over_one_connection(false);
    downloads_over_one_connection(true);
    uploads_over_one_connection(false);
    uploads_over_one_connection(true);
}
