//! Per-user quotas and bandwidth limits, through the session every protocol uses.

mod common;

use std::time::Instant;

use bytes::Bytes;
use common::{p, share};
use wharf_access::{ErrorKind, Protocol, WriteMode};

const USERS: &str = r#"
users:
  - name: small
    password: "$HASH"
    home: small
    mounts: { /shared: shared }
    quota: { bytes: 100KiB, files: 3 }
  - name: slow
    password: "$HASH"
    home: slow
    bandwidth: { download: 2MiB, upload: 2MiB }
  - name: fast
    password: "$HASH"
    home: slow
  - name: capped
    password: "$HASH"
    home: slow
    max_sessions: 2
"#;

fn names(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

async fn upload(s: &wharf_access::Session, path: &str, len: usize) -> Result<(), ErrorKind> {
    let mut up = s.open_write(&p(path), WriteMode::Replace).await.map_err(|e| e.kind())?;
    for chunk in vec![7u8; len].chunks(16 * 1024) {
        up.write(Bytes::copy_from_slice(chunk)).await.map_err(|e| e.kind())?;
    }
    up.commit().await.map(drop).map_err(|e| e.kind())
}

#[tokio::test]
async fn byte_quota_refuses_the_crossing_write_and_leaves_nothing() {
    let fx = share(USERS);
    std::fs::create_dir_all(fx.root.join("small")).expect("mkdir");
    std::fs::write(fx.root.join("small/existing.bin"), vec![0u8; 20 * 1024]).expect("write");
    let s = fx.login("small", Protocol::Sftp).await;
    assert_eq!(
        s.quota_used().await.expect("usage"),
        Some((20 * 1024, 1)),
        "usage measured at login"
    );

    upload(&s, "/a.bin", 60 * 1024).await.expect("fits");
    assert_eq!(upload(&s, "/b.bin", 60 * 1024).await, Err(ErrorKind::QuotaExceeded));
    assert_eq!(names(&fx.root.join("small")), vec!["a.bin", "existing.bin"], "no trace of b.bin");
    assert_eq!(s.quota_used().await.expect("usage"), Some((80 * 1024, 2)));

    // Shared folders are nobody's quota.
    upload(&s, "/shared/big.bin", 500 * 1024).await.expect("outside the home");

    // Deleting frees room; replacing counts only the difference.
    s.remove_file(&p("/existing.bin")).await.expect("delete");
    assert_eq!(s.quota_used().await.expect("usage"), Some((60 * 1024, 1)));
    upload(&s, "/a.bin", 90 * 1024).await.expect("replacing 60 KiB with 90 KiB fits in 100 KiB");
    assert_eq!(s.quota_used().await.expect("usage"), Some((90 * 1024, 1)));
}

#[tokio::test]
async fn file_count_quota_and_sessions_share_one_ledger() {
    let fx = share(USERS);
    let first = fx.login("small", Protocol::Ftp).await;
    let second = fx.login("small", Protocol::Sftp).await;
    upload(&first, "/1", 10).await.expect("1");
    upload(&second, "/2", 10).await.expect("2");
    upload(&first, "/3", 10).await.expect("3");
    assert_eq!(upload(&second, "/4", 10).await, Err(ErrorKind::QuotaExceeded), "4th file");
    upload(&second, "/3", 20).await.expect("overwriting adds no file");
    assert_eq!(first.quota_used().await.expect("usage"), Some((40, 3)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bandwidth_limit_slows_downloads_in_proportion() {
    let fx = share(USERS);
    std::fs::create_dir_all(fx.root.join("slow")).expect("mkdir");
    std::fs::write(fx.root.join("slow/movie.bin"), vec![1u8; 3 << 20]).expect("write");
    let read_all = |user: &'static str| {
        let fx = &fx;
        async move {
            let s = fx.login(user, Protocol::Sftp).await;
            let started = Instant::now();
            let mut stream = s.open_read(&p("/movie.bin")).await.expect("open").stream(0);
            let mut total = 0;
            while let Some(chunk) = stream.next_chunk().await.expect("chunk") {
                // As a front-end does before it sends a chunk.
                stream.pace(chunk.len() as u64).await;
                total += chunk.len();
            }
            assert_eq!(total, 3 << 20);
            started.elapsed().as_secs_f64()
        }
    };
    let limited = read_all("slow").await;
    let unlimited = read_all("fast").await;
    // 3 MiB at 2 MiB/s, less a burst of 0.5 MiB: at least 1.25 s.
    assert!(limited >= 1.2, "limited download took {limited:.2} s");
    assert!(limited > 4.0 * unlimited, "limited {limited:.2} s vs unlimited {unlimited:.2} s");
}

#[tokio::test]
async fn uploads_opened_together_cannot_add_more_files_than_the_quota() {
    let fx = share(USERS);
    let sessions = [
        fx.login("small", Protocol::Ftp).await,
        fx.login("small", Protocol::Sftp).await,
        fx.login("small", Protocol::Ftps).await,
        fx.login("small", Protocol::Sftp).await,
    ];
    // All open before any writes or publishes: the places are taken at the open.
    let mut opened = Vec::new();
    let mut refused = 0;
    for (i, s) in sessions.iter().enumerate() {
        match s.open_write(&p(&format!("/new-{i}")), WriteMode::Replace).await {
            Ok(up) => opened.push(up),
            Err(err) => {
                assert_eq!(err.kind(), ErrorKind::QuotaExceeded);
                refused += 1;
            }
        }
    }
    assert_eq!((opened.len(), refused), (3, 1));
    for mut up in opened {
        up.write(Bytes::from_static(b"0123456789")).await.expect("write");
        up.commit().await.expect("publish");
    }
    assert_eq!(names(&fx.root.join("small")), vec!["new-0", "new-1", "new-2"]);
    assert_eq!(sessions[0].quota_used().await.expect("usage"), Some((30, 3)));
}

#[tokio::test]
async fn two_uploads_to_one_new_name_count_one_file() {
    let fx = share(USERS);
    let (a, b) = (fx.login("small", Protocol::Ftp).await, fx.login("small", Protocol::Sftp).await);
    let mut first = a.open_write(&p("/same.txt"), WriteMode::Replace).await.expect("open");
    let mut second = b.open_write(&p("/same.txt"), WriteMode::Replace).await.expect("open");
    first.write(Bytes::from_static(b"first upload")).await.expect("write");
    second.write(Bytes::from_static(b"second")).await.expect("write");
    first.commit().await.expect("publish");
    second.commit().await.expect("replaces the first");
    assert_eq!(a.quota_used().await.expect("usage"), Some((6, 1)));
    // Two places were reserved; one file exists: two more new files fit.
    upload(&a, "/x", 1).await.expect("x");
    upload(&a, "/y", 1).await.expect("y");
    assert_eq!(upload(&a, "/z", 1).await, Err(ErrorKind::QuotaExceeded));
}

#[tokio::test]
async fn renames_over_a_file_free_it_and_renames_across_mounts_move_nothing() {
    let fx = share(USERS);
    let s = fx.login("small", Protocol::Sftp).await;
    upload(&s, "/a", 1000).await.expect("a");
    upload(&s, "/b", 300).await.expect("b");
    assert_eq!(s.quota_used().await.expect("usage"), Some((1300, 2)));
    s.rename(&p("/a"), &p("/b")).await.expect("rename over");
    assert_eq!(
        s.quota_used().await.expect("usage"),
        Some((1000, 1)),
        "the replaced 300-byte file is freed"
    );
    s.rename(&p("/b"), &p("/c")).await.expect("plain rename");
    assert_eq!(s.quota_used().await.expect("usage"), Some((1000, 1)));
    let err = s.rename(&p("/c"), &p("/shared/c")).await.expect_err("out of the home");
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert_eq!(s.quota_used().await.expect("usage"), Some((1000, 1)));
    upload(&s, "/shared/d", 10).await.expect("outside the home");
    let err = s.rename(&p("/shared/d"), &p("/d")).await.expect_err("into the home");
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert_eq!(s.quota_used().await.expect("usage"), Some((1000, 1)));
}

#[tokio::test]
async fn deleting_the_file_an_upload_replaces_cannot_smuggle_bytes_past_the_quota() {
    let fx = share(USERS);
    let (a, b) = (fx.login("small", Protocol::Ftp).await, fx.login("small", Protocol::Sftp).await);
    upload(&a, "/big", 90 * 1024).await.expect("90 KiB of 100");
    // An overwrite of the same size needs no room...
    let mut over = a.open_write(&p("/big"), WriteMode::Replace).await.expect("open");
    over.write(Bytes::from(vec![1u8; 90 * 1024])).await.expect("write");
    // ...until the file it replaces is deleted and its room taken by another upload.
    b.remove_file(&p("/big")).await.expect("delete");
    upload(&b, "/other", 90 * 1024).await.expect("takes the freed room");
    let err = over.commit().await.expect_err("publishing now would need 90 KiB more");
    assert_eq!(err.kind(), ErrorKind::QuotaExceeded);
    assert_eq!(names(&fx.root.join("small")), vec!["other"]);
    assert_eq!(a.quota_used().await.expect("usage"), Some((90 * 1024, 1)));
}

#[tokio::test]
async fn sessions_from_before_and_after_a_reload_share_one_ledger() {
    let fx = share(USERS);
    let before = fx.login("small", Protocol::Ftp).await;
    upload(&before, "/1", 10).await.expect("1");
    upload(&before, "/2", 10).await.expect("2");
    let held = before.open_write(&p("/3"), WriteMode::Replace).await.expect("the last place");
    fx.auth.replace_users(fx.auth.users().as_ref().clone());
    let after = fx.login("small", Protocol::Sftp).await;
    assert_eq!(after.quota_used().await.expect("usage"), Some((20, 2)), "measured again");
    let err = after.open_write(&p("/4"), WriteMode::Replace).await.err().expect("refused");
    assert_eq!(err.kind(), ErrorKind::QuotaExceeded, "the place held before the reload counts");
    held.commit().await.expect("publish");
    assert_eq!(after.quota_used().await.expect("usage"), Some((20, 3)));
}

#[tokio::test]
async fn a_user_holds_at_most_max_sessions_on_every_protocol_together() {
    use wharf_access::{Credential, LoginError, LoginRequest, Password};
    let fx = share(USERS);
    std::fs::create_dir_all(fx.root.join("slow")).expect("mkdir");
    let attempt = |protocol| {
        fx.auth.login(LoginRequest {
            protocol,
            peer: common::peer(),
            user: "capped".to_owned(),
            credential: Credential::Password(Password::new(common::PASSWORD)),
        })
    };
    let ftp = attempt(Protocol::Ftp).await.expect("first session");
    let sftp = attempt(Protocol::Sftp).await.expect("second session, another protocol");
    let refused = attempt(Protocol::Ftps).await.expect_err("a third is one too many");
    assert!(matches!(refused, LoginError::TooManySessions(2)), "{refused:?}");
    // Other users are not counted against it.
    fx.login("fast", Protocol::Ftp).await;
    let clone = sftp.clone();
    drop(sftp);
    assert!(
        matches!(attempt(Protocol::Ftp).await, Err(LoginError::TooManySessions(2))),
        "a clone of a session is the same session"
    );
    drop(clone);
    let _third = attempt(Protocol::Ftp).await.expect("the ended session's place came back");
    drop(ftp);
}
