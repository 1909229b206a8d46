//! Login: the one place every protocol proves who a client is and gets a [`Session`].
//!
//! An unknown user and a wrong password are indistinguishable: both verify a password hash
//! (a decoy for the unknown user), both wait the same failure delay, both get
//! [`LoginError::Denied`]. The reason is logged, never shown to the client.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;
use wharf_vfs::{Mount, Share, Tree, VPath};

use crate::audit::{Actor, AuditEvent, AuditSink, Operation, Outcome};
use crate::defender::Defender;
use crate::external_auth::{DirectoryCredential, DirectoryRequest, ExternalAuth, Lookup};
use crate::live_sessions::LiveSessions;
use crate::password::{Password, StoredHash};
use crate::permissions::Permissions;
use crate::protocol::{Protocol, ProtocolFamily};
use crate::quota::{BandwidthConfig, QuotaAccount, QuotaConfig};
use crate::session::{Places, ResourceLimits, Session};
use crate::shared_places::SharedPlaces;
use crate::shared_quota::{LedgerVersion, SharedLedgers};
use crate::throttle::RateLimiter;
use crate::user::{SshAuthMethod, TlsRequirement, User, UserDb};
use crate::user_sessions::{UserCapReached, UserPlace, UserSessions};
use crate::verifier::PasswordChecker;

/// What the client offers as proof.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A password.
    Password(Password),
    /// An SSH public key whose signature the SSH layer has verified.
    PublicKey(ssh_key::PublicKey),
    /// An SSH key (verified) and then a password.
    PublicKeyAndPassword {
        /// The verified key.
        key: ssh_key::PublicKey,
        /// The password.
        password: Password,
    },
    /// Anonymous FTP onto a passwordless identity; the session is read-only.
    Anonymous,
    /// The client's source network, mapped by TFTP rules onto a passwordless identity.
    SourceNetwork,
}

impl Credential {
    fn carries_password(&self) -> bool {
        matches!(self, Credential::Password(_) | Credential::PublicKeyAndPassword { .. })
    }
}

/// A login attempt.
#[derive(Debug, Clone)]
pub struct LoginRequest {
    /// The protocol asking (FTPS when the control connection is protected by TLS).
    pub protocol: Protocol,
    /// The client's address.
    pub peer: SocketAddr,
    /// The user name as given.
    pub user: String,
    /// The proof offered.
    pub credential: Credential,
}

/// Why a login failed, as a front-end may tell the client.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Wrong credentials, unknown or disabled user, or not allowed from here or by this
    /// protocol. Deliberately one answer.
    #[error("login incorrect")]
    Denied,
    /// The user must protect FTP with TLS before logging in.
    #[error("this account requires a TLS-protected connection")]
    TlsRequired,
    /// The key was accepted; the user must also give a password (SSH partial success).
    #[error("a password is required as well")]
    NeedsPassword,
    /// The credentials were right but the user's folders could not be opened.
    #[error("the user's storage is unavailable: {0}")]
    Unavailable(#[source] wharf_vfs::Error),
    /// Logins are paused: the shared user database cannot be reached, so a change made on
    /// another node (a disabled user, a new password) may not be known here. Temporary.
    #[error("logins are paused: the user database cannot be reached; try again later")]
    Paused,
    /// The credentials were right but the user has this many sessions open already (its
    /// `max_sessions`; across the cluster in a cluster). Temporary.
    #[error("the user has {0} sessions open already")]
    TooManySessions(usize),
    /// The name is not a local one and the external authentication service gave no usable
    /// answer (down, too slow, busy, or a malformed answer). Temporary; not the client's fault.
    #[error("the authentication service is unavailable; try again later")]
    AuthServiceUnavailable,
}

/// Why a login was denied, for the log only.
#[derive(Debug, Clone, Copy)]
enum DenyReason {
    UnknownUser,
    BadCredential,
    Disabled,
    AddressBanned,
    ProtocolNotAllowed,
    NetworkNotAllowed,
    MethodNotAllowed,
    DirectoryRefused,
}

