//! The real clients users run: curl (passive and active), lftp (mirror a tree both ways) and
//! Python's ftplib. Each is looked up with `require_tool`; under `CI=true` a missing client
//! fails the test.

mod common;

use std::path::Path;
use std::process::Command;

use common::{TestServer, assert_success, run_client};
use wharf_testkit::{TEST_PASSWORD, pattern, require_tool, tree_digest};

fn curl(args: &[&str]) -> Command {
    let mut command = Command::new("curl");
    command.args(["--silent", "--show-error", "--fail", "--max-time", "60"]).args(args);
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_passive_and_active_uploads_and_downloads() {
    common::within_test_limit(async {
        if require_tool("curl").is_none() {
            return;
        }
        let server = TestServer::start().await;
        let local = tempfile::tempdir().expect("tempdir");
        for (size, mode) in
            [(0usize, "epsv"), (1, "pasv"), (1024 * 1024, "active"), (3 * 1024 * 1024 + 5, "epsv")]
        {
            let name = format!("{mode}-{size}.bin");
            let content = pattern(size);
            let source = local.path().join(&name);
            std::fs::write(&source, &content).expect("source");
            let mode_args: Vec<&str> = match mode {
                "pasv" => vec!["--disable-epsv"],
                "active" => vec!["-P", "-"],
                _ => vec![],
            };
            let url = server.url("alice", &format!("/{name}"));
            let mut upload = curl(&mode_args);
            upload.args(["-T", source.to_str().expect("path"), &url]);
            assert_success(&format!("curl upload ({mode})"), &run_client(upload).await);
            let stored =
                std::fs::read(server.share.root.join("alice").join(&name)).expect("stored");
            assert!(stored == content, "curl {mode} upload of {size} bytes is byte-exact");

            let target = local.path().join(format!("{name}.down"));
            let mut download = curl(&mode_args);
            download.args(["-o", target.to_str().expect("path"), &url]);
            assert_success(&format!("curl download ({mode})"), &run_client(download).await);
            assert!(
                std::fs::read(&target).expect("downloaded") == content,
                "curl {mode} download of {size} bytes"
            );
        }

        // Resumed download: curl asks for SIZE and sends REST.
        let content = pattern(2 * 1024 * 1024);
        server.share.put("alice/resume.bin", &content);
        let partial = local.path().join("resume.part");
        std::fs::write(&partial, &content[..777_777]).expect("partial");
        let mut resume = curl(&["-C", "-", "-o", partial.to_str().expect("path")]);
        resume.arg(server.url("alice", "/resume.bin"));
        assert_success("curl resume", &run_client(resume).await);
        assert!(std::fs::read(&partial).expect("resumed") == content, "curl resumed download");

        // Resumed upload: curl appends the rest of the local file.
        server.share.put("alice/up-resume.bin", &content[..1_000_000]);
        let whole = local.path().join("whole.bin");
        std::fs::write(&whole, &content).expect("whole");
        let mut resume_up = curl(&["-C", "-", "-T", whole.to_str().expect("path")]);
        resume_up.arg(server.url("alice", "/up-resume.bin"));
        assert_success("curl resumed upload", &run_client(resume_up).await);
        let stored = std::fs::read(server.share.root.join("alice/up-resume.bin")).expect("stored");
        assert!(stored == content, "curl resumed upload");

        // ASCII mode (-B): the server converts, curl converts back (the wire form is checked
        // byte for byte by the protocol tests).
        server.share.put("alice/notes.txt", b"a\nb\n");
        let mut ascii = curl(&["-B", "-v"]);
        ascii.arg(server.url("alice", "/notes.txt"));
        let output = run_client(ascii).await;
        assert_success("curl ASCII download", &output);
        assert!(String::from_utf8_lossy(&output.stderr).contains("200 Switching to ASCII mode."));
        assert_eq!(output.stdout, b"a\nb\n");

        // Directory listing, names only, and quoted commands.
        let mut list = curl(&["--list-only"]);
        list.arg(server.url("alice", "/"));
        let output = run_client(list).await;
        assert_success("curl NLST", &output);
        assert!(String::from_utf8_lossy(&output.stdout).lines().any(|l| l == "notes.txt"));
        let mut quote = curl(&["-Q", "MKD made by curl", "-Q", "DELE notes.txt", "--list-only"]);
        quote.arg(server.url("alice", "/"));
        assert_success("curl -Q", &run_client(quote).await);
        assert!(server.share.root.join("alice/made by curl").is_dir());
        assert!(!server.share.root.join("alice/notes.txt").exists());
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_as_the_read_only_user_changes_nothing() {
    common::within_test_limit(async {
        if require_tool("curl").is_none() {
            return;
        }
        let server = TestServer::start().await;
        server.share.put("alice/keep.txt", b"keep");
        let before = tree_digest(&server.share.root);
        let local = tempfile::tempdir().expect("tempdir");
        let source = local.path().join("x.txt");
        std::fs::write(&source, b"intruder").expect("source");
        let mut upload = curl(&["-T", source.to_str().expect("path")]);
        upload.arg(server.url("reader", "/keep.txt"));
        let output = run_client(upload).await;
        assert!(!output.status.success(), "the upload must be refused");
        assert_eq!(tree_digest(&server.share.root), before);
    })
    .await
}

fn lftp_script(server: &TestServer, commands: &str) -> Command {
    let mut command = Command::new("lftp");
    command.arg("-c").arg(format!(
        "set ftp:ssl-allow no; set net:max-retries 1; set net:timeout 10; \
         set net:reconnect-interval-base 1; set cmd:fail-exit yes; \
         open -u alice,{TEST_PASSWORD} ftp://{}; {commands}",
        server.addr
    ));
    command
}

fn make_tree(root: &Path) {
    let files: [(&str, Vec<u8>); 6] = [
        ("top.txt", b"top level\n".to_vec()),
        ("dir with space/file with space.txt", b"spaced out\n".to_vec()),
        ("dir with space/ünïcödé naïve.bin", pattern(200_000)),
        ("ñested/deeper/empty.dat", Vec::new()),
        ("ñested/deeper/one.byte", vec![42]),
        ("ñested/big.bin", pattern(3 * 1024 * 1024)),
    ];
    for (name, content) in files {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, content).expect("write");
    }
    std::fs::create_dir_all(root.join("empty dir")).expect("empty dir");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lftp_mirrors_a_tree_up_and_down() {
    common::within_test_limit(async {
        if require_tool("lftp").is_none() {
            return;
        }
        let server = TestServer::start().await;
        let local = tempfile::tempdir().expect("tempdir");
        let source = local.path().join("source");
        make_tree(&source);
        let expected = tree_digest(&source);

        let up =
            lftp_script(&server, &format!("mirror -R --no-perms {} /mirrored", source.display()));
        assert_success("lftp mirror -R", &run_client(up).await);
        assert_eq!(
            tree_digest(&server.share.root.join("alice/mirrored")),
            expected,
            "uploaded tree"
        );

        let back = local.path().join("back");
        let down = lftp_script(&server, &format!("mirror /mirrored {}", back.display()));
        assert_success("lftp mirror", &run_client(down).await);
        assert_eq!(tree_digest(&back), expected, "downloaded tree");

        // The same in active mode.
        let active_back = local.path().join("active");
        let active = lftp_script(
            &server,
            &format!("set ftp:passive-mode off; mirror /mirrored {}", active_back.display()),
        );
        assert_success("lftp mirror (active)", &run_client(active).await);
        assert_eq!(tree_digest(&active_back), expected, "downloaded tree, active mode");
    })
    .await
}

const FTPLIB_SCRIPT: &str = r#"
import ftplib, hashlib, io, sys
host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ftp = ftplib.FTP()
ftp.connect(host, port, timeout=30)
ftp.login(user, password)
data = bytes((i * 7 + 3) % 251 for i in range(300000))
ftp.storbinary("STOR py.bin", io.BytesIO(data))
assert ftp.size("py.bin") == len(data), "SIZE"
out = io.BytesIO()
ftp.retrbinary("RETR py.bin", out.write)
assert out.getvalue() == data, "binary round trip"
out = io.BytesIO()
ftp.retrbinary("RETR py.bin", out.write, rest=1000)
assert out.getvalue() == data[1000:], "REST"
ftp.storlines("STOR lines.txt", io.BytesIO(b"alpha\nbeta\n"))
lines = []
ftp.retrlines("RETR lines.txt", lines.append)
assert lines == ["alpha", "beta"], lines
ftp.mkd("pydir")
ftp.cwd("pydir")
assert ftp.pwd() == "/pydir", ftp.pwd()
ftp.cwd("..")
ftp.rename("py.bin", "pydir/moved.bin")
names = sorted(ftp.nlst("pydir"))
assert names == ["moved.bin"], names
facts = dict(ftp.mlsd("pydir", facts=["type", "size"]))
assert facts["moved.bin"]["size"] == str(len(data)), facts
assert facts["moved.bin"]["type"] == "file", facts
reply = ftp.sendcmd("HASH pydir/moved.bin")
assert reply == "213 SHA-256 0-%d %s pydir/moved.bin" % (len(data) - 1, hashlib.sha256(data).hexdigest()), reply
listing = []
ftp.retrlines("LIST pydir", listing.append)
assert len(listing) == 1 and listing[0].endswith(" moved.bin"), listing
ftp.delete("pydir/moved.bin")
ftp.rmd("pydir")
try:
    ftp.sendcmd("PORT 10,0,0,1,195,80")
    raise SystemExit("PORT to a foreign address was accepted")
except ftplib.error_perm as err:
    assert str(err).startswith("504"), err
ftp.set_pasv(False)
out = io.BytesIO()
ftp.retrbinary("RETR lines.txt", out.write)
assert out.getvalue() == b"alpha\nbeta\n", out.getvalue()
ftp.quit()
print("ok")
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_ftplib_session() {
    common::within_test_limit(async {
        if require_tool("python3").is_none() {
            return;
        }
        let server = TestServer::start().await;
        let mut python = Command::new("python3");
        python
            .arg("-c")
            .arg(FTPLIB_SCRIPT)
            .arg(server.addr.ip().to_string())
            .arg(server.addr.port().to_string())
            .args(["alice", TEST_PASSWORD]);
        let output = run_client(python).await;
        assert_success("python ftplib", &output);
        assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "ok");
        let stored = std::fs::read(server.share.root.join("alice/lines.txt")).expect("stored");
        assert_eq!(stored, b"alpha\nbeta\n", "storlines sent CRLF, stored LF");
    })
    .await
}
