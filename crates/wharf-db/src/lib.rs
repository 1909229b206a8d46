//! Wharf's shared state in PostgreSQL, for several nodes behind one load balancer.
//!
//! - [`DatabaseConfig`]: the `database` section (URL, password file, pool size, TLS).
//! - [`Database`]: the connection pool; [`Database::connect`] applies the schema migrations
//!   at start, under an advisory lock, so nodes starting together do not race.
//! - Users ([`Database::load_users`], [`Database::import_users`], [`Database::list_users`]):
//!   one row per user holding the same definition as a users-file entry, validated the same
//!   way.
//! - Bans ([`Database::record_ban`], [`Database::active_bans`]): the defender's bans, one
//!   row per address, so that a ban decided on one node holds on all.
//! - Session places ([`SessionLeases`]): a lease per session, counted over the nodes whose
//!   heart still beats, so that a listener's per-address cap holds for the whole cluster.
//! - Quota ledgers ([`ClusterQuotas`]): each user's usage and each node's reservations, so
//!   that a quota holds for the whole cluster.
//! - [`ChangeWatcher`]: a connection of its own that `LISTEN`s for changes (triggers notify
//!   every change to the users and the bans), tells the node at once, and says whether the
//!   database can be reached; it reconnects by itself.
//!
//! The driver is `tokio-postgres` with the `deadpool-postgres` pool (docs/ARCHITECTURE.md,
//! "Shared state").

mod bans;
mod config;
mod error;
mod leases;
mod migrations;
mod quotas;
mod users;
mod watcher;

pub use config::{DatabaseConfig, DatabaseTls};
pub use error::DbError;
pub use leases::{HEARTBEAT, NODE_TIMEOUT, SessionLeases};
pub use migrations::SCHEMA_VERSION;
pub use quotas::ClusterQuotas;
pub use users::{ImportReport, StoredUser};
pub use watcher::{
    BANS_CHANNEL, ChangeWatcher, END_SESSIONS_CHANNEL, LIFTED_CHANNEL, Reachability, USERS_CHANNEL,
};

use deadpool_postgres::{Pool, Runtime};

/// The shared database: a pool of connections, the schema up to date.
#[derive(Clone)]
pub struct Database {
    pool: Pool,
    connector: config::Connector,
    description: String,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database").field("at", &self.description).finish_non_exhaustive()
    }
}

impl Database {
    /// Connects as `config` says and applies the migrations this version knows that the
    /// database lacks. Fails when the database cannot be reached within the connect timeout.
    pub async fn connect(config: &DatabaseConfig) -> Result<Database, DbError> {
        let connector = config.connector()?;
        let pool = Pool::builder(connector.manager())
            .max_size(config.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(config.connect_timeout))
            .create_timeout(Some(config.connect_timeout))
            .recycle_timeout(Some(config.connect_timeout))
            .build()
            .map_err(|err| DbError::Config(err.to_string()))?;
        let database = Database { pool, description: connector.describe(), connector };
        let mut client = database.client().await?;
        migrations::apply(&mut client).await?;
        Ok(database)
    }

    /// Where the database is (host, port, database, user; never the password), for logs.
    pub fn describe(&self) -> &str {
        &self.description
    }

    /// A watcher of changes, on a connection of its own (see [`ChangeWatcher`]).
    pub fn watcher(&self) -> ChangeWatcher {
        ChangeWatcher::new(self.connector.clone())
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, DbError> {
        self.pool.get().await.map_err(DbError::from_pool)
    }
}
