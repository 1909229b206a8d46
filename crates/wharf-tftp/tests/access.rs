//! Who may do what: source-network rules, the identity's mounts as a sandbox, filename
//! remapping, and configuration errors found at bind time.

mod common;

use std::time::Duration;

use common::client::{Behaviour, download, upload};
use common::{TestServer, USERS, bounded, config, rule};
use wharf_testkit::{TestShare, pattern};
use wharf_tftp::{RemapRule, TftpConfig, TftpError, TftpServer};

fn from(source: &str) -> Behaviour {
    Behaviour { source: source.parse().expect("ip"), ..Behaviour::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_matching_rule_decides_the_identity() {
    bounded(30, async {
        for (rules, expected_for_2) in [
            (vec![rule("127.0.0.2/32", "other"), rule("127.0.0.0/8", "devices")], "other"),
            (vec![rule("127.0.0.0/8", "devices"), rule("127.0.0.2/32", "other")], "devices"),
        ] {
            let server = TestServer::with_config(TftpConfig { rules, ..config() }).await;
            server.share.put("tftp/who.txt", b"devices");
            server.share.put("other-home/who.txt", b"other");
            let got = download(server.addr, "who.txt", &from("127.0.0.2")).await.expect("download");
            assert_eq!(got.data, expected_for_2.as_bytes());
            let got = download(server.addr, "who.txt", &from("127.0.0.1")).await.expect("download");
            assert_eq!(got.data, b"devices");
            server.stop().await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_no_rule_matches_is_an_access_violation() {
    bounded(30, async {
        let server = TestServer::with_config(TftpConfig {
            rules: vec![rule("10.0.0.0/8", "devices"), rule("127.0.0.2/32", "devices")],
            ..config()
        })
        .await;
        server.put("firmware.bin", b"secret firmware");
        let err =
            download(server.addr, "firmware.bin", &from("127.0.0.1")).await.expect_err("no rule");
        assert_eq!(err.code(), Some(2), "{err:?}");
        let err =
            upload(server.addr, "incoming/x", b"x", &from("127.0.0.1")).await.expect_err("no rule");
        assert_eq!(err.code(), Some(2), "{err:?}");
        assert!(!server.exists("incoming/x"));
        let got =
            download(server.addr, "firmware.bin", &from("127.0.0.2")).await.expect("matching rule");
        assert_eq!(got.data, b"secret firmware");
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_outside_the_identitys_mounts_is_reachable() {
    bounded(30, async {
        let server = TestServer::with_config(TftpConfig { dos_paths: true, ..config() }).await;
        server.share.put("other-home/private.txt", b"not for devices");
        std::os::unix::fs::symlink(
            server.share.outside.join("sentinel.txt"),
            server.root().join("tftp/link"),
        )
        .expect("symlink");
        for name in [
            "../outside/sentinel.txt",
            "/../../outside/sentinel.txt",
            "..\\..\\outside\\sentinel.txt",
            "../other-home/private.txt",
            "/other-home/private.txt",
            "link",
        ] {
            let err = download(server.addr, name, &Behaviour::default()).await.expect_err(name);
            assert!(matches!(err.code(), Some(1 | 2)), "{name}: {err:?}");
            let err = upload(server.addr, name, b"overwritten", &Behaviour::default())
                .await
                .expect_err(name);
            assert!(matches!(err.code(), Some(1 | 2)), "{name}: {err:?}");
        }
        server.share.assert_outside_untouched();
        assert_eq!(
            std::fs::read(server.root().join("other-home/private.txt")).expect("file"),
            b"not for devices"
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_remapped_before_they_are_resolved() {
    bounded(30, async {
        let server = TestServer::with_config(TftpConfig {
            remap: vec![
                RemapRule {
                    pattern: r"^/?pxelinux\.cfg/(.*)".into(),
                    replace: r"/boot/pxe/\1".into(),
                },
                RemapRule { pattern: r"^/?uploads/(.*)".into(), replace: r"/incoming/\1".into() },
                RemapRule { pattern: r"^/?escape/(.*)".into(), replace: r"../../\1".into() },
            ],
            ..config()
        })
        .await;
        let menu = pattern(3000);
        server.put("boot/pxe/default", &menu);
        let got = download(server.addr, "pxelinux.cfg/default", &Behaviour::default())
            .await
            .expect("remapped");
        assert!(got.data == menu);
        let got = download(server.addr, "/pxelinux.cfg/default", &Behaviour::default())
            .await
            .expect("remapped");
        assert!(got.data == menu);
        upload(server.addr, "uploads/device.cfg", b"hostname=sw1", &Behaviour::default())
            .await
            .expect("remapped");
        assert_eq!(server.read("incoming/device.cfg"), b"hostname=sw1");
        // A rewrite that climbs is still resolved inside the root.
        let err = download(server.addr, "escape/outside/sentinel.txt", &Behaviour::default())
            .await
            .expect_err("escape");
        assert_eq!(err.code(), Some(1), "{err:?}");
        server.share.assert_outside_untouched();
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dos_paths_are_folded_only_when_enabled() {
    bounded(30, async {
        let content = pattern(1000);
        for dos_paths in [false, true] {
            let server = TestServer::with_config(TftpConfig { dos_paths, ..config() }).await;
            server.put("boot/pxe/default", &content);
            let result = download(server.addr, "BOOT\\PXE\\DEFAULT", &Behaviour::default()).await;
            if dos_paths {
                assert!(result.expect("folded").data == content);
            } else {
                assert_eq!(result.expect_err("literal name").code(), Some(1));
            }
            server.stop().await;
        }
    })
    .await;
}

async fn bind_error(users: &str, config: TftpConfig) -> TftpError {
    let share = TestShare::new(users);
    TftpServer::bind(config, share.gateway.clone()).await.expect_err("bind must fail")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_errors_are_named_at_bind_time() {
    bounded(30, async {
        let err =
            bind_error(USERS, TftpConfig { rules: vec![rule("10.0.0.0/8", "nobody")], ..config() })
                .await;
        assert!(matches!(err, TftpError::UnknownIdentity { rule: 1, .. }), "{err}");
        assert!(
            err.to_string().contains("nobody") && err.to_string().contains("10.0.0.0/8"),
            "{err}"
        );

        let users = r#"
users:
  - { name: devices, passwordless: true, protocols: [tftp], home: tftp }
  - { name: ftponly, passwordless: true, protocols: [ftp], home: tftp }
"#;
        let rules = vec![rule("10.0.0.0/8", "devices"), rule("10.1.0.0/16", "ftponly")];
        let err = bind_error(users, TftpConfig { rules, ..config() }).await;
        assert!(matches!(err, TftpError::UnusableIdentity { rule: 2, .. }), "{err}");
        assert!(err.to_string().contains("tftp"), "{err}");

        let remap = vec![RemapRule { pattern: "([a-z]+".into(), replace: r"\1".into() }];
        let err = bind_error(USERS, TftpConfig { remap, ..config() }).await;
        assert!(err.to_string().contains("remap rule #1"), "{err}");
        let remap = vec![RemapRule { pattern: "a".into(), replace: r"\1".into() }];
        let err = bind_error(USERS, TftpConfig { remap, ..config() }).await;
        assert!(err.to_string().contains("group"), "{err}");

        let err = bind_error(USERS, TftpConfig { max_block_size: 4, ..config() }).await;
        assert!(err.to_string().contains("tftp.max_block_size"), "{err}");

        let taken = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let addr = taken.local_addr().expect("addr");
        let err = bind_error(USERS, TftpConfig { listen: vec![addr], ..config() }).await;
        assert!(matches!(err, TftpError::Bind { .. }), "{err}");
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_listen_list_serves_nothing_and_returns_when_draining() {
    bounded(10, async {
        let share = TestShare::new(USERS);
        let server =
            TftpServer::bind(TftpConfig { listen: vec![], ..config() }, share.gateway.clone())
                .await
                .expect("bind");
        assert!(server.local_addrs().is_empty());
        let task = tokio::spawn(server.run());
        assert!(share.gateway.shutdown.shut_down(Duration::from_secs(1)).await);
        task.await.expect("run returns");
    })
    .await;
}