impl DenyReason {
    fn as_str(self) -> &'static str {
        match self {
            DenyReason::UnknownUser => "unknown user",
            DenyReason::BadCredential => "wrong credentials",
            DenyReason::Disabled => "account disabled",
            DenyReason::AddressBanned => "source address banned by the defender",
            DenyReason::ProtocolNotAllowed => "protocol not allowed for this user",
            DenyReason::NetworkNotAllowed => "source address not allowed for this user",
            DenyReason::MethodNotAllowed => "authentication method not allowed for this user",
            DenyReason::DirectoryRefused => "refused by the authentication service",
        }
    }
}

/// Settings of the login process.
#[derive(Debug, Clone)]
pub struct LoginSettings {
    /// How long a failed password login waits before answering (slows guessing).
    pub failure_delay: Duration,
    /// Password hashes verified at once, each on its own thread; an argon2 check takes ~19 MiB
    /// and a core for tens of milliseconds, so a flood of logins must queue rather than
    /// exhaust the machine, and each thread keeps one check's memory.
    pub max_concurrent_checks: usize,
}

impl Default for LoginSettings {
    fn default() -> Self {
        LoginSettings { failure_delay: Duration::from_secs(1), max_concurrent_checks: 2 }
    }
}

/// Checks credentials and opens sessions over the shared storage.
pub struct Authenticator {
    users: RwLock<Arc<UserDb>>,
    share: Share,
    settings: LoginSettings,
    checks: PasswordChecker,
    next_session: AtomicU64,
    defender: Arc<Defender>,
    /// Per-user resources shared by the user's sessions, made at first login.
    runtimes: Mutex<HashMap<String, Arc<UserRuntime>>>,
    /// Quota ledgers by user name. They outlive reloads (a reload only measures them again),
    /// so a session opened before a reload and one opened after it reserve from one ledger
    /// and cannot cross the limit together.
    ledgers: Mutex<HashMap<String, QuotaAccount>>,
    /// Whether new logins are refused with [`LoginError::Paused`] (the users' source, a shared
    /// database, cannot be reached). Sessions already open go on.
    paused: AtomicBool,
    /// Where quota ledgers are kept when the nodes of a cluster share them.
    shared_ledgers: Option<Arc<dyn SharedLedgers>>,
    /// Each user's open sessions, against its `max_sessions`.
    user_sessions: Arc<UserSessions>,
    /// Where users' sessions are also counted when the nodes of a cluster share them.
    shared_places: Option<Arc<dyn SharedPlaces>>,
    /// Where every session's audit events also go (the event hooks).
    audit_sink: Option<Arc<dyn AuditSink>>,
    /// The sessions open now, for operators to list and end.
    live: Arc<LiveSessions>,
    /// Where names the users file does not know are looked up (`external_auth.rs`).
    external: Option<Arc<ExternalAuth>>,
}

