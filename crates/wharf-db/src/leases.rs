//! Session places counted across the cluster: a lease per session, in the database (per
//! listener, and per user for users with a `max_sessions`).
//!
//! Each node has a name of its own for the process's life (`wharf_nodes`), beats its heart
//! every [`HEARTBEAT`], and takes a lease per session (`wharf_leases`). A place is given when
//! the leases of live nodes (a heartbeat within [`NODE_TIMEOUT`]) for the listener number
//! fewer than its total cap, and those from the address fewer than its per-address cap,
//! counted and taken in one transaction holding an advisory lock on the listener, so that two
//! nodes cannot both take the last place. A lease is
//! removed when its session ends; a node that dies stops beating, its leases stop counting
//! after [`NODE_TIMEOUT`], and the next heartbeat of any node removes it with its leases.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use wharf_access::{PlaceRequest, SharedCaps, SharedPlace, SharedPlaceRefused, SharedPlaces};

use crate::Database;
use crate::error::DbError;

/// How often a node beats its heart.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// How long after its last heartbeat a node's leases stop counting.
pub const NODE_TIMEOUT: Duration = Duration::from_secs(10);

/// This node's leases.
#[derive(Debug, Clone)]
pub struct SessionLeases {
    database: Database,
    node: Arc<str>,
    next: Arc<AtomicI64>,
    runtime: tokio::runtime::Handle,
}

impl SessionLeases {
    /// Registers this node (a name of its own, unique per process) and returns its leases;
    /// run [`SessionLeases::beat`] for as long as the node serves.
    pub async fn register(database: &Database) -> Result<SessionLeases, DbError> {
        let node = format!("{}-{}-{:016x}", host_name(), std::process::id(), rand::random::<u64>());
        database
            .client()
            .await?
            .execute("INSERT INTO wharf_nodes (node) VALUES ($1)", &[&node])
            .await?;
        Ok(SessionLeases {
            database: database.clone(),
            node: node.into(),
            next: Arc::new(AtomicI64::new(1)),
            runtime: tokio::runtime::Handle::current(),
        })
    }

    /// The database the node is registered in.
    pub(crate) fn database(&self) -> &Database {
        &self.database
    }

    /// This node's name in `wharf_nodes`.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Removes this node and its leases (at shutdown, once its sessions are over).
    pub async fn unregister(&self) -> Result<(), DbError> {
        let node: &str = &self.node;
        let client = self.database.client().await?;
        client.execute("DELETE FROM wharf_nodes WHERE node = $1", &[&node]).await?;
        Ok(())
    }

    /// Beats the node's heart every [`HEARTBEAT`] until aborted, and removes the nodes whose
    /// heart stopped (with their leases). A beat that fails is logged and tried again.
    pub async fn beat(self) {
        let mut ticks = tokio::time::interval(HEARTBEAT);
        loop {
            ticks.tick().await;
            if let Err(err) = self.beat_once().await {
                tracing::debug!(error = %err, "heartbeat to the database failed");
            }
        }
    }

    async fn beat_once(&self) -> Result<(), DbError> {
        let client = self.database.client().await?;
        let node: &str = &self.node;
        // Re-registered if another node removed it meanwhile (a long outage): its sessions
        // of before are forgotten by the cluster then, and count on this node only.
        client
            .execute(
                "INSERT INTO wharf_nodes (node) VALUES ($1) \
                 ON CONFLICT (node) DO UPDATE SET heartbeat = now()",
                &[&node],
            )
            .await?;
        let timeout = NODE_TIMEOUT.as_secs_f64();
        client
            .execute(
                "DELETE FROM wharf_nodes WHERE heartbeat < now() - make_interval(secs => $1)",
                &[&timeout],
            )
            .await?;
        Ok(())
    }

