//! External authentication: names the users file does not know are asked of a directory
//! service (LDAP, AD or anything else behind a small service), which answers with the user's
//! definition. Wharf links no directory library: the binary implements [`Directory`] over
//! HTTP, tests implement it in process.
//!
//! The rules, in one place:
//!
//! - **Local first.** A name found in the users file authenticates locally and is never asked
//!   (break-glass and admin accounts work while the service is down). Only logins with a
//!   password, a public key, or both are asked; anonymous FTP and TFTP identities are local.
//! - **What the service decides.** Whether the password is right (the definition's `password`
//!   field is ignored). For a public key, the key must be listed in the answer's
//!   `authorized_keys` (Wharf has verified the signature; the service says whose key it is).
//!   Everything else in the definition (disabled, protocols, networks, TLS, SSH methods,
//!   homes, mounts, permissions, quotas, bandwidth, `max_sessions`) is applied exactly as for
//!   a local user, after the same validation, so a hostile answer cannot reach outside the
//!   share.
//! - **Cache.** An accepted answer is kept for `cache_ttl`, keyed by the name, the client's
//!   address and a SHA-256 digest of the credential (never the password itself). Refusals
//!   are not kept, and a refusal removes what was kept for the same key. At most
//!   `max_cached` answers are kept: names are the client's choice.
//! - **Down.** No answer within `timeout` (waiting for a place among `max_in_flight` asks
//!   included), a status other than the refusals, or a malformed answer: the login is
//!   refused with a temporary error, not counted against the client. With `serve_stale_for`
//!   above zero, an answer kept for the same name, address and credential that expired less
//!   than that long ago is used instead.

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use tokio::sync::Semaphore;
// Tokio's clock, so that tests can move time on instead of waiting for it.
use tokio::time::Instant;

use crate::password::Password;
use crate::protocol::Protocol;
use crate::user::{User, UserConfig, canonical_ip};

/// The credential a directory is asked about.
#[derive(Debug, Clone)]
pub enum DirectoryCredential {
    /// A password, to be checked by the directory.
    Password(Password),
    /// An SSH public key (its signature verified by Wharf, or only offered so far).
    PublicKey(ssh_key::PublicKey),
    /// An SSH key and a password; the directory checks the password.
    PublicKeyAndPassword {
        /// The key.
        key: ssh_key::PublicKey,
        /// The password.
        password: Password,
    },
}

impl DirectoryCredential {
    /// A digest that identifies the credential in the cache without keeping it. Each kind is
    /// prefixed with its own tag, so a password can never collide with a key.
    fn digest(&self) -> [u8; 32] {
        let mut hash = Sha256::new();
        let key_bytes = |key: &ssh_key::PublicKey| {
            key.fingerprint(ssh_key::HashAlg::Sha256).as_bytes().to_vec()
        };
        match self {
            DirectoryCredential::Password(password) => {
                hash.update(b"password\0");
                hash.update(password.expose());
            }
            DirectoryCredential::PublicKey(key) => {
                hash.update(b"publickey\0");
                hash.update(key_bytes(key));
            }
            DirectoryCredential::PublicKeyAndPassword { key, password } => {
                hash.update(b"publickey+password\0");
                hash.update(key_bytes(key));
                hash.update(password.expose());
            }
        }
        hash.finalize().into()
    }
}

/// One question to the directory: may this client log in as this user, and as whom?
#[derive(Debug, Clone)]
pub struct DirectoryRequest {
    /// The user name as given by the client.
    pub user: String,
    /// The protocol of the login.
    pub protocol: Protocol,
    /// The client's address.
    pub address: IpAddr,
    /// What the client offered.
    pub credential: DirectoryCredential,
}

/// The directory's answer.
#[derive(Debug)]
pub enum DirectoryAnswer {
    /// The credential is right; the user is defined so (same schema as a users-file entry).
    Accepted(Box<UserConfig>),
    /// Wrong credential or unknown user.
    Refused,
    /// No usable answer (the reason is logged, never shown to the client).
    Unavailable(String),
}

/// What a directory answers, later.
pub type DirectoryReply = Pin<Box<dyn Future<Output = DirectoryAnswer> + Send>>;

/// A directory service that checks credentials and defines users.
///
/// Implementations need not bound their own time or concurrency: [`ExternalAuth`] does.
pub trait Directory: Send + Sync + Debug {
    /// Asks about `request`.
    fn ask(&self, request: DirectoryRequest) -> DirectoryReply;
}

/// The budgets and cache of external authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExternalAuthSettings {
    /// How long one ask may take, waiting for a place among `max_in_flight` included.
    pub timeout: Duration,
    /// How long an accepted answer is used without asking again.
    pub cache_ttl: Duration,
    /// How long after `cache_ttl` a kept answer may still be used while the directory is down
    /// (zero: never).
    pub serve_stale_for: Duration,
    /// Asks in flight at once; further logins wait (within `timeout`).
    pub max_in_flight: usize,
    /// Answers kept at most.
    pub max_cached: usize,
    /// Mounts (the home included) an answer may define at most: each mount of a session holds
    /// an open folder, and the descriptor budget counts on this bound.
    pub max_mounts: usize,
}

impl Default for ExternalAuthSettings {
    fn default() -> Self {
        ExternalAuthSettings {
            timeout: Duration::from_secs(3),
            cache_ttl: Duration::from_secs(30),
            serve_stale_for: Duration::ZERO,
            max_in_flight: 16,
            max_cached: 10_000,
            max_mounts: 8,
        }
    }
}

