//! One defender for every protocol, on the real binary: passwords guessed over SSH get the
//! address refused on FTP and ignored on TFTP; the ban ends after its time; an allow-listed
//! network is never banned.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Running, greeting, serve, wharf, write, write_alice_and_devices};
use wharf_testkit::{TEST_PASSWORD, require_tool, run_bounded};

/// Wrong passwords tried over SFTP; with a login failure scoring 2, four reach the threshold.
const WRONG_PASSWORDS: usize = 4;
/// How long a ban lasts in these tests.
const BAN: Duration = Duration::from_secs(4);

/// A server with FTP, SFTP and TFTP on loopback and the defender configured by `defender`.
fn start(tmp: &tempfile::TempDir, defender: &str) -> Running {
    write_alice_and_devices(tmp.path());
    let config: PathBuf = write(
        tmp.path(),
        "wharf.yaml",
        &format!(
            "data_dir: data\n\
             access: {{ users_file: users.yaml, login_failure_delay: 10ms }}\n\
             defender: {defender}\n\
             ftp: {{ listen: [\"127.0.0.1:0\"] }}\n\
             sftp: {{ listen: [\"127.0.0.1:0\"] }}\n\
             tftp:\n  listen: [\"127.0.0.1:0\"]\n  \
             rules: [{{ network: 127.0.0.0/8, identity: devices }}]\n"
        ),
    );
    serve(tmp.path(), &config)
}

/// One SFTP login with a wrong password, through curl (libssh2); true when it was refused.
fn wrong_sftp_password(curl: &PathBuf, server: &Running) -> bool {
    let mut command = Command::new(curl);
    command
        .args(["-sS", "-k", "--max-time", "20", "--user", "alice:not-the-password"])
        .arg(format!("sftp://{}/", server.listener("SFTP")));
    !run_bounded(&mut command, Duration::from_secs(30)).status.success()
}

/// Whether the FTP listener greets a new connection (a banned address is closed at accept).
fn ftp_greets(server: &Running) -> bool {
    greeting(server.listener("FTP")).is_some_and(|line| line.starts_with("220"))
}

/// Whether a TFTP read request gets an answer within a second (a banned address gets none).
fn tftp_answers(server: &Running) -> bool {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket.set_read_timeout(Some(Duration::from_secs(1))).expect("timeout");
    let target: SocketAddr = server.listener("TFTP");
    let mut request = vec![0, 1];
    request.extend_from_slice(b"boot.bin\0octet\0");
    socket.send_to(&request, target).expect("send");
    let mut reply = [0u8; 600];
    let answered = socket.recv_from(&mut reply).is_ok();
    if answered {
        // Acknowledge the only block so the server's transfer ends at once.
        let _ = socket.send_to(&[0, 4, 0, 1], target);
    }
    answered
}

/// Polls `check` until it returns `wanted`, for at most `limit`.
fn eventually(limit: Duration, wanted: bool, check: impl Fn() -> bool) -> bool {
    let started = Instant::now();
    loop {
        if check() == wanted {
            return true;
        }
        if started.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn passwords_guessed_over_ssh_ban_the_address_on_ftp_and_tftp_until_the_ban_ends() {
    let Some(curl) = require_tool("curl") else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let server =
        start(&tmp, &format!("{{ threshold: 8, ban_time: {}s, allow: [] }}", BAN.as_secs()));
    assert!(ftp_greets(&server), "FTP serves before any offense");
    assert!(tftp_answers(&server), "TFTP serves before any offense");
    for attempt in 0..WRONG_PASSWORDS {
        assert!(wrong_sftp_password(&curl, &server), "wrong password {attempt} refused");
    }
    let banned_at = Instant::now();
    assert!(!ftp_greets(&server), "after the SSH guesses, FTP closes the connection at accept");
    assert!(!tftp_answers(&server), "and TFTP ignores the address's requests");
    let mut correct = Command::new(&curl);
    correct
        .args(["-sS", "-k", "--max-time", "20", "--user", &format!("alice:{TEST_PASSWORD}")])
        .arg(format!("sftp://{}/", server.listener("SFTP")));
    assert!(
        !run_bounded(&mut correct, Duration::from_secs(30)).status.success(),
        "even the right password is refused while banned"
    );
    assert!(
        eventually(BAN * 3, true, || ftp_greets(&server)),
        "FTP serves again once the ban ended"
    );
    // The ban began at the last refused password at the latest; half its time is a margin for
    // a client that counted more than one failure per attempt.
    assert!(banned_at.elapsed() >= BAN / 2, "the ban lasted its time");
    assert!(tftp_answers(&server), "TFTP answers again too");
    assert!(server.stop().success());
}

#[test]
fn an_allow_listed_network_is_never_banned() {
    let Some(curl) = require_tool("curl") else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = start(&tmp, "{ threshold: 2, ban_time: 1h, allow: [127.0.0.0/8] }");
    for attempt in 0..WRONG_PASSWORDS {
        assert!(wrong_sftp_password(&curl, &server), "wrong password {attempt} refused");
    }
    assert!(ftp_greets(&server), "FTP still serves the allow-listed address");
    assert!(tftp_answers(&server), "TFTP still serves the allow-listed address");
    assert!(server.stop().success());
}

#[test]
fn bans_survive_a_reload_and_a_restart_and_wharf_bans_lists_them() {
    let Some(curl) = require_tool("curl") else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = start(&tmp, "{ threshold: 8, ban_time: 1h }");
    for attempt in 0..WRONG_PASSWORDS {
        assert!(wrong_sftp_password(&curl, &server), "wrong password {attempt} refused");
    }
    assert!(!ftp_greets(&server), "banned");
    server.signal(rustix::process::Signal::HUP);
    server.wait_for_log("configuration reloaded", Duration::from_secs(10));
    assert!(!ftp_greets(&server), "still banned after SIGHUP");
    assert!(server.stop().success());

    let config = tmp.path().join("wharf.yaml");
    let listed = run_bounded(
        wharf(tmp.path()).arg("bans").arg("--config").arg(&config),
        Duration::from_secs(30),
    );
    let stdout = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.status.success() && stdout.contains("127.0.0.1"), "wharf bans: {stdout}");

    let restarted = serve(tmp.path(), &config);
    assert!(!ftp_greets(&restarted), "still banned after a restart");
    assert!(!tftp_answers(&restarted), "on TFTP too");
    assert!(restarted.stop().success());
}
