//! Wharf under test: the release binary with a generated configuration, its listeners read
//! from the start-up banner (every port is 0, so the kernel picks free ones).

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_yaml::{Mapping, Value};

use crate::cli::Protocol;
use crate::clients::write_curl_home;
use crate::credentials::Credentials;
use crate::endpoint::{Endpoint, Endpoints, Unavailable};
use crate::process::{ChildGuard, run};
use crate::wharf_config::{PROTOCOL_SECTIONS, base_config, candidates, with_bench_certificate};

/// What Wharf is started from.
#[derive(Debug, Clone)]
pub struct WharfSetup {
    /// The release binary.
    pub binary: PathBuf,
    /// The example configuration the protocol sections are derived from.
    pub example: Option<Mapping>,
    /// Sections given by the user, used instead of derived ones.
    pub replacements: Mapping,
}

/// One listener from the banner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// As the banner names it: `FTP`, `SFTP`, ...
    pub protocol: String,
    /// Where it listens.
    pub addr: SocketAddr,
}

/// A running Wharf; dropping it stops it.
pub struct WharfServer {
    process: ChildGuard,
    log: PathBuf,
    /// What it printed at start.
    pub banner: String,
    /// Its listeners.
    pub listeners: Vec<Listener>,
}

impl WharfServer {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Where it serves `protocol`, as its banner says.
    pub fn listener(&self, protocol: Protocol) -> Option<SocketAddr> {
        listener_for(&self.listeners, protocol)
    }

    /// When Wharf is no longer running: that, with the end of its log (a failed Wharf-side
    /// measurement is then explained by the server, not by the client's error).
    pub fn diagnosis(&self) -> Option<String> {
        if crate::process::is_running(self.process.pid()) {
            return None;
        }
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        Some(format!("wharf has exited; the end of its log: {}", tail.join(" | ")))
    }
}

/// Reads listeners from banner lines such as `    FTP            127.0.0.1:40123    curl ...`:
/// the name is everything before the first word that is a socket address.
pub fn parse_listeners(banner: &str) -> Vec<Listener> {
    let mut found = Vec::new();
    for line in banner.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let Some(index) = words.iter().position(|w| w.parse::<SocketAddr>().is_ok()) {
            if index == 0 {
                continue;
            }
            if let Ok(addr) = words[index].parse() {
                found.push(Listener { protocol: words[..index].join(" "), addr });
            }
        }
    }
    found
}

/// The listener serving `protocol`, by banner name. Explicit FTPS is `AUTH TLS` on the FTP
/// port unless the banner names an explicit-TLS listener; a listener named just `FTPS` is
/// implicit TLS (TLS from the first byte), which explicit clients cannot use.
fn listener_for(listeners: &[Listener], protocol: Protocol) -> Option<SocketAddr> {
    let upper = |l: &Listener| l.protocol.to_uppercase();
    let plain_ftp = || {
        listeners.iter().find(|l| {
            let name = upper(l);
            name.starts_with("FTP") && !name.starts_with("FTPS") && !name.contains("IMPLICIT")
        })
    };
    let found = match protocol {
        Protocol::Ftp => plain_ftp(),
        Protocol::Ftps => listeners
            .iter()
            .find(|l| {
                let name = upper(l);
                name.starts_with("FTP") && name.contains("EXPLICIT")
            })
            .or_else(plain_ftp),
        Protocol::Sftp => listeners.iter().find(|l| upper(l).contains("SFTP")),
        Protocol::Tftp => listeners.iter().find(|l| upper(l).starts_with("TFTP")),
    };
    found.map(|l| l.addr)
}

/// The sections a protocol needs: explicit FTPS rides on the FTP listener.
fn sections_for(protocol: Protocol) -> &'static [&'static str] {
    match protocol {
        Protocol::Ftp => &["ftp"],
        Protocol::Ftps => &["ftp", "ftps"],
        Protocol::Sftp => &["sftp"],
        Protocol::Tftp => &["tftp"],
    }
}

