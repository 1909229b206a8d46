//! The real clients, as command lines, and how each reports the time its transfer took.
//!
//! Figures measure the transfer, not the session set-up: curl reports when the transfer
//! started (`time_pretransfer`: after connect, TLS and login); lftp and sftp run `date` right
//! before and after the transfer command in their scripts. TFTP has no session: its time is
//! the client's wall time.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::credentials::SSH_HOST_KEY_TYPE;
use crate::endpoint::Endpoint;

/// One transfer of one file.
#[derive(Debug, Clone)]
pub enum Transfer {
    /// Download `remote` to `local`.
    Get {
        /// Path on the server (relative to the session's start directory).
        remote: String,
        /// Where it lands.
        local: PathBuf,
    },
    /// Upload `local` to `remote`.
    Put {
        /// The file sent.
        local: PathBuf,
        /// Path on the server.
        remote: String,
    },
}

/// A time limit for moving `bytes`: generous (5 MB/s plus a minute), only there so a hung
/// transfer cannot hang the bench.
pub fn limit_for(bytes: u64) -> Duration {
    Duration::from_secs(60 + bytes / 5_000_000)
}

/// curl for FTP, or FTPS with explicit TLS required on control and data (`--ssl-reqd` makes
/// curl send `AUTH TLS`, `PBSZ 0`, `PROT P`; it resumes the TLS session on data connections).
/// Its timing line goes to stderr, so stdout can carry a download.
fn curl_base(endpoint: &Endpoint, tls: bool) -> Command {
    let mut command = Command::new("curl");
    command
        .args(["--silent", "--show-error", "--fail", "--user"])
        .arg(format!("{}:{}", endpoint.user, endpoint.password))
        .args(["--write-out", "%{stderr}%{time_pretransfer} %{time_total}\\n"]);
    if tls {
        command.args(["--ssl-reqd", "--insecure"]);
    }
    command
}

fn ftp_url(endpoint: &Endpoint, remote: &str) -> String {
    format!("ftp://{}/{}", endpoint.addr, remote.trim_start_matches('/'))
}

/// curl moving one file to or from a local file (see [`curl_base`]).
pub fn curl_ftp(endpoint: &Endpoint, tls: bool, transfer: &Transfer) -> Command {
    let mut command = curl_base(endpoint, tls);
    match transfer {
        Transfer::Get { remote, local } => {
            command.arg("--output").arg(local).arg(ftp_url(endpoint, remote))
        }
        Transfer::Put { local, remote } => {
            command.arg("--upload-file").arg(local).arg(ftp_url(endpoint, remote))
        }
    };
    command
}

/// curl downloading `remote` to its stdout. Large downloads are checked as they stream
/// instead of being written to a file: writing 1 GiB into the page cache costs the client
/// about as much as receiving it, and would cap both servers at the client's speed.
pub fn curl_ftp_to_stdout(endpoint: &Endpoint, tls: bool, remote: &str) -> Command {
    let mut command = curl_base(endpoint, tls);
    command.args(["--output", "-"]).arg(ftp_url(endpoint, remote));
    command
}

/// Seconds curl spent transferring (from its stderr): total minus the time until the
/// transfer began.
pub fn curl_transfer_seconds(stderr: &str) -> anyhow::Result<f64> {
    let line = stderr.lines().last().context("curl printed no timing")?;
    let mut numbers = line.split_whitespace().map(str::parse::<f64>);
    match (numbers.next(), numbers.next()) {
        (Some(Ok(pretransfer)), Some(Ok(total))) if total >= pretransfer => {
            Ok((total - pretransfer).max(1e-6))
        }
        _ => bail!("unexpected curl timing line {line:?}"),
    }
}

/// The shell command that marks an instant in a client script's output.
const MARK: &str = "date +%s%N";

/// Seconds between the first and last `date +%s%N` lines of a script's output.
pub fn marked_seconds(stdout: &str) -> anyhow::Result<f64> {
    let marks: Vec<u128> = stdout
        .lines()
        .map(str::trim)
        .filter(|l| l.len() >= 18 && l.bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|l| l.parse().ok())
        .collect();
    match (marks.first(), marks.last()) {
        (Some(start), Some(end)) if marks.len() >= 2 && end >= start => {
            Ok(((end - start) as f64 / 1e9).max(1e-6))
        }
        _ => bail!("the client's script printed no start and end marks"),
    }
}

/// OpenSSH's sftp running `commands` (between time marks) from a batch file.
pub fn sftp(
    endpoint: &Endpoint,
    cipher: &str,
    batch_file: &Path,
    commands: &[String],
) -> anyhow::Result<Command> {
    let mut script = format!("!{MARK}\n");
    for line in commands {
        script.push_str(line);
        script.push('\n');
    }
    script.push_str(&format!("!{MARK}\n"));
    std::fs::write(batch_file, script)?;
    let mut command = ssh_client("sftp", endpoint, cipher)?;
    command.arg("-b").arg(batch_file).arg(format!("{}@{}", endpoint.user, endpoint.addr.ip()));
    Ok(command)
}

/// The key exchange every SSH client uses. OpenSSH 9.2 prefers the post-quantum
/// sntrup761x25519-sha512, which costs both ends about a quarter of a second of CPU per
/// connection on a small machine and which russh does not offer; pinning one exchange both
/// servers implement keeps handshakes equal, so set-up cost does not decide the parallel
/// and idle-session figures.
pub const KEY_EXCHANGE: &str = "curve25519-sha256";

