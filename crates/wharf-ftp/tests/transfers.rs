//! Byte-exact uploads and downloads with a Rust FTP client (suppaftp): empty, one byte,
//! 1 MiB and 100 MiB files, passive, extended passive and active, and resumes both ways.

mod common;

use std::time::Duration;

use common::{TestServer, bounded};
use suppaftp::list::ListParser;
use suppaftp::types::Mode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wharf_testkit::pattern;

const SIZES: [usize; 3] = [0, 1, 1024 * 1024];

async fn round_trip(
    server: &TestServer,
    ftp: &mut suppaftp::tokio::AsyncFtpStream,
    name: &str,
    content: &[u8],
) {
    let mut reader = content;
    let sent = bounded("put", ftp.put_file(name, &mut reader)).await.expect("upload");
    assert_eq!(sent, content.len() as u64);
    let stored = std::fs::read(server.share.root.join("alice").join(name)).expect("stored");
    assert!(stored == content, "{name}: upload is byte-exact ({} bytes)", content.len());
    let mut download = bounded("retr", ftp.retr_as_stream(name)).await.expect("download");
    let mut received = Vec::new();
    bounded("read", download.read_to_end(&mut received)).await.expect("read");
    bounded("finish", download.finish()).await.expect("226");
    assert!(received == content, "{name}: download is byte-exact ({} bytes)", content.len());
    assert_eq!(bounded("size", ftp.size(name)).await.expect("SIZE"), content.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passive_extended_and_active_round_trips() {
    common::within_test_limit(async {
        let server = TestServer::start().await;
        let mut ftp = server.suppa("alice").await;
        for size in SIZES {
            round_trip(&server, &mut ftp, &format!("pasv-{size}.bin"), &pattern(size)).await;
        }
        ftp.set_mode(Mode::ExtendedPassive);
        for size in SIZES {
            round_trip(&server, &mut ftp, &format!("epsv-{size}.bin"), &pattern(size)).await;
        }
        let mut active = server.suppa("alice").await.active_mode(Duration::from_secs(10));
        for size in SIZES {
            round_trip(&server, &mut active, &format!("port-{size}.bin"), &pattern(size)).await;
        }
        bounded("quit", ftp.quit()).await.expect("quit");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_mebibytes_both_ways() {
    common::within_test_limit(async {
        let server = TestServer::start().await;
        let content = pattern(100 * 1024 * 1024);
        let mut ftp = server.suppa("alice").await;
        round_trip(&server, &mut ftp, "big.bin", &content).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_with_rest() {
    common::within_test_limit(async {
        let server = TestServer::start().await;
        let content = pattern(2 * 1024 * 1024 + 3);
        server.share.put("alice/whole.bin", &content);
        let mut ftp = server.suppa("alice").await;
        // Download resumed in the middle.
        let offset = 1_000_003;
        bounded("rest", ftp.resume_transfer(offset)).await.expect("REST");
        let mut download = bounded("retr", ftp.retr_as_stream("whole.bin")).await.expect("RETR");
        let mut tail = Vec::new();
        download.read_to_end(&mut tail).await.expect("read");
        bounded("finish", download.finish()).await.expect("226");
        assert!(tail == content[offset..], "resumed download is the exact tail");
        // Upload interrupted after its first part, then resumed with REST + STOR.
        let mut upload =
            bounded("stor", ftp.append_with_stream("resumed.bin")).await.expect("APPE");
        upload.write_all(&content[..offset]).await.expect("write");
        bounded("finish", upload.finish()).await.expect("226");
        let size = bounded("size", ftp.size("resumed.bin")).await.expect("SIZE");
        assert_eq!(size, offset);
        bounded("rest", ftp.resume_transfer(size)).await.expect("REST");
        let mut rest = &content[size..];
        bounded("put", ftp.put_file("resumed.bin", &mut rest)).await.expect("resumed STOR");
        let stored = std::fs::read(server.share.root.join("alice/resumed.bin")).expect("stored");
        assert!(stored == content, "resumed upload is byte-exact");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_and_metadata_through_a_client_library() {
    common::within_test_limit(async {
        let server = TestServer::start().await;
        server.share.put("alice/dir/one.txt", b"1");
        server.share.put("alice/dir/two words.txt", b"22");
        let mut ftp = server.suppa("alice").await;
        bounded("cwd", ftp.cwd("dir")).await.expect("CWD");
        assert_eq!(bounded("pwd", ftp.pwd()).await.expect("PWD"), "/dir");
        let mut names = bounded("nlst", ftp.nlst(None)).await.expect("NLST");
        names.sort();
        assert_eq!(names, ["one.txt", "two words.txt"]);
        let list = bounded("list", ftp.list(None)).await.expect("LIST");
        let parsed: Vec<suppaftp::list::File> = list
            .iter()
            .map(|line| ListParser::parse_posix(line).expect("LIST line parses"))
            .collect();
        let two = parsed.iter().find(|f| f.name() == "two words.txt").expect("listed");
        assert_eq!(two.size(), 2);
        let mlsd = bounded("mlsd", ftp.mlsd(None)).await.expect("MLSD");
        let parsed: Vec<suppaftp::list::File> = mlsd
            .iter()
            .map(|line| ListParser::parse_mlsd(line).expect("MLSD line parses"))
            .collect();
        assert!(parsed.iter().any(|f| f.name() == "one.txt" && f.size() == 1));
        let mlst = bounded("mlst", ftp.mlst(Some("one.txt"))).await.expect("MLST");
        assert!(mlst.contains("type=file;size=1;"), "{mlst}");
        bounded("mdtm", ftp.mdtm("one.txt")).await.expect("MDTM parses");
        bounded("mkdir", ftp.mkdir("made")).await.expect("MKD");
        bounded("rename", ftp.rename("one.txt", "made/uno.txt")).await.expect("RNFR/RNTO");
        bounded("rm", ftp.rm("made/uno.txt")).await.expect("DELE");
        bounded("rmdir", ftp.rmdir("made")).await.expect("RMD");
        bounded("cdup", ftp.cdup()).await.expect("CDUP");
        assert_eq!(bounded("pwd", ftp.pwd()).await.expect("PWD"), "/");
        let feat = bounded("feat", ftp.feat()).await.expect("FEAT");
        assert!(feat.contains_key("MLST") && feat.contains_key("UTF8"), "{feat:?}");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_through_a_client_library() {
    common::within_test_limit(async {
        let server = TestServer::start().await;
        server.share.put("alice/huge.bin", &pattern(48 * 1024 * 1024));
        let mut ftp = server.suppa("alice").await;
        let mut download = bounded("retr", ftp.retr_as_stream("huge.bin")).await.expect("RETR");
        let mut first = vec![0u8; 1024];
        download.read_exact(&mut first).await.expect("read");
        bounded("abort", ftp.abort(download)).await.expect("426 + 226");
        bounded("noop", ftp.noop()).await.expect("session usable");
        let mut again = bounded("retr", ftp.retr_as_stream("huge.bin")).await.expect("RETR again");
        let mut head = vec![0u8; 16];
        again.read_exact(&mut head).await.expect("read");
        bounded("abort", ftp.abort(again)).await.expect("abort again");
    })
    .await
}
