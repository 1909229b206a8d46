//! The real clients, as command lines, and how each reports the time its transfer took.
//!
//! Figures measure the transfer, not the session set-up: curl reports when the transfer
//! started (`time_pretransfer`: after connect, TLS and login); lftp and sftp run `date` right
//! before and after the transfer command in their scripts. TFTP has no session: its time is
//! the client's wall time (curl's total time for curl). A curl list of many files over one
//! connection leaves out only the first transfer's set-up.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::cli::Protocol;
use crate::credentials::SSH_HOST_KEY_TYPE;
use crate::endpoint::Endpoint;
use crate::process::{Finished, run};

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

/// curl with the login `protocol` needs and one timing line per transfer on stderr (so
/// stdout can carry a download): user and password for FTP; for FTPS explicit TLS required on
/// control and data as well (`--ssl-reqd` makes curl send `AUTH TLS`, `PBSZ 0`, `PROT P`; it
/// resumes the TLS session on data connections); for SFTP (libssh2) the bench key, and the
/// server's Ed25519 host key from the endpoint's curl home (see [`write_curl_home`]);
/// nothing for TFTP. `-q` first: no `.curlrc` is read.
pub fn curl(protocol: Protocol, endpoint: &Endpoint) -> anyhow::Result<Command> {
    let mut command = Command::new("curl");
    command
        .args(["-q", "--silent", "--show-error", "--fail"])
        .args(["--write-out", "%{stderr}%{time_pretransfer} %{time_total}\\n"]);
    match protocol {
        Protocol::Ftp | Protocol::Ftps => {
            command.arg("--user").arg(format!("{}:{}", endpoint.user, endpoint.password));
            if protocol == Protocol::Ftps {
                command.args(["--ssl-reqd", "--insecure"]);
            }
        }
        Protocol::Sftp => {
            let key = endpoint.key.as_ref().context("no SSH key for this endpoint")?;
            let home = endpoint.curl_home.as_ref().with_context(|| {
                format!("no Ed25519 host key of the server at {} for curl to check", endpoint.addr)
            })?;
            command
                .env("CURL_HOME", home)
                .arg("--user")
                .arg(format!("{}:", endpoint.user))
                .arg("--key")
                .arg(key)
                .arg("--pubkey")
                .arg(key.with_extension("pub"));
        }
        Protocol::Tftp => {}
    }
    Ok(command)
}

/// curl's URL of `remote`, a path relative to where a session starts (for SFTP, `/~/` is
/// the directory the server starts the session in).
pub fn curl_url(protocol: Protocol, endpoint: &Endpoint, remote: &str) -> String {
    let path = remote.trim_start_matches('/');
    let addr = endpoint.addr;
    match protocol {
        Protocol::Ftp | Protocol::Ftps => format!("ftp://{addr}/{path}"),
        Protocol::Sftp => format!("sftp://{addr}/~/{path}"),
        Protocol::Tftp => format!("tftp://{addr}/{path}"),
    }
}

/// Writes `dir/.ssh/known_hosts` naming `host_public_key` (an OpenSSH `.pub` file) for
/// `addr`, for curl to find through `CURL_HOME`. libcurl checks the server's key against it
/// and, finding an `ssh-ed25519` entry for the address, asks libssh2 for that host key type
/// only, so the server signs with the same kind of key as for OpenSSH's clients (see
/// [`SSH_HOST_KEY_TYPE`]). Returns `dir`.
pub fn write_curl_home(
    dir: &Path,
    addr: std::net::SocketAddr,
    host_public_key: &Path,
) -> anyhow::Result<PathBuf> {
    let text = std::fs::read_to_string(host_public_key)
        .with_context(|| format!("reading {}", host_public_key.display()))?;
    let line = known_hosts_line(addr, &text)?;
    let ssh = dir.join(".ssh");
    std::fs::create_dir_all(&ssh).with_context(|| format!("creating {}", ssh.display()))?;
    std::fs::write(ssh.join("known_hosts"), line)
        .with_context(|| format!("writing {}/known_hosts", ssh.display()))?;
    Ok(dir.to_owned())
}

