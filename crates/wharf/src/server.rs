//! Starting everything the configuration asks for, and stopping it.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use wharf_access::{Authenticator, Defender, Gateway, MemoryBudget, ProxyProtocol, UserDb};
use wharf_vfs::object::MultipartSweeper;
use wharf_vfs::{LocalStorage, ObjectStorage, ObjectStoreCredentials, Share, StorageConfig, VPath};

use crate::admin::Control;
use crate::config::{ConfigSource, LoadedConfig};
use crate::descriptors::DescriptorPlan;
use crate::observe::metrics::Metrics;
use crate::provision::{DemoAccount, provision_users};
use crate::user_store::{Applied, UserChange, UserStore, UserStoreError};

/// Set to `1` to bind every listener of the configuration on port 0 (the kernel picks free
/// ports, printed in the banner): how tests run the embedded default without fixed ports.
pub const EPHEMERAL_PORTS_ENV: &str = "WHARF_EPHEMERAL_PORTS";

/// One bound listener, for the banner and for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerInfo {
    /// `FTP`, `SFTP`, ...
    pub protocol: &'static str,
    /// The address actually bound.
    pub addr: SocketAddr,
    /// A client command a user can paste (may contain `{user}`).
    pub example: String,
}

/// A running Wharf: the shared layer and the protocol front-ends.
pub struct Server {
    loaded: LoadedConfig,
    gateway: Arc<Gateway>,
    listeners: Vec<ListenerInfo>,
    notes: Vec<String>,
    demo: Option<DemoAccount>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The FTPS certificate holder, reloaded on SIGHUP.
    ftps_tls: Option<Arc<wharf_ftps::FtpsTls>>,
    /// The open-file limit sessions are budgeted under; `None`: no budget.
    open_files: Option<u64>,
    /// The sweeps of stale temporary upload files and of multipart uploads left open in
    /// buckets, and the following of the shared database, started once everything else did;
    /// aborted at shutdown.
    sweepers: Vec<tokio::task::JoinHandle<()>>,
    /// This node's part in a cluster's shared database; left at shutdown.
    cluster: Option<ClusterMember>,
    /// The event hooks, closed at shutdown once the sessions are over.
    hooks: Option<wharf_hooks::Hooks>,
    /// The admin API's tokens (replaced at a reload) and what it asks of the signal loop.
    admin: Option<crate::admin::AdminHandles>,
    /// Where the admin API's user changes go.
    user_store: Option<UserStore>,
}

/// A node's part in a cluster: its session leases, removed at shutdown, and the heartbeat
/// that keeps them counted, which beats until the sessions are over; its side of the quota
/// ledgers, and the task that writes their settlements.
struct ClusterMember {
    leases: wharf_db::SessionLeases,
    quotas: wharf_db::ClusterQuotas,
    heartbeat: tokio::task::JoinHandle<()>,
    settlements: tokio::task::JoinHandle<()>,
}

impl ClusterMember {
    /// Registers this node in `database` and starts its heartbeat and settlement writer.
    async fn join(database: &wharf_db::Database) -> anyhow::Result<ClusterMember> {
        let leases = wharf_db::SessionLeases::register(database)
            .await
            .context("registering this node in the shared database")?;
        let quotas = wharf_db::ClusterQuotas::new(&leases);
        Ok(ClusterMember {
            heartbeat: tokio::spawn(leases.clone().beat()),
            settlements: tokio::spawn(quotas.clone().write()),
            leases,
            quotas,
        })
    }

    /// Leaves the cluster once the sessions are over: the last settlements written, the
    /// node's places given back at once (a node that dies instead loses them when its heart
    /// has stopped long enough).
    async fn leave(self) {
        self.settlements.abort();
        if let Err(err) = self.quotas.flush().await {
            tracing::warn!(error = %err, "quota settlements not written to the shared database");
        }
        self.heartbeat.abort();
        if let Err(err) = self.leases.unregister().await {
            tracing::warn!(error = %err, "could not remove this node from the shared database");
        }
    }
}

/// Whether listeners should ignore their configured ports (see [`EPHEMERAL_PORTS_ENV`]).
pub fn ephemeral_ports() -> bool {
    std::env::var(EPHEMERAL_PORTS_ENV).is_ok_and(|v| v == "1")
}

/// `addrs` with their ports set to 0 when [`ephemeral_ports`] is on.
pub fn listen_addrs(addrs: &[SocketAddr]) -> Vec<SocketAddr> {
    let ephemeral = ephemeral_ports();
    addrs.iter().map(|addr| if ephemeral { SocketAddr::new(addr.ip(), 0) } else { *addr }).collect()
}

