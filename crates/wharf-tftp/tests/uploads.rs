//! Write requests driven by the test client: sizes, rollover, windows, netascii, the create /
//! overwrite rights, and atomic publication.

mod common;

use std::time::Duration;

use common::client::{Behaviour, upload};
use common::{TestServer, bounded};
use tokio::net::UdpSocket;
use wharf_testkit::{pattern, tree_digest};
use wharf_tftp::packet::{Packet, Request, TransferMode, encode_data};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sizes_around_block_boundaries_are_stored_byte_exact() {
    bounded(60, async {
        let server = TestServer::usual().await;
        for size in [0usize, 1, 511, 512, 513, 1 << 20] {
            let content = pattern(size);
            let name = format!("incoming/up-{size}.bin");
            let sent =
                upload(server.addr, &name, &content, &Behaviour::default()).await.expect("upload");
            assert_eq!(sent.acks, sent.blocks, "lock-step: one ACK per block");
            assert!(server.read(&format!("incoming/up-{size}.bin")) == content, "{size} bytes");
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
        let behaviour = Behaviour::with_options(&[
            ("blksize", "512"),
            ("windowsize", "16"),
            ("tsize", "41943040"),
        ]);
        let sent =
            upload(server.addr, "incoming/big.bin", &content, &behaviour).await.expect("upload");
        let oack = sent.oack.expect("OACK");
        assert!(oack.contains(&("windowsize".to_owned(), "16".to_owned())), "{oack:?}");
        assert!(oack.contains(&("tsize".to_owned(), "41943040".to_owned())), "{oack:?}");
        assert!(server.read("incoming/big.bin") == content, "40 MiB differ after rollover");
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netascii_uploads_are_stored_with_local_line_ends() {
    bounded(30, async {
        let server = TestServer::usual().await;
        let behaviour = Behaviour {
            mode: TransferMode::Netascii,
            ..Behaviour::with_options(&[("blksize", "8")])
        };
        // Eight-byte blocks split CR LF and CR NUL pairs across packets.
        let wire = b"a\r\nbb\r\0cc\r\nlast line\r\n\r\0";
        upload(server.addr, "incoming/text.txt", wire, &behaviour).await.expect("upload");
        assert_eq!(server.read("incoming/text.txt"), b"a\nbb\rcc\nlast line\n\r");
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_only_folders_never_overwrite() {
    bounded(30, async {
        let server = TestServer::usual().await;
        server.put("incoming/existing.cfg", b"old");
        let before = tree_digest(server.root());
        let err = upload(server.addr, "incoming/existing.cfg", b"new", &Behaviour::default())
            .await
            .expect_err("no overwrite right");
        assert_eq!(err.code(), Some(6), "file already exists: {err:?}");
        assert_eq!(tree_digest(server.root()), before, "nothing changed");
        // Where overwriting is granted it replaces the file.
        server.put("public/existing.cfg", b"old");
        upload(server.addr, "public/existing.cfg", b"new content", &Behaviour::default())
            .await
            .expect("overwrite right");
        assert_eq!(server.read("public/existing.cfg"), b"new content");
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_folders_refuse_writes_and_stay_unchanged() {
    bounded(30, async {
        let server = TestServer::usual().await;
        server.put("firmware.bin", b"firmware");
        let before = tree_digest(server.root());
        for name in ["firmware.bin", "new.bin", "../escape.bin"] {
            let err =
                upload(server.addr, name, b"evil", &Behaviour::default()).await.expect_err(name);
            assert_eq!(err.code(), Some(2), "{name}: {err:?}");
        }
        assert_eq!(tree_digest(server.root()), before);
        server.share.assert_outside_untouched();
        server.stop().await;
    })
    .await;
}

/// Sends a WRQ and the first `blocks` full blocks of `content`, then goes silent.
async fn abandoned_upload(server: std::net::SocketAddr, name: &str, content: &[u8], blocks: usize) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let request = Packet::Wrq(Request {
        filename: name.as_bytes(),
        mode: TransferMode::Octet,
        options: vec![],
    });
    socket.send_to(&request.to_bytes(), server).await.expect("WRQ");
    let mut buf = [0u8; 516];
    let (_, tid) = socket.recv_from(&mut buf).await.expect("ACK 0");
    let mut packet = Vec::new();
    for n in 0..blocks {
        encode_data(&mut packet, (n + 1) as u16, &content[n * 512..(n + 1) * 512]);
        socket.send_to(&packet, tid).await.expect("DATA");
        let _ = socket.recv_from(&mut buf).await.expect("ACK");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_upload_keeps_the_old_file() {
    bounded(30, async {
        let server = TestServer::usual().await;
        server.put("public/config.txt", b"the good old config");
        let before = tree_digest(server.root());
        // More than one storage block (256 KiB), so part of the upload reaches the disk.
        abandoned_upload(server.addr, "public/config.txt", &pattern(600 * 512), 520).await;
        // Meanwhile the partial upload is a hidden temporary file, written as the blocks fill.
        while tree_digest(server.root()) == before {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(server.read("public/config.txt"), b"the good old config");
        // The server gives up after its retries (200 ms x 5) and discards the partial upload
        // (the test's time limit fails it if that never happens).
        while tree_digest(server.root()) != before {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(server.read("public/config.txt"), b"the good old config");
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windowed_uploads_with_large_blocks() {
    bounded(60, async {
        let server = TestServer::usual().await;
        let content = pattern(3 << 20);
        let behaviour = Behaviour::with_options(&[("blksize", "8192"), ("windowsize", "8")]);
        let sent =
            upload(server.addr, "incoming/w.bin", &content, &behaviour).await.expect("upload");
        assert_eq!(
            sent.oack,
            Some(vec![
                ("blksize".to_owned(), "8192".to_owned()),
                ("windowsize".to_owned(), "8".to_owned())
            ])
        );
        // One ACK per window of eight blocks, not one per block.
        assert_eq!(
            sent.acks,
            sent.blocks.div_ceil(8),
            "{} ACKs for {} blocks",
            sent.acks,
            sent.blocks
        );
        assert!(server.read("incoming/w.bin") == content);
        server.stop().await;
    })
    .await;
}

/// A write request announcing a size past offset i64::MAX is refused before anything is
/// created (the limit every protocol shares; the block-by-block check is a unit test of
/// `receive_window.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_size_past_the_largest_offset_is_refused() {
    bounded(30, async {
        let server = TestServer::usual().await;
        let before = tree_digest(server.root());
        for tsize in ["9223372036854775808", "18446744073709551615"] {
            let refused = upload(
                server.addr,
                "incoming/huge.bin",
                b"small",
                &Behaviour::with_options(&[("tsize", tsize)]),
            )
            .await
            .expect_err("refused");
            assert_eq!(refused.code(), Some(4), "{tsize}: {refused:?}");
        }
        assert_eq!(tree_digest(server.root()), before, "nothing was created");
        // The largest offset itself is a size that may be announced.
        upload(
            server.addr,
            "incoming/fine.bin",
            b"small",
            &Behaviour::with_options(&[("tsize", "9223372036854775807")]),
        )
        .await
        .expect("accepted");
        server.stop().await;
    })
    .await;
}
