//! Many files in one FTPS session, with the clients people script it with: lftp fetching many
//! small files over protected data connections, where a delayed acknowledgement used to cost
//! 40 ms per file.
//!
//! Each client is looked up with `require_tool`; under `CI=true` a missing one fails the test.

mod common;

use std::time::{Duration, Instant};

use common::{TestServer, lftp, run_client};
use wharf_testkit::{pattern, require_tool, tree_digest};

/// Small files fetched in one lftp mirror.
const SMALL_FILES: usize = 100;

/// What fetching [`SMALL_FILES`] over FTPS may take. With a 40 ms delayed acknowledgement on
/// every data connection's handshake it took over 4 s (`SMALL_FILES` × 40 ms and more); it
/// now takes a small part of that.
const SMALL_FILES_LIMIT: Duration = Duration::from_secs(3);

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
