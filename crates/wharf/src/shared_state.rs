//! A node of a cluster: its users come from the shared database and follow it, and the
//! defender's bans are shared through it.
//!
//! At start the users are read from the database (which must be reachable then). Afterwards
//! the database's change watcher drives them: every change to the users, made on any node or
//! by hand, is read again at once; while the database cannot be reached, new logins are
//! refused with a temporary error (a user disabled or a password changed on another node
//! must not be missed) and sessions already open go on; when it is back, the users are read
//! again and logins resume. An invalid user in the database keeps the users the node has
//! (and says so), as a broken users file does on reload.
//!
//! A ban the node's defender decides holds here at once and is written to the database by a
//! task of its own, through a bounded queue (a slow or absent database never holds up the
//! one who reported the offense); every node applies the bans it is told of, and all of them
//! when it (re)connects. The points of every offense the defender scores go the same way and
//! are added up in the database over the nodes: an address whose offenses on all nodes reach
//! the threshold within one observation window is banned there, and so on every node.

use std::net::IpAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::sync::mpsc;
use wharf_access::{Ban, Gateway, UserDb};
use wharf_db::{Database, DatabaseConfig, Reachability};

use crate::config::WharfConfig;

/// Connects to the database of `config` (applying its migrations) and reads the users.
pub async fn open(config: &DatabaseConfig) -> anyhow::Result<(Database, UserDb)> {
    let database = Database::connect(config).await.context("opening the shared database")?;
    let users = database.load_users().await.context("reading the users from the database")?;
    tracing::info!(
        database = database.describe(),
        users = users.len(),
        "users from the shared database"
    );
    Ok((database, users))
}

/// Follows the database until aborted (at shutdown): see the module's documentation.
pub async fn follow(
    database: Database,
    gateway: Arc<Gateway>,
    config: WharfConfig,
    open_files: Option<u64>,
) {
    let (events, mut seen) = mpsc::unbounded_channel();
    let watcher = tokio::spawn(database.watcher().run(events));
    let sharing = share_defender(&database, &gateway);
    while let Some(event) = seen.recv().await {
        match event {
            Reachability::Reachable => {
                reload(&database, &gateway, &config, open_files).await;
                apply_bans(&database, &gateway).await;
                if gateway.authenticator.logins_paused() {
                    tracing::info!(
                        database = database.describe(),
                        "the database is reachable again; logins resume"
                    );
                    gateway.authenticator.pause_logins(false);
                }
            }
            Reachability::UsersChanged => reload(&database, &gateway, &config, open_files).await,
            Reachability::BansChanged => apply_bans(&database, &gateway).await,
            Reachability::BanLifted(address) => {
                if gateway.defender().lift(address) {
                    tracing::info!(%address, "ban lifted by an operator on the cluster");
                }
            }
            Reachability::SessionsEnded(user) => {
                let ended = gateway.authenticator.live_sessions().kill_user(&user);
                if ended > 0 {
                    tracing::info!(%user, ended, "sessions ended by an operator on the cluster");
                }
            }
            Reachability::Unreachable(reason) => {
                tracing::warn!(
                    database = database.describe(),
                    %reason,
                    "the database cannot be reached; new logins are refused until it is back"
                );
                gateway.authenticator.pause_logins(true);
            }
        }
    }
    watcher.abort();
    sharing.abort();
}

/// Bans and scored points waiting to be written to the database, at most.
const DEFENDER_QUEUE: usize = 1024;

/// What the defender tells the other nodes.
enum Shared {
    /// A ban it decided.
    Ban(Ban),
    /// Points an offense scored (negative: forgiven) against an address.
    Points(IpAddr, i64),
}

/// Hooks the defender so that the bans it decides and the points it scores are written to
/// the database, in order, by the task returned.
fn share_defender(database: &Database, gateway: &Arc<Gateway>) -> tokio::task::JoinHandle<()> {
    let (queue, mut queued) = mpsc::channel::<Shared>(DEFENDER_QUEUE);
    let bans = queue.clone();
    let hook: wharf_access::defender::BanHook = Box::new(move |ban| {
        if bans.try_send(Shared::Ban(ban.clone())).is_err() {
            tracing::warn!(address = %ban.address, "ban not shared with the other nodes: too many waiting");
        }
    });
    if gateway.defender().on_ban(hook).is_err() {
        tracing::warn!("the defender's bans are shared already; not a second time");
    }
    let hook: wharf_access::defender::OffenseHook = Box::new(move |address, points| {
        if queue.try_send(Shared::Points(address, points)).is_err() {
            tracing::warn!(%address, "offense not added to the cluster's score: too many waiting");
        }
    });
    if gateway.defender().on_offense(hook).is_err() {
        tracing::warn!("the defender's scores are shared already; not a second time");
    }
    let (database, gateway) = (database.clone(), gateway.clone());
    tokio::spawn(async move {
        while let Some(shared) = queued.recv().await {
            match shared {
                Shared::Ban(ban) => {
                    if let Err(err) = database.record_ban(&ban).await {
                        tracing::warn!(address = %ban.address, error = %err, "ban not shared with the other nodes");
                    }
                }
                Shared::Points(address, points) => {
                    let rules = gateway.defender().settings();
                    match database.add_to_score(address, points, &rules).await {
                        Ok(Some(ban)) => {
                            tracing::warn!(
                                target: "wharf::defender",
                                %address,
                                score = ban.score,
                                ban_secs = rules.ban_time.as_secs(),
                                "address banned on every node: its offenses across the cluster"
                            );
                            gateway.defender().announce_ban(
                                address,
                                rules.ban_time,
                                "offenses across the cluster",
                            );
                        }
                        Ok(None) => {}
                        Err(err) => {
                            tracing::warn!(%address, error = %err, "offense not added to the cluster's score")
                        }
                    }
                }
            }
        }
    })
}

/// Applies the bans of the database (a ban held that ends later stays).
async fn apply_bans(database: &Database, gateway: &Gateway) {
    match database.active_bans().await {
        Ok(bans) => {
            gateway.defender().restore(&bans);
            tracing::info!(bans = bans.len(), "bans reloaded from the database");
        }
        Err(err) => tracing::warn!(error = %err, "bans not reloaded from the database"),
    }
}

/// Reads the users again and installs them; on failure keeps the ones the node has.
async fn reload(
    database: &Database,
    gateway: &Gateway,
    config: &WharfConfig,
    open_files: Option<u64>,
) {
    match database.load_users().await {
        Ok(users) => {
            let count = users.len();
            crate::server::install_users(gateway, config, open_files, users);
            tracing::info!(users = count, "users reloaded from the database");
        }
        Err(err) => {
            tracing::error!(error = %err, "users not reloaded from the database; the previous ones stay");
        }
    }
}