/// The `known_hosts` line for a server at `addr` whose public key file reads `public_key`.
fn known_hosts_line(addr: std::net::SocketAddr, public_key: &str) -> anyhow::Result<String> {
    let mut fields = public_key.split_whitespace();
    match (fields.next(), fields.next()) {
        (Some(kind), Some(key)) if kind == SSH_HOST_KEY_TYPE => {
            Ok(format!("[{}]:{} {kind} {key}\n", addr.ip(), addr.port()))
        }
        (Some(kind), Some(_)) => bail!("the host key is {kind}, not {SSH_HOST_KEY_TYPE}"),
        _ => bail!("not an OpenSSH public key: {:?}", public_key.trim()),
    }
}

/// curl moving one file to or from a local file (see [`curl`]).
pub fn curl_transfer(
    protocol: Protocol,
    endpoint: &Endpoint,
    transfer: &Transfer,
) -> anyhow::Result<Command> {
    let mut command = curl(protocol, endpoint)?;
    match transfer {
        Transfer::Get { remote, local } => {
            command.arg("--output").arg(local).arg(curl_url(protocol, endpoint, remote))
        }
        Transfer::Put { local, remote } => {
            command.arg("--upload-file").arg(local).arg(curl_url(protocol, endpoint, remote))
        }
    };
    Ok(command)
}

/// curl downloading `remote` to its stdout, with `options` (such as `--tftp-blksize`).
/// Large downloads are checked as they stream instead of being written to a file: writing
/// 1 GiB into the page cache costs the client about as much as receiving it, and would cap
/// both servers at the client's speed.
pub fn curl_to_stdout(
    protocol: Protocol,
    endpoint: &Endpoint,
    remote: &str,
    options: &[&str],
) -> anyhow::Result<Command> {
    let mut command = curl(protocol, endpoint)?;
    command.args(options).args(["--output", "-"]).arg(curl_url(protocol, endpoint, remote));
    Ok(command)
}

/// A curl config file (for `-K`) downloading each `(url, output)`, in order. curl runs
/// them one after the other in one process, reusing one connection per server where the
/// protocol has one.
pub fn curl_download_list<'a>(items: impl IntoIterator<Item = (&'a str, &'a Path)>) -> String {
    let mut text = String::new();
    for (url, output) in items {
        text.push_str(&format!(
            "url = {}\noutput = {}\n",
            curl_config_quote(url),
            curl_config_quote(&output.display().to_string())
        ));
    }
    text
}

