//! The `ftps` section of the configuration.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use serde::Deserialize;
use wharf_ftp::TlsPolicy;

use crate::errors::ConfigError;

/// The `ftps` section: the certificate, the implicit-TLS listeners and what the listeners
/// demand of their clients. The FTP settings themselves (control listeners, passive ports,
/// timeouts, limits) come from the `ftp` section, which FTPS builds on.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FtpsConfig {
    /// PEM file holding the server's certificate chain: the server's own certificate first,
    /// then the intermediate certificates. Set together with `private_key`. Unset (with
    /// `private_key`): a self-signed certificate is generated once in
    /// `generated_certificate_dir` and reused.
    pub certificate_chain: Option<PathBuf>,
    /// PEM file holding the private key of the first certificate of `certificate_chain`
    /// (PKCS#8, PKCS#1 RSA or SEC1 EC). It must not be readable by other users.
    pub private_key: Option<PathBuf>,
    /// Directory where the self-signed certificate (`ftps-certificate.pem`) and its key
    /// (`ftps-private-key.pem`, mode 0600) are generated at first start when no certificate
    /// is configured, and read from afterwards. The binary resolves a relative path against
    /// the data directory.
    pub generated_certificate_dir: PathBuf,
    /// Addresses of the implicit FTPS listeners, where TLS starts with the first byte
    /// (conventionally port 990). Empty: no implicit FTPS. Explicit FTPS (`AUTH TLS`) is
    /// served on the `ftp` section's `listen` addresses.
    pub implicit_listen: Vec<SocketAddr>,
    /// What the `ftp` section's listeners demand: `AUTH TLS` for the control connection,
    /// `PROT P` for data connections.
    pub explicit: ExplicitTls,
    /// Whether the implicit listeners also refuse `PROT C` (data in the clear). Implicit
    /// sessions start with protected data connections either way.
    pub implicit_data: DataProtection,
    /// Whether a protected data connection must resume the TLS session of its control
    /// connection (vsftpd's `require_ssl_reuse`), so that nobody but the client who logged in
    /// can open it. Turn off only for clients that cannot resume sessions.
    pub require_session_reuse: bool,
    /// Whether upload data connections (`STOR`, `APPE`, `STOU`) hand out TLS 1.3 session
    /// tickets like downloads do. Off by default: clients that upload without reading their
    /// data connection (curl before 8.9, lftp) lose the end of the upload when a ticket
    /// arrives as they close it. On suits clients that use each TLS 1.3 ticket once and
    /// upload several files in one session (curl 8.9 and later, rustls-based clients). See
    /// `docs/protocols/ftps.md`.
    pub tls13_tickets_on_uploads: bool,
}

impl Default for FtpsConfig {
    fn default() -> Self {
        FtpsConfig {
            certificate_chain: None,
            private_key: None,
            generated_certificate_dir: PathBuf::from("ftps"),
            implicit_listen: vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9990)],
            explicit: ExplicitTls::default(),
            implicit_data: DataProtection::Required,
            require_session_reuse: true,
            tls13_tickets_on_uploads: false,
        }
    }
}

/// Explicit FTPS on the `ftp` section's listeners.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExplicitTls {
    /// Whether `AUTH TLS` is offered, and whether `USER` is refused until it was used.
    pub control: ControlProtection,
    /// Whether transfers are refused until `PROT P` (needs `control` other than `off`).
    pub data: DataProtection,
}

/// Use of TLS on the control connection of the plain FTP listeners.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ControlProtection {
    /// `AUTH TLS` is not offered: these listeners serve plain FTP only.
    Off,
    /// `AUTH TLS` is offered; clients may also log in without it (unless their user
    /// requires TLS).
    #[default]
    Optional,
    /// `USER` is refused with `530` until `AUTH TLS` protected the connection.
    Required,
}

/// Use of TLS on data connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataProtection {
    /// `PROT C` and `PROT P` are both accepted (unless the user requires protection).
    #[default]
    Optional,
    /// Transfers are refused with `521` until `PROT P`, and `PROT C` with `534`.
    Required,
}

impl DataProtection {
    fn is_required(self) -> bool {
        self == DataProtection::Required
    }
}