fn write_config(path: &Path, config: &Mapping) -> anyhow::Result<()> {
    std::fs::write(path, serde_yaml::to_string(config)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// `wharf check`: `Ok` or the binary's complaint.
fn check(binary: &Path, path: &Path, config: &Mapping) -> anyhow::Result<Result<(), String>> {
    write_config(path, config)?;
    let finished = run(
        Command::new(binary).arg("check").arg("--config").arg(path),
        "wharf check",
        Duration::from_secs(60),
    )?;
    Ok(if finished.status.success() {
        Ok(())
    } else {
        Err(finished.stderr.trim().lines().next().unwrap_or("rejected").to_owned())
    })
}

/// Starts Wharf with every selected protocol it serves. Protocols it does not serve, or
/// whose section it rejects, come back as unavailable with the reason.
pub fn start(
    setup: &WharfSetup,
    dir: &Path,
    share: &Path,
    credentials: &Credentials,
    protocols: &[Protocol],
) -> anyhow::Result<(Option<WharfServer>, Endpoints)> {
    start_with_storage(setup, dir, share, credentials, protocols, None)
}

/// The data directory of a Wharf started in `dir` (its keys, its state).
pub fn data_dir(dir: &Path) -> PathBuf {
    dir.join("state")
}

/// [`start`], with `storage` as the `storage:` section instead of the local `share` (the
/// object-storage rows put the share in a bucket).
pub fn start_with_storage(
    setup: &WharfSetup,
    dir: &Path,
    share: &Path,
    credentials: &Credentials,
    protocols: &[Protocol],
    storage: Option<Value>,
) -> anyhow::Result<(Option<WharfServer>, Endpoints)> {
    let mut endpoints = Endpoints::none(Unavailable::NotServed("not selected".to_owned()));
    let mut base = base_config(&data_dir(dir), share, credentials);
    if let Some(storage) = storage {
        base.insert(Value::from("storage"), storage);
    }
    let probe_path = dir.join("probe.yaml");
    if let Err(complaint) = check(&setup.binary, &probe_path, &base)? {
        bail!("wharf rejects the bench's base configuration: {complaint}");
    }

    // Each section on its own, first acceptable candidate wins.
    let mut wanted: Vec<&str> = protocols.iter().flat_map(|p| sections_for(*p)).copied().collect();
    wanted.sort_by_key(|s| PROTOCOL_SECTIONS.iter().position(|p| p == s));
    wanted.dedup();
    let mut config = base.clone();
    let mut rejected: BTreeMap<&str, String> = BTreeMap::new();
    for section in wanted {
        let list = match setup.replacements.get(section) {
            Some(given) => vec![given.clone()],
            None => candidates(setup.example.as_ref(), section, &credentials.wharf_user),
        };
        let mut first_complaint = None;
        for candidate in list {
            let candidate = match section {
                "ftps" => with_bench_certificate(candidate, credentials),
                _ => candidate,
            };
            let mut trial = config.clone();
            trial.insert(Value::from(section), candidate.clone());
            match check(&setup.binary, &probe_path, &trial)? {
                Ok(()) => {
                    config = trial;
                    first_complaint = None;
                    break;
                }
                Err(complaint) => {
                    first_complaint.get_or_insert(complaint);
                }
            }
        }
        if let Some(complaint) = first_complaint {
            rejected.insert(section, complaint);
        }
    }

    let server = launch(setup, dir, &config, Ports::Ephemeral)?;
    let listeners = server.listeners.clone();

    for protocol in protocols {
        let missing_section =
            sections_for(*protocol).iter().find_map(|s| rejected.get(s).map(|c| (s, c)));
        *endpoints.get_mut(*protocol) = match (missing_section, listener_for(&listeners, *protocol))
        {
            (Some((section, complaint)), _) => Err(Unavailable::NotServed(
                if complaint.contains(&format!("unknown field `{section}`")) {
                    format!("this wharf binary has no `{section}:` configuration section yet")
                } else {
                    format!(
                        "this wharf binary rejects the bench's `{section}:` section: {complaint}"
                    )
                },
            )),
            (None, None) => Err(Unavailable::NotServed(format!(
                "no {} listener in wharf's banner",
                protocol.name()
            ))),
            (None, Some(addr)) => Ok(Endpoint {
                addr,
                user: credentials.wharf_user.clone(),
                password: credentials.wharf_password.clone(),
                key: Some(credentials.ssh_key.clone()),
                // Without an Ed25519 host key the curl SFTP rows fail and say why; every
                // other row goes on.
                curl_home: match protocol {
                    Protocol::Sftp => {
                        let public = ed25519_host_key(&config, &data_dir(dir));
                        write_curl_home(&dir.join("curl-home"), addr, &public).ok()
                    }
                    _ => None,
                },
                server_pid: server.pid(),
            }),
        };
    }
    Ok((Some(server), endpoints))
}

/// Which ports a Wharf started by the bench binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ports {
    /// Every listener on a port the kernel picks (`WHARF_EPHEMERAL_PORTS=1`), the FTP
    /// passive ports too, whatever the configuration says.
    Ephemeral,
    /// The ports of the configuration, e.g. a passive range of its own for each node of a
    /// cluster (listeners on port 0 still get a free port).
    Configured,
}

/// Starts Wharf on `config` as given, once `wharf check` accepts it (the bench's generated
/// sections are not tried): for setups the bench composes whole, such as the nodes of a
/// cluster. Its configuration and log are `dir/wharf.yaml` and `dir/wharf.log`.
pub fn serve_config(
    setup: &WharfSetup,
    dir: &Path,
    config: &Mapping,
    ports: Ports,
) -> anyhow::Result<WharfServer> {
    if let Err(complaint) = check(&setup.binary, &dir.join("probe.yaml"), config)? {
        bail!("wharf rejects the configuration: {complaint}");
    }
    launch(setup, dir, config, ports)
}

/// Writes `config` to `dir/wharf.yaml`, starts `wharf serve` on it and waits for its banner.
fn launch(
    setup: &WharfSetup,
    dir: &Path,
    config: &Mapping,
    ports: Ports,
) -> anyhow::Result<WharfServer> {
    let config_path = dir.join("wharf.yaml");
    write_config(&config_path, config)?;
    let log_path = dir.join("wharf.log");
    let log = std::fs::File::create(&log_path)?;
    let mut command = Command::new(&setup.binary);
    command
        .arg("serve")
        .arg("--config")
        .arg(&config_path)
        .env_remove("WHARF_EPHEMERAL_PORTS")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log);
    if ports == Ports::Ephemeral {
        command.env("WHARF_EPHEMERAL_PORTS", "1");
    }
    let mut process = ChildGuard::spawn(&mut command, "wharf serve")?;
    let banner = read_banner(&mut process)
        .with_context(|| format!("wharf did not start; see {}/wharf.log", dir.display()))?;
    let listeners = parse_listeners(&banner);
    if let Some(outside) = listeners.iter().find(|l| !l.addr.ip().is_loopback()) {
        bail!("wharf listens on {} outside loopback; refusing to benchmark", outside.addr);
    }
    Ok(WharfServer { process, log: log_path, banner, listeners })
}

