//! OpenSSH's `sftp` client in batch mode, with key authentication.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Server, bounded};
use wharf_testkit::{pattern, require_tool, run_bounded};

const MIB: usize = 1024 * 1024;

/// A key made by `ssh-keygen`, as users make theirs.
fn keygen(dir: &Path) -> (PathBuf, String) {
    let key = dir.join("id_ed25519");
    let output = run_bounded(
        Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&key),
        Duration::from_secs(20),
    );
    assert!(output.status.success(), "ssh-keygen: {}", String::from_utf8_lossy(&output.stderr));
    let public = std::fs::read_to_string(key.with_extension("pub")).expect("public key");
    (key, public.trim().to_owned())
}

fn users(public_key: &str) -> String {
    format!(
        r#"
users:
  - name: alice
    authorized_keys: ["{public_key}"]
    home: alice
  - name: nochmod
    authorized_keys: ["{public_key}"]
    home: alice
    permissions:
      /: [list, download, upload, overwrite, append, delete, rename, mkdir, rmdir]
"#
    )
}

/// Runs `sftp -b` with `commands` as `user`; returns (success, stdout, stderr).
async fn sftp_batch(
    server: &Server,
    key: &Path,
    user: &str,
    commands: &str,
) -> (bool, String, String) {
    let dir = server.share.tmp.path();
    let batch = dir.join(format!("batch-{}", rand_suffix()));
    std::fs::write(&batch, commands).expect("batch file");
    let mut command = Command::new("sftp");
    command
        .arg("-b")
        .arg(&batch)
        .arg("-i")
        .arg(key)
        .args(["-F", "/dev/null", "-P", &server.addr.port().to_string()])
        .args(["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"])
        .args(["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes"])
        .arg(format!("{user}@127.0.0.1"))
        .current_dir(dir);
    let output =
        tokio::task::spawn_blocking(move || run_bounded(&mut command, Duration::from_secs(90)))
            .await
            .expect("sftp task");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssh_batch_session() {
    if require_tool("sftp").is_none() || require_tool("ssh-keygen").is_none() {
        return;
    }
    bounded(async {
        let keys = tempfile::tempdir().expect("tempdir");
        let (key, public) = keygen(keys.path());
        let server = Server::start(&users(&public)).await;
        let local = server.share.tmp.path().join("local");
        std::fs::create_dir_all(&local).expect("local dir");
        let home = server.share.root.join("alice");
        let sizes = [0, 1, MIB, 100 * MIB];
        let mut commands = String::new();
        for size in sizes {
            std::fs::write(local.join(format!("up-{size}")), pattern(size)).expect("local");
            server.share.put(&format!("alice/down-{size}"), &pattern(size + 1));
            commands.push_str(&format!("put local/up-{size} up-{size}\n"));
            commands.push_str(&format!("get down-{size} local/down-{size}\n"));
        }
        // Resumes: a local half file completed by reget, a remote half file by reput.
        let data = pattern(3 * MIB + 17);
        server.share.put("alice/resume-down", &data);
        std::fs::write(local.join("resume-down"), &data[..MIB + 5]).expect("partial local");
        std::fs::write(local.join("resume-up"), &data).expect("local");
        server.share.put("alice/resume-up", &data[..2 * MIB - 3]);
        commands.push_str("reget resume-down local/resume-down\n");
        commands.push_str("reput local/resume-up resume-up\n");
        commands.push_str(
            "mkdir newdir\nput local/up-1 newdir/one\nrename newdir/one newdir/two\nls -l newdir\n\
             rm newdir/two\nrmdir newdir\nls -l\n",
        );
        let (ok, stdout, stderr) = sftp_batch(&server, &key, "alice", &commands).await;
        assert!(ok, "sftp batch failed\nstdout: {stdout}\nstderr: {stderr}");

        for size in sizes {
            let up = std::fs::read(home.join(format!("up-{size}"))).expect("uploaded");
            assert!(up == pattern(size), "put of {size} bytes differs");
            let down = std::fs::read(local.join(format!("down-{size}"))).expect("downloaded");
            assert!(down == pattern(size + 1), "get of {} bytes differs", size + 1);
        }
        assert!(std::fs::read(local.join("resume-down")).expect("reget") == data, "reget");
        assert!(std::fs::read(home.join("resume-up")).expect("reput") == data, "reput");
        assert!(!home.join("newdir").exists(), "rmdir");
        // `ls -l` shows long names: mode, links, owner, group, size, date, name.
        let listed = stdout
            .lines()
            .find(|line| line.starts_with('-') && line.ends_with(" two"))
            .unwrap_or_else(|| panic!("renamed file not listed:\n{stdout}"));
        assert!(listed.starts_with("-rw-r--r--"), "{listed}");
        assert_eq!(listed.split_whitespace().nth(4), Some("1"), "size in {listed}");
        let big = format!("up-{}", 100 * MIB);
        let big_line = stdout
            .lines()
            .find(|line| line.starts_with('-') && line.ends_with(&big))
            .expect("big file listed");
        assert_eq!(big_line.split_whitespace().nth(4), Some(&big[3..]), "{big_line}");

        // chmod is refused for a user without `setattr`, and changes nothing.
        let (ok, _, stderr) = sftp_batch(&server, &key, "nochmod", "chmod 600 up-1\n").await;
        assert!(!ok, "chmod succeeded without setattr");
        assert!(stderr.contains("Permission denied"), "{stderr}");
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(home.join("up-1")).expect("file").permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        // ... and allowed with it.
        let (ok, _, stderr) = sftp_batch(&server, &key, "alice", "chmod 600 up-1\n").await;
        assert!(ok, "{stderr}");
        let mode = std::fs::metadata(home.join("up-1")).expect("file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        server.share.assert_outside_untouched();
        server.stop().await;
    })
    .await;
}