/// What a lookup found.
#[derive(Debug, Clone)]
pub(crate) enum Lookup {
    /// The directory accepted the credential (now, or within the cache's time).
    Found(Arc<User>),
    /// The directory refused it.
    Refused,
    /// No usable answer, and nothing kept to fall back on.
    Unavailable,
}

/// The cache's key: never the credential itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    user: String,
    address: IpAddr,
    credential: [u8; 32],
}

#[derive(Debug)]
struct Kept {
    user: Arc<User>,
    at: Instant,
}

/// Asks a [`Directory`] within budgets and keeps its accepted answers for a while.
#[derive(Debug)]
pub struct ExternalAuth {
    directory: Arc<dyn Directory>,
    settings: ExternalAuthSettings,
    in_flight: Semaphore,
    cache: Mutex<HashMap<CacheKey, Kept>>,
}

impl ExternalAuth {
    /// External authentication through `directory` under `settings`.
    pub fn new(directory: Arc<dyn Directory>, settings: ExternalAuthSettings) -> Self {
        ExternalAuth {
            directory,
            in_flight: Semaphore::new(settings.max_in_flight.max(1)),
            settings,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &ExternalAuthSettings {
        &self.settings
    }

    /// Who `request` logs in as, from the cache or the directory.
    pub(crate) async fn look_up(&self, request: DirectoryRequest) -> Lookup {
        let key = CacheKey {
            user: request.user.clone(),
            address: canonical_ip(request.address),
            credential: request.credential.digest(),
        };
        if let Some(user) = self.kept(&key, self.settings.cache_ttl) {
            return Lookup::Found(user);
        }
        let name = request.user.clone();
        let reason = match self.ask(request).await {
            DirectoryAnswer::Accepted(config) => match self.validate(&name, *config) {
                Ok(user) => {
                    let user = Arc::new(user);
                    self.keep(key, user.clone());
                    return Lookup::Found(user);
                }
                Err(reason) => format!("malformed answer: {reason}"),
            },
            DirectoryAnswer::Refused => {
                self.cache.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
                return Lookup::Refused;
            }
            DirectoryAnswer::Unavailable(reason) => reason,
        };
        let stale_limit = self.settings.cache_ttl.saturating_add(self.settings.serve_stale_for);
        if !self.settings.serve_stale_for.is_zero()
            && let Some(user) = self.kept(&key, stale_limit)
        {
            tracing::warn!(user = %name, reason = %reason, "authentication service unavailable; using the answer kept from before");
            return Lookup::Found(user);
        }
        tracing::warn!(user = %name, reason = %reason, "authentication service unavailable");
        Lookup::Unavailable
    }

    /// Asks the directory within the timeout, waiting for a place among those in flight first.
    async fn ask(&self, request: DirectoryRequest) -> DirectoryAnswer {
        let timeout = self.settings.timeout;
        let deadline = Instant::now() + timeout;
        let place = tokio::time::timeout_at(deadline, self.in_flight.acquire()).await;
        // A place freed at the deadline itself is of no use: the ask would be cut at once.
        let _place = match place {
            Ok(Ok(place)) if Instant::now() < deadline => place,
            _ => {
                return DirectoryAnswer::Unavailable(format!(
                    "all {} places in flight taken for {} ms",
                    self.settings.max_in_flight,
                    timeout.as_millis()
                ));
            }
        };
        match tokio::time::timeout_at(deadline, self.directory.ask(request)).await {
            Ok(answer) => answer,
            Err(_) => {
                DirectoryAnswer::Unavailable(format!("no answer within {} ms", timeout.as_millis()))
            }
        }
    }

    /// The definition an answer gives for `asked`, checked like a users-file entry.
    fn validate(&self, asked: &str, mut config: UserConfig) -> Result<User, String> {
        if config.name != asked {
            return Err(format!("the answer defines `{}`, not the user asked", config.name));
        }
        // The directory checked the password; a hash in its own format need not parse here.
        config.password = None;
        let mounts = config.mounts.len() + usize::from(config.home.is_some());
        if mounts > self.settings.max_mounts {
            return Err(format!(
                "{mounts} mounts, more than the {} allowed",
                self.settings.max_mounts
            ));
        }
        User::from_config(config).map_err(|err| err.to_string())
    }

    /// The answer kept for `key` if it is younger than `age`.
    fn kept(&self, key: &CacheKey, age: Duration) -> Option<Arc<User>> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(key).filter(|kept| kept.at.elapsed() < age).map(|kept| kept.user.clone())
    }

    /// Keeps `user` for `key`, making room first: expired answers go, then the oldest.
    fn keep(&self, key: CacheKey, user: Arc<User>) {
        if self.settings.cache_ttl.is_zero() || self.settings.max_cached == 0 {
            return;
        }
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= self.settings.max_cached && !cache.contains_key(&key) {
            let useful = self.settings.cache_ttl.saturating_add(self.settings.serve_stale_for);
            cache.retain(|_, kept| kept.at.elapsed() < useful);
            if cache.len() >= self.settings.max_cached {
                let oldest = cache.iter().min_by_key(|(_, kept)| kept.at).map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    cache.remove(&oldest);
                }
            }
        }
        cache.insert(key, Kept { user, at: Instant::now() });
    }

    /// How many answers are kept now.
    pub fn cached(&self) -> usize {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}