/// A string in double quotes as curl's config file reads it: backslash escapes the
/// quote, itself and the control characters it knows.
fn curl_config_quote(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            '\t' => quoted.push_str("\\t"),
            _ => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// The `-T` argument that uploads `names` from `dir` in one curl run (`dir/{a,b,c}`).
/// curl's globbing gives `{}[],` and backslash meanings, so a path holding one is refused
/// rather than uploaded under another name.
pub fn curl_upload_glob(dir: &Path, names: &[&str]) -> anyhow::Result<String> {
    const GLOB: &[char] = &['{', '}', '[', ']', ',', '\\'];
    let dir = dir.display().to_string();
    if let Some(bad) =
        std::iter::once(dir.as_str()).chain(names.iter().copied()).find(|p| p.contains(GLOB))
    {
        bail!("{bad:?} holds a character curl's -T globbing would interpret ({GLOB:?})");
    }
    anyhow::ensure!(!names.is_empty(), "nothing to upload");
    Ok(format!("{dir}/{{{}}}", names.join(",")))
}

/// curl's timing lines in `stderr` (`time_pretransfer time_total`, one per transfer, in
/// order); other lines, such as curl's error messages, are skipped.
fn curl_timings(stderr: &str) -> Vec<(f64, f64)> {
    stderr
        .lines()
        .filter_map(|line| {
            let mut numbers = line.split_whitespace().map(str::parse::<f64>);
            match (numbers.next(), numbers.next(), numbers.next()) {
                (Some(Ok(pretransfer)), Some(Ok(total)), None) => Some((pretransfer, total)),
                _ => None,
            }
        })
        .collect()
}

/// The seconds of curl's transfers from their timing lines: every transfer's total time
/// added up, less the first one's time before it began transferring (connect, TLS or SSH,
/// login), which later transfers over the same connection do not pay again. TFTP has no
/// session to set up (curl even reports its "pre-transfer" time after its total), so its
/// figure is the total time.
fn transfer_seconds(protocol: Protocol, timings: &[(f64, f64)]) -> anyhow::Result<f64> {
    let total: f64 = timings.iter().map(|(_, total)| total).sum();
    let set_up = match (protocol, timings.first()) {
        (Protocol::Tftp, _) | (_, None) => 0.0,
        (_, Some((pretransfer, _))) => *pretransfer,
    };
    anyhow::ensure!(total >= set_up, "curl's timing lines do not add up: {timings:?}");
    Ok((total - set_up).max(1e-6))
}

/// Runs curl within `limit` and fails unless it exits successfully, quoting its messages
/// without its timing lines.
pub fn run_curl(command: &mut Command, label: &str, limit: Duration) -> anyhow::Result<Finished> {
    let done = run(command, label, limit)?;
    if done.status.success() {
        return Ok(done);
    }
    let messages: Vec<&str> = done
        .stderr
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && curl_timings(line).is_empty())
        .collect();
    bail!("{label} failed ({}): {}", done.status, messages.join(" | "))
}

/// Seconds curl spent transferring one file (from its stderr; see [`transfer_seconds`]).
pub fn curl_transfer_seconds(stderr: &str, protocol: Protocol) -> anyhow::Result<f64> {
    let timings = curl_timings(stderr);
    let last = timings.last().with_context(|| format!("curl printed no timing: {stderr:?}"))?;
    transfer_seconds(protocol, std::slice::from_ref(last))
}

/// Seconds curl spent on a list of `count` transfers run one after the other (from its
/// stderr): from the start of the first transfer (after its set-up) to the end of the last
/// (see [`transfer_seconds`]). Later transfers reuse the session, so their own set-up (FTP
/// `EPSV`, `RETR`...) is in the figure.
pub fn curl_list_seconds(stderr: &str, count: usize, protocol: Protocol) -> anyhow::Result<f64> {
    let timings = curl_timings(stderr);
    anyhow::ensure!(
        timings.len() == count,
        "curl reported {} transfers, expected {count}",
        timings.len()
    );
    transfer_seconds(protocol, &timings)
}

/// The shell command that marks an instant in a client script's output.
const MARK: &str = "date +%s%N";

/// Seconds between the first and last `date +%s%N` lines of a script's output.
pub fn marked_seconds(stdout: &str) -> anyhow::Result<f64> {
    let (start, end) = marked_span(stdout)?;
    Ok(((end - start) as f64 / 1e9).max(1e-6))
}