impl Server {
    /// Prepares the data directory and storage, loads users and binds every listener.
    /// `metrics` is what the metrics endpoint shows (the counters the log layer feeds).
    /// Sessions get no descriptor budget: an in-process server shares the process's
    /// descriptors with its host (tests); the binary uses [`Server::start_limited`].
    pub async fn start(loaded: LoadedConfig, metrics: Arc<Metrics>) -> anyhow::Result<Server> {
        Self::start_limited(loaded, metrics, None).await
    }

    /// Like [`Server::start`], with the process's open-file limit `open_files` (`None`:
    /// unlimited): what the configuration's reserve leaves of it is the budget admission lets
    /// sessions hold (see [`crate::descriptors`]), and a limit that cannot hold every session
    /// at its worst is warned about.
    pub async fn start_limited(
        loaded: LoadedConfig,
        metrics: Arc<Metrics>,
        open_files: Option<u64>,
    ) -> anyhow::Result<Server> {
        let config = &loaded.config;
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
        let demo = match (&loaded.source, loaded.users_file()) {
            (ConfigSource::Embedded, Some(users_file)) => provision_users(users_file)?,
            _ => None,
        };
        let local = LocalStorage::open(&config.storage.root, true, config.storage.local_options())
            .with_context(|| format!("opening storage root {}", config.storage.root.display()))?;
        let memory = MemoryBudget::new(&config.access.memory).context("access.memory")?;
        let (buckets, bucket_sweepers) = open_buckets(&config.storage, &memory)?;
        let share = Share::new(local, buckets);
        let (database, users) = match &config.database {
            Some(database) => {
                if config.access.users_file.is_some() || !config.access.users.is_empty() {
                    tracing::warn!(
                        "the users of `access` are not read while a database is configured; \
                         move them there with `wharf users import`"
                    );
                }
                let (database, users) = crate::shared_state::open(database).await?;
                (Some(database), users)
            }
            None => (None, config.access.load_users(&config.data_dir)?),
        };
        let cluster = match &database {
            Some(database) => Some(ClusterMember::join(database).await?),
            None => None,
        };
        let mut authenticator = Authenticator::new(share, users, config.access.login_settings());
        if let Some(cluster) = &cluster {
            authenticator = authenticator.with_shared_ledgers(Arc::new(cluster.quotas.clone()));
        }
        if let Some(external) = &config.external_auth {
            authenticator = authenticator
                .with_external_auth(external.start().context("starting external authentication")?);
        }
        let hooks = match &config.hooks {
            Some(hooks) => Some(
                wharf_hooks::Hooks::start(hooks, &config.data_dir)
                    .context("starting the event hooks")?,
            ),
            None => None,
        };
        if let Some(hooks) = &hooks {
            authenticator = authenticator.with_audit_sink(hooks.sink());
            metrics.watch_hooks(hooks.counters());
        }
        authenticator.defender().reconfigure(config.defender.clone());
        match Defender::load_saved(&loaded.bans_file()) {
            Ok(bans) => authenticator.defender().restore(&bans),
            Err(err) => {
                tracing::warn!(error = %err, file = %loaded.bans_file().display(), "saved bans not restored")
            }
        }
        let proxy = ProxyProtocol::new(&config.proxy_protocol);
        let mut gateway = Gateway::new(authenticator).with_memory(memory).with_proxy(proxy);
        if let Some(cluster) = &cluster {
            gateway = gateway.with_shared_places(Arc::new(cluster.leases.clone()));
        }
        let gateway = Arc::new(gateway);
        if open_files.is_some() {
            let plan = DescriptorPlan::of(config, &gateway.authenticator.users());
            let capacity = plan.capacity(open_files);
            gateway.descriptors.set_capacity(capacity);
            tracing::info!(capacity, reserve = plan.reserve, "descriptor budget for sessions");
            if let Some(warning) = plan.shortfall(open_files) {
                tracing::warn!("{warning}");
            }
        }
        let mut server = Server {
            loaded,
            gateway,
            listeners: Vec::new(),
            notes: Vec::new(),
            demo,
            tasks: Vec::new(),
            ftps_tls: None,
            open_files,
            sweepers: Vec::new(),
            cluster,
            hooks,
            admin: None,
            user_store: None,
        };
        let (ftp, ftps) = (server.loaded.config.ftp.clone(), server.loaded.config.ftps.clone());
        if ftp.is_some() || ftps.is_some() {
            let data_dir = server.loaded.config.data_dir.clone();
            let started =
                crate::frontends::ftp::start(ftp, ftps, &data_dir, server.gateway.clone())?;
            server.ftps_tls = started.tls;
            server.add(started.started);
        }
        if let Some(sftp) = server.loaded.config.sftp.clone() {
            let data_dir = server.loaded.config.data_dir.clone();
            server
                .add(crate::frontends::sftp::start(sftp, &data_dir, server.gateway.clone()).await?);
        }
        if let Some(tftp) = server.loaded.config.tftp.clone() {
            server.add(crate::frontends::tftp::start(tftp, server.gateway.clone()).await?);
        }
        if let Some(metrics_config) = server.loaded.config.metrics.clone() {
            let addr = listen_addrs(&[metrics_config.listen])[0];
            let limits = metrics_config.limits.into();
            let endpoint =
                crate::observe::http::bind(addr, limits, metrics.clone(), server.gateway.clone())
                    .await
                    .with_context(|| format!("binding the metrics endpoint on {addr}"))?;
            let bound = endpoint.local_addr()?;
            server.listeners.push(ListenerInfo {
                protocol: "metrics",
                addr: bound,
                example: format!("curl http://{bound}/metrics"),
            });
            server.tasks.push(tokio::spawn(endpoint.run()));
        }
        if let Some(admin_config) = server.loaded.config.admin.clone() {
            let addr = listen_addrs(&[admin_config.listen])[0];
            let tokens = crate::admin::tokens::TokensFile::load(&admin_config.tokens_file)?;
            let tokens = crate::admin::tokens::Tokens::of(&tokens);
            if tokens.is_empty() {
                tracing::warn!(file = %admin_config.tokens_file.display(), "the admin API has no token yet; make one with `wharf token create`");
            }
            let users = match (&database, server.loaded.users_file()) {
                (Some(database), _) => UserStore::Database(Box::new(database.clone())),
                (None, Some(file)) => UserStore::File(file.to_owned()),
                (None, None) => UserStore::Inline,
            };
            let gateway = server.gateway.clone();
            let (endpoint, handles) = crate::admin::bind(
                &admin_config,
                addr,
                tokens,
                metrics.clone(),
                gateway,
                users.clone(),
            )
            .await
            .with_context(|| format!("binding the admin API on {addr}"))?;
            let bound = endpoint.local_addr()?;
            server.listeners.push(ListenerInfo {
                protocol: "admin",
                addr: bound,
                example: format!(
                    "curl -H 'Authorization: Bearer <token>' {}://{bound}/api/v1/version",
                    if admin_config.tls.is_some() { "https" } else { "http" }
                ),
            });
            server.tasks.push(tokio::spawn(endpoint.run()));
            server.admin = Some(handles);
            server.user_store = Some(users);
        }
        // Temporary files a crash left in the share are removed from the start on, off the
        // async workers, a bounded number of folder entries at a time.
        let sweeper = server.gateway.authenticator.share().local().temporary_sweeper();
        server
            .sweepers
            .push(tokio::spawn(sweeper.run(wharf_vfs::SWEEP_PAUSE, wharf_vfs::SWEEP_INTERVAL)));
        // Multipart uploads a crash left open in the buckets, on the same schedule.
        for sweeper in bucket_sweepers {
            server.sweepers.push(tokio::spawn(sweeper.run(wharf_vfs::SWEEP_INTERVAL)));
        }
        // The users follow the shared database, if there is one.
        if let Some(database) = database {
            let following = crate::shared_state::follow(
                database,
                server.gateway.clone(),
                server.loaded.config.clone(),
                open_files,
            );
            server.sweepers.push(tokio::spawn(following));
        }
        Ok(server)
    }

