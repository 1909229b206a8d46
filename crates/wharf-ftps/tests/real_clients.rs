//! The FTPS clients people run: curl (explicit `--ssl-reqd` and implicit `ftps://`), lftp
//! (forced TLS with protected data) and Python's `ftplib.FTP_TLS` — whose data connections do
//! not resume the control session unless told to, so it shows both sides of the requirement.
//! Each is looked up with `require_tool`; under `CI=true` a missing client fails the test.

mod common;

use std::path::Path;
use std::process::Command;

use common::{TestServer, curl, ftplib_script, lftp, run_client};
use wharf_testkit::{TEST_PASSWORD, pattern, require_tool, tree_digest};

/// Downloads `names` (files of alice's) in one curl run with `tls_args`, and compares each
/// with the share.
async fn curl_session(
    server: &TestServer,
    local: &Path,
    tls_args: &[&str],
    url: impl Fn(&str) -> String,
    names: &[&str],
) {
    let mut command = curl(server, &["--ssl-reqd"]);
    command.args(tls_args);
    for name in names {
        command.arg("-o").arg(local.join(format!("session-{name}")));
        command.arg(url(name));
    }
    run_client(&format!("curl {tls_args:?}, {} transfers in one session", names.len()), command)
        .await;
    for name in names {
        let received = std::fs::read(local.join(format!("session-{name}"))).expect("received");
        let stored = std::fs::read(server.share.root.join("alice").join(name)).expect("stored");
        assert!(received == stored, "{name} with {tls_args:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_explicit_and_implicit() {
    common::whole_test(async {
        if require_tool("curl").is_none() {
            return;
        }
        let server = TestServer::start().await;
        let local = tempfile::tempdir().expect("tempdir");
        for size in [0usize, 1024 * 1024] {
            for (kind, url) in [
                ("explicit", server.explicit_url("alice", &format!("/explicit-{size}.bin"))),
                ("implicit", server.implicit_url("alice", &format!("/implicit-{size}.bin"))),
            ] {
                let content = pattern(size);
                let source = local.path().join(format!("{kind}-{size}.up"));
                std::fs::write(&source, &content).expect("source");
                let mut upload = curl(&server, &["--ssl-reqd", "-T"]);
                upload.arg(&source).arg(&url);
                run_client(&format!("curl {kind} upload of {size} bytes"), upload).await;
                let stored = std::fs::read(
                    server.share.root.join("alice").join(url.rsplit('/').next().expect("name")),
                )
                .expect("stored");
                assert!(stored == content, "curl {kind} upload of {size} bytes is byte-exact");

                let target = local.path().join(format!("{kind}-{size}.down"));
                let mut download = curl(&server, &["--ssl-reqd", "-o"]);
                download.arg(&target).arg(&url);
                run_client(&format!("curl {kind} download of {size} bytes"), download).await;
                let received = std::fs::read(&target).expect("downloaded");
                assert!(received == content, "curl {kind} download of {size} bytes is byte-exact");
            }
        }
        // A listing over a protected data connection.
        let mut list = curl(&server, &["--ssl-reqd", "--list-only"]);
        list.arg(server.explicit_url("alice", "/"));
        let output = run_client("curl NLST", list).await;
        let mut names: Vec<_> =
            String::from_utf8_lossy(&output.stdout).lines().map(str::to_owned).collect();
        names.sort();
        assert_eq!(
            names,
            ["explicit-0.bin", "explicit-1048576.bin", "implicit-0.bin", "implicit-1048576.bin"]
        );
        // Several transfers in one curl run share one control connection: each data
        // connection resumes its TLS session, over TLS 1.3 and over TLS 1.2 (tickets).
        let names = ["explicit-1048576.bin", "implicit-0.bin", "implicit-1048576.bin"];
        let explicit = |name: &str| server.explicit_url("alice", &format!("/{name}"));
        curl_session(&server, local.path(), &[], explicit, &names).await;
        let implicit = |name: &str| server.implicit_url("alice", &format!("/{name}"));
        curl_session(&server, local.path(), &["--tls-max", "1.2"], implicit, &names).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_is_refused_in_the_clear_when_tls_is_required() {
    common::whole_test(async {
        if require_tool("curl").is_none() {
            return;
        }
        let server = TestServer::start().await;
        server.share.put("secure/report.txt", b"for TLS eyes only");
        // Without TLS the user is refused at USER, before curl sends the password.
        let mut plain = Command::new("curl");
        plain.args(["--silent", "--show-error", "--max-time", "30", "-v"]);
        plain.arg(format!("ftp://secure:{TEST_PASSWORD}@{}/report.txt", server.ftp));
        let output = tokio::task::spawn_blocking(move || {
            wharf_testkit::run_bounded(&mut plain, common::STEP)
        })
        .await
        .expect("curl thread");
        assert!(!output.status.success(), "curl without TLS must fail");
        let log = String::from_utf8_lossy(&output.stderr);
        assert!(log.contains("< 530 This account requires a TLS-protected connection"), "{log}");
        assert!(!log.contains("PASS "), "the password was never sent: {log}");

        let mut secure = curl(&server, &["--ssl-reqd"]);
        secure.arg(server.explicit_url("secure", "/report.txt"));
        let output = run_client("curl with TLS", secure).await;
        assert_eq!(output.stdout, b"for TLS eyes only");
    })
    .await
}

/// A partner's exchange folder: nested directories, spaces and non-ASCII names, an empty file
/// and files that take several data connections' worth of records.
const EXCHANGE_TREE: [(&str, usize); 6] = [
    ("contracts/2024/Q1 signed.pdf", 180_000),
    ("contracts/2024/Q2 draft.pdf", 1),
    ("contracts/empty.txt", 0),
    ("medical/scan ü 01.dcm", 2 * 1024 * 1024 + 3),
    ("medical/scan ü 02.dcm", 65_537),
    ("README", 900),
];

fn write_exchange_tree(root: &Path) {
    for (index, (name, size)) in EXCHANGE_TREE.into_iter().enumerate() {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("directories");
        // Offset each file's pattern so that swapped files would be noticed.
        std::fs::write(&path, &pattern(size + index)[index..]).expect("file");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lftp_mirrors_over_explicit_and_implicit_tls() {
    common::whole_test(async {
        if require_tool("lftp").is_none() {
            return;
        }
        let server = TestServer::start().await;
        let local = tempfile::tempdir().expect("tempdir");
        let source = local.path().join("source");
        write_exchange_tree(&source);
        let expected = tree_digest(&source);

        let explicit = format!("ftp://{}", server.ftp);
        let up = lftp(&explicit, &format!("mirror -R --no-perms {} /mirrored", source.display()));
        run_client("lftp mirror -R (explicit)", up).await;
        assert_eq!(tree_digest(&server.share.root.join("alice/mirrored")), expected);

        let back = local.path().join("back");
        let down = lftp(&explicit, &format!("mirror /mirrored {}", back.display()));
        run_client("lftp mirror (explicit)", down).await;
        assert_eq!(tree_digest(&back), expected, "downloaded over explicit FTPS");

        let implicit = format!("ftps://{}", server.implicit);
        let again = local.path().join("implicit");
        let down = lftp(&implicit, &format!("mirror /mirrored {}", again.display()));
        run_client("lftp mirror (implicit)", down).await;
        assert_eq!(tree_digest(&again), expected, "downloaded over implicit FTPS");
    })
    .await
}

/// Python's `FTP_TLS` with `prot_p()`: its data connections are full handshakes, refused;
/// the subclass that hands the control connection's session to each data connection works.
const FTPLIB_SCRIPT: &str = r#"
import ftplib, io, ssl, sys
host, port, user, password, cafile = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
context = ssl.create_default_context(cafile=cafile)

class ResumingFTP_TLS(ftplib.FTP_TLS):
    """Data connections resume the control connection's TLS session."""
    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
        return conn, size

def session(cls):
    ftp = cls(context=context, timeout=30)
    ftp.connect(host, port)
    ftp.auth()
    ftp.login(user, password)
    ftp.prot_p()
    return ftp

plain = session(ftplib.FTP_TLS)
try:
    plain.retrbinary("RETR hello.txt", io.BytesIO().write)
    raise SystemExit("a data connection that did not resume the session was served")
except (ssl.SSLError, OSError) as err:
    # The server cut the handshake off; its reply follows on the control connection.
    print("handshake failed:", err)
    try:
        plain.voidresp()
        raise SystemExit("the refused transfer was reported as done")
    except ftplib.error_temp as reply:
        print("refused:", reply)
plain.voidcmd("NOOP")
plain.quit()

ftp = session(ResumingFTP_TLS)
data = bytes((i * 7 + 3) % 251 for i in range(300000))
ftp.storbinary("STOR py.bin", io.BytesIO(data))
out = io.BytesIO()
ftp.retrbinary("RETR py.bin", out.write)
assert out.getvalue() == data, "binary round trip"
ftp.storbinary("STOR empty.bin", io.BytesIO(b""))
out = io.BytesIO()
ftp.retrbinary("RETR empty.bin", out.write)
assert out.getvalue() == b"", "empty file"
names = sorted(ftp.nlst())
assert names == ["empty.bin", "hello.txt", "py.bin"], names
facts = dict(ftp.mlsd(facts=["size"]))
assert facts["py.bin"]["size"] == str(len(data)), facts
ftp.quit()
print("ok")
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_ftplib_must_resume_the_session() {
    common::whole_test(async {
        if require_tool("python3").is_none() {
            return;
        }
        let server = TestServer::start().await;
        server.share.put("alice/hello.txt", b"hello");
        let output = run_client("python ftplib", ftplib_script(&server, FTPLIB_SCRIPT)).await;
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.contains("refused: 425"), "{stdout}");
        assert!(stdout.contains("did not resume"), "{stdout}");
        assert_eq!(stdout.lines().last(), Some("ok"), "{stdout}");
        let stored = std::fs::read(server.share.root.join("alice/py.bin")).expect("stored");
        assert_eq!(stored.len(), 300_000);
    })
    .await
}
