//! Where an object-storage tree lives and how Wharf signs in to it.
//!
//! Credentials never come from the configuration file itself: from the environment
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`) or from a separate file readable by Wharf
//! alone. They are never logged, and their `Debug` shows no secret.

use std::path::{Path, PathBuf};
use std::time::Duration;

use opendal::Operator;
use opendal::layers::{RetryLayer, TimeoutLayer};
use opendal::services::S3;
use serde::Deserialize;

use crate::error::{Error, Result};

/// How long one request to the store may take before it counts as failed (a store that has
/// gone away must not hold a client's command for ever). Data requests get the same limit per
/// request; a large object is many requests.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Attempts of a failed idempotent request (OpenDAL retries with backoff; writes are retried
/// per part).
pub const REQUEST_ATTEMPTS: usize = 3;

/// How objects are addressed on the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Addressing {
    /// `https://endpoint/bucket/key`: what MinIO, SeaweedFS and most S3-compatible stores
    /// expect.
    #[default]
    Path,
    /// `https://bucket.endpoint/key`: what AWS prefers.
    VirtualHost,
}

/// A bucket (or a prefix of one) on an S3-compatible store.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectStoreConfig {
    /// The store's URL, e.g. `https://s3.eu-west-1.amazonaws.com` or `http://127.0.0.1:8333`.
    pub endpoint: String,
    /// The region requests are signed for (`us-east-1` for most S3-compatible stores).
    #[serde(default = "default_region")]
    pub region: String,
    /// The bucket.
    pub bucket: String,
    /// The key prefix the tree lives under (`""`: the whole bucket).
    #[serde(default)]
    pub prefix: String,
    /// Path-style or virtual-host addressing.
    #[serde(default)]
    pub addressing: Addressing,
    /// A YAML file with `access_key_id` and `secret_access_key`; when absent, the
    /// environment's `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`.
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
}

fn default_region() -> String {
    "us-east-1".to_owned()
}

/// A secret string whose `Debug` does not show it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub(super) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

/// The keys Wharf signs its requests with.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectStoreCredentials {
    /// The access key id (not secret, but kept with its secret).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Secret,
}

impl ObjectStoreCredentials {
    /// The credentials `config` points at: its file, or the environment.
    pub fn load(config: &ObjectStoreConfig) -> Result<Self> {
        match &config.credentials_file {
            Some(path) => Self::from_file(path),
            None => Self::from_environment(),
        }
    }

    fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(Error::Io)?;
        // The file's text is never echoed: a parse error could quote the secret.
        serde_yaml::from_str(&text).map_err(|_| {
            Error::Io(std::io::Error::other(format!(
                "{}: expected `access_key_id` and `secret_access_key`",
                path.display()
            )))
        })
    }

    fn from_environment() -> Result<Self> {
        let read = |name: &str| {
            std::env::var(name).map_err(|_| {
                Error::Io(std::io::Error::other(format!(
                    "no object-store credentials: set {name} (or `credentials_file`)"
                )))
            })
        };
        Ok(ObjectStoreCredentials {
            access_key_id: read("AWS_ACCESS_KEY_ID")?,
            secret_access_key: Secret::new(read("AWS_SECRET_ACCESS_KEY")?),
        })
    }
}

impl ObjectStoreConfig {
    /// `bucket/prefix at endpoint`, for logs (no credentials).
    pub(super) fn describe(&self) -> String {
        format!("{}/{} at {}", self.bucket, self.prefix.trim_matches('/'), self.endpoint)
    }

    /// The OpenDAL operator for this bucket and prefix, signing with `credentials` only: no
    /// configuration files, instance metadata or other sources of the environment are read.
    pub(super) fn operator(&self, credentials: &ObjectStoreCredentials) -> Result<Operator> {
        let root = format!("/{}", self.prefix.trim_matches('/'));
        let mut builder = S3::default()
            .endpoint(&self.endpoint)
            .region(&self.region)
            .bucket(&self.bucket)
            .root(&root)
            .access_key_id(&credentials.access_key_id)
            .secret_access_key(credentials.secret_access_key.expose())
            .disable_config_load()
            .disable_ec2_metadata();
        if self.addressing == Addressing::VirtualHost {
            builder = builder.enable_virtual_host_style();
        }
        let operator = Operator::new(builder)
            .map_err(|err| Error::Io(std::io::Error::other(err)))?
            .layer(
                TimeoutLayer::new().with_timeout(REQUEST_TIMEOUT).with_io_timeout(REQUEST_TIMEOUT),
            )
            .layer(RetryLayer::new().with_max_times(REQUEST_ATTEMPTS));
        Ok(operator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_stay_out_of_debug() {
        let credentials = ObjectStoreCredentials {
            access_key_id: "AKIAEXAMPLE".to_owned(),
            secret_access_key: Secret::new("wJalrXUtnFEMI"),
        };
        let shown = format!("{credentials:?}");
        assert!(!shown.contains("wJalrXUtnFEMI"), "{shown}");
        assert!(shown.contains("<secret>"));
    }

    #[test]
    fn a_bucket_section() {
        let config: ObjectStoreConfig = serde_yaml::from_str(
            "endpoint: http://127.0.0.1:8333\nbucket: partners\nprefix: share/\n",
        )
        .expect("parse");
        assert_eq!(config.region, "us-east-1");
        assert_eq!(config.addressing, Addressing::Path);
        assert_eq!(config.describe(), "partners/share at http://127.0.0.1:8333");
    }

    #[test]
    fn a_credentials_file_that_does_not_parse_is_not_quoted() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("keys.yaml");
        std::fs::write(&path, "secret_access_key: [hunter2").expect("write");
        let config = ObjectStoreConfig {
            endpoint: "http://127.0.0.1:1".to_owned(),
            region: default_region(),
            bucket: "b".to_owned(),
            prefix: String::new(),
            addressing: Addressing::Path,
            credentials_file: Some(path),
        };
        let err = ObjectStoreCredentials::load(&config).expect_err("bad file");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}
