//! The real command-line clients: curl (FTP and SFTP), lftp, OpenSSH's `sftp` and tftp-hpa's
//! `tftp`. Each is found with `require_tool` (a missing one skips the test, or fails it under
//! `CI=true`) and run with a time limit.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use wharf_testkit::{TEST_PASSWORD, require_tool, run_bounded};

use crate::server::Wharf;

/// The longest one client run may take.
pub const CLIENT_LIMIT: Duration = Duration::from_secs(120);

/// The real clients, found on `PATH`.
pub struct RealClients {
    /// curl.
    pub curl: PathBuf,
    /// lftp.
    pub lftp: PathBuf,
    /// OpenSSH's sftp.
    pub sftp: PathBuf,
    /// tftp-hpa's tftp.
    pub tftp: PathBuf,
}

impl RealClients {
    /// Every client, or `None` (after saying which is missing) outside CI.
    pub fn find() -> Option<RealClients> {
        let curl = require_tool("curl");
        let lftp = require_tool("lftp");
        let sftp = require_tool("sftp");
        let tftp = require_tool("tftp");
        Some(RealClients { curl: curl?, lftp: lftp?, sftp: sftp?, tftp: tftp? })
    }

    /// `curl` for `url` with the options every run needs (quiet, errors shown, bounded).
    pub fn curl(&self, url: &str) -> Command {
        let mut command = Command::new(&self.curl);
        command.args(["--silent", "--show-error", "--max-time", "100", "--connect-timeout", "20"]);
        command.arg(url);
        command
    }

    /// An `ftp://` URL of `path` (relative to the user's root) with the user's credentials.
    pub fn ftp_url(wharf: &Wharf, user: &str, path: &str) -> String {
        format!("ftp://{user}:{TEST_PASSWORD}@{}/{}", wharf.ftp, path.trim_start_matches('/'))
    }

    /// An `sftp://` URL of the absolute `path` with the user's credentials (curl, libssh2).
    pub fn sftp_url(wharf: &Wharf, user: &str, path: &str) -> String {
        format!("sftp://{user}:{TEST_PASSWORD}@{}/{}", wharf.sftp, path.trim_start_matches('/'))
    }

    /// lftp running `script` (commands separated by `;` or newlines) logged in as `user`;
    /// it stops at the first failing command.
    pub fn lftp(&self, wharf: &Wharf, user: &str, script: &str) -> Command {
        let mut command = Command::new(&self.lftp);
        let setup = format!(
            "set cmd:fail-exit yes; set net:max-retries 1; set net:timeout 20; \
             set ftp:ssl-allow no; set xfer:clobber on; \
             open -u {user},{TEST_PASSWORD} -p {} {}",
            wharf.ftp.port(),
            wharf.ftp.ip()
        );
        command.args(["-c", &format!("{setup}; {script}")]);
        command
    }

    /// OpenSSH's `sftp` in batch mode (`-b`, stops at the first failing command) logged in as
    /// `user` with the suite's key; `batch` is the batch file, `options` more options (such
    /// as `-l` to limit its rate).
    pub fn openssh_sftp(
        &self,
        wharf: &Wharf,
        user: &str,
        batch: &Path,
        options: &[&str],
    ) -> Command {
        let mut command = Command::new(&self.sftp);
        command
            .args(options)
            .arg("-b")
            .arg(batch)
            .arg("-i")
            .arg(&wharf.key_file)
            .args(["-P", &wharf.sftp.port().to_string()])
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=20",
                "-o",
                "LogLevel=ERROR",
            ])
            .arg(format!("{user}@{}", wharf.sftp.ip()));
        command
    }

    /// tftp-hpa's client in octet mode running one command (`get remote local`, `put local
    /// remote`). It exits 0 even when the server refuses: look at its output.
    pub fn tftp(&self, wharf: &Wharf, command: &[&str]) -> Command {
        let mut tftp = Command::new(&self.tftp);
        tftp.args(["-m", "binary", &wharf.tftp.ip().to_string(), &wharf.tftp.port().to_string()])
            .arg("-c")
            .args(command);
        tftp
    }
}

/// Runs `command` to completion within [`CLIENT_LIMIT`] without blocking the runtime.
pub async fn run(command: Command) -> Output {
    let mut command = command;
    tokio::task::spawn_blocking(move || run_bounded(&mut command, CLIENT_LIMIT))
        .await
        .expect("client thread")
}

/// Everything a client printed.
pub fn output_text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Panics with the client's output unless it exited 0.
pub fn assert_success(what: &str, output: &Output) {
    assert!(output.status.success(), "{what} failed ({}): {}", output.status, output_text(output));
}
