//! TLS on the admin API's listener: the certificate chain and key from PEM files (loaded as
//! FTPS loads its own), TLS 1.2 and 1.3 on aws-lc-rs, HTTP/1.1 by ALPN. With it, passwords
//! may be sent in the clear to the API from anywhere, not only from this host.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use serde::Deserialize;
use tokio_rustls::TlsAcceptor;

/// The `admin.tls` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminTlsConfig {
    /// The certificate chain (PEM), the server's certificate first; relative to the data
    /// directory.
    pub certificate_chain: PathBuf,
    /// Its private key (PEM); relative to the data directory.
    pub private_key: PathBuf,
}

/// The acceptor of the listener's TLS handshakes (blocking file I/O: at start).
pub fn acceptor(config: &AdminTlsConfig) -> anyhow::Result<TlsAcceptor> {
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let source = wharf_ftps::CertificateSource::Files {
        chain: config.certificate_chain.clone(),
        key: config.private_key.clone(),
    };
    let certificate = source.load(&provider).context("the admin API's certificate")?;
    let resolver =
        tokio_rustls::rustls::sign::SingleCertAndKey::from(certificate.certified_key().clone());
    let mut server = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server)))
}
