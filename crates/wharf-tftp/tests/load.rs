//! Legitimate load the caps must not refuse: many devices behind one address booting at once,
//! and a client over a cap waiting for a place rather than failing.

mod common;

use std::time::Duration;

use common::client::{Behaviour, Manual, download};
use common::{TestServer, bounded, config};
use wharf_testkit::CapturedLog;
use wharf_testkit::pattern;
use wharf_tftp::{OverCap, TftpConfig};

/// A lab of 50 devices behind one NAT router fetching their firmware at once: at the old
/// default (8 per address, the rest refused) 42 of them failed; now all are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_parallel_downloads_from_one_address_all_succeed_at_the_defaults() {
    bounded(120, async {
        let defaults = TftpConfig::default();
        let server = TestServer::with_config(TftpConfig {
            max_transfers: defaults.max_transfers,
            max_transfers_per_address: defaults.max_transfers_per_address,
            over_cap: defaults.over_cap,
            ..config()
        })
        .await;
        // Big enough (512 lock-step round trips each) that all 50 run at the same time.
        let content = pattern(256 * 1024);
        server.put("firmware.bin", &content);
        let behaviour =
            Behaviour { retransmit_after: Duration::from_millis(500), ..Behaviour::default() };
        let mut devices = tokio::task::JoinSet::new();
        for _ in 0..50 {
            let behaviour = behaviour.clone();
            let addr = server.addr;
            devices.spawn(async move { download(addr, "firmware.bin", &behaviour).await });
        }
        let mut served = 0;
        while let Some(joined) = devices.join_next().await {
            let got = joined.expect("device task").expect("every device is served");
            assert!(got.data == content, "a device got other bytes");
            served += 1;
        }
        assert_eq!(served, 50);
        server.stop().await;
    })
    .await;
}

/// A request over a cap is dropped, not refused: the client asks again after its timeout and
/// is served once the transfer holding the place is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_cap_waits_for_a_place() {
    let log = CapturedLog::global();
    bounded(60, async {
        let server = TestServer::with_config(TftpConfig {
            max_transfers_per_address: 1,
            over_cap: OverCap::Wait,
            timeout: Duration::from_secs(2),
            ..config()
        })
        .await;
        let content = pattern(1500);
        server.put("cap.bin", &content);
        // The one place of 127.0.0.1 is held after the first block.
        let mut holder = Manual::new(server.addr, "127.0.0.1").await;
        holder.read_request("cap.bin", &[]).await;
        let (_, first) = holder.expect_data(Duration::from_secs(5)).await;

        let waiting = Behaviour {
            retransmit_after: Duration::from_millis(300),
            max_retries: 100,
            ..Behaviour::default()
        };
        let addr = server.addr;
        let second = tokio::spawn(async move { download(addr, "cap.bin", &waiting).await });
        // The second request reached the server and was dropped while the place was taken.
        log.wait_for(&["request over a cap dropped", "max_transfers_per_address"], 20).await;

        assert!(holder.finish_after_first_block(first).await == content);
        let got = second.await.expect("client task").expect("served once the place was free");
        assert!(got.data == content);
        server.stop().await;
    })
    .await;
}
