//! unFTP, the second FTP and FTPS peer: an FTP server written in Rust on libunftp (tokio,
//! like Wharf), run as its `unftp` binary over the same share, with the same certificate.
//!
//! It is not a Debian package. The bench looks for `unftp` on PATH (or `--unftp-bin`); when
//! there is none, unFTP's cells say "not installed" and the start of the run says how to get
//! it ([`INSTALL`]). Every option is given on the command line, and the `UNFTP_*` variables
//! it would also read are removed from its environment, so nothing outside the bench
//! changes how it runs. It logs in the bench user with a password from a JSON credentials
//! file (plain text, mode 0600, in the scratch directory). Its HTTP listener (Prometheus
//! metrics and a health check; it always starts one) is put on a free loopback port; none of
//! its optional back-ends that talk to other hosts (cloud storage, REST authentication,
//! Redis or Google logging, Pub/Sub notifications) is configured.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context as _;

use crate::credentials::Credentials;
use crate::endpoint::{Endpoint, Unavailable};
use crate::net::{LOOPBACK, free_tcp_port, wait_for_tcp};
use crate::process::{ChildGuard, run, spawn_server};

/// How to get the unFTP the bench was written against.
pub const INSTALL: &str = "cargo install unftp --version 0.16.0 --locked";

/// The passive port range, unFTP's own default: each data connection listens on a port
/// drawn at random from it.
const PASSIVE_PORTS: &str = "49152-65535";

/// Where the bench finds unFTP, or why it cannot.
#[derive(Debug, Clone)]
pub struct Unftp {
    binary: Result<PathBuf, Unavailable>,
}

impl Unftp {
    /// The binary given (it must exist), else `unftp` on PATH, else a missing unFTP whose
    /// cells will say "not installed" (printed once here, with how to get it).
    pub fn find(given: Option<&Path>) -> anyhow::Result<Unftp> {
        if let Some(path) = given {
            anyhow::ensure!(path.is_file(), "no unFTP binary at {} (--unftp-bin)", path.display());
            return Ok(Unftp { binary: Ok(path.to_owned()) });
        }
        match crate::prereq::on_path("unftp") {
            Some(path) => Ok(Unftp { binary: Ok(path) }),
            None => {
                let how = format!("get it with `{INSTALL}`, or pass --unftp-bin");
                eprintln!("note: unFTP is not on PATH; its cells say \"not installed\" ({how})");
                Ok(Unftp { binary: Err(Unavailable::NotInstalled(how)) })
            }
        }
    }

    /// The binary, or why there is none.
    pub fn binary(&self) -> Result<&Path, Unavailable> {
        self.binary.as_deref().map_err(Clone::clone)
    }
}

/// unFTP's version from the output of `unftp --version` (`unFTP v0.16.0`): the first line's
/// last word, without a leading `v`.
pub fn parse_version(output: &str) -> Option<String> {
    let word = output.lines().next()?.split_whitespace().last()?;
    let version = word.strip_prefix('v').unwrap_or(word);
    version.starts_with(|c: char| c.is_ascii_digit()).then(|| version.to_owned())
}

/// The version of the unFTP at `binary`, when it tells.
pub fn version(binary: &Path) -> Option<String> {
    let mut command = Command::new(binary);
    command.arg("--version");
    let done = run(&mut command, "unftp --version", Duration::from_secs(10)).ok()?;
    parse_version(&done.stdout)
}

/// unFTP's credentials file: one user with a plain-text password.
fn credentials_json(user: &str, password: &str) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(&serde_json::json!([
        { "username": user, "password": password }
    ]))?)
}

/// The command line that serves `share` on `port` (HTTP on `http_port`), TLS required on
/// control and data when `tls` is given.
fn arguments(
    share: &Path,
    port: u16,
    http_port: u16,
    credentials_file: &Path,
    tls: Option<&Credentials>,
) -> Vec<String> {
    let mut args = vec![
        format!("--bind-address={LOOPBACK}:{port}"),
        format!("--bind-address-http={LOOPBACK}:{http_port}"),
        format!("--passive-host={LOOPBACK}"),
        format!("--passive-ports={PASSIVE_PORTS}"),
        format!("--root-dir={}", share.display()),
        "--auth-type=json".to_owned(),
        format!("--auth-json-path={}", credentials_file.display()),
        "--idle-session-timeout=900".to_owned(),
        "--log-level=warn".to_owned(),
    ];
    if let Some(credentials) = tls {
        args.extend([
            format!("--ftps-certs-file={}", credentials.tls_cert.display()),
            format!("--ftps-key-file={}", credentials.tls_key.display()),
            "--ftps-required-on-control-channel=all".to_owned(),
            "--ftps-required-on-data-channel=all".to_owned(),
        ]);
    }
    args
}

