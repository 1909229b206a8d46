//! When an upload whose data connection ended is published (`src/probe.rs`): unless, at that
//! moment, the client has closed its control connection without sending anything on it
//! since the transfer began. Every case waits for what the server does (a reply, a closed
//! connection, the file on disk), never for time to pass.

mod common;

use std::path::Path;

use common::{RawClient, STEP, TestServer, bounded, wait_until, within_test_limit};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use wharf_testkit::pattern;

const OLD: usize = 100_000;
const NEW: usize = 1024 * 1024 + 5;

fn old_content() -> Vec<u8> {
    pattern(OLD)
}

fn new_content() -> Vec<u8> {
    pattern(NEW).into_iter().map(|byte| !byte).collect()
}

/// `STOR name` over a fresh passive data connection, answered 150.
async fn start_upload(client: &mut RawClient, name: &str) -> TcpStream {
    let addr = client.epsv().await;
    let data = bounded("data connect", TcpStream::connect(addr)).await.expect("data");
    client.expect(&format!("STOR {name}"), 150).await;
    data
}

/// Temporary upload files left in `dir`.
fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("read the folder")
        .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".wharf-tmp"))
        .collect()
}

/// Waits until the server has closed (or reset) the data connection: it dropped the upload.
async fn wait_for_server_to_close(mut data: TcpStream) {
    let mut sink = vec![0u8; 4096];
    let closed = tokio::time::timeout(STEP, async {
        loop {
            match data.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server kept the data connection for {STEP:?}");
}

/// The upload was dropped: no temporary file remains and the previous file is intact.
async fn assert_previous_file_intact(server: &TestServer, name: &str) {
    let dir = server.share.root.join("alice");
    wait_until("the temporary file's removal", || temporaries(&dir).is_empty()).await;
    let now = std::fs::read(dir.join(name)).expect("the file");
    assert!(now == old_content(), "{name}: the previous file changed");
}

/// Waits until `name` holds the new content (published).
async fn wait_for_published(server: &TestServer, name: &str) {
    let path = server.share.root.join("alice").join(name);
    let new = new_content();
    wait_until(name, || std::fs::read(&path).is_ok_and(|now| now == new)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_connection_closed_before_the_data_ends_keeps_the_previous_file() {
    within_test_limit(async {
        let server = TestServer::start().await;
        let new = new_content();
        // Closed outright, as a dying process's kernel closes it.
        server.share.put("alice/closed.bin", &old_content());
        let mut client = server.login("alice").await;
        let mut data = start_upload(&mut client, "closed.bin").await;
        bounded("half", data.write_all(&new[..NEW / 2])).await.expect("send half");
        drop(client);
        wait_for_server_to_close(data).await;
        assert_previous_file_intact(&server, "closed.bin").await;

        // Only its sending side closed: the session ends without a 226.
        server.share.put("alice/half-closed.bin", &old_content());
        let mut client = server.login("alice").await;
        let mut data = start_upload(&mut client, "half-closed.bin").await;
        bounded("half", data.write_all(&new[..NEW / 2])).await.expect("send half");
        client.shutdown_write().await;
        assert!(client.reply().await.is_none(), "no reply: the session closed");
        wait_for_server_to_close(data).await;
        assert_previous_file_intact(&server, "half-closed.bin").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quit_right_after_the_data_publishes_the_upload_in_both_orders() {
    within_test_limit(async {
        let server = TestServer::start().await;
        let new = new_content();

        // QUIT, then the data connection's close, then the control connection's.
        server.share.put("alice/quit-first.bin", &old_content());
        let mut client = server.login("alice").await;
        let mut data = start_upload(&mut client, "quit-first.bin").await;
        bounded("data", data.write_all(&new)).await.expect("send");
        client.send("QUIT").await;
        drop(data);
        drop(client);
        wait_for_published(&server, "quit-first.bin").await;

        // The data connection's close, then QUIT, then the control connection's close.
        server.share.put("alice/data-first.bin", &old_content());
        let mut client = server.login("alice").await;
        let mut data = start_upload(&mut client, "data-first.bin").await;
        bounded("data", data.write_all(&new)).await.expect("send");
        bounded("close data", data.shutdown()).await.expect("close data");
        drop(data);
        client.send("QUIT").await;
        drop(client);
        wait_for_published(&server, "data-first.bin").await;
    })
    .await;
}

/// The case the rule was written for: the session has read the QUIT (so nothing is left
/// unread on the control socket) and the client has closed its side before the data ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quit_already_read_when_the_data_ends_publishes_the_upload() {
    within_test_limit(async {
        let server = TestServer::start().await;
        server.share.put("alice/read-quit.bin", &old_content());
        let new = new_content();
        let mut client = server.login("alice").await;
        let mut data = start_upload(&mut client, "read-quit.bin").await;
        bounded("data", data.write_all(&new)).await.expect("send");
        // One segment: the STAT reply proves the session has read the QUIT behind it.
        client.send_raw(b"STAT\r\nQUIT\r\n").await;
        client.shutdown_write().await;
        assert_eq!(client.reply().await.expect("STAT").code, 211);
        drop(data);
        assert_eq!(client.reply().await.expect("226").code, 226);
        assert_eq!(client.reply().await.expect("221").code, 221);
        assert!(client.reply().await.is_none());
        let published = std::fs::read(server.share.root.join("alice/read-quit.bin")).expect("file");
        assert!(published == new, "the upload was not published");
    })
    .await;
}

/// Any command since the transfer began shows a client that is there: when its control
/// connection then ends before the data does, the upload finishes first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_during_the_upload_lets_it_finish_after_the_control_connection_ends() {
    within_test_limit(async {
        let server = TestServer::start().await;
        server.share.put("alice/noop.bin", &old_content());
        let new = new_content();
        let mut client = server.login("alice").await;
        let mut data = start_upload(&mut client, "noop.bin").await;
        bounded("half", data.write_all(&new[..NEW / 2])).await.expect("send half");
        client.expect("NOOP", 200).await;
        client.shutdown_write().await;
        bounded("rest", data.write_all(&new[NEW / 2..])).await.expect("send the rest");
        drop(data);
        assert_eq!(client.reply().await.expect("226").code, 226);
        assert!(client.reply().await.is_none(), "then the session closes");
        let published = std::fs::read(server.share.root.join("alice/noop.bin")).expect("file");
        assert!(published == new, "the upload was not published");
    })
    .await;
}
