//! A download counts what reached the client: a `RANG` download of part of a file, sent
//! through the streaming path (ASCII type), counts the range, not the blocks read for it.

mod common;

use common::{TestServer, within_test_limit};
use wharf_testkit::{CapturedLog, pattern};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ranged_download_counts_the_range() {
    let log = CapturedLog::global();
    within_test_limit(async {
        let server = TestServer::start().await;
        server.share.put("alice/big.bin", &pattern(2 * 1024 * 1024));
        let mut client = server.login("alice").await;
        client.expect("TYPE A", 200).await;
        client.expect("RANG 1000 1999", 350).await;
        let (_, done) = client.download("RETR big.bin").await;
        assert_eq!(done.code, 226, "{}", done.text());
        client.expect("QUIT", 221).await;
    })
    .await;
    let events = log.audit_events("download");
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].contains("bytes=1000 "), "{events:?}");
}
