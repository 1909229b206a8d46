//! Wharf's FTPS front-end (RFC 4217): TLS for the FTP sessions of `wharf-ftp`, which speaks
//! every FTP command itself (`AUTH`, `PBSZ`, `PROT` and `CCC` included) and calls this crate
//! through its TLS seam ([`wharf_ftp::tls`]).
//!
//! - [`FtpsServer::bind`] loads the certificate ([`certificates`]: PEM files, or a self-signed
//!   certificate generated once), binds the `ftp` section's listeners with `AUTH TLS` offered
//!   (explicit FTPS) and the implicit listeners (TLS from the first byte), and
//!   [`FtpsServer::run`] serves them until the gateway drains.
//! - [`FtpsTls`] is the provider: TLS 1.2 and 1.3 with rustls's default cipher suites on
//!   aws-lc-rs; each control connection gets its own copy of the configuration with its own
//!   session store and ticket key, and its protected data connections must resume one of its
//!   sessions, so nobody else can open them.
//! - [`FtpsTls::reload`] swaps the certificate for new connections without touching running
//!   sessions.
//!
//! See `docs/protocols/ftps.md` for the configuration, the policies and the measurements.

mod acks;
pub mod certificates;
pub mod config;
pub mod errors;
mod implicit;
mod provider;
mod resumption;
mod server;

pub use certificates::{CertificateSource, Fingerprint, ServerCertificate};
pub use config::{ControlProtection, DataProtection, ExplicitTls, FtpsConfig};
pub use errors::{CertificateError, ConfigError, FtpsError};
pub use provider::{ControlTls, DATA_READ_BUFFER, DATA_SEND_BUFFER, DataTls, FtpsTls};
pub use server::{BoundListener, FtpsServer, ListenerKind};
