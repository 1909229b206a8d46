//! The `access` section of the configuration: where users come from and how logins behave.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::budget::MemoryConfig;
use crate::login::LoginSettings;
use crate::user::{UserConfig, UserDb, UserError, UsersFile};

/// The `access` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessConfig {
    /// A YAML file with `users: [...]`, re-read on reload. Relative to the configuration
    /// file's directory.
    #[serde(default)]
    pub users_file: Option<PathBuf>,
    /// Users defined inline, in addition to the users file.
    #[serde(default)]
    pub users: Vec<UserConfig>,
    /// How long a failed password login waits before it is answered.
    #[serde(default = "default_failure_delay", with = "humantime_serde")]
    pub login_failure_delay: Duration,
    /// Password verifications run at once, each on its own thread (an argon2 check takes
    /// ~19 MiB, which the thread keeps for its next check).
    #[serde(default = "default_concurrent_checks")]
    pub max_concurrent_password_checks: usize,
    /// Bytes of client-driven buffers one session, and all sessions together, may hold
    /// (`crate::budget`).
    #[serde(default)]
    pub memory: MemoryConfig,
}

fn default_failure_delay() -> Duration {
    LoginSettings::default().failure_delay
}

fn default_concurrent_checks() -> usize {
    LoginSettings::default().max_concurrent_checks
}

impl Default for AccessConfig {
    fn default() -> Self {
        AccessConfig {
            users_file: None,
            users: Vec::new(),
            login_failure_delay: default_failure_delay(),
            max_concurrent_password_checks: default_concurrent_checks(),
            memory: MemoryConfig::default(),
        }
    }
}

/// Why the users could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum UsersLoadError {
    /// The users file could not be read.
    #[error("cannot read users file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The users file is not valid YAML of the expected shape (the message has the line).
    #[error("users file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's error, with line and column.
        source: serde_yaml::Error,
    },
    /// A user definition is wrong.
    #[error(transparent)]
    User(#[from] UserError),
}

impl AccessConfig {
    /// The login settings.
    pub fn login_settings(&self) -> LoginSettings {
        LoginSettings {
            failure_delay: self.login_failure_delay,
            max_concurrent_checks: self.max_concurrent_password_checks,
        }
    }

    /// The users file's path, resolved against `base_dir`.
    pub fn users_file_path(&self, base_dir: &Path) -> Option<PathBuf> {
        self.users_file.as_ref().map(|p| base_dir.join(p))
    }

    /// Loads every user: the users file (if any) and the inline ones.
    pub fn load_users(&self, base_dir: &Path) -> Result<UserDb, UsersLoadError> {
        let mut configs = self.users.clone();
        if let Some(path) = self.users_file_path(base_dir) {
            let text = std::fs::read_to_string(&path)
                .map_err(|source| UsersLoadError::Read { path: path.clone(), source })?;
            let file: UsersFile = serde_yaml::from_str(&text)
                .map_err(|source| UsersLoadError::Parse { path: path.clone(), source })?;
            configs.extend(file.users);
        }
        Ok(UserDb::from_configs(configs)?)
    }
}
