//! Read requests driven by the test client: sizes around block boundaries, rollover, every
//! option, netascii, IPv6.

mod common;

use std::net::SocketAddr;

use common::client::{Behaviour, download};
use common::{TestServer, bounded, config, rule};
use wharf_testkit::pattern;
use wharf_tftp::packet::TransferMode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sizes_around_block_boundaries_arrive_byte_exact() {
    bounded(60, async {
        let server = TestServer::usual().await;
        for size in [0usize, 1, 511, 512, 513, 1024, 1 << 20] {
            let content = pattern(size);
            let name = format!("file-{size}.bin");
            server.put(&name, &content);
            let got = download(server.addr, &name, &Behaviour::default()).await.expect("download");
            assert!(got.data == content, "{size} bytes differ");
            assert_eq!(got.oack, None, "no options asked, none answered");
            assert_eq!(got.blocks, size as u64 / 512 + 1, "{size} bytes: a short block ends it");
        }
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_mebibytes_roll_block_numbers_over() {
    bounded(120, async {
        let server = TestServer::usual().await;
        let content = pattern(40 << 20);
        server.put("big.bin", &content);
        // 512-byte blocks: 81,921 blocks, so numbers wrap past 65535. A window keeps it quick.
        let behaviour = Behaviour::with_options(&[("blksize", "512"), ("windowsize", "16")]);
        let got = download(server.addr, "big.bin", &behaviour).await.expect("download");
        assert_eq!(got.blocks, 81_921);
        assert!(got.data == content, "40 MiB differ after rollover");
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_are_negotiated_and_used() {
    bounded(60, async {
        let server = TestServer::usual().await;
        let content = pattern(100_000);
        server.put("opts.bin", &content);
        let behaviour = Behaviour::with_options(&[
            ("blksize", "1468"),
            ("tsize", "0"),
            ("timeout", "2"),
            ("multicast", "1"),
        ]);
        let got = download(server.addr, "opts.bin", &behaviour).await.expect("download");
        let oack = got.oack.expect("OACK");
        assert_eq!(
            oack,
            vec![
                ("blksize".to_owned(), "1468".to_owned()),
                ("tsize".to_owned(), "100000".to_owned()),
                ("timeout".to_owned(), "2".to_owned()),
            ],
            "unknown options are left out"
        );
        assert_eq!(got.blocks, 100_000 / 1468 + 1);
        assert!(got.data == content);

        // A block size above the server's maximum is lowered to it.
        let capped =
            TestServer::with_config(wharf_tftp::TftpConfig { max_block_size: 1024, ..config() })
                .await;
        capped.put("opts.bin", &content);
        let got =
            download(capped.addr, "opts.bin", &Behaviour::with_options(&[("blksize", "8192")]))
                .await
                .expect("download");
        assert_eq!(got.oack, Some(vec![("blksize".to_owned(), "1024".to_owned())]));
        assert!(got.data == content);
        capped.stop().await;
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_option_values_are_ignored() {
    bounded(30, async {
        let server = TestServer::usual().await;
        let content = pattern(3000);
        server.put("absurd.bin", &content);
        let behaviour = Behaviour::with_options(&[
            ("blksize", "0"),
            ("blksize", "99999999999999999999999"),
            ("windowsize", "0"),
            ("timeout", "1000"),
            ("tsize", "x"),
        ]);
        let got = download(server.addr, "absurd.bin", &behaviour).await.expect("download");
        assert_eq!(got.oack, None, "nothing acceptable, so no OACK");
        assert_eq!(got.blocks, 6, "RFC 1350 defaults: 512-byte blocks");
        assert!(got.data == content);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windowsize_sends_a_whole_window_before_waiting() {
    bounded(60, async {
        let server = TestServer::usual().await;
        let content = pattern(200_000);
        server.put("window.bin", &content);
        let behaviour = Behaviour {
            // A client that never retransmits: if the server waited for an ACK per block,
            // the download would stall and fail instead of arriving.
            max_retries: 0,
            ..Behaviour::with_options(&[("blksize", "1024"), ("windowsize", "8")])
        };
        let got = download(server.addr, "window.bin", &behaviour).await.expect("download");
        assert_eq!(
            got.oack,
            Some(vec![
                ("blksize".to_owned(), "1024".to_owned()),
                ("windowsize".to_owned(), "8".to_owned())
            ])
        );
        assert_eq!(got.blocks_before_first_ack, 8, "eight DATA before the client's first ACK");
        assert_eq!(got.data_packets, got.blocks, "no retransmissions were needed");
        assert!(got.data == content);

        // A window larger than the server allows is lowered to its maximum.
        let small =
            TestServer::with_config(wharf_tftp::TftpConfig { max_window_size: 4, ..config() })
                .await;
        small.put("window.bin", &content);
        let got =
            download(small.addr, "window.bin", &Behaviour::with_options(&[("windowsize", "64")]))
                .await
                .expect("download");
        assert_eq!(got.oack, Some(vec![("windowsize".to_owned(), "4".to_owned())]));
        assert_eq!(got.blocks_before_first_ack, 4);
        assert!(got.data == content);
        small.stop().await;
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netascii_downloads_carry_cr_lf_line_ends() {
    bounded(30, async {
        let server = TestServer::usual().await;
        server.put("notes.txt", b"line one\nline two\r\nbare\rend\n");
        let behaviour = Behaviour { mode: TransferMode::Netascii, ..Behaviour::default() };
        let got = download(server.addr, "notes.txt", &behaviour).await.expect("download");
        assert_eq!(got.data, b"line one\r\nline two\r\0\r\nbare\r\0end\r\n");
        // tsize is not offered in netascii: the converted size is unknown in advance.
        let behaviour = Behaviour {
            mode: TransferMode::Netascii,
            ..Behaviour::with_options(&[("tsize", "0")])
        };
        let got = download(server.addr, "notes.txt", &behaviour).await.expect("download");
        assert_eq!(got.oack, None);
        // A file whose conversion crosses many blocks and read chunks (256 KiB) stays exact,
        // with blocks that straddle chunk boundaries.
        let text: Vec<u8> =
            (0..700_000).map(|i| if i % 7 == 0 { b'\n' } else { b'a' + (i % 26) as u8 }).collect();
        server.put("long.txt", &text);
        let behaviour = Behaviour {
            mode: TransferMode::Netascii,
            ..Behaviour::with_options(&[("blksize", "1000"), ("windowsize", "4")])
        };
        let got = download(server.addr, "long.txt", &behaviour).await.expect("download");
        let mut decoder = wharf_tftp::netascii::Decoder::new();
        let mut local = bytes::BytesMut::new();
        decoder.decode_into(&got.data, &mut local);
        decoder.finish(&mut local);
        assert!(local[..] == text[..]);
        assert!(got.data.len() > text.len());
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_ipv6() {
    bounded(30, async {
        let server = TestServer::with_config(wharf_tftp::TftpConfig {
            listen: vec!["[::1]:0".parse().expect("addr")],
            rules: vec![rule("::1/128", "devices")],
            ..config()
        })
        .await;
        assert!(server.addr.is_ipv6());
        let content = pattern(70_000);
        server.put("v6.bin", &content);
        let behaviour = Behaviour {
            source: "::1".parse().expect("ip"),
            ..Behaviour::with_options(&[("blksize", "1400")])
        };
        let got = download(server.addr, "v6.bin", &behaviour).await.expect("download");
        assert!(got.data == content);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_of_the_shared_layer_reach_the_client() {
    bounded(30, async {
        let server = TestServer::usual().await;
        std::fs::create_dir_all(server.root().join("tftp/somedir")).expect("mkdir");
        let err =
            download(server.addr, "missing.bin", &Behaviour::default()).await.expect_err("missing");
        assert_eq!(err.code(), Some(1), "{err:?}");
        let err =
            download(server.addr, "somedir", &Behaviour::default()).await.expect_err("a directory");
        assert_eq!(err.code(), Some(2), "{err:?}");
        let err = download(server.addr, "/", &Behaviour::default()).await.expect_err("the root");
        assert_eq!(err.code(), Some(2), "{err:?}");
        let mail = Behaviour { mode: TransferMode::Mail, ..Behaviour::default() };
        let err = download(server.addr, "x", &mail).await.expect_err("mail mode");
        assert_eq!(err.code(), Some(4), "{err:?}");
        server.stop().await;
    })
    .await;
}

/// The listening address of a server bound to `0.0.0.0` is reachable from loopback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_listeners_serve_loopback_clients() {
    bounded(30, async {
        let server = TestServer::with_config(wharf_tftp::TftpConfig {
            listen: vec!["0.0.0.0:0".parse().expect("addr")],
            ..config()
        })
        .await;
        let content = pattern(5000);
        server.put("any.bin", &content);
        let to: SocketAddr = ([127, 0, 0, 1], server.addr.port()).into();
        let got = download(to, "any.bin", &Behaviour::default()).await.expect("download");
        assert!(got.data == content);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_transfers_run_at_once() {
    bounded(60, async {
        let server = TestServer::usual().await;
        let content = pattern(300_000);
        server.put("shared.bin", &content);
        let clients: Vec<_> = (0..24u8)
            .map(|i| {
                let addr = server.addr;
                let behaviour = Behaviour {
                    source: format!("127.0.0.{}", 1 + i % 6).parse().expect("ip"),
                    ..Behaviour::with_options(&[(
                        "blksize",
                        ["512", "1468", "8192"][usize::from(i % 3)],
                    )])
                };
                tokio::spawn(async move { download(addr, "shared.bin", &behaviour).await })
            })
            .collect();
        for client in clients {
            let got = client.await.expect("client task").expect("download");
            assert!(got.data == content);
        }
        server.stop().await;
    })
    .await;
}

/// An IPv6 wildcard listener is IPv6-only, so `0.0.0.0:P` and `[::]:P` can both be listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv6_wildcard_leaves_the_ipv4_port_free() {
    bounded(30, async {
        let server = TestServer::with_config(wharf_tftp::TftpConfig {
            listen: vec!["[::]:0".parse().expect("addr")],
            ..config()
        })
        .await;
        let port = server.addr.port();
        let ipv4 = std::net::UdpSocket::bind(("0.0.0.0", port));
        assert!(ipv4.is_ok(), "IPv4 port {port} taken by the IPv6 wildcard: {ipv4:?}");
        let content = pattern(2000);
        server.put("v6.bin", &content);
        let behaviour = Behaviour { source: "::1".parse().expect("ip"), ..Behaviour::default() };
        let to: SocketAddr = ("::1".parse::<std::net::IpAddr>().expect("ip"), port).into();
        let got = download(to, "v6.bin", &behaviour).await.expect("download over IPv6");
        assert!(got.data == content);
        server.stop().await;
    })
    .await;
}