/// A running unFTP.
pub struct UnftpServer {
    _process: ChildGuard,
    /// How clients reach it.
    pub endpoint: Endpoint,
}

impl UnftpServer {
    /// Starts `binary` on a free loopback port serving `share` to the bench user; with
    /// `tls`, FTPS only (explicit, required on control and data).
    pub fn start(
        binary: &Path,
        share: &Path,
        dir: &Path,
        credentials: &Credentials,
        tls: Option<&Credentials>,
    ) -> anyhow::Result<UnftpServer> {
        let credentials_file = dir.join("credentials.json");
        std::fs::write(
            &credentials_file,
            credentials_json(&credentials.wharf_user, &credentials.wharf_password)?,
        )
        .with_context(|| format!("writing {}", credentials_file.display()))?;
        std::fs::set_permissions(&credentials_file, std::fs::Permissions::from_mode(0o600))?;
        let port = free_tcp_port()?;
        let http_port = free_tcp_port()?;
        let mut command = Command::new(binary);
        command.args(arguments(share, port, http_port, &credentials_file, tls));
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("UNFTP_") {
                command.env_remove(name);
            }
        }
        let log = dir.join("unftp.log");
        let process = spawn_server(&mut command, &log, "unftp")?;
        let addr = SocketAddr::from((LOOPBACK, port));
        wait_for_tcp(addr, Duration::from_secs(10))
            .with_context(|| format!("unftp did not start; see {}", log.display()))?;
        let endpoint = Endpoint {
            addr,
            user: credentials.wharf_user.clone(),
            password: credentials.wharf_password.clone(),
            key: None,
            curl_home: None,
            server_pid: process.pid(),
        };
        Ok(UnftpServer { _process: process, endpoint })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_the_first_line_s_last_word() {
        assert_eq!(
            parse_version("unFTP 0.16.0\n - libunftp:\tv0.24.0\n").as_deref(),
            Some("0.16.0")
        );
        assert_eq!(parse_version("unFTP v0.17.0\n").as_deref(), Some("0.17.0"));
        assert_eq!(parse_version("unftp 0.15.1\n - Git version: x\n").as_deref(), Some("0.15.1"));
        assert_eq!(parse_version(""), None);
        assert_eq!(parse_version("error: unexpected argument\n"), None);
    }

    #[test]
    fn every_listener_is_on_loopback_and_tls_is_required_on_both_channels() {
        let dir = Path::new("/s");
        let plain = arguments(dir, 2121, 8080, &dir.join("c.json"), None);
        assert!(plain.contains(&"--bind-address=127.0.0.1:2121".to_owned()), "{plain:?}");
        assert!(plain.contains(&"--bind-address-http=127.0.0.1:8080".to_owned()), "{plain:?}");
        assert!(plain.contains(&"--passive-host=127.0.0.1".to_owned()), "{plain:?}");
        assert!(!plain.iter().any(|a| a.starts_with("--ftps")), "{plain:?}");

        let credentials = Credentials {
            ssh_key: "/s/k".into(),
            ssh_public_key: String::new(),
            unix_user: "root".into(),
            wharf_user: "bench".into(),
            wharf_password: "pw".into(),
            wharf_password_hash: String::new(),
            tls_cert: "/s/cert.pem".into(),
            tls_key: "/s/key.pem".into(),
        };
        let tls = arguments(dir, 2121, 8080, &dir.join("c.json"), Some(&credentials));
        for wanted in [
            "--ftps-certs-file=/s/cert.pem",
            "--ftps-key-file=/s/key.pem",
            "--ftps-required-on-control-channel=all",
            "--ftps-required-on-data-channel=all",
        ] {
            assert!(tls.contains(&wanted.to_owned()), "{wanted} in {tls:?}");
        }
    }

    #[test]
    fn the_credentials_file_quotes_what_it_holds() {
        let text = credentials_json("bench", "a\"b\\c").expect("json");
        let parsed: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(parsed[0]["username"], "bench");
        assert_eq!(parsed[0]["password"], "a\"b\\c");
    }
}
