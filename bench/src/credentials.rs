//! Secrets made fresh for each bench run, in the scratch directory: the SSH client key every
//! SFTP client uses (on both servers), the bench user's password and its hash for Wharf, and
//! the self-signed certificate both FTPS servers (vsftpd and Wharf) present.
//!
//! Both sides of a row use the same kinds of keys, since a signature's cost differs by key
//! type (an RSA-2048 signature costs a server many times an ECDSA P-256 one, once per TLS
//! handshake): one certificate for both FTPS servers, and Ed25519 SSH host keys on both SFTP
//! servers, which is the only host key type the clients accept ([`SSH_HOST_KEY_TYPE`]).

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context as _;

use crate::process::run_ok;

/// The key type of the one FTPS certificate ([`Credentials::tls_cert`]); also Wharf's own
/// default, the certificate it generates when none is configured.
pub const TLS_KEY_TYPE: &str = "ECDSA P-256";

/// The SSH host key algorithm every SFTP client accepts, so both servers sign with it
/// (sshd has only this key; Wharf also has an ECDSA key by default, which is then not used).
pub const SSH_HOST_KEY_TYPE: &str = "ssh-ed25519";

/// What the clients log in with.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The SSH client's private key.
    pub ssh_key: PathBuf,
    /// Its public half, one OpenSSH line.
    pub ssh_public_key: String,
    /// The Unix account the bench runs as: sshd only lets existing accounts in.
    pub unix_user: String,
    /// Wharf's bench user.
    pub wharf_user: String,
    /// Its password.
    pub wharf_password: String,
    /// Its password as sha512-crypt, which Wharf accepts for accounts moved from other
    /// servers. Cheaper than argon2id, so the login does not weigh on transfer figures.
    pub wharf_password_hash: String,
    /// The self-signed certificate (PEM, [`TLS_KEY_TYPE`]) both FTPS servers present.
    pub tls_cert: PathBuf,
    /// Its private key (PEM, mode 0600: Wharf refuses a key others can read).
    pub tls_key: PathBuf,
}

/// Writes a new Ed25519 key pair without passphrase to `path` and `path.pub`.
pub fn generate_ed25519_key(path: &Path, comment: &str) -> anyhow::Result<()> {
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
            .arg(path),
        &format!("ssh-keygen ({comment})"),
        Duration::from_secs(30),
    )?;
    Ok(())
}

/// A password from the kernel's random source, as letters and digits.
fn random_password() -> anyhow::Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let bytes = read_random(18)?;
    Ok(bytes.iter().map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect())
}

fn read_random(count: usize) -> anyhow::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut bytes = vec![0u8; count];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes)
}

impl Credentials {
    /// Creates the key pair, password and certificate under `dir`.
    pub fn create(dir: &Path) -> anyhow::Result<Credentials> {
        let limit = Duration::from_secs(60);
        let ssh_key = dir.join("client_ed25519");
        generate_ed25519_key(&ssh_key, "wharf-bench")?;
        let ssh_public_key = std::fs::read_to_string(ssh_key.with_extension("pub"))
            .context("reading the client's public key")?
            .trim()
            .to_owned();

        let unix_user = run_ok(Command::new("id").arg("-un"), "id -un", limit)?.stdout;
        let wharf_password = random_password()?;
        let salt: String = random_password()?.chars().take(16).collect();
        let hash = run_ok(
            Command::new("openssl").args(["passwd", "-6", "-salt", &salt, &wharf_password]),
            "openssl passwd -6",
            limit,
        )?;

        let tls_cert = dir.join("ftps-cert.pem");
        let tls_key = dir.join("ftps-key.pem");
        run_ok(
            Command::new("openssl")
                .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"])
                .args(["-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"])
                .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout"])
                .arg(&tls_key)
                .arg("-out")
                .arg(&tls_cert),
            "openssl req (FTPS certificate)",
            limit,
        )?;
        std::fs::set_permissions(&tls_key, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("chmod 0600 {}", tls_key.display()))?;
        Ok(Credentials {
            ssh_key,
            ssh_public_key,
            unix_user: unix_user.trim().to_owned(),
            wharf_user: "bench".to_owned(),
            wharf_password,
            wharf_password_hash: hash.stdout.trim().to_owned(),
            tls_cert,
            tls_key,
        })
    }
}