/// Where Wharf keeps its Ed25519 public host key: `ssh_host_ed25519_key.pub` in the SFTP
/// section's `host_key_dir` (default `host-keys`), relative to `data_dir`.
fn ed25519_host_key(config: &Mapping, data_dir: &Path) -> PathBuf {
    let dir = config
        .get("sftp")
        .and_then(|sftp| sftp.get("host_key_dir"))
        .and_then(Value::as_str)
        .unwrap_or("host-keys");
    data_dir.join(dir).join("ssh_host_ed25519_key.pub")
}

/// Collects the banner: stdout lines until it has been quiet for half a second after the
/// first line (Wharf prints it at once when every listener is bound).
fn read_banner(process: &mut ChildGuard) -> anyhow::Result<String> {
    let stdout = process.child_mut().stdout.take().context("wharf's stdout")?;
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut banner = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut wait = Duration::from_millis(200);
    loop {
        match lines.recv_timeout(wait) {
            Ok(line) => {
                banner.push_str(&line);
                banner.push('\n');
                wait = Duration::from_millis(500);
            }
            Err(mpsc::RecvTimeoutError::Timeout) if !banner.is_empty() => return Ok(banner),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Some(status) = process.try_wait() {
                    bail!("wharf exited at start ({status})");
                }
                if Instant::now() > deadline {
                    bail!("no banner within 60 s");
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                if banner.is_empty() {
                    bail!("wharf closed its output without a banner");
                }
                return Ok(banner);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BANNER: &str = "Wharf 0.1.0 is serving /tmp/x/share
  configuration: /tmp/x/wharf.yaml

  Listening:
    FTP            127.0.0.1:40001          curl ftp://{user}@127.0.0.1:40001/
    FTPS           127.0.0.1:40002          curl -k ftps://{user}@127.0.0.1:40002/
    SFTP           127.0.0.1:40003          sftp -P 40003 {user}@127.0.0.1
    TFTP           127.0.0.1:40004          tftp 127.0.0.1 40004
";

    #[test]
    fn listeners_are_read_from_the_banner() {
        let listeners = parse_listeners(BANNER);
        assert_eq!(listeners.len(), 4);
        assert_eq!(listeners[1].protocol, "FTPS");
        assert_eq!(listener_for(&listeners, Protocol::Ftp), Some(listeners[0].addr));
        // Explicit FTPS is AUTH TLS on the FTP port; the `FTPS` listener is implicit TLS.
        assert_eq!(listener_for(&listeners, Protocol::Ftps), Some(listeners[0].addr));
        assert_eq!(listener_for(&listeners, Protocol::Sftp), Some(listeners[2].addr));
        assert_eq!(listener_for(&listeners, Protocol::Tftp), Some(listeners[3].addr));
    }

    #[test]
    fn a_banner_without_listeners_serves_nothing() {
        let listeners = parse_listeners("Wharf 0.1.0 is serving /s\n\n  No protocol is enabled.\n");
        assert!(listeners.is_empty());
        assert_eq!(listener_for(&listeners, Protocol::Sftp), None);
    }
}