impl FtpsConfig {
    /// Checks what serde cannot: the certificate and its key are configured together, and
    /// protected data is not demanded where TLS is not offered.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match (&self.certificate_chain, &self.private_key) {
            (Some(_), None) => return Err(ConfigError::CertificateWithoutKey),
            (None, Some(_)) => return Err(ConfigError::KeyWithoutCertificate),
            _ => {}
        }
        if self.explicit.control == ControlProtection::Off && self.explicit.data.is_required() {
            return Err(ConfigError::DataRequiredWithoutTls);
        }
        Ok(())
    }

    /// Everything [`FtpsServer::bind`](crate::FtpsServer::bind) checks short of binding and
    /// of generating a self-signed certificate: [`FtpsConfig::validate`], and that configured
    /// PEM files load as a certificate chain with its key.
    pub fn check(&self) -> Result<(), crate::FtpsError> {
        self.validate()?;
        let source = crate::CertificateSource::from_config(self);
        if matches!(source, crate::CertificateSource::Files { .. }) {
            source.load(&rustls::crypto::aws_lc_rs::default_provider())?;
        }
        Ok(())
    }

    /// The policy of the `ftp` section's listeners, or `None` when they do not offer TLS.
    pub fn explicit_policy(&self) -> Option<TlsPolicy> {
        let require_control = match self.explicit.control {
            ControlProtection::Off => return None,
            ControlProtection::Optional => false,
            ControlProtection::Required => true,
        };
        Some(TlsPolicy { require_control, require_data: self.explicit.data.is_required() })
    }

    /// The policy of the implicit listeners (their control connections are always protected).
    pub fn implicit_policy(&self) -> TlsPolicy {
        TlsPolicy { require_control: true, require_data: self.implicit_data.is_required() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<FtpsConfig, String> {
        serde_yaml::from_str(yaml).map_err(|err| err.to_string())
    }

    #[test]
    fn full_section_parses() {
        let config = parse(
            r#"
certificate_chain: /etc/wharf/fullchain.pem
private_key: /etc/wharf/privkey.pem
generated_certificate_dir: tls
implicit_listen: ["0.0.0.0:990", "[::]:990"]
explicit: { control: required, data: required }
implicit_data: optional
require_session_reuse: false
tls13_tickets_on_uploads: true
"#,
        )
        .expect("valid");
        assert_eq!(config.certificate_chain, Some(PathBuf::from("/etc/wharf/fullchain.pem")));
        assert_eq!(config.private_key, Some(PathBuf::from("/etc/wharf/privkey.pem")));
        assert_eq!(config.generated_certificate_dir, PathBuf::from("tls"));
        assert_eq!(config.implicit_listen.len(), 2);
        assert_eq!(
            config.explicit_policy(),
            Some(TlsPolicy { require_control: true, require_data: true })
        );
        assert_eq!(
            config.implicit_policy(),
            TlsPolicy { require_control: true, require_data: false }
        );
        assert!(!config.require_session_reuse);
        assert!(config.tls13_tickets_on_uploads);
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn defaults() {
        let config = parse("{}").expect("empty section");
        assert_eq!(config, FtpsConfig::default());
        assert_eq!(config.validate(), Ok(()));
        assert!(config.require_session_reuse);
        assert_eq!(
            config.explicit_policy(),
            Some(TlsPolicy { require_control: false, require_data: false })
        );
        assert_eq!(
            config.implicit_policy(),
            TlsPolicy { require_control: true, require_data: true }
        );
        assert_eq!(config.implicit_listen, vec!["127.0.0.1:9990".parse().expect("addr")]);
    }

    #[test]
    fn errors_name_the_key() {
        let err = parse("certificate: x.pem").expect_err("unknown key");
        assert!(err.contains("certificate"), "{err}");
        let err = parse("explicit: { control: maybe }").expect_err("unknown mode");
        assert!(err.contains("maybe"), "{err}");
        let err = parse("explicit: { data: off }").expect_err("data has no off");
        assert!(err.contains("off"), "{err}");
        let off = parse("explicit: { control: off }").expect("control off");
        assert_eq!(off.explicit_policy(), None);
    }

    #[test]
    fn validation() {
        let half = parse("certificate_chain: chain.pem").expect("parses");
        assert_eq!(half.validate(), Err(ConfigError::CertificateWithoutKey));
        let half = parse("private_key: key.pem").expect("parses");
        assert_eq!(half.validate(), Err(ConfigError::KeyWithoutCertificate));
        let contradiction = parse("explicit: { control: off, data: required }").expect("parses");
        assert_eq!(contradiction.validate(), Err(ConfigError::DataRequiredWithoutTls));
        let message = ConfigError::DataRequiredWithoutTls.to_string();
        assert!(message.contains("ftps.explicit"), "{message}");
    }
}