    fn add(&mut self, started: crate::frontends::Started) {
        self.listeners.extend(started.listeners);
        self.notes.extend(started.notes);
        self.tasks.push(started.task);
    }

    /// The shared layer.
    pub fn gateway(&self) -> &Arc<Gateway> {
        &self.gateway
    }

    /// Every bound listener.
    pub fn listeners(&self) -> &[ListenerInfo] {
        &self.listeners
    }

    /// The first listener of `protocol`, if it is served.
    pub fn listener(&self, protocol: &str) -> Option<SocketAddr> {
        self.listeners.iter().find(|l| l.protocol == protocol).map(|l| l.addr)
    }

    /// What to print at start: where the share is, the demo account, how to connect.
    pub fn banner(&self) -> String {
        let config = &self.loaded.config;
        let users = self.gateway.authenticator.users();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Wharf {} is serving {}",
            env!("CARGO_PKG_VERSION"),
            config.storage.root.display()
        );
        let _ = writeln!(out, "  configuration: {}", self.loaded.source);
        if config.database.is_some() {
            let _ = writeln!(out, "  users: the shared database ({} defined)", users.len());
        } else if let Some(path) = self.loaded.users_file() {
            let _ = writeln!(out, "  users: {} ({} defined)", path.display(), users.len());
        }
        if let Some(external) = &config.external_auth {
            let _ = writeln!(out, "  other names: checked by {}", external.shown_url());
        }
        let user = match &self.demo {
            Some(demo) => {
                let _ = writeln!(out);
                let _ = writeln!(
                    out,
                    "  A demo account was created. Its password is shown only this once:"
                );
                let _ = writeln!(out, "    user: {}   password: {}", demo.user, demo.password);
                demo.user.clone()
            }
            None => String::from(crate::provision::DEMO_USER),
        };
        if self.listeners.is_empty() {
            let _ = writeln!(out, "\n  No protocol is enabled in this configuration.");
        } else {
            let _ = writeln!(out, "\n  Listening:");
            for l in &self.listeners {
                let example = l.example.replace("{user}", &user);
                let _ =
                    writeln!(out, "    {:<14} {:<24} {}", l.protocol, l.addr.to_string(), example);
            }
        }
        for note in &self.notes {
            let _ = writeln!(out, "  {note}");
        }
        out
    }

    /// Re-reads the configuration and the users file and applies what can change while
    /// running: users and their rules, defender settings, the FTPS certificate (for new
    /// connections). Sessions already open keep the rules
    /// they logged in with; listeners and storage need a restart. Nothing is applied unless
    /// everything loads.
    pub fn reload(&self) -> anyhow::Result<()> {
        let fresh = self.loaded.reload()?;
        let config = &fresh.config;
        // With a database, the users follow it by themselves (`crate::shared_state`).
        let users = match &config.database {
            Some(_) => None,
            None => Some(config.access.load_users(&config.data_dir)?),
        };
        // The certificate is the last thing that can fail; it swaps itself only once loaded.
        if let Some(tls) = &self.ftps_tls {
            let fingerprint = tls.reload().context("reloading the FTPS certificate")?;
            tracing::info!(%fingerprint, "FTPS certificate reloaded for new connections");
        }
        let count = users.as_ref().map_or(self.gateway.authenticator.users().len(), UserDb::len);
        if let Some(users) = users {
            install_users(&self.gateway, &self.loaded.config, self.open_files, users);
        }
        let tokens = match (&self.admin, &config.admin) {
            (Some(_), Some(admin)) => Some(
                crate::admin::tokens::TokensFile::load(&admin.tokens_file)
                    .context("reloading the admin API's tokens")?,
            ),
            _ => None,
        };
        self.gateway.defender().reconfigure(config.defender.clone());
        if let (Some(admin), Some(tokens)) = (&self.admin, tokens) {
            let tokens = crate::admin::tokens::Tokens::of(&tokens);
            tracing::info!(tokens = tokens.len(), "admin API tokens reloaded");
            *admin.tokens.write().unwrap_or_else(|p| p.into_inner()) = tokens;
        }
        if config.hooks != self.loaded.config.hooks {
            tracing::warn!("the `hooks` section changed; it takes effect at the next start");
        }
        tracing::info!(users = count, "configuration reloaded");
        Ok(())
    }

    /// Carries out what the admin API asked, between signals.
    async fn carry_out(&self, request: Control) {
        match request {
            Control::Reload(reply) => {
                let outcome = self.reload().map(|()| "configuration reloaded".to_owned());
                if let Err(err) = &outcome {
                    tracing::error!(error = %format!("{err:#}"), "reload failed; keeping the previous configuration");
                }
                let _ = reply.send(outcome.map_err(|err| format!("{err:#}")));
            }
            Control::Users(change, reply) => {
                let _ = reply.send(self.change_user(&change).await);
            }
        }
    }

    /// Makes `change` where users are kept; a users file is then reloaded to apply it (the
    /// database's nodes follow it by themselves).
    async fn change_user(
        &self,
        change: &UserChange,
    ) -> Result<(Applied, serde_json::Value), UserStoreError> {
        let store = self.user_store.as_ref().unwrap_or(&UserStore::Inline);
        let outcome = store.apply(change).await?;
        tracing::info!(user = change.name(), change = ?outcome.0, "user changed through the admin API");
        if let UserStore::File(_) = store {
            self.reload().map_err(|err| UserStoreError::ReloadFailed(format!("{err:#}")))?;
        }
        Ok(outcome)
    }

    fn save_bans(&self) {
        if let Err(err) = self.gateway.defender().save(&self.loaded.bans_file()) {
            tracing::warn!(error = %err, "could not save the defender's bans");
        }
    }

    /// Stops accepting, lets transfers finish within the configured grace period, closes the
    /// rest. Returns whether everything finished in time.
    pub async fn shutdown(self) -> bool {
        for sweeper in &self.sweepers {
            sweeper.abort();
        }
        self.save_bans();
        let grace = self.loaded.config.shutdown_grace;
        let clean = self.gateway.shutdown.shut_down(grace).await;
        for task in self.tasks {
            let _ = task.await;
        }
        // After the sessions, so their last events are in the spool for the next start.
        if let Some(hooks) = self.hooks {
            hooks.close().await;
        }
        if let Some(cluster) = self.cluster {
            cluster.leave().await;
        }
        clean
    }

    /// Serves until SIGINT or SIGTERM (reloading on SIGHUP), then shuts down.
    pub async fn run_until_signal(mut self) -> anyhow::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
        let mut terminate =
            signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
        let mut hangup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;
        let mut save_bans = tokio::time::interval(std::time::Duration::from_secs(30));
        let mut api_requests = self.admin.as_mut().and_then(|admin| admin.control.take());
        loop {
            tokio::select! {
                Some(request) = async { api_requests.as_mut()?.recv().await } => {
                    self.carry_out(request).await;
                }
                _ = save_bans.tick() => self.save_bans(),
                _ = interrupt.recv() => break,
                _ = terminate.recv() => break,
                _ = hangup.recv() => {
                    if let Err(err) = self.reload() {
                        tracing::error!(error = %format!("{err:#}"), "reload failed; keeping the previous configuration");
                    }
                }
            }
        }
        tracing::info!(grace = ?self.loaded.config.shutdown_grace, "shutting down: no new connections, transfers may finish");
        if self.shutdown().await {
            tracing::info!("stopped");
        } else {
            tracing::warn!("grace period over; remaining sessions were closed");
        }
        Ok(())
    }
}