/// `sftp` (or another OpenSSH client) with no user configuration, host keys not checked
/// (both servers' keys are new every run), only the bench key, the given cipher,
/// [`KEY_EXCHANGE`], and only [`SSH_HOST_KEY_TYPE`] host keys, so both servers sign the key
/// exchange with the same kind of key.
pub fn ssh_client(program: &str, endpoint: &Endpoint, cipher: &str) -> anyhow::Result<Command> {
    let key = endpoint.key.as_ref().context("no SSH key for this endpoint")?;
    let mut command = Command::new(program);
    command
        .args(["-F", "/dev/null", "-P"])
        .arg(endpoint.addr.port().to_string())
        .args(["-c", cipher])
        .arg("-i")
        .arg(key)
        .args([
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
        ])
        .arg(format!("KexAlgorithms={KEY_EXCHANGE}"))
        .arg("-o")
        .arg(format!("HostKeyAlgorithms={SSH_HOST_KEY_TYPE}"));
    Ok(command)
}

/// Quotes a path for an sftp batch line.
pub fn sftp_quote(path: &Path) -> String {
    format!("\"{}\"", path.display())
}

/// lftp running `commands` (between time marks) from a script file after logging in. Its
/// own TLS upgrade is off (`ftp:ssl-allow no`): the FTP rows are plain FTP on both servers.
pub fn lftp(
    endpoint: &Endpoint,
    login_check_dir: &str,
    script_file: &Path,
    commands: &[String],
) -> anyhow::Result<Command> {
    let mut script = String::from(
        "set cmd:fail-exit yes\nset net:max-retries 1\nset net:timeout 60\n\
         set ftp:ssl-allow no\nset ftp:passive-mode on\n",
    );
    script.push_str(&format!(
        "open -u {},{} -p {} {}\n",
        endpoint.user,
        endpoint.password,
        endpoint.addr.port(),
        endpoint.addr.ip()
    ));
    // `cd` checks the directory, so the login happens before the first mark. A `!` shell
    // command takes the rest of its line, so every command has a line of its own.
    script.push_str(&format!("cd {login_check_dir}\n!{MARK}\n"));
    for line in commands {
        script.push_str(line);
        script.push('\n');
    }
    script.push_str(&format!("!{MARK}\n"));
    std::fs::write(script_file, script)?;
    let mut command = Command::new("lftp");
    command.arg("-f").arg(script_file);
    Ok(command)
}

/// tftp-hpa's client in octet mode with no options (512-byte blocks, lock-step).
pub fn tftp_hpa(endpoint: &Endpoint, transfer: &Transfer) -> Command {
    let mut command = Command::new("tftp");
    command
        .args(["-m", "octet"])
        .arg(endpoint.addr.ip().to_string())
        .arg(endpoint.addr.port().to_string())
        .arg("-c");
    match transfer {
        Transfer::Get { remote, local } => command.arg("get").arg(remote).arg(local),
        Transfer::Put { local, remote } => command.arg("put").arg(local).arg(remote),
    };
    command
}

/// atftp with TFTP options such as `blksize 1468` or `windowsize 16`.
pub fn atftp(endpoint: &Endpoint, options: &[&str], transfer: &Transfer) -> Command {
    let mut command = Command::new("atftp");
    for option in options {
        command.arg("--option").arg(option);
    }
    match transfer {
        Transfer::Get { remote, local } => {
            command.args(["--get", "--remote-file", remote]).arg("--local-file").arg(local)
        }
        Transfer::Put { local, remote } => {
            command.arg("--put").arg("--local-file").arg(local).args(["--remote-file", remote])
        }
    };
    command.arg(endpoint.addr.ip().to_string()).arg(endpoint.addr.port().to_string());
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curl_timing_excludes_the_session_set_up() {
        let seconds = curl_transfer_seconds("0.250000 1.250000\n").expect("timing");
        assert!((seconds - 1.0).abs() < 1e-9);
        assert!(curl_transfer_seconds("").is_err());
        assert!(curl_transfer_seconds("garbage").is_err());
    }

    #[test]
    fn marks_are_read_among_echoed_commands() {
        let out = "sftp> !date +%s%N\n1700000000000000000\nsftp> get a b\nFetching a\n\
                   sftp> !date +%s%N\n1700000002500000000\n";
        let seconds = marked_seconds(out).expect("marks");
        assert!((seconds - 2.5).abs() < 1e-9);
        assert!(marked_seconds("sftp> get a b\n").is_err());
    }

    #[test]
    fn ssh_clients_accept_only_the_bench_host_key_type() {
        let endpoint = Endpoint {
            addr: "127.0.0.1:2222".parse().expect("addr"),
            user: "bench".into(),
            password: String::new(),
            key: Some("/s/client_ed25519".into()),
            server_pid: 1,
        };
        let command = ssh_client("sftp", &endpoint, "aes128-gcm@openssh.com").expect("command");
        let args: Vec<String> =
            command.get_args().map(|arg| arg.to_string_lossy().into_owned()).collect();
        assert!(args.contains(&format!("HostKeyAlgorithms={SSH_HOST_KEY_TYPE}")), "{args:?}");
        assert!(args.contains(&format!("KexAlgorithms={KEY_EXCHANGE}")), "{args:?}");
    }
}
