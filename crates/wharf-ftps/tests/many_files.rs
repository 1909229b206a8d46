//! Many files in one FTPS session, with the clients people script it with.
//!
//! - Several uploads on one connection over TLS 1.3: curl 7.x with OpenSSL offers a session
//!   ticket only once, so every data connection needs a fresh one, and an upload's data
//!   connection is where its next one must come from (`docs/protocols/ftps.md`). lftp and
//!   Python's `ftplib` (with a subclass that resumes) reuse the control connection's session
//!   and must keep working.
//! - lftp fetching many small files over protected data connections, where a delayed
//!   acknowledgement used to cost 40 ms per file.
//!
//! Each client is looked up with `require_tool`; under `CI=true` a missing one fails the test.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{TestServer, curl, ftplib_script, lftp, run_client};
use wharf_testkit::{pattern, require_tool, tree_digest};

/// Sizes of the files uploaded in one session: empty, tiny, one record, several, and one that
/// takes many reads.
const UPLOAD_SIZES: [usize; 8] = [0, 1, 4096, 16_384, 65_537, 300_000, 1024 * 1024, 7];

/// Small files fetched in one lftp mirror.
const SMALL_FILES: usize = 100;

/// What fetching [`SMALL_FILES`] over FTPS may take. With a 40 ms delayed acknowledgement on
/// every data connection's handshake it took over 4 s (`SMALL_FILES` × 40 ms and more); it
/// now takes a small part of that.
const SMALL_FILES_LIMIT: Duration = Duration::from_secs(3);

/// Writes the files of [`UPLOAD_SIZES`] under `dir` and returns their paths.
fn upload_sources(dir: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).expect("source folder");
    UPLOAD_SIZES
        .iter()
        .enumerate()
        .map(|(index, &size)| {
            let path = dir.join(format!("part-{index}.bin"));
            // Offset each file's pattern so that swapped files would be noticed.
            std::fs::write(&path, &pattern(size + index)[index..]).expect("source file");
            path
        })
        .collect()
}

/// Checks that `folder` of alice's holds exactly the files of `sources`, byte for byte.
fn assert_stored(server: &TestServer, folder: &str, sources: &[PathBuf], client: &str) {
    let stored = server.share.root.join("alice").join(folder);
    for source in sources {
        let name = source.file_name().expect("name");
        let got = std::fs::read(stored.join(name)).unwrap_or_default();
        let want = std::fs::read(source).expect("source");
        assert!(
            got == want,
            "{client}: {name:?} stored with {} of {} bytes",
            got.len(),
            want.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_uploads_several_files_on_one_tls13_connection() {
    common::whole_test(async {
        if require_tool("curl").is_none() {
            return;
        }
        let server = TestServer::start().await;
        let local = tempfile::tempdir().expect("tempdir");
        let sources = upload_sources(local.path());
        let list = sources.iter().map(|path| path.display().to_string()).collect::<Vec<_>>();
        let files = format!("{{{}}}", list.join(","));
        for (kind, url) in [
            ("explicit", server.explicit_url("alice", "/explicit/")),
            ("implicit", server.implicit_url("alice", "/implicit/")),
        ] {
            let mut upload = curl(&server, &["--ssl-reqd", "--tlsv1.3", "--ftp-create-dirs"]);
            upload.arg("-T").arg(&files).arg(&url);
            run_client(&format!("curl {kind}: {} uploads on one connection", list.len()), upload)
                .await;
            assert_stored(&server, kind, &sources, &format!("curl {kind}"));
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lftp_uploads_several_files_on_one_connection() {
    common::whole_test(async {
        if require_tool("lftp").is_none() {
            return;
        }
        let server = TestServer::start().await;
        let local = tempfile::tempdir().expect("tempdir");
        let sources = upload_sources(local.path());
        let list = sources.iter().map(|path| path.display().to_string()).collect::<Vec<_>>();
        let explicit = format!("ftp://{}", server.ftp);
        let put = lftp(&explicit, &format!("mkdir /put; mput -O /put {}", list.join(" ")));
        run_client("lftp mput (explicit)", put).await;
        assert_stored(&server, "put", &sources, "lftp mput");
        let implicit = format!("ftps://{}", server.implicit);
        let mirror =
            lftp(&implicit, &format!("mirror -R --no-perms {} /mirrored", local.path().display()));
        run_client("lftp mirror -R (implicit)", mirror).await;
        assert_stored(&server, "mirrored", &sources, "lftp mirror -R");
    })
    .await
}

/// `ftplib.FTP_TLS` whose data connections resume the control connection's session (plain
/// `FTP_TLS` does not resume and is refused, see `tests/real_clients.rs`), uploading several
/// files in a row and reading them back.
const FTPLIB_UPLOADS: &str = r#"
import ftplib, io, ssl, sys
host, port, user, password, cafile = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
context = ssl.create_default_context(cafile=cafile)
context.minimum_version = ssl.TLSVersion.TLSv1_3

class ResumingFTP_TLS(ftplib.FTP_TLS):
    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
        return conn, size

ftp = ResumingFTP_TLS(context=context, timeout=30)
ftp.connect(host, port)
ftp.auth()
ftp.login(user, password)
ftp.prot_p()
files = {"py-%d.bin" % i: bytes((i + j * 7) % 251 for j in range(size)) for i, size in enumerate([0, 1, 70000, 300000, 5])}
for name, data in files.items():
    ftp.storbinary("STOR " + name, io.BytesIO(data))
for name, data in files.items():
    out = io.BytesIO()
    ftp.retrbinary("RETR " + name, out.write)
    assert out.getvalue() == data, name
ftp.quit()
print("ok")
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_ftplib_uploads_several_files_on_one_connection() {
    common::whole_test(async {
        if require_tool("python3").is_none() {
            return;
        }
        let server = TestServer::start().await;
        let python = ftplib_script(&server, FTPLIB_UPLOADS);
        let output = run_client("python ftplib uploads", python).await;
        assert_eq!(String::from_utf8_lossy(&output.stdout).lines().last(), Some("ok"));
        let stored = std::fs::read(server.share.root.join("alice/py-3.bin")).expect("stored");
        assert_eq!(stored.len(), 300_000);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lftp_fetches_many_small_files_without_a_delay_per_file() {
    common::whole_test(async {
        if require_tool("lftp").is_none() {
            return;
        }
        let server = TestServer::start().await;
        for index in 0..SMALL_FILES {
            server.share.put(&format!("alice/small/{index:03}.txt"), &pattern(4096 + index));
        }
        let expected = tree_digest(&server.share.root.join("alice/small"));
        let local = tempfile::tempdir().expect("tempdir");
        let target = local.path().join("small");
        let explicit = format!("ftp://{}", server.ftp);
        let mirror = lftp(&explicit, &format!("mirror /small {}", target.display()));
        let started = Instant::now();
        run_client("lftp mirror of small files (explicit)", mirror).await;
        let took = started.elapsed();
        assert_eq!(tree_digest(&target), expected);
        assert!(
            took < SMALL_FILES_LIMIT,
            "{SMALL_FILES} small files over FTPS took {took:?}, more than {SMALL_FILES_LIMIT:?}"
        );
    })
    .await
}