/// A bucket and the folder of the share it takes the place of.
type PlacedBucket = (VPath, ObjectStorage);

/// The buckets `storage.buckets` places in the share, each with its credentials (from the
/// environment or its `credentials_file`), and the sweeper of the multipart uploads left open
/// in each. No request is made: a store that cannot be reached is reported by the operations
/// that need it. Their uploads' buffers are reserved from the process-wide pool of `memory`.
fn open_buckets(
    storage: &StorageConfig,
    memory: &MemoryBudget,
) -> anyhow::Result<(Vec<PlacedBucket>, Vec<MultipartSweeper>)> {
    let mut buckets = Vec::with_capacity(storage.buckets.len());
    let mut sweepers = Vec::with_capacity(storage.buckets.len());
    for (at, config) in &storage.buckets {
        let place = VPath::resolve(&VPath::root(), at)
            .with_context(|| format!("storage.buckets: `{at}` is not a folder of the share"))?;
        let credentials = ObjectStoreCredentials::load(config)
            .with_context(|| format!("storage.buckets.{at}: credentials"))?;
        let bucket = ObjectStorage::open(config, &credentials)
            .with_context(|| format!("storage.buckets.{at}: {}", config.bucket))?
            .with_upload_memory(Arc::new(memory.clone()));
        sweepers.push(
            bucket
                .multipart_sweeper(config, &credentials, storage.stale_temporary_age)
                .with_context(|| format!("storage.buckets.{at}: sweeper"))?,
        );
        tracing::info!(at = %at, bucket = %config.bucket, endpoint = %config.endpoint, "object storage");
        buckets.push((place, bucket));
    }
    Ok((buckets, sweepers))
}

/// Makes `users` the ones logins are checked against, and sizes the descriptor budget for
/// them (mounts count in every session's worst case); the listeners and caps stay those the
/// server started with.
pub(crate) fn install_users(
    gateway: &Gateway,
    config: &crate::config::WharfConfig,
    open_files: Option<u64>,
    users: UserDb,
) {
    if open_files.is_some() {
        let plan = DescriptorPlan::of(config, &users);
        gateway.descriptors.set_capacity(plan.capacity(open_files));
    }
    gateway.authenticator.replace_users(users);
}
