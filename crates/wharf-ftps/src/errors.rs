//! What can go wrong when FTPS starts or reloads its certificate.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the FTPS server could not start (or reload its certificate).
#[derive(Debug, thiserror::Error)]
pub enum FtpsError {
    /// The `ftps` section contradicts itself.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The certificate or its key could not be loaded or generated.
    #[error(transparent)]
    Certificate(#[from] CertificateError),
    /// The FTP side (the `ftp` section's listeners or settings) could not start.
    #[error(transparent)]
    Ftp(#[from] wharf_ftp::FtpError),
    /// An implicit FTPS listener could not be bound.
    #[error("cannot listen for implicit FTPS on {addr}: {source}")]
    Bind {
        /// The address from `ftps.implicit_listen`.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
}

/// A setting of the `ftps` section that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A certificate chain is configured without its key.
    #[error(
        "ftps.certificate_chain is set but ftps.private_key is not: set both, or neither for a generated self-signed certificate"
    )]
    CertificateWithoutKey,
    /// A key is configured without its certificate chain.
    #[error(
        "ftps.private_key is set but ftps.certificate_chain is not: set both, or neither for a generated self-signed certificate"
    )]
    KeyWithoutCertificate,
    /// Protected data connections are required on listeners that do not offer TLS.
    #[error(
        "ftps.explicit.data is `required` but ftps.explicit.control is `off`: PROT P needs AUTH TLS"
    )]
    DataRequiredWithoutTls,
}

/// Why the certificate or its key could not be made ready. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// A file could not be read (missing, unreadable).
    #[error("cannot read the FTPS {what} {path}: {source}")]
    Read {
        /// `certificate chain` or `private key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A file is not valid PEM.
    #[error("the FTPS {what} {path} is not valid PEM: {detail}")]
    Pem {
        /// `certificate chain` or `private key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The PEM parser's message.
        detail: String,
    },
    /// The certificate file holds no certificate.
    #[error("the certificate chain {path} holds no `BEGIN CERTIFICATE` block")]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key file holds no private key.
    #[error("the private key {path} holds no private key block (PKCS#8, RSA or EC)")]
    NoPrivateKey {
        /// The file.
        path: PathBuf,
    },
    /// The key is of a kind the TLS library cannot sign with.
    #[error("the private key {path} cannot be used: {detail}")]
    UnusableKey {
        /// The file.
        path: PathBuf,
        /// The TLS library's message.
        detail: String,
    },
    /// The first certificate of the chain cannot be parsed.
    #[error("the first certificate in {path} is not a valid X.509 certificate: {detail}")]
    InvalidCertificate {
        /// The file.
        path: PathBuf,
        /// The TLS library's message.
        detail: String,
    },
    /// The key is not the key of the certificate.
    #[error(
        "the private key {key} does not belong to the certificate in {certificate} \
         (their public keys differ)"
    )]
    KeyMismatch {
        /// The certificate chain file.
        certificate: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// The key file can be read or written by other users.
    #[error(
        "the private key {path} has mode {mode:04o}; other users must not have access to \
         it (chmod o-rwx)"
    )]
    KeyPermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Only one file of a generated pair exists.
    #[error(
        "found {present} but not {missing}: restore it, or remove {present} to generate a new \
         self-signed certificate"
    )]
    IncompletePair {
        /// The file that exists.
        present: PathBuf,
        /// The file that does not.
        missing: PathBuf,
    },
    /// The directory for the generated certificate could not be created.
    #[error("cannot create the directory {path} for the generated FTPS certificate: {source}")]
    Directory {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Generating the self-signed certificate failed.
    #[error("cannot generate a self-signed FTPS certificate: {0}")]
    Generate(#[source] rcgen::Error),
    /// The generated certificate or key could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The TLS library refused the configuration built from the certificate.
    #[error("cannot build the TLS configuration: {0}")]
    Tls(#[source] rustls::Error),
}
