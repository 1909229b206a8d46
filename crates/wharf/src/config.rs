//! The configuration file: one YAML document whose sections belong to the crates that use
//! them (`storage` to wharf-vfs, `access` to wharf-access, one per protocol), composed here.
//!
//! Relative paths are resolved once, at load: `data_dir` against the configuration file's
//! directory (the working directory for the embedded default), every other path against
//! `data_dir`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use wharf_access::{AccessConfig, DefenderConfig, ProxyConfig, SessionLimits};
use wharf_vfs::StorageConfig;

/// The configuration compiled into the binary: what `wharf serve` runs without `--config`.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../../config/default.yaml");

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WharfConfig {
    /// Where Wharf keeps its state: the share (by default), the users file, host keys,
    /// certificates.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// The storage tree (wharf-vfs).
    #[serde(default)]
    pub storage: StorageConfig,
    /// Users and logins (wharf-access).
    #[serde(default)]
    pub access: AccessConfig,
    /// Banning misbehaving addresses on every protocol (wharf-access).
    #[serde(default)]
    pub defender: DefenderConfig,
    /// The shared database of a cluster (wharf-db): the users come from it, and a change
    /// reaches every node at once. Absent: users from `access` (the users file).
    #[serde(default)]
    pub database: Option<wharf_db::DatabaseConfig>,
    /// Load balancers in front of this node, whose connections begin with a PROXY header
    /// (wharf-access); none when absent. Read at start only.
    #[serde(default)]
    pub proxy_protocol: ProxyConfig,
    /// Log output.
    #[serde(default)]
    pub log: LogConfig,
    /// How long transfers in progress may run on after a shutdown signal.
    #[serde(default = "default_grace", with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// The Prometheus endpoint; off when absent.
    #[serde(default)]
    pub metrics: Option<MetricsConfig>,
    /// The admin API (`crate::admin`); off when absent.
    #[serde(default)]
    pub admin: Option<crate::admin::AdminConfig>,
    /// Event hooks (wharf-hooks): uploads, deletes, logins, bans told to HTTP endpoints and
    /// commands; off when absent. Read at start only.
    #[serde(default)]
    pub hooks: Option<wharf_hooks::HooksConfig>,
    /// External authentication (`crate::external_auth`): names the users file does not know
    /// are checked by an HTTP endpoint; off when absent. Read at start only.
    #[serde(default)]
    pub external_auth: Option<crate::external_auth::ExternalAuthConfig>,
    /// FTP (wharf-ftp); off when absent.
    #[serde(default)]
    pub ftp: Option<wharf_ftp::FtpConfig>,
    /// FTPS (wharf-ftps): TLS on the FTP listeners and implicit FTPS listeners; off when
    /// absent.
    #[serde(default)]
    pub ftps: Option<wharf_ftps::FtpsConfig>,
    /// SFTP over SSH (wharf-sftp); off when absent.
    #[serde(default)]
    pub sftp: Option<wharf_sftp::SftpConfig>,
    /// TFTP (wharf-tftp); off when absent.
    #[serde(default)]
    pub tftp: Option<wharf_tftp::TftpConfig>,
}

/// The `metrics` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Where `GET /metrics` and `GET /bans` are answered (keep it on loopback or a management
    /// network: it is not authenticated).
    pub listen: std::net::SocketAddr,
    /// Connections served at once, in total and per address (each holds a socket and a task
    /// for at most 5 s).
    #[serde(default)]
    pub limits: MetricsLimits,
}

/// The `metrics.limits` section: the keys of the protocols' `limits`, with defaults sized for
/// a few scrapers rather than for clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsLimits {
    /// Connections at once, from everyone.
    #[serde(default = "default_metrics_max")]
    pub max_sessions: usize,
    /// Connections at once from one address.
    #[serde(default = "default_metrics_max_per_address")]
    pub max_sessions_per_address: usize,
}

fn default_metrics_max() -> usize {
    64
}

fn default_metrics_max_per_address() -> usize {
    8
}

impl Default for MetricsLimits {
    fn default() -> Self {
        MetricsLimits {
            max_sessions: default_metrics_max(),
            max_sessions_per_address: default_metrics_max_per_address(),
        }
    }
}

