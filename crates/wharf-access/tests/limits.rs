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
    assert_eq!(s.quota_used(), Some((20 * 1024, 1)), "usage measured at login");

    upload(&s, "/a.bin", 60 * 1024).await.expect("fits");
    assert_eq!(upload(&s, "/b.bin", 60 * 1024).await, Err(ErrorKind::QuotaExceeded));
    assert_eq!(names(&fx.root.join("small")), vec!["a.bin", "existing.bin"], "no trace of b.bin");
    assert_eq!(s.quota_used(), Some((80 * 1024, 2)));

    // Shared folders are nobody's quota.
    upload(&s, "/shared/big.bin", 500 * 1024).await.expect("outside the home");

    // Deleting frees room; replacing counts only the difference.
    s.remove_file(&p("/existing.bin")).await.expect("delete");
    assert_eq!(s.quota_used(), Some((60 * 1024, 1)));
    upload(&s, "/a.bin", 90 * 1024).await.expect("replacing 60 KiB with 90 KiB fits in 100 KiB");
    assert_eq!(s.quota_used(), Some((90 * 1024, 1)));
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
    assert_eq!(first.quota_used(), Some((40, 3)));
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
