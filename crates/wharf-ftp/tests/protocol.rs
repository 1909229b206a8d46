//! The command set end to end, over a raw control connection, so every reply is checked as
//! sent: login, the login gate, files and directories, metadata, listings, permissions, paths.

mod common;

use std::time::{Duration, UNIX_EPOCH};

use common::{TestServer, bounded};
use sha2::Digest as _;
use wharf_ftp::FtpConfig;
use wharf_testkit::{TEST_PASSWORD, pattern, tree_digest};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greeting_login_and_the_login_gate() {
    common::within_test_limit(async {
        let server =
            TestServer::start_with(common::USERS, |c| c.banner = "Hello from Wharf".into(), None)
                .await;
        server.share.put("alice/file.txt", b"secret");
        let mut client = common::RawClient::connect(server.addr).await;
        assert_eq!(client.greeting.code, 220);
        assert_eq!(client.greeting.text(), "Hello from Wharf");
        // Informational commands work before login; nothing that touches a path does.
        client.expect("SYST", 215).await;
        client.expect("NOOP", 200).await;
        client.expect("FEAT", 211).await;
        client.expect("STAT", 211).await;
        for gated in [
            "CWD /",
            "RETR file.txt",
            "LIST",
            "NLST",
            "MLSD",
            "MLST file.txt",
            "SIZE file.txt",
            "MDTM file.txt",
            "STAT /",
            "MKD x",
            "DELE file.txt",
            "PASV",
            "EPSV",
            "PORT 127,0,0,1,200,0",
            "TYPE I",
            "REST 5",
            "HASH file.txt",
            "SITE CHMOD 600 file.txt",
            "PWD",
            "STOR x",
        ] {
            let reply = client.cmd(gated).await;
            assert_eq!(reply.code, 530, "{gated} before login: {reply:?}");
        }
        // PASS before USER, then a wrong password, then the right one.
        client.expect(&format!("PASS {TEST_PASSWORD}"), 503).await;
        client.expect("USER alice", 331).await;
        client.expect("PASS wrong", 530).await;
        client.expect("PWD", 530).await;
        client.login("alice").await;
        let pwd = client.expect("PWD", 257).await;
        assert_eq!(pwd.text(), "\"/\" is the current directory.");
        client.expect(&format!("PASS {TEST_PASSWORD}"), 503).await;
        client.expect("QUIT", 221).await;
        assert!(client.reply().await.is_none(), "closed after QUIT");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failed_logins_close_the_connection() {
    common::within_test_limit(async {
        let server =
            TestServer::start_with(common::USERS, |c| c.max_login_failures = 2, None).await;
        let mut client = common::RawClient::connect(server.addr).await;
        client.expect("USER alice", 331).await;
        client.expect("PASS nope", 530).await;
        client.expect("USER nobody", 331).await;
        client.expect("PASS nope", 530).await;
        assert!(client.reply().await.is_none(), "closed after the second failure");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directories_renames_and_deletes() {
    common::within_test_limit(async {
        let server = TestServer::start().await;
        let home = server.share.root.join("alice");
        server.share.put("alice/old name.txt", b"content");
        let mut client = server.login("alice").await;
        let made = client.expect("MKD new dir", 257).await;
        assert_eq!(made.text(), "\"/new dir\" created.");
        assert!(home.join("new dir").is_dir());
        client.expect("MKD new dir", 553).await;
        client.expect("CWD new dir", 250).await;
        client.expect("XMKD ünïcödé", 257).await;
        assert!(home.join("new dir/ünïcödé").is_dir());
        client.expect("XCWD ünïcödé", 250).await;
        assert_eq!(
            client.expect("XPWD", 257).await.text(),
            "\"/new dir/ünïcödé\" is the current directory."
        );
        client.expect("CDUP", 250).await;
        client.expect("XCUP", 250).await;
        client.expect("CDUP", 250).await;
        assert_eq!(client.expect("PWD", 257).await.text(), "\"/\" is the current directory.");
        client.expect("CWD old name.txt", 550).await;
        client.expect("CWD missing", 550).await;

        client.expect("RNFR old name.txt", 350).await;
        client.expect("RNTO new dir/renamed.txt", 250).await;
        assert_eq!(std::fs::read(home.join("new dir/renamed.txt")).expect("renamed"), b"content");
        assert!(!home.join("old name.txt").exists());
        client.expect("RNTO again.txt", 503).await;
        client.expect("RNFR missing.txt", 550).await;
        client.expect("RNFR new dir/renamed.txt", 350).await;
        client.expect("NOOP", 200).await;
        client.expect("RNTO lost.txt", 503).await;

        client.expect("RMD new dir", 550).await;
        client.expect("DELE new dir/renamed.txt", 250).await;
        client.expect("DELE new dir/renamed.txt", 550).await;
        client.expect("XRMD new dir/ünïcödé", 250).await;
        client.expect("RMD new dir", 250).await;
        assert!(!home.join("new dir").exists());
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_mdtm_mfmt_mlst_and_hash() {
    common::within_test_limit(async {
        let server = TestServer::start().await;
        let content = pattern(100_000);
        let path = server.share.put("alice/data.bin", &content);
        server.share.put("alice/text.txt", b"one\ntwo\nthree\n");
        let mut client = server.login("alice").await;
        assert_eq!(client.expect("SIZE data.bin", 213).await.text(), "100000");
        client.expect("SIZE missing", 550).await;
        client.expect("SIZE /", 550).await;

        client.expect("MFMT 20210304123456 data.bin", 213).await;
        let modified = std::fs::metadata(&path).expect("meta").modified().expect("mtime");
        assert_eq!(
            modified.duration_since(UNIX_EPOCH).expect("after epoch").as_secs(),
            1_614_861_296
        );
        assert_eq!(client.expect("MDTM data.bin", 213).await.text(), "20210304123456");
        client.expect("MFMT 2021 data.bin", 501).await;

        let mlst = client.expect("MLST data.bin", 250).await;
        assert_eq!(mlst.lines.len(), 3, "{mlst:?}");
        assert_eq!(mlst.lines[0], "Listing /data.bin");
        let facts = &mlst.lines[1];
        assert!(
            facts.starts_with(" type=file;size=100000;modify=20210304123456;perm=rwadf;unique="),
            "{facts}"
        );
        assert!(facts.ends_with("; /data.bin"), "{facts}");
        client.expect("OPTS MLST size;type;", 200).await;
        let mlst = client.expect("MLST", 250).await;
        assert_eq!(mlst.lines[1], " type=dir; /");

        let sha256 = format!("{:x}", sha2::Sha256::digest(&content));
        let hash = client.expect("HASH data.bin", 213).await;
        assert_eq!(hash.text(), format!("SHA-256 0-99999 {sha256} data.bin"));
        assert_eq!(client.expect("OPTS HASH MD5", 200).await.text(), "MD5");
        assert_eq!(client.expect("OPTS HASH", 200).await.text(), "MD5");
        let md5 = format!("{:x}", md5::Md5::digest(&content));
        assert_eq!(
            client.expect("HASH data.bin", 213).await.text(),
            format!("MD5 0-99999 {md5} data.bin")
        );
        client.expect("OPTS HASH CRC32", 200).await;
        client.expect("RANG 10 19", 350).await;
        let crc = format!("{:08x}", crc32fast::hash(&content[10..20]));
        assert_eq!(
            client.expect("HASH data.bin", 213).await.text(),
            format!("CRC32 10-19 {crc} data.bin")
        );
        client.expect("OPTS HASH SHA-1", 200).await;
        let sha1 = format!("{:x}", sha1::Sha1::digest(&content));
        assert_eq!(
            client.expect("HASH data.bin", 213).await.text(),
            format!("SHA-1 0-99999 {sha1} data.bin")
        );
        client.expect("OPTS HASH SHA-512", 501).await;
        client.expect("HASH missing", 550).await;

        let feat = client.expect("FEAT", 211).await;
        for feature in [
            " UTF8",
            " EPSV",
            " EPRT",
            " MDTM",
            " SIZE",
            " REST STREAM",
            " MFMT",
            " TVFS",
            " MLST type*;size*;modify;perm;unique;",
            " HASH SHA-256;SHA-1*;MD5;CRC32",
            " RANG STREAM",
        ] {
            assert!(feat.lines.iter().any(|l| l == feature), "FEAT lacks {feature:?}: {feat:?}");
        }
        assert!(!feat.text().contains("AUTH"), "no TLS, no AUTH: {feat:?}");

        // ASCII type: SIZE counts CRLF line ends.
        client.expect("TYPE A", 200).await;
        assert_eq!(client.expect("SIZE text.txt", 213).await.text(), "17");
        client.expect("TYPE I", 200).await;
        assert_eq!(client.expect("SIZE text.txt", 213).await.text(), "14");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_nlst_mlsd_and_stat_listings() {
    common::within_test_limit(async {
        let server = TestServer::start().await;
        server.share.put("alice/dir/a file.txt", b"12345");
        server.share.put("alice/dir/ünïcödé.bin", b"");
        std::fs::create_dir_all(server.share.root.join("alice/dir/sub")).expect("sub");
        let mut client = server.login("alice").await;

        let (list, done) = client.download("LIST -la dir").await;
        assert_eq!(done.code, 226, "{done:?}");
        let list = String::from_utf8(list).expect("UTF-8 listing");
        let lines: Vec<&str> = list.split_terminator("\r\n").collect();
        assert_eq!(lines.len(), 3, "{list:?}");
        let file_line = lines.iter().find(|l| l.ends_with(" a file.txt")).expect("file listed");
        assert!(file_line.starts_with("-rw-r--r--"), "{file_line}");
        assert!(file_line.contains(" ftp      ftp             5 "), "{file_line}");
        assert!(lines.iter().any(|l| l.starts_with('d') && l.ends_with(" sub")), "{list}");
        assert!(lines.iter().any(|l| l.ends_with(" ünïcödé.bin")), "{list}");

        let (names, _) = client.download("NLST dir").await;
        let mut names: Vec<String> = String::from_utf8(names)
            .expect("UTF-8")
            .split_terminator("\r\n")
            .map(str::to_owned)
            .collect();
        names.sort();
        assert_eq!(names, ["a file.txt", "sub", "ünïcödé.bin"]);

        let (mlsd, done) = client.download("MLSD dir").await;
        assert_eq!(done.code, 226);
        let mlsd = String::from_utf8(mlsd).expect("UTF-8");
        let entry =
            mlsd.split_terminator("\r\n").find(|l| l.ends_with("; a file.txt")).expect("entry");
        assert!(entry.starts_with("type=file;size=5;modify="), "{entry}");
        assert!(entry.contains(";perm=rwadf;unique="), "{entry}");
        let sub = mlsd.split_terminator("\r\n").find(|l| l.ends_with("; sub")).expect("sub");
        assert!(sub.starts_with("type=dir;") && sub.contains("perm=elcmpdf;"), "{sub}");

        // A single file: LIST shows it, MLSD refuses.
        let (one, _) = client.download("LIST dir/a file.txt").await;
        assert!(String::from_utf8_lossy(&one).trim_end().ends_with(" a file.txt"));
        client.epsv().await;
        client.expect("MLSD dir/a file.txt", 501).await;
        client.epsv().await;
        client.expect("LIST missing", 550).await;
        client.expect("LIST dir", 425).await;

        // STAT with a path lists over the control connection.
        let stat = client.expect("STAT dir", 213).await;
        assert_eq!(stat.lines.first().map(String::as_str), Some("Status of /dir:"));
        assert_eq!(stat.lines.len(), 5, "{stat:?}");
        assert!(stat.lines.iter().any(|l| l.ends_with(" a file.txt")), "{stat:?}");

        // The read-only user sees read-only facts.
        let mut reader = server.login("reader").await;
        let (mlsd, _) = reader.download("MLSD dir").await;
        let mlsd = String::from_utf8(mlsd).expect("UTF-8");
        let entry =
            mlsd.split_terminator("\r\n").find(|l| l.ends_with("; a file.txt")).expect("entry");
        assert!(entry.contains(";perm=r;"), "{entry}");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_user_is_refused_every_write() {
    common::within_test_limit(async {
        let server = TestServer::start().await;
        server.share.put("alice/keep.txt", b"keep me");
        std::fs::create_dir_all(server.share.root.join("alice/dir")).expect("dir");
        let before = tree_digest(&server.share.root);
        let mut client = server.login("reader").await;
        for (command, code) in [
            ("MKD new", 550),
            ("RMD dir", 550),
            ("DELE keep.txt", 550),
            ("SITE CHMOD 777 keep.txt", 550),
            ("MFMT 20000101000000 keep.txt", 550),
        ] {
            let reply = client.cmd(command).await;
            assert_eq!(reply.code, code, "{command}: {reply:?}");
        }
        client.expect("RNFR keep.txt", 350).await;
        client.expect("RNTO moved.txt", 550).await;
        for upload in ["STOR keep.txt", "STOR new.txt", "APPE keep.txt", "STOU", "STOU keep.txt"] {
            client.epsv().await;
            let reply = client.cmd(upload).await;
            assert_eq!(reply.code, 550, "{upload}: {reply:?}");
        }
        client.epsv().await;
        client.expect("REST 3", 350).await;
        client.expect("STOR keep.txt", 550).await;
        // Reading still works.
        let (content, done) = client.download("RETR keep.txt").await;
        assert_eq!((content.as_slice(), done.code), (&b"keep me"[..], 226));
        assert_eq!(tree_digest(&server.share.root), before, "the tree is unchanged");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_stay_inside_the_users_tree() {
    common::within_test_limit(async {
        let server = TestServer::start().await;
        server.share.put("alice/inside.txt", b"inside");
        server.share.put("bob/other.txt", b"other user's");
        let mut client = server.login("alice").await;
        let sentinel = server.share.outside.join("sentinel.txt");
        let sentinel = sentinel.to_str().expect("UTF-8 temp path");
        for escape in [
            "../outside/sentinel.txt",
            "../../outside/sentinel.txt",
            "/../../../outside/sentinel.txt",
            "../bob/other.txt",
            "/etc/passwd",
            sentinel,
        ] {
            client.epsv().await;
            let reply = client.cmd(&format!("RETR {escape}")).await;
            assert_eq!(reply.code, 550, "RETR {escape}: {reply:?}");
            client.expect(&format!("SIZE {escape}"), 550).await;
        }
        // `..` stops at the user's root.
        client.expect("CWD ../../..", 250).await;
        assert_eq!(client.expect("PWD", 257).await.text(), "\"/\" is the current directory.");
        let (content, _) = client.download("RETR ../../inside.txt").await;
        assert_eq!(content, b"inside");
        // An upload aimed outside lands inside.
        client.epsv().await;
        let refused = client.cmd("STOR ../../outside/planted.txt").await;
        assert_eq!(refused.code, 550, "no such directory inside the tree: {refused:?}");
        let done = client.upload("STOR /../../planted.txt", b"x").await;
        assert_eq!(done.code, 226);
        assert!(server.share.root.join("alice/planted.txt").exists());
        client.expect("MKD ../../../outside/x", 550).await;
        // Control bytes never reach a path.
        client.expect("MKD a\u{1}b", 553).await;
        server.share.assert_outside_untouched();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ascii_type_converts_line_ends_binary_does_not() {
    common::within_test_limit(async {
        let server = TestServer::start().await;
        let mut client = server.login("alice").await;
        client.expect("TYPE A", 200).await;
        let done = client.upload("STOR text.txt", b"line one\r\nline two\r\nlone\rcr\r\n").await;
        assert_eq!(done.code, 226);
        let stored = std::fs::read(server.share.root.join("alice/text.txt")).expect("stored");
        assert_eq!(stored, b"line one\nline two\nlone\rcr\n");
        let (wire, _) = client.download("RETR text.txt").await;
        assert_eq!(wire, b"line one\r\nline two\r\nlone\rcr\r\n");
        client.expect("TYPE L 8", 200).await;
        let (raw, _) = client.download("RETR text.txt").await;
        assert_eq!(raw, stored);
        client.expect("TYPE I", 200).await;
        let done = client.upload("STOR bin.dat", b"a\r\nb").await;
        assert_eq!(done.code, 226);
        assert_eq!(std::fs::read(server.share.root.join("alice/bin.dat")).expect("bin"), b"a\r\nb");
        for unsupported in ["TYPE E", "TYPE A T", "TYPE L 7", "MODE B", "STRU R"] {
            client.expect(unsupported, 504).await;
        }
        client.expect("MODE S", 200).await;
        client.expect("STRU F", 200).await;
        client.expect("ALLO 1000", 202).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumed_downloads_and_uploads() {
    common::within_test_limit(async {
        let server = TestServer::start().await;
        let content = pattern(300_000);
        server.share.put("alice/big.bin", &content);
        let mut client = server.login("alice").await;
        client.expect("REST 123456", 350).await;
        let (tail, done) = client.download("RETR big.bin").await;
        assert_eq!(done.code, 226);
        assert_eq!(tail, &content[123_456..]);
        client.expect("REST 300000", 350).await;
        let (nothing, _) = client.download("RETR big.bin").await;
        assert!(nothing.is_empty());
        client.epsv().await;
        client.expect("REST 300001", 350).await;
        client.expect("RETR big.bin", 554).await;
        // RANG picks a byte range, last byte included.
        client.expect("RANG 100 199", 350).await;
        let (range, _) = client.download("RETR big.bin").await;
        assert_eq!(range, &content[100..200]);

        // Upload resumed at an offset: the first part exists, the rest is appended in place.
        server.share.put("alice/partial.bin", &content[..100_000]);
        client.expect("REST 100000", 350).await;
        let done = client.upload("STOR partial.bin", &content[100_000..]).await;
        assert_eq!(done.code, 226);
        assert_eq!(
            std::fs::read(server.share.root.join("alice/partial.bin")).expect("resumed"),
            content
        );
        // APPE adds to the end.
        let done = client.upload("APPE partial.bin", b"tail").await;
        assert_eq!(done.code, 226);
        let appended =
            std::fs::read(server.share.root.join("alice/partial.bin")).expect("appended");
        assert_eq!(appended.len(), content.len() + 4);
        assert!(appended.ends_with(b"tail"));
        // A plain STOR replaces the whole file.
        let done = client.upload("STOR partial.bin", b"fresh").await;
        assert_eq!(done.code, 226);
        assert_eq!(
            std::fs::read(server.share.root.join("alice/partial.bin")).expect("replaced"),
            b"fresh"
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_past_the_largest_file_position_are_refused_and_leave_nothing_pending() {
    common::within_test_limit(async {
        let server = TestServer::start().await;
        let content = pattern(1000);
        server.share.put("alice/thousand.bin", &content);
        let mut client = server.login("alice").await;
        let refusal = "Offset beyond the largest file position.";
        // A range whose length would overflow, and offsets past i64::MAX (the kernel's off_t).
        for line in [
            "RANG 0 18446744073709551615",
            "RANG 0 9223372036854775807",
            "REST 18446744073709551615",
            "REST 9223372036854775808",
        ] {
            assert_eq!(client.expect(line, 501).await.text(), refusal, "{line}");
            // Nothing was kept: the next RETR sends the whole file.
            let (whole, done) = client.download("RETR thousand.bin").await;
            assert_eq!(done.code, 226, "RETR after {line}");
            assert_eq!(whole, content, "RETR after {line}");
            let hash = client.expect("HASH thousand.bin", 213).await;
            assert!(hash.text().starts_with("SHA-256 0-999 "), "HASH after {line}: {hash:?}");
        }
        // A refused RANG changes nothing: the range set before it still applies.
        client.expect("RANG 10 19", 350).await;
        client.expect("RANG 5 18446744073709551615", 501).await;
        let (range, done) = client.download("RETR thousand.bin").await;
        assert_eq!(done.code, 226);
        assert_eq!(range, &content[10..20]);
        // The largest valid positions are accepted and answered by the file's size.
        client.expect("REST 9223372036854775807", 350).await;
        client.epsv().await;
        client.expect("RETR thousand.bin", 554).await;
        client.expect("RANG 9223372036854775806 9223372036854775806", 350).await;
        client.expect("HASH thousand.bin", 554).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stou_stores_under_a_unique_name() {
    common::within_test_limit(async {
        let server = TestServer::start().await;
        let mut client = server.login("alice").await;
        let data_addr = client.epsv().await;
        let mut data = tokio::net::TcpStream::connect(data_addr).await.expect("data");
        let opening = client.expect("STOU report.csv", 150).await;
        let name = opening.text().strip_prefix("FILE: ").expect("FILE: name").to_owned();
        assert!(name.starts_with("report.csv."), "{name}");
        tokio::io::AsyncWriteExt::write_all(&mut data, b"a,b\n").await.expect("write");
        drop(data);
        let done = client.reply().await.expect("226");
        assert_eq!(done.code, 226);
        assert!(done.text().contains(&name), "{done:?}");
        assert_eq!(
            std::fs::read(server.share.root.join("alice").join(&name)).expect("stored"),
            b"a,b\n"
        );
        let second = client.upload("STOU", b"x").await;
        assert_eq!(second.code, 226);
        let entries = std::fs::read_dir(server.share.root.join("alice")).expect("home").count();
        assert_eq!(entries, 2);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_login_only_when_configured() {
    common::within_test_limit(async {
        let without = TestServer::start().await;
        let mut client = common::RawClient::connect(without.addr).await;
        client.expect("USER anonymous", 331).await;
        client.expect("PASS guest@example.com", 530).await;

        let with = TestServer::start_with(
            common::USERS,
            |c| c.anonymous_user = Some("guest".into()),
            None,
        )
        .await;
        with.share.put("public/readme.txt", b"welcome");
        let before = tree_digest(&with.share.root);
        let mut client = common::RawClient::connect(with.addr).await;
        let reply = client.expect("USER anonymous", 331).await;
        assert!(reply.text().contains("e-mail"), "{reply:?}");
        client.expect("PASS guest@example.com", 230).await;
        let (content, _) = client.download("RETR readme.txt").await;
        assert_eq!(content, b"welcome");
        client.epsv().await;
        client.expect("STOR up.txt", 550).await;
        client.expect("MKD d", 550).await;
        client.expect("DELE readme.txt", 550).await;
        assert_eq!(tree_digest(&with.share.root), before);
        // `ftp` is the other anonymous name.
        let mut other = common::RawClient::connect(with.addr).await;
        other.expect("USER ftp", 331).await;
        other.expect("PASS", 230).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_identity_must_exist_and_be_passwordless() {
    common::within_test_limit(async {
        let share = wharf_testkit::TestShare::new(common::USERS);
        for bad in ["nobody", "alice"] {
            let config = FtpConfig {
                listen: vec![],
                anonymous_user: Some(bad.into()),
                ..FtpConfig::default()
            };
            let err = wharf_ftp::FtpServer::bind(config, share.gateway.clone()).expect_err(bad);
            assert!(err.to_string().contains(bad), "{err}");
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rein_user_change_help_opts_and_status() {
    common::within_test_limit(async {
        let server = TestServer::start().await;
        let mut client = server.login("alice").await;
        client.expect("CWD /", 250).await;
        let status = client.expect("STAT", 211).await;
        assert!(status.text().contains("Logged in as alice"), "{status:?}");
        assert!(status.text().contains("TYPE: BINARY"), "{status:?}");
        client.expect("OPTS UTF8 ON", 200).await;
        client.expect("OPTS UTF8 OFF", 504).await;
        client.expect("OPTS BOGUS", 501).await;
        let help = client.expect("HELP", 214).await;
        assert!(help.text().contains("RETR") && help.text().contains("MLSD"), "{help:?}");
        client.expect("HELP mlsd", 214).await;
        client.expect("HELP XYZZY", 502).await;
        client.expect("SITE HELP", 214).await;
        client.expect("SITE EXEC ls", 501).await;
        client.expect("XYZZY", 500).await;
        client.expect("ACCT x", 202).await;
        client.expect("ABOR", 226).await;
        client.expect("REIN", 220).await;
        client.expect("PWD", 530).await;
        client.login("reader").await;
        // USER while logged in changes user.
        client.expect("USER alice", 331).await;
        client.expect("PWD", 530).await;
        client.expect(&format!("PASS {TEST_PASSWORD}"), 230).await;
        client.expect("PWD", 257).await;
        let _ = bounded("quit", client.cmd("QUIT")).await;
        let _ = Duration::ZERO;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_on_both_families_and_a_bind_error_that_names_the_address() {
    common::within_test_limit(async {
        let share = wharf_testkit::TestShare::new(common::USERS);
        let mut listen = vec!["127.0.0.1:0".parse().expect("v4")];
        let has_ipv6 = wharf_testkit::require_ipv6_loopback();
        if has_ipv6 {
            listen.push("[::1]:0".parse().expect("v6"));
        }
        let config = FtpConfig { listen: listen.clone(), ..FtpConfig::default() };
        let server = wharf_ftp::FtpServer::bind(config, share.gateway.clone()).expect("bind");
        let addrs = server.local_addrs();
        assert_eq!(addrs.len(), listen.len());
        let task = tokio::spawn(server.run());
        for addr in &addrs {
            let mut client = common::RawClient::connect(*addr).await;
            client.login("alice").await;
            client.expect("QUIT", 221).await;
        }
        // Both families on one port: IPv6 listeners are IPv6-only, so `0.0.0.0:P` and
        // `[::]:P` do not collide. (Bound only, never served.)
        if has_ipv6 {
            let probe = std::net::TcpListener::bind("0.0.0.0:0").expect("probe");
            let port = probe.local_addr().expect("addr").port();
            drop(probe);
            let both = vec![
                format!("0.0.0.0:{port}").parse().expect("v4"),
                format!("[::]:{port}").parse().expect("v6"),
            ];
            let config = FtpConfig { listen: both, ..FtpConfig::default() };
            let server = wharf_ftp::FtpServer::bind(config, share.gateway.clone())
                .expect("IPv4 and IPv6 wildcards on one port");
            assert_eq!(server.local_addrs().len(), 2);
        }
        // An address in use: the error names it.
        let taken = addrs[0];
        let config = FtpConfig { listen: vec![taken], ..FtpConfig::default() };
        let err = wharf_ftp::FtpServer::bind(config, share.gateway.clone()).expect_err("in use");
        assert!(err.to_string().contains(&taken.to_string()), "{err}");
        task.abort();
    })
    .await
}