    async fn take_lease(
        self,
        listener: &'static str,
        address: IpAddr,
        caps: SharedCaps,
    ) -> Result<Result<Lease, SharedPlaceRefused>, DbError> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let client = self.database.client().await?;
        // One lock per listener, taken by the function (migration 7) for one round trip: the
        // total and the per-address count are both decided under it, so two nodes cannot
        // both take a last place.
        let node: &str = &self.node;
        let timeout = NODE_TIMEOUT.as_secs_f64();
        let outcome: i32 = client
            .query_one(
                "SELECT wharf_take_lease($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &node,
                    &id,
                    &listener,
                    &address,
                    &cap_value(caps.total),
                    &cap_value(caps.per_address),
                    &timeout,
                ],
            )
            .await?
            .get(0);
        Ok(match outcome {
            0 => Ok(Lease { leases: Some(self), id, kind: LeaseKind::Listener }),
            1 => Err(SharedPlaceRefused::Total(caps.total)),
            _ => Err(SharedPlaceRefused::PerAddress(caps.per_address)),
        })
    }

    async fn take_user_lease(
        self,
        user: String,
        cap: usize,
    ) -> Result<Result<Lease, SharedPlaceRefused>, DbError> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let client = self.database.client().await?;
        // One lock per user, as per listener for `take_lease`.
        let node: &str = &self.node;
        let timeout = NODE_TIMEOUT.as_secs_f64();
        let outcome: i32 = client
            .query_one(
                "SELECT wharf_take_user_lease($1, $2, $3, $4, $5)",
                &[&node, &id, &user, &cap_value(cap), &timeout],
            )
            .await?
            .get(0);
        Ok(match outcome {
            0 => Ok(Lease { leases: Some(self), id, kind: LeaseKind::User }),
            _ => Err(SharedPlaceRefused::PerUser(cap)),
        })
    }
}

/// A cap as the database's integer.
fn cap_value(cap: usize) -> i64 {
    i64::try_from(cap).unwrap_or(i64::MAX)
}

/// What a lease holds a place of.
#[derive(Debug, Clone, Copy)]
enum LeaseKind {
    /// A listener's session (`wharf_leases`).
    Listener,
    /// A user's session (`wharf_user_leases`).
    User,
}

/// A lease's outcome as a place: a lease that could not be had because the database is away
/// is a place that counts nothing (see `SharedPlaces::take`).
fn as_place(
    taken: Result<Result<Lease, SharedPlaceRefused>, DbError>,
) -> Result<SharedPlace, SharedPlaceRefused> {
    match taken {
        Ok(taken) => taken.map(|lease| Box::new(lease) as SharedPlace),
        Err(err) => {
            tracing::warn!(error = %err, "session place not counted across the cluster");
            Ok(Box::new(()) as SharedPlace)
        }
    }
}

impl SharedPlaces for SessionLeases {
    fn take(&self, listener: &'static str, address: IpAddr, caps: SharedCaps) -> PlaceRequest {
        let leases = self.clone();
        Box::pin(async move { as_place(leases.take_lease(listener, address, caps).await) })
    }

    fn take_for_user(&self, user: &str, cap: usize) -> PlaceRequest {
        let (leases, user) = (self.clone(), user.to_owned());
        Box::pin(async move { as_place(leases.take_user_lease(user, cap).await) })
    }
}

/// A session's lease; removed when dropped.
struct Lease {
    leases: Option<SessionLeases>,
    id: i64,
    kind: LeaseKind,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(leases) = self.leases.take() else { return };
        let id = self.id;
        let delete = match self.kind {
            LeaseKind::Listener => "DELETE FROM wharf_leases WHERE node = $1 AND id = $2",
            LeaseKind::User => "DELETE FROM wharf_user_leases WHERE node = $1 AND id = $2",
        };
        let runtime = leases.runtime.clone();
        drop(runtime.spawn(async move {
            let node: &str = &leases.node;
            let removed = match leases.database.client().await {
                Ok(client) => {
                    client.execute(delete, &[&node, &id]).await.map(drop).map_err(DbError::from)
                }
                Err(err) => Err(err),
            };
            if let Err(err) = removed {
                // It stops counting when this node's heart does, at the latest.
                tracing::warn!(error = %err, "a session's lease could not be removed");
            }
        }));
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "node".to_owned())
}
