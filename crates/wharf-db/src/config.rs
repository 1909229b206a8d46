//! The `database` section, and what it makes: the driver's settings and TLS.

use std::path::PathBuf;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig};
use serde::Deserialize;
use tokio_postgres::NoTls;
use tokio_postgres::config::Host;

use crate::error::DbError;

/// The `database` section: where the shared state lives. Absent, a node keeps its state to
/// itself (users file, local bans).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://user@host:port/database` or libpq's `host=... user=... dbname=...`; a
    /// `host` that is a directory is a Unix socket. Keep the password out of it
    /// (`password_file`): the URL is in the configuration file.
    pub url: String,
    /// A file holding the password (its first line), e.g. a secret mount.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Connections the node keeps at most (the change watcher has one more of its own).
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// How long connecting, or waiting for a free connection, may take.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// TLS to the database; off when absent.
    #[serde(default)]
    pub tls: Option<DatabaseTls>,
}

/// The `database.tls` section: TLS, verifying the server against the given authority.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseTls {
    /// PEM file of the certificate authority (or authorities) the server's certificate must
    /// chain to; its name must match the URL's host.
    pub ca_file: PathBuf,
}

fn default_pool_size() -> usize {
    8
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}

/// How to reach the database: the driver's settings and the TLS configuration.
#[derive(Clone)]
pub(crate) struct Connector {
    pub(crate) postgres_config: tokio_postgres::Config,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl DatabaseConfig {
    /// Checks the section without connecting (the URL parses, the password and CA files
    /// read) and says where it points: host, port, database, user, never the password.
    pub fn check(&self) -> Result<String, DbError> {
        Ok(self.connector()?.describe())
    }

    /// The driver's settings, the password read, the TLS configuration loaded.
    pub(crate) fn connector(&self) -> Result<Connector, DbError> {
        let mut postgres_config = tokio_postgres::Config::from_str(&self.url)
            .map_err(|err| DbError::Config(format!("url: {err}")))?;
        if self.pool_size == 0 {
            return Err(DbError::Config("pool_size must be at least 1".into()));
        }
        if let Some(path) = &self.password_file {
            let text = std::fs::read_to_string(path).map_err(|err| {
                DbError::Config(format!("password_file {}: {err}", path.display()))
            })?;
            postgres_config.password(text.lines().next().unwrap_or_default());
        }
        postgres_config.connect_timeout(self.connect_timeout);
        postgres_config.application_name("wharf");
        let tls = match &self.tls {
            Some(tls) => {
                // With TLS configured, a server that does not offer it is refused rather than
                // spoken to in the clear (the driver's default would fall back).
                postgres_config.ssl_mode(tokio_postgres::config::SslMode::Require);
                Some(Arc::new(client_config(tls)?))
            }
            None => {
                postgres_config.ssl_mode(tokio_postgres::config::SslMode::Disable);
                None
            }
        };
        Ok(Connector { postgres_config, tls })
    }
}

/// A rustls client trusting the authorities of `tls.ca_file`.
fn client_config(tls: &DatabaseTls) -> Result<rustls::ClientConfig, DbError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let bad =
        |err: String| DbError::Config(format!("tls.ca_file {}: {err}", tls.ca_file.display()));
    let mut roots = rustls::RootCertStore::empty();
    for certificate in
        CertificateDer::pem_file_iter(&tls.ca_file).map_err(|e| bad(e.to_string()))?
    {
        roots.add(certificate.map_err(|e| bad(e.to_string()))?).map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("no certificate in the file".into()));
    }
    Ok(rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth())
}

impl Connector {
    /// The pool's manager, with or without TLS.
    pub(crate) fn manager(&self) -> Manager {
        let config = ManagerConfig { recycling_method: deadpool_postgres::RecyclingMethod::Fast };
        match &self.tls {
            None => Manager::from_config(self.postgres_config.clone(), NoTls, config),
            Some(tls) => Manager::from_config(
                self.postgres_config.clone(),
                tokio_postgres_rustls::MakeRustlsConnect::new((**tls).clone()),
                config,
            ),
        }
    }

    /// The TLS configuration, if any.
    pub(crate) fn tls(&self) -> Option<&Arc<rustls::ClientConfig>> {
        self.tls.as_ref()
    }

    /// Host, port, database and user, for logs; never the password.
    pub(crate) fn describe(&self) -> String {
        let config = &self.postgres_config;
        let host = match config.get_hosts().first() {
            Some(Host::Tcp(name)) => name.clone(),
            Some(Host::Unix(path)) => path.display().to_string(),
            None => "localhost".to_owned(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        format!(
            "{}@{host}:{port}/{}{}",
            config.get_user().unwrap_or("?"),
            config.get_dbname().unwrap_or("?"),
            if self.tls.is_some() { " (TLS)" } else { "" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> DatabaseConfig {
        serde_yaml::from_str(yaml).expect("section")
    }

    #[test]
    fn a_url_is_described_without_its_password() {
        let section = config("url: postgres://wharf:s3cret@db.example:6543/shared\n");
        let connector = section.connector().expect("connector");
        let described = connector.describe();
        assert_eq!(described, "wharf@db.example:6543/shared");
        assert!(!described.contains("s3cret"));
        assert_eq!(section.pool_size, 8);
        assert_eq!(section.connect_timeout, Duration::from_secs(5));
    }

    #[test]
    fn mistakes_are_named() {
        let err = config("url: \"postgres://[nonsense\"\n").connector().err().expect("bad url");
        assert!(err.to_string().contains("url"), "{err}");
        let err = config("url: postgres://a@b/c\npool_size: 0\n").connector().err().expect("pool");
        assert!(err.to_string().contains("pool_size"), "{err}");
        let err = config("url: postgres://a@b/c\npassword_file: /nonexistent/wharf-db\n")
            .connector()
            .err()
            .expect("password file");
        assert!(err.to_string().contains("password_file"), "{err}");
        let err = config("url: postgres://a@b/c\ntls: { ca_file: /nonexistent/ca.pem }\n")
            .connector()
            .err()
            .expect("ca file");
        assert!(err.to_string().contains("tls.ca_file"), "{err}");
        assert!(serde_yaml::from_str::<DatabaseConfig>("url: x\npoolsize: 3\n").is_err());
    }
}