/// The first and last `date +%s%N` lines of a script's output: nanoseconds since the epoch,
/// so the marks of several clients compare.
pub fn marked_span(stdout: &str) -> anyhow::Result<(u128, u128)> {
    let marks: Vec<u128> = stdout
        .lines()
        .map(str::trim)
        .filter(|l| l.len() >= 18 && l.bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|l| l.parse().ok())
        .collect();
    match (marks.first(), marks.last()) {
        (Some(&start), Some(&end)) if marks.len() >= 2 && end >= start => Ok((start, end)),
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
    sftp_after(endpoint, cipher, batch_file, &[], commands)
}

/// Like [`sftp`], with `first` run after the login and before the first time mark (e.g. to
/// wait at a [`crate::gate::Gate`]).
pub fn sftp_after(
    endpoint: &Endpoint,
    cipher: &str,
    batch_file: &Path,
    first: &[String],
    commands: &[String],
) -> anyhow::Result<Command> {
    let mut script = String::new();
    for line in first {
        script.push_str(line);
        script.push('\n');
    }
    script.push_str(&format!("!{MARK}\n"));
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

/// lftp running `commands` (between time marks) from a script file after logging in. For
/// FTP its own TLS upgrade is off (`ftp:ssl-allow no`): the FTP rows are plain FTP on every
/// server. For FTPS TLS is required on control and data (`AUTH TLS`, `PROT P`), with the
/// bench's self-signed certificate accepted; lftp resumes the control connection's TLS
/// session on each data connection.
pub fn lftp(
    protocol: Protocol,
    endpoint: &Endpoint,
    login_check_dir: &str,
    script_file: &Path,
    commands: &[String],
) -> anyhow::Result<Command> {
    lftp_after(protocol, endpoint, login_check_dir, script_file, &[], commands)
}

/// Like [`lftp`], with `first` run after the login and before the first time mark (e.g. to
/// wait at a [`crate::gate::Gate`]).
pub fn lftp_after(
    protocol: Protocol,
    endpoint: &Endpoint,
    login_check_dir: &str,
    script_file: &Path,
    first: &[String],
    commands: &[String],
) -> anyhow::Result<Command> {
    let tls = match protocol {
        Protocol::Ftp => "set ftp:ssl-allow no\n",
        Protocol::Ftps => {
            "set ftp:ssl-allow yes\nset ftp:ssl-force yes\nset ftp:ssl-protect-data yes\n\
             set ftp:ssl-protect-list yes\nset ssl:verify-certificate no\n"
        }
        Protocol::Sftp | Protocol::Tftp => bail!("lftp is the FTP and FTPS client here"),
    };
    let mut script = String::from(
        "set cmd:fail-exit yes\nset net:max-retries 1\nset net:timeout 60\n\
         set ftp:passive-mode on\n",
    );
    script.push_str(tls);
    script.push_str(&format!(
        "open -u {},{} -p {} {}\n",
        endpoint.user,
        endpoint.password,
        endpoint.addr.port(),
        endpoint.addr.ip()
    ));
    // `cd` checks the directory, so the login happens before the first mark. A `!` shell
    // command takes the rest of its line, so every command has a line of its own.
    script.push_str(&format!("cd {login_check_dir}\n"));
    for line in first {
        script.push_str(line);
        script.push('\n');
    }
    script.push_str(&format!("!{MARK}\n"));
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

/// tftp-hpa fetching every file of `remotes` in one run (`get f1 f2 ...`), each into the
/// command's working directory under its last path component. Each request goes out from
/// the same client port. With two names `get` would mean "remote local", so it takes three
/// or more.
pub fn tftp_hpa_get_many(endpoint: &Endpoint, remotes: &[String]) -> anyhow::Result<Command> {
    anyhow::ensure!(remotes.len() >= 3, "tftp-hpa's get of a list takes three files or more");
    let mut command = Command::new("tftp");
    command
        .args(["-m", "octet"])
        .arg(endpoint.addr.ip().to_string())
        .arg(endpoint.addr.port().to_string())
        .args(["-c", "get"])
        .args(remotes);
    Ok(command)
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
        let seconds = curl_transfer_seconds("0.250000 1.250000\n", Protocol::Ftp).expect("timing");
        assert!((seconds - 1.0).abs() < 1e-9);
        assert!(curl_transfer_seconds("", Protocol::Ftp).is_err());
        assert!(curl_transfer_seconds("garbage", Protocol::Ftp).is_err());
        assert!(curl_transfer_seconds("1.0 0.5\n", Protocol::Ftp).is_err(), "total < set-up");
        // TFTP: curl reports its pre-transfer time after the total; the total is the time.
        let tftp = curl_transfer_seconds("0.007758 0.007646\n", Protocol::Tftp).expect("tftp");
        assert!((tftp - 0.007646).abs() < 1e-12);
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
            curl_home: None,
            server_pid: 1,
        };
        let command = ssh_client("sftp", &endpoint, "aes128-gcm@openssh.com").expect("command");
        let args: Vec<String> =
            command.get_args().map(|arg| arg.to_string_lossy().into_owned()).collect();
        assert!(args.contains(&format!("HostKeyAlgorithms={SSH_HOST_KEY_TYPE}")), "{args:?}");
        assert!(args.contains(&format!("KexAlgorithms={KEY_EXCHANGE}")), "{args:?}");
    }

    fn endpoint() -> Endpoint {
        Endpoint {
            addr: "127.0.0.1:2222".parse().expect("addr"),
            user: "bench".into(),
            password: "pw".into(),
            key: Some("/s/client_ed25519".into()),
            curl_home: Some("/s/curl-home".into()),
            server_pid: 1,
        }
    }

    fn arguments(command: &Command) -> Vec<String> {
        command.get_args().map(|arg| arg.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn a_curl_list_adds_up_its_transfers_from_the_end_of_the_first_set_up() {
        // Three transfers over one connection: the first pays for connect and login.
        let stderr = "0.300000 0.310000\n0.002000 0.012000\n0.001000 0.009000\n";
        let seconds = curl_list_seconds(stderr, 3, Protocol::Ftp).expect("timing");
        assert!((seconds - (0.31 + 0.012 + 0.009 - 0.3)).abs() < 1e-9, "{seconds}");
        let tftp = curl_list_seconds(stderr, 3, Protocol::Tftp).expect("tftp");
        assert!((tftp - (0.31 + 0.012 + 0.009)).abs() < 1e-9, "no session to leave out: {tftp}");
        // An error line is not a timing line, and a missing transfer is an error.
        let failed =
            "0.300000 0.310000\ncurl: (9) Server denied you to change to the given directory\n";
        assert!(curl_list_seconds(failed, 2, Protocol::Ftp).is_err());
        assert!(curl_list_seconds("", 1, Protocol::Ftp).is_err());
    }

    #[test]
    fn a_curl_download_list_quotes_urls_and_paths() {
        let list = curl_download_list([
            ("ftp://127.0.0.1:21/small/f00000.bin", Path::new("/c/f00000.bin")),
            ("ftp://127.0.0.1:21/a\"b", Path::new("/c/back\\slash")),
        ]);
        assert_eq!(
            list,
            "url = \"ftp://127.0.0.1:21/small/f00000.bin\"\noutput = \"/c/f00000.bin\"\n\
             url = \"ftp://127.0.0.1:21/a\\\"b\"\noutput = \"/c/back\\\\slash\"\n"
        );
    }

    #[test]
    fn an_upload_glob_lists_the_names_and_refuses_glob_characters() {
        let glob = curl_upload_glob(Path::new("/s/small"), &["f00000.bin", "f00001.bin"]);
        assert_eq!(glob.expect("glob"), "/s/small/{f00000.bin,f00001.bin}");
        assert!(curl_upload_glob(Path::new("/s/[x]"), &["a"]).is_err());
        assert!(curl_upload_glob(Path::new("/s"), &["a,b"]).is_err());
        assert!(curl_upload_glob(Path::new("/s"), &[]).is_err());
    }

    #[test]
    fn curl_logs_in_as_each_protocol_needs() {
        let ep = endpoint();
        let ftps = arguments(&curl(Protocol::Ftps, &ep).expect("ftps"));
        assert_eq!(ftps.first().map(String::as_str), Some("-q"), "no .curlrc: {ftps:?}");
        assert!(ftps.contains(&"bench:pw".to_owned()) && ftps.contains(&"--ssl-reqd".to_owned()));
        let ftp = arguments(&curl(Protocol::Ftp, &ep).expect("ftp"));
        assert!(!ftp.contains(&"--ssl-reqd".to_owned()), "{ftp:?}");

        let sftp = curl(Protocol::Sftp, &ep).expect("sftp");
        let home = sftp.get_envs().find(|(name, _)| *name == "CURL_HOME").and_then(|(_, v)| v);
        assert_eq!(home, Some(std::ffi::OsStr::new("/s/curl-home")));
        let args = arguments(&sftp);
        assert!(args.contains(&"bench:".to_owned()), "key, no password: {args:?}");
        assert!(args.contains(&"/s/client_ed25519.pub".to_owned()), "{args:?}");
        assert!(!args.contains(&"--insecure".to_owned()), "the host key is checked: {args:?}");
        let unknown = Endpoint { curl_home: None, ..endpoint() };
        assert!(curl(Protocol::Sftp, &unknown).is_err(), "no host key, no unchecked login");

        let tftp = arguments(&curl(Protocol::Tftp, &ep).expect("tftp"));
        assert!(!tftp.contains(&"--user".to_owned()), "{tftp:?}");
        assert_eq!(curl_url(Protocol::Sftp, &ep, "/small/a"), "sftp://127.0.0.1:2222/~/small/a");
        assert_eq!(curl_url(Protocol::Tftp, &ep, "up/t/"), "tftp://127.0.0.1:2222/up/t/");
    }

    #[test]
    fn known_hosts_name_the_port_and_only_an_ed25519_key() {
        let addr = "127.0.0.1:2222".parse().expect("addr");
        let line = known_hosts_line(addr, "ssh-ed25519 AAAAC3Nz bench-host\n").expect("line");
        assert_eq!(line, "[127.0.0.1]:2222 ssh-ed25519 AAAAC3Nz\n");
        assert!(known_hosts_line(addr, "ecdsa-sha2-nistp256 AAAAE2V host\n").is_err());
        assert!(known_hosts_line(addr, "").is_err());
    }

    #[test]
    fn a_tftp_hpa_list_takes_three_files_or_more() {
        let names: Vec<String> = ["s/a", "s/b", "s/c"].map(str::to_owned).to_vec();
        let args = arguments(&tftp_hpa_get_many(&endpoint(), &names).expect("three"));
        assert_eq!(args[args.len() - 5..], ["-c", "get", "s/a", "s/b", "s/c"]);
        assert!(tftp_hpa_get_many(&endpoint(), &names[..2]).is_err(), "two would be remote local");
    }

    #[test]
    fn lftp_requires_tls_for_ftps_and_keeps_it_off_for_ftp() {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = dir.path().join("script");
        let ep = endpoint();
        lftp(Protocol::Ftps, &ep, "small", &script, &["mirror . x".to_owned()]).expect("ftps");
        let text = std::fs::read_to_string(&script).expect("script");
        for wanted in ["ftp:ssl-force yes", "ftp:ssl-protect-data yes", "ftp:ssl-allow yes"] {
            assert!(text.contains(wanted), "{wanted} in {text}");
        }
        lftp(Protocol::Ftp, &ep, "small", &script, &[]).expect("ftp");
        let text = std::fs::read_to_string(&script).expect("script");
        assert!(text.contains("ftp:ssl-allow no") && !text.contains("ssl-force"), "{text}");
        assert!(lftp(Protocol::Sftp, &ep, "small", &script, &[]).is_err());
    }

    #[test]
    fn a_failed_curl_is_quoted_without_its_timing_lines() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo '0.201 0.202' >&2; echo 'curl: (18) got 522' >&2; exit 18"]);
        let err = run_curl(&mut command, "list", Duration::from_secs(10)).expect_err("exit 18");
        let text = format!("{err:#}");
        assert!(text.contains("curl: (18) got 522") && !text.contains("0.201"), "{text}");
        let mut ok = Command::new("true");
        assert!(run_curl(&mut ok, "true", Duration::from_secs(10)).is_ok());
    }
}
