//! The Debian packages the bench needs. It installs nothing: it names what is missing and
//! the command that installs it. (unFTP is not a Debian package: see
//! [`crate::peers::unftp::Unftp::find`].)

use std::path::{Path, PathBuf};

use anyhow::bail;

use crate::cli::Protocol;

/// A package and a file that shows it is installed.
struct Needed {
    package: &'static str,
    file: &'static str,
}

const fn needed(package: &'static str, file: &'static str) -> Needed {
    Needed { package, file }
}

/// Packages needed by everything: keys, certificates, the password hash.
const COMMON: [Needed; 2] = [needed("openssh-client", "ssh-keygen"), needed("openssl", "openssl")];

fn for_protocol(protocol: Protocol) -> Vec<Needed> {
    match protocol {
        Protocol::Ftp => vec![
            needed("vsftpd", crate::peers::vsftpd::BINARY),
            needed("curl", "curl"),
            needed("lftp", "lftp"),
        ],
        Protocol::Ftps => vec![
            needed("vsftpd", crate::peers::vsftpd::BINARY),
            needed("curl", "curl"),
            needed("lftp", "lftp"),
        ],
        Protocol::Sftp => vec![
            needed("openssh-server", crate::peers::sshd::BINARY),
            needed("openssh-server", crate::peers::sshd::SFTP_SERVER),
            needed("openssh-client", "sftp"),
            needed("curl", "curl"),
        ],
        Protocol::Tftp => vec![
            needed("tftpd-hpa", crate::peers::tftpd::BINARY),
            needed("tftp-hpa", "tftp"),
            needed("atftp", "atftp"),
            needed("curl", "curl"),
        ],
    }
}

/// Whether `file` (absolute, or a program name looked up on PATH) exists.
fn present(file: &str) -> bool {
    if file.starts_with('/') {
        return Path::new(file).is_file();
    }
    on_path(file).is_some()
}

/// Where the program `name` is on PATH, if it is.
pub fn on_path(name: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths).map(|dir| dir.join(name)).find(|path| path.is_file())
}

/// Whether PostgreSQL's server programs are here, looked for as the tests' harness
/// (`wharf_testkit::Postgres`) looks: `initdb` on PATH, or in one of Debian's
/// `/usr/lib/postgresql/<version>/bin`.
pub fn postgresql_installed() -> bool {
    on_path("initdb").is_some()
        || std::fs::read_dir("/usr/lib/postgresql").is_ok_and(|entries| {
            entries.filter_map(Result::ok).any(|entry| entry.path().join("bin/initdb").is_file())
        })
}

/// Fails with the `apt-get install` line when a package for `protocols` is missing.
pub fn check(protocols: &[Protocol]) -> anyhow::Result<()> {
    let mut missing: Vec<&str> = COMMON
        .into_iter()
        .chain(protocols.iter().flat_map(|p| for_protocol(*p)))
        .filter(|n| !present(n.file))
        .map(|n| n.package)
        .collect();
    missing.sort_unstable();
    missing.dedup();
    if !missing.is_empty() {
        bail!(
            "missing Debian packages: {}\ninstall them with:\n  apt-get install --no-install-recommends {}",
            missing.join(", "),
            missing.join(" ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_protocol_needs_curl_and_ftps_needs_lftp() {
        let packages =
            |p: Protocol| -> Vec<&str> { for_protocol(p).iter().map(|n| n.package).collect() };
        for protocol in Protocol::ALL {
            assert!(packages(protocol).contains(&"curl"), "curl lists run on {protocol:?}");
        }
        assert!(packages(Protocol::Ftps).contains(&"lftp"), "lftp mirror over FTPS");
    }
}