impl From<MetricsLimits> for SessionLimits {
    fn from(limits: MetricsLimits) -> SessionLimits {
        SessionLimits {
            max_sessions: limits.max_sessions,
            max_sessions_per_address: limits.max_sessions_per_address,
        }
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("wharf-data")
}

fn default_grace() -> Duration {
    Duration::from_secs(30)
}

/// The `log` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `human` (default) or `json` (one JSON object per line).
    #[serde(default)]
    pub format: LogFormat,
    /// A filter such as `info` or `info,wharf::audit=debug`; `RUST_LOG` overrides it.
    #[serde(default)]
    pub level: Option<String>,
    /// Audit log: every audit event as one JSON object per line. Off when absent.
    #[serde(default)]
    pub audit_file: Option<PathBuf>,
    /// Transfer log in the classic xferlog format, one line per download or upload on any
    /// protocol. Off when absent.
    #[serde(default)]
    pub transfer_log: Option<PathBuf>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// Where a configuration came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// A file given with `--config`.
    File(PathBuf),
    /// The default compiled into the binary.
    Embedded,
}

impl std::fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigSource::File(path) => write!(f, "{}", path.display()),
            ConfigSource::Embedded => f.write_str("the embedded default configuration"),
        }
    }
}

/// A configuration with its paths resolved.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The parsed configuration, paths made absolute.
    pub config: WharfConfig,
    /// Where it came from.
    pub source: ConfigSource,
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Not valid YAML, an unknown key or a bad value; the message names the key and line.
    #[error("{origin}: {source}")]
    Parse {
        /// Where the configuration came from.
        origin: ConfigSource,
        /// The parser's error.
        source: serde_yaml::Error,
    },
    /// The working directory is unknown (needed to resolve relative paths).
    #[error("cannot determine the working directory: {0}")]
    WorkingDir(std::io::Error),
    /// A value that parses but cannot work with the rest of the configuration.
    #[error("{origin}: {key}: {reason}")]
    Invalid {
        /// Where the configuration came from.
        origin: ConfigSource,
        /// The key, as a path into the file.
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl WharfConfig {
    /// The longest a transfer in progress may go without writing anything under these
    /// settings: an FTP data connection's stall timeout, an SFTP connection's idle timeout,
    /// TFTP's retransmissions, or the shutdown grace of a draining server.
    pub fn longest_silent_transfer(&self) -> Duration {
        let ftp = self.ftp.as_ref().map(|ftp| ftp.data_stall_timeout);
        let sftp = self.sftp.as_ref().map(|sftp| sftp.idle_timeout);
        let tftp = self.tftp.as_ref().map(|tftp| tftp.timeout.saturating_mul(tftp.max_retries + 1));
        [ftp, sftp, tftp].into_iter().flatten().fold(self.shutdown_grace, Duration::max)
    }

    /// Checks what each section cannot check alone.
    fn check_across_sections(&self) -> Result<(), (&'static str, String)> {
        // A temporary file of another Wharf process's upload (one draining during an
        // upgrade) must never look stale while that upload may still write to it.
        let silent = self.longest_silent_transfer();
        if self.storage.stale_temporary_age < silent {
            return Err((
                "storage.stale_temporary_age",
                format!(
                    "{} is shorter than the longest a transfer may stay silent here ({}); \
                     temporary files of uploads in progress could be taken for leftovers",
                    humantime_serde::re::humantime::format_duration(
                        self.storage.stale_temporary_age
                    ),
                    humantime_serde::re::humantime::format_duration(silent),
                ),
            ));
        }
        Ok(())
    }
}

impl LoadedConfig {
    /// Loads `path`, or the embedded default when `None`.
    pub fn load(path: Option<&Path>) -> Result<LoadedConfig, ConfigError> {
        let cwd = std::env::current_dir().map_err(ConfigError::WorkingDir)?;
        match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
                let base = cwd.join(path.parent().unwrap_or(Path::new("")));
                Self::parse(&text, ConfigSource::File(path.to_owned()), &base)
            }
            None => Self::parse(EMBEDDED_DEFAULT, ConfigSource::Embedded, &cwd),
        }
    }

    /// Parses `text` and resolves relative paths against `base`.
    pub fn parse(
        text: &str,
        source: ConfigSource,
        base: &Path,
    ) -> Result<LoadedConfig, ConfigError> {
        let mut config: WharfConfig = serde_yaml::from_str(text)
            .map_err(|err| ConfigError::Parse { origin: source.clone(), source: err })?;
        config.check_across_sections().map_err(|(key, reason)| ConfigError::Invalid {
            origin: source.clone(),
            key,
            reason,
        })?;
        if let Some(hooks) = &config.hooks {
            hooks.validate().map_err(|err| ConfigError::Invalid {
                origin: source.clone(),
                key: "hooks",
                reason: err.to_string(),
            })?;
        }
        if let Some(external) = &config.external_auth {
            external.validate().map_err(|reason| ConfigError::Invalid {
                origin: source.clone(),
                key: "external_auth",
                reason,
            })?;
        }
        config.data_dir = base.join(&config.data_dir);
        config.storage.root = config.data_dir.join(&config.storage.root);
        let credential_files =
            config.storage.buckets.values_mut().map(|bucket| &mut bucket.credentials_file);
        let database_password = config.database.as_mut().map(|db| &mut db.password_file);
        for path in [
            &mut config.access.users_file,
            &mut config.log.audit_file,
            &mut config.log.transfer_log,
        ]
        .into_iter()
        .chain(credential_files)
        .chain(database_password)
        {
            if let Some(relative) = path.take() {
                *path = Some(config.data_dir.join(relative));
            }
        }
        if let Some(tls) = config.database.as_mut().and_then(|db| db.tls.as_mut()) {
            tls.ca_file = config.data_dir.join(&tls.ca_file);
        }
        if let Some(admin) = config.admin.as_mut() {
            admin.tokens_file = config.data_dir.join(&admin.tokens_file);
            if let Some(tls) = admin.tls.as_mut() {
                tls.certificate_chain = config.data_dir.join(&tls.certificate_chain);
                tls.private_key = config.data_dir.join(&tls.private_key);
            }
        }
        if let Some(token) = config.external_auth.as_mut().and_then(|e| e.token_file.as_mut()) {
            *token = config.data_dir.join(&*token);
        }
        if let Some(hooks) = config.hooks.as_mut() {
            hooks.spool_dir = config.data_dir.join(&hooks.spool_dir);
            let secrets = hooks.rules.iter_mut().filter_map(|rule| rule.http.as_mut());
            for http in secrets {
                if let Some(secret) = http.secret_file.as_mut() {
                    *secret = config.data_dir.join(&*secret);
                }
            }
        }
        Ok(LoadedConfig { config, source })
    }

    /// The users file, if the configuration names one (absolute).
    pub fn users_file(&self) -> Option<&Path> {
        self.config.access.users_file.as_deref()
    }

    /// Where the defender's bans are kept across restarts.
    pub fn bans_file(&self) -> PathBuf {
        self.config.data_dir.join("bans.yaml")
    }

    /// Loads the same source again (for a reload); the embedded default is re-parsed.
    pub fn reload(&self) -> Result<LoadedConfig, ConfigError> {
        match &self.source {
            ConfigSource::File(path) => LoadedConfig::load(Some(path)),
            ConfigSource::Embedded => LoadedConfig::load(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_parses() {
        let loaded =
            LoadedConfig::parse(EMBEDDED_DEFAULT, ConfigSource::Embedded, Path::new("/srv"))
                .expect("the embedded default is valid");
        assert_eq!(loaded.config.data_dir, Path::new("/srv/wharf-data"));
        assert_eq!(loaded.config.storage.root, Path::new("/srv/wharf-data/share"));
        assert_eq!(loaded.users_file(), Some(Path::new("/srv/wharf-data/users.yaml")));
    }

    #[test]
    fn a_bucket_section_and_its_key_file_relative_to_the_data_directory() {
        let text = "data_dir: d\nstorage:\n  buckets:\n    /archive:\n      \
                    endpoint: http://127.0.0.1:8333\n      bucket: b\n      \
                    credentials_file: keys.yaml\naccess:\n  users: []\n";
        let loaded =
            LoadedConfig::parse(text, ConfigSource::File("w.yaml".into()), Path::new("/srv"))
                .expect("valid");
        let bucket = &loaded.config.storage.buckets["/archive"];
        assert_eq!(bucket.bucket, "b");
        assert_eq!(bucket.credentials_file.as_deref(), Some(Path::new("/srv/d/keys.yaml")));
        let summary = crate::check::check(&loaded).expect("check");
        assert!(summary.contains("share/archive -> bucket b"), "{summary}");
        assert!(summary.contains("keys from /srv/d/keys.yaml"), "{summary}");
    }

    #[test]
    fn unknown_keys_are_named_with_their_line() {
        let text = "data_dir: d\nstorage:\n  root: share\n  fsync_on_comit: true\n";
        let err = LoadedConfig::parse(text, ConfigSource::File("w.yaml".into()), Path::new("/"))
            .expect_err("misspelled key");
        let message = err.to_string();
        assert!(message.contains("fsync_on_comit"), "{message}");
        assert!(message.contains("line 4"), "{message}");
        assert!(message.starts_with("w.yaml: "), "{message}");
    }

    #[test]
    fn metrics_limits_have_their_own_defaults() {
        let parse = |text: &str| {
            LoadedConfig::parse(text, ConfigSource::Embedded, Path::new("/x"))
                .expect("valid")
                .config
                .metrics
                .expect("metrics section")
                .limits
        };
        let default = parse("metrics: { listen: \"127.0.0.1:0\" }\n");
        assert_eq!((default.max_sessions, default.max_sessions_per_address), (64, 8));
        let partial = parse("metrics: { listen: \"127.0.0.1:0\", limits: { max_sessions: 10 } }\n");
        assert_eq!((partial.max_sessions, partial.max_sessions_per_address), (10, 8));
    }

    #[test]
    fn a_stale_temporary_age_shorter_than_a_silent_transfer_is_refused() {
        let text = "storage: { stale_temporary_age: 5m }\nsftp: { idle_timeout: 10m }\n";
        let err = LoadedConfig::parse(text, ConfigSource::File("w.yaml".into()), Path::new("/"))
            .expect_err("too short");
        let message = err.to_string();
        assert!(message.starts_with("w.yaml: storage.stale_temporary_age: 5m "), "{message}");
        assert!(message.contains("(10m)"), "{message}");
        let text = "storage: { stale_temporary_age: 10m }\nsftp: { idle_timeout: 10m }\n";
        let loaded =
            LoadedConfig::parse(text, ConfigSource::Embedded, Path::new("/")).expect("enough");
        assert_eq!(loaded.config.storage.stale_temporary_age, Duration::from_secs(600));
        let default = LoadedConfig::parse("{}", ConfigSource::Embedded, Path::new("/"))
            .expect("the default age fits the default timeouts");
        assert_eq!(default.config.storage.stale_temporary_age, Duration::from_secs(3600));
    }

    #[test]
    fn the_external_auth_section_is_checked_and_its_token_file_resolved() {
        let text =
            "data_dir: d\nexternal_auth: { url: \"http://127.0.0.1:9/auth\", token_file: t }\n";
        let loaded =
            LoadedConfig::parse(text, ConfigSource::Embedded, Path::new("/srv")).expect("valid");
        let external = loaded.config.external_auth.expect("section");
        assert_eq!(external.token_file.as_deref(), Some(Path::new("/srv/d/t")));
        let text = "external_auth: { url: \"ftp://127.0.0.1/\" }\n";
        let err = LoadedConfig::parse(text, ConfigSource::File("w.yaml".into()), Path::new("/"))
            .expect_err("not http");
        assert!(err.to_string().starts_with("w.yaml: external_auth: url:"), "{err}");
    }

    #[test]
    fn absolute_paths_are_kept() {
        let text = "data_dir: /var/lib/wharf\nstorage: { root: /srv/share }\naccess: { users_file: /etc/wharf/users.yaml }\n";
        let loaded =
            LoadedConfig::parse(text, ConfigSource::Embedded, Path::new("/x")).expect("valid");
        assert_eq!(loaded.config.storage.root, Path::new("/srv/share"));
        assert_eq!(loaded.users_file(), Some(Path::new("/etc/wharf/users.yaml")));
    }
}