/// What the sessions of one user share: the quota ledger and the rate limiters.
struct UserRuntime {
    quota_config: QuotaConfig,
    bandwidth_config: BandwidthConfig,
    /// Measured at the first login that needs it.
    quota: OnceCell<QuotaAccount>,
    download: Option<Arc<RateLimiter>>,
    upload: Option<Arc<RateLimiter>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl Authenticator {
    /// An authenticator for `users` over the storage tree `share` (a [`wharf_vfs::LocalStorage`]
    /// converts into one).
    pub fn new(share: impl Into<Share>, users: UserDb, settings: LoginSettings) -> Self {
        let share = share.into();
        let permits = settings.max_concurrent_checks.max(1);
        Authenticator {
            users: RwLock::new(Arc::new(users)),
            share,
            settings,
            checks: PasswordChecker::new(permits),
            next_session: AtomicU64::new(1),
            defender: Arc::new(Defender::disabled()),
            runtimes: Mutex::new(HashMap::new()),
            ledgers: Mutex::new(HashMap::new()),
            paused: AtomicBool::new(false),
            shared_ledgers: None,
            user_sessions: Arc::default(),
            shared_places: None,
            audit_sink: None,
            live: Arc::default(),
            external: None,
        }
    }

    /// This authenticator with names the users file does not know looked up in `external`
    /// (see `external_auth.rs` for the rules).
    pub fn with_external_auth(mut self, external: ExternalAuth) -> Self {
        self.external = Some(Arc::new(external));
        self
    }

    /// The most mounts one logged-in session may hold open: the most any local user has, or
    /// what an external answer may define.
    pub fn max_mounts(&self) -> usize {
        let external = self.external.as_ref().map_or(0, |e| e.settings().max_mounts);
        self.users().max_mounts().max(external)
    }

    /// This authenticator with every session's audit events, and the defender's bans, also
    /// given to `sink` (the event hooks).
    pub fn with_audit_sink(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.defender.report_bans_to(sink.clone());
        self.audit_sink = Some(sink);
        self
    }

    /// Who a session of `user` (as given) from `peer` over `protocol` is in audit events.
    pub fn actor(&self, user: String, protocol: Protocol, peer: SocketAddr) -> Actor {
        Actor {
            session: self.next_session_id(),
            user,
            protocol,
            peer,
            sink: self.audit_sink.clone(),
        }
    }

    /// Counts each user's sessions (its `max_sessions`) in `places` too, across a cluster.
    /// Set through [`crate::Gateway::with_shared_places`], with the listeners' places.
    pub(crate) fn count_user_sessions_in(&mut self, places: Arc<dyn SharedPlaces>) {
        self.shared_places = Some(places);
    }

    /// This authenticator with its users' quota ledgers kept in `ledgers`, shared with the
    /// other nodes of a cluster (see `shared_quota.rs`).
    pub fn with_shared_ledgers(mut self, ledgers: Arc<dyn SharedLedgers>) -> Self {
        self.shared_ledgers = Some(ledgers);
        self
    }

    /// Refuses new logins with [`LoginError::Paused`] (`true`) or takes them again (`false`):
    /// for a node whose users come from a shared database it cannot reach.
    pub fn pause_logins(&self, paused: bool) {
        self.paused.store(paused, Ordering::Release);
    }

    /// Whether new logins are refused (see [`Authenticator::pause_logins`]).
    pub fn logins_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    /// The defender every failed login is reported to (disabled until configured with
    /// [`Defender::reconfigure`]).
    pub fn defender(&self) -> &Arc<Defender> {
        &self.defender
    }

    /// The shared storage tree.
    pub fn share(&self) -> &Share {
        &self.share
    }

    /// The current users.
    pub fn users(&self) -> Arc<UserDb> {
        match self.users.read() {
            Ok(users) => users.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the users (reload). Sessions already open keep the rules they logged in with;
    /// quota usage is measured again at each user's next login, into the same ledger.
    pub fn replace_users(&self, users: UserDb) {
        let users = Arc::new(users);
        match self.users.write() {
            Ok(mut slot) => *slot = users,
            Err(poisoned) => *poisoned.into_inner() = users,
        }
        self.runtimes.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// The shared resources of `user`, made on first use or when the user's limits changed.
    fn runtime_for(&self, user: &User) -> Arc<UserRuntime> {
        let mut runtimes = self.runtimes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = runtimes.get(&user.name)
            && existing.quota_config == user.quota
            && existing.bandwidth_config == user.bandwidth
        {
            return existing.clone();
        }
        let limiter =
            |rate: Option<crate::size::ByteSize>| rate.map(|r| Arc::new(RateLimiter::new(r.0)));
        let runtime = Arc::new(UserRuntime {
            quota_config: user.quota,
            bandwidth_config: user.bandwidth,
            quota: OnceCell::new(),
            download: limiter(user.bandwidth.download),
            upload: limiter(user.bandwidth.upload),
        });
        runtimes.insert(user.name.clone(), runtime.clone());
        runtime
    }

    /// The resources of a new session: the user's quota (measuring the home if this is the
    /// first login since start or reload) and bandwidth limits.
    async fn resources(&self, user: &User, tree: &Tree) -> Result<ResourceLimits, LoginError> {
        let runtime = self.runtime_for(user);
        let quota = match (user.quota.is_limited(), tree.home()) {
            (true, Some(home)) => Some(
                runtime
                    .quota
                    .get_or_try_init(|| self.measure_into_ledger(user, home))
                    .await
                    .map_err(LoginError::Unavailable)?
                    .clone(),
            ),
            _ => None,
        };
        Ok(ResourceLimits {
            quota,
            download: runtime.download.clone(),
            upload: runtime.upload.clone(),
        })
    }

    /// Measures what `home` holds now and records it in `user`'s ledger (made if need be).
    async fn measure_into_ledger(
        &self,
        user: &User,
        home: &Arc<dyn wharf_vfs::Storage>,
    ) -> wharf_vfs::Result<QuotaAccount> {
        let since = match &self.shared_ledgers {
            Some(shared) => shared.version(&user.name).await?,
            None => LedgerVersion::default(),
        };
        let usage = home.usage(&VPath::root()).await?;
        self.ledger_for(user, (usage.bytes, usage.files), since).await
    }

    /// The quota of user `name`: its limits and what its home uses (uploads in progress not
    /// counted; across the cluster for a shared ledger). The home is measured if no session
    /// has measured it since the start or the last reload, and also when `measure_again` (a
    /// reset, after files changed behind the server's back).
    pub async fn quota_of(
        &self,
        name: &str,
        measure_again: bool,
    ) -> wharf_vfs::Result<QuotaReading> {
        let Some(user) = self.users().get(name).cloned() else {
            return Ok(QuotaReading::NoSuchUser);
        };
        if !user.quota.is_limited() {
            return Ok(QuotaReading::Unlimited);
        }
        let tree = self.tree_of(&user).await?;
        let home = tree.home().ok_or(wharf_vfs::Error::NotFound)?;
        let runtime = self.runtime_for(&user);
        let account = match runtime.quota.get() {
            // The same ledger as the sessions' (`ledger_for` finds it by name).
            Some(account) if measure_again => {
                self.measure_into_ledger(&user, home).await?;
                account
            }
            Some(account) => account,
            None => runtime.quota.get_or_try_init(|| self.measure_into_ledger(&user, home)).await?,
        };
        let (used_bytes, used_files) = account.used().await?;
        Ok(QuotaReading::Limited { limits: user.quota, used_bytes, used_files })
    }

    /// The quota ledger of `user`, with the limits and usage (bytes, files) just measured, the
    /// measurement begun when a shared ledger stood at `since`.
    async fn ledger_for(
        &self,
        user: &User,
        used: (u64, u64),
        since: LedgerVersion,
    ) -> wharf_vfs::Result<QuotaAccount> {
        let known = self.ledgers.lock().unwrap_or_else(|p| p.into_inner()).get(&user.name).cloned();
        if let Some(ledger) = known {
            ledger.remeasured(user.quota, used, since).await?;
            return Ok(ledger);
        }
        let ledger = match &self.shared_ledgers {
            Some(shared) => {
                QuotaAccount::shared(shared.clone(), &user.name, user.quota, used, since).await?
            }
            None => QuotaAccount::new(user.quota, used.0, used.1),
        };
        // Two first logins measuring at once (a reload between them) keep the first ledger.
        let mut ledgers = self.ledgers.lock().unwrap_or_else(|p| p.into_inner());
        Ok(ledgers.entry(user.name.clone()).or_insert(ledger).clone())
    }

    /// The sessions open now, on every protocol, for operators to list and end.
    pub fn live_sessions(&self) -> &Arc<LiveSessions> {
        &self.live
    }

    /// A fresh session number for a connection, before any login.
    pub fn next_session_id(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }

    /// What TLS the user `name` requires over FTP; nothing for unknown users, so a client
    /// learns only that an existing account demands TLS (which it must, to use it at all).
    /// A name of the external service is not known before its credential is checked: its
    /// requirement is enforced by the login itself (`LoginError::TlsRequired`).
    pub fn tls_requirement(&self, name: &str) -> TlsRequirement {
        self.users().get(name).map(|u| u.require_tls).unwrap_or_default()
    }

    /// Whether `key` would be accepted for `name` over SSH (answering a key offer before the
    /// client proves possession with a signature).
    /// Only local users; [`Authenticator::offer_key`] also asks the external service.
    pub fn accepts_key(&self, name: &str, key: &ssh_key::PublicKey) -> bool {
        self.users().get(name).is_some_and(|user| Self::key_acceptable(user, key))
    }

    /// Like [`Authenticator::accepts_key`], and for a name the users file does not know, asks
    /// the external service (if any) from `peer`, unless the defender bars the address.
    pub async fn offer_key(&self, name: &str, key: &ssh_key::PublicKey, peer: SocketAddr) -> bool {
        if let Some(user) = self.users().get(name) {
            return Self::key_acceptable(user, key);
        }
        let Some(external) = &self.external else { return false };
        if self.logins_paused() || !self.defender.verdict(peer.ip()).is_allowed() {
            return false;
        }
        let request = DirectoryRequest {
            user: name.to_owned(),
            protocol: Protocol::Sftp,
            address: peer.ip(),
            credential: DirectoryCredential::PublicKey(key.clone()),
        };
        match external.look_up(request).await {
            Lookup::Found(user) => Self::key_acceptable(&user, key),
            Lookup::Refused | Lookup::Unavailable => false,
        }
    }

    fn key_acceptable(user: &User, key: &ssh_key::PublicKey) -> bool {
        !user.disabled
            && user.has_key(key)
            && user.ssh_auth.iter().any(|m| {
                matches!(m, SshAuthMethod::PublicKey | SshAuthMethod::PublicKeyAndPassword)
            })
    }

    /// For a name the users file does not know, what the external service says of the
    /// request; `None` when there is no service or the credential is not one it checks.
    async fn ask_external(&self, request: &LoginRequest) -> Option<Lookup> {
        let external = self.external.as_ref()?;
        let credential = match &request.credential {
            Credential::Password(password) => DirectoryCredential::Password(password.clone()),
            Credential::PublicKey(key) => DirectoryCredential::PublicKey(key.clone()),
            Credential::PublicKeyAndPassword { key, password } => {
                DirectoryCredential::PublicKeyAndPassword {
                    key: key.clone(),
                    password: password.clone(),
                }
            }
            Credential::Anonymous | Credential::SourceNetwork => return None,
        };
        let request = DirectoryRequest {
            user: request.user.clone(),
            protocol: request.protocol,
            address: request.peer.ip(),
            credential,
        };
        Some(external.look_up(request).await)
    }

    /// Checks a login and opens the user's session.
    pub async fn login(&self, request: LoginRequest) -> Result<Session, LoginError> {
        let started = Instant::now();
        let actor = self.actor(request.user.clone(), request.protocol, request.peer);
        let mut user = self.users().get(&request.user).cloned();
        // The defender's verdict comes first: a barred address never makes the server ask
        // the external service anything.
        let checked = if self.logins_paused() {
            Err(Refusal::Paused)
        } else if !self.defender.verdict(request.peer.ip()).is_allowed() {
            Err(Refusal::Deny(DenyReason::AddressBanned))
        } else if user.is_some() {
            self.check(user.as_deref(), &request, false).await
        } else {
            match self.ask_external(&request).await {
                None => self.check(None, &request, false).await,
                Some(Lookup::Found(found)) => {
                    user = Some(found);
                    self.check(user.as_deref(), &request, true).await
                }
                Some(Lookup::Refused) => Err(Refusal::Deny(DenyReason::DirectoryRefused)),
                Some(Lookup::Unavailable) => Err(Refusal::DirectoryUnavailable),
            }
        };
        let result = match checked {
            Ok(()) => match user {
                Some(user) => match self.user_place(&user).await {
                    Ok(place) => {
                        self.open_session(actor.clone(), user, &request.credential, place).await
                    }
                    Err(UserCapReached(cap)) => Err(LoginError::TooManySessions(cap)),
                },
                None => Err(LoginError::Denied),
            },
            Err(Refusal::Deny(reason)) => {
                Self::audit(&actor, started, Outcome::Denied, Some(reason.as_str()));
                if !matches!(reason, DenyReason::AddressBanned) {
                    self.defender.report_failed_login(request.peer.ip(), &request.user);
                }
                if request.credential.carries_password() {
                    tokio::time::sleep(
                        self.settings.failure_delay.saturating_sub(started.elapsed()),
                    )
                    .await;
                }
                return Err(LoginError::Denied);
            }
            Err(Refusal::Tls) => Err(LoginError::TlsRequired),
            Err(Refusal::SecondFactor) => Err(LoginError::NeedsPassword),
            Err(Refusal::Paused) => Err(LoginError::Paused),
            Err(Refusal::DirectoryUnavailable) => Err(LoginError::AuthServiceUnavailable),
        };
        match &result {
            Ok(_) => {
                // A user who gets in knew the password: their mistakes from here were typing.
                self.defender.forgive_failed_logins(request.peer.ip(), &request.user);
                Self::audit(&actor, started, Outcome::Ok, None)
            }
            Err(LoginError::TlsRequired) => {
                Self::audit(&actor, started, Outcome::Denied, Some("TLS required"))
            }
            Err(LoginError::NeedsPassword) => Self::audit(
                &actor,
                started,
                Outcome::Denied,
                Some("key accepted, password required"),
            ),
            Err(LoginError::Unavailable(err)) => Self::audit(
                &actor,
                started,
                Outcome::Failed(err.kind()),
                Some("storage unavailable"),
            ),
            Err(LoginError::Denied) => Self::audit(&actor, started, Outcome::Denied, None),
            Err(LoginError::Paused) => Self::audit(
                &actor,
                started,
                Outcome::Denied,
                Some("logins paused: user database unreachable"),
            ),
            Err(LoginError::TooManySessions(_)) => Self::audit(
                &actor,
                started,
                Outcome::Denied,
                Some("the user's session cap is reached"),
            ),
            Err(LoginError::AuthServiceUnavailable) => Self::audit(
                &actor,
                started,
                Outcome::Denied,
                Some("authentication service unavailable"),
            ),
        }
        result
    }

    /// A place among `user`'s sessions, if the user has a cap (`None`: not counted).
    async fn user_place(&self, user: &User) -> Result<Option<UserPlace>, UserCapReached> {
        let Some(cap) = user.max_sessions else { return Ok(None) };
        let place = self.user_sessions.take(&user.name, cap, self.shared_places.as_ref()).await?;
        Ok(Some(place))
    }

    fn audit(actor: &Actor, started: Instant, outcome: Outcome, detail: Option<&str>) {
        AuditEvent {
            actor,
            op: Operation::Login,
            path: None,
            to: None,
            bytes: None,
            sha256: None,
            duration: started.elapsed(),
            outcome,
            detail,
        }
        .emit();
    }

    /// Verifies `password` against `hash` (the decoy for unknown users) on the verifier
    /// threads, a bounded number at once.
    async fn verify_password(&self, hash: Option<&StoredHash>, password: &Password) -> bool {
        let is_real = hash.is_some();
        let hash = hash.unwrap_or_else(|| StoredHash::decoy()).clone();
        let verified = self.checks.verify(hash, password.clone()).await;
        verified && is_real
    }

    /// Checks `request` against `user`. With `password_checked`, the external service has
    /// checked the password already (and the user's hash, if any, is not consulted).
    async fn check(
        &self,
        user: Option<&User>,
        request: &LoginRequest,
        password_checked: bool,
    ) -> Result<(), Refusal> {
        use Credential as C;
        let family = request.protocol.family();
        let method_ok = |user: &User, wanted: SshAuthMethod| {
            request.protocol != Protocol::Sftp || user.ssh_auth.contains(&wanted)
        };
        // 1. The credential itself. Unknown users cost a decoy verification.
        match (&request.credential, user) {
            (C::Password(password), None) => {
                self.verify_password(None, password).await;
                return Err(Refusal::Deny(DenyReason::UnknownUser));
            }
            (_, None) => return Err(Refusal::Deny(DenyReason::UnknownUser)),
            (C::Password(password), Some(user)) => {
                let ok = password_checked
                    || match &user.password {
                        Some(hash) => self.verify_password(Some(hash), password).await,
                        None => {
                            self.verify_password(None, password).await;
                            false
                        }
                    };
                if !ok {
                    return Err(Refusal::Deny(DenyReason::BadCredential));
                }
                if !method_ok(user, SshAuthMethod::Password) {
                    return Err(Refusal::Deny(DenyReason::MethodNotAllowed));
                }
            }
            (C::PublicKey(key), Some(user)) => {
                if !user.has_key(key) {
                    return Err(Refusal::Deny(DenyReason::BadCredential));
                }
                if !user.ssh_auth.contains(&SshAuthMethod::PublicKey) {
                    if user.ssh_auth.contains(&SshAuthMethod::PublicKeyAndPassword) {
                        if user.disabled || !user.allows_address(request.peer.ip()) {
                            return Err(Refusal::Deny(DenyReason::MethodNotAllowed));
                        }
                        return Err(Refusal::SecondFactor);
                    }
                    return Err(Refusal::Deny(DenyReason::MethodNotAllowed));
                }
            }
            (C::PublicKeyAndPassword { key, password }, Some(user)) => {
                let password_ok = password_checked
                    || match &user.password {
                        Some(hash) => self.verify_password(Some(hash), password).await,
                        None => false,
                    };
                if !user.has_key(key) || !password_ok {
                    return Err(Refusal::Deny(DenyReason::BadCredential));
                }
            }
            (C::Anonymous, Some(user)) => {
                if !user.passwordless || family != ProtocolFamily::Ftp {
                    return Err(Refusal::Deny(DenyReason::MethodNotAllowed));
                }
            }
            (C::SourceNetwork, Some(user)) => {
                if !user.passwordless || family != ProtocolFamily::Tftp {
                    return Err(Refusal::Deny(DenyReason::MethodNotAllowed));
                }
            }
        }
        let Some(user) = user else { return Err(Refusal::Deny(DenyReason::UnknownUser)) };
        // 2. Account policy, checked only after the credential so it reveals nothing.
        if user.disabled {
            return Err(Refusal::Deny(DenyReason::Disabled));
        }
        if !user.protocols.contains(&family) {
            return Err(Refusal::Deny(DenyReason::ProtocolNotAllowed));
        }
        if !user.allows_address(request.peer.ip()) {
            return Err(Refusal::Deny(DenyReason::NetworkNotAllowed));
        }
        if request.protocol == Protocol::Ftp && user.require_tls.control {
            return Err(Refusal::Tls);
        }
        Ok(())
    }

    /// The tree `user` sees: each of its mounts opened on the share (folders made if
    /// missing).
    async fn tree_of(&self, user: &User) -> wharf_vfs::Result<Tree> {
        let mut mounts = Vec::with_capacity(user.mounts.len());
        for (at, target) in &user.mounts {
            let storage = self.share.subtree(target, true).await?;
            mounts.push(Mount { at: at.clone(), storage });
        }
        Tree::new(mounts).map_err(|_| wharf_vfs::Error::NotFound)
    }

    async fn open_session(
        &self,
        actor: Actor,
        user: Arc<User>,
        credential: &Credential,
        place: Option<UserPlace>,
    ) -> Result<Session, LoginError> {
        let tree = self.tree_of(&user).await.map_err(LoginError::Unavailable)?;
        let mask = match credential {
            Credential::Anonymous => Permissions::READ,
            _ => Permissions::all(),
        };
        let resources = self.resources(&user, &tree).await?;
        let places = Places { _user: place, live: self.live.register(&actor) };
        Ok(Session::new(actor, user, tree, mask, resources, self.defender.clone(), places))
    }
}

/// What [`Authenticator::quota_of`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaReading {
    /// No user of that name.
    NoSuchUser,
    /// The user has no quota (its usage is not kept).
    Unlimited,
    /// The user's limits and what its home uses.
    Limited {
        /// The limits.
        limits: QuotaConfig,
        /// Bytes used.
        used_bytes: u64,
        /// Files used.
        used_files: u64,
    },
}

/// The internal verdict of [`Authenticator::check`].
enum Refusal {
    Deny(DenyReason),
    Tls,
    SecondFactor,
    /// Logins are paused ([`Authenticator::pause_logins`]); nothing was checked.
    Paused,
    /// The external service gave no usable answer; nothing was checked.
    DirectoryUnavailable,
}
