//! Quota ledgers shared by the nodes of a cluster (the rules are in wharf-access's
//! `shared_quota.rs`).
//!
//! `wharf_quota_usage` holds what each user's home uses; `wharf_quota_holds` what each
//! node's uploads in progress hold reserved, one row per node and user. A reservation is one
//! transaction that locks the user's usage row (`FOR UPDATE`), so reservations of one user
//! are decided one at a time across the cluster, adds up the holds of the nodes whose heart
//! beats, and adds to this node's hold only if the whole fits. Settlements are merged per
//! user in memory and written by a task of their own, in one transaction per batch; a batch
//! the database refused is merged back and tried again, so none is lost while the database is
//! away (what waits is one entry per user, whatever the number of uploads).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use wharf_access::{
    Error, LedgerAnswer, LedgerVersion, QuotaConfig, Reserve, Settlement, SharedLedgers,
};

use crate::Database;
use crate::error::DbError;
use crate::leases::{NODE_TIMEOUT, SessionLeases};

/// How long the settlement writer waits before it tries a refused batch again.
const RETRY: Duration = Duration::from_secs(1);

/// This node's side of the shared quota ledgers.
#[derive(Debug, Clone)]
pub struct ClusterQuotas {
    database: Database,
    node: Arc<str>,
    pending: Arc<PendingSettlements>,
}

/// Settlements not yet written, merged per user.
#[derive(Debug, Default)]
struct PendingSettlements {
    by_user: Mutex<HashMap<String, Settlement>>,
    wake: Notify,
}

impl PendingSettlements {
    fn add(&self, user: &str, settlement: Settlement) {
        let mut by_user = self.by_user.lock().unwrap_or_else(|p| p.into_inner());
        let entry = by_user.entry(user.to_owned()).or_default();
        *entry = entry.merged(settlement);
    }

    fn take(&self) -> HashMap<String, Settlement> {
        std::mem::take(&mut *self.by_user.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

fn db_value(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn from_db(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// A database error as the storage error a transfer reports: the client is told of a
/// temporary failure, and the log says why.
fn unavailable(err: DbError) -> Error {
    tracing::warn!(error = %err, "the cluster's quota ledger cannot be reached");
    Error::Io(std::io::Error::other(format!("the cluster's quota ledger cannot be reached: {err}")))
}

impl ClusterQuotas {
    /// The ledgers of the node that `leases` registered; run [`ClusterQuotas::write`] for as
    /// long as the node serves.
    pub fn new(leases: &SessionLeases) -> ClusterQuotas {
        ClusterQuotas {
            database: leases.database().clone(),
            node: leases.node().into(),
            pending: Arc::default(),
        }
    }

    /// Writes settlements as they come, until aborted; a batch that fails is tried again.
    pub async fn write(self) {
        loop {
            self.pending.wake.notified().await;
            while let Err(err) = self.flush().await {
                tracing::warn!(error = %err, "quota settlements wait for the database");
                tokio::time::sleep(RETRY).await;
            }
        }
    }

    /// Writes every settlement sent so far (also at shutdown, before the node leaves).
    pub async fn flush(&self) -> Result<(), DbError> {
        let batch = self.pending.take();
        if batch.is_empty() {
            return Ok(());
        }
        let written = self.write_batch(&batch).await;
        if written.is_err() {
            for (user, settlement) in &batch {
                self.pending.add(user, *settlement);
            }
        }
        written
    }

    async fn write_batch(&self, batch: &HashMap<String, Settlement>) -> Result<(), DbError> {
        let mut client = self.database.client().await?;
        let transaction = client.transaction().await?;
        let node: &str = &self.node;
        for (user, settlement) in batch {
            transaction
                .execute(
                    "UPDATE wharf_quota_usage SET \
                     used_bytes = GREATEST(0, used_bytes + $2), \
                     used_files = GREATEST(0, used_files + $3), version = version + 1 \
                     WHERE user_name = $1",
                    &[user, &settlement.growth_bytes, &settlement.growth_files],
                )
                .await?;
            transaction
                .execute(
                    "UPDATE wharf_quota_holds SET \
                     bytes = GREATEST(0, bytes - $3), files = GREATEST(0, files - $4) \
                     WHERE node = $1 AND user_name = $2",
                    &[
                        &node,
                        user,
                        &db_value(settlement.released_bytes),
                        &db_value(settlement.released_files),
                    ],
                )
                .await?;
        }
        transaction.commit().await?;
        Ok(())
    }

    async fn read_version(&self, user: &str) -> Result<LedgerVersion, DbError> {
        let client = self.database.client().await?;
        let row = client
            .query_opt("SELECT version FROM wharf_quota_usage WHERE user_name = $1", &[&user])
            .await?;
        Ok(LedgerVersion(row.map(|row| row.get(0))))
    }

    /// Records a measurement begun at `since`; a ledger that changed meanwhile (another
    /// node's settlement, or measurement) keeps its own figures.
    async fn record_measurement(
        &self,
        user: &str,
        used: (u64, u64),
        since: LedgerVersion,
    ) -> Result<(), DbError> {
        let client = self.database.client().await?;
        let (bytes, files) = (db_value(used.0), db_value(used.1));
        let recorded = match since.0 {
            None => {
                client
                    .execute(
                        "INSERT INTO wharf_quota_usage (user_name, used_bytes, used_files) \
                         VALUES ($1, $2, $3) ON CONFLICT (user_name) DO NOTHING",
                        &[&user, &bytes, &files],
                    )
                    .await?
            }
            Some(version) => {
                client
                    .execute(
                        "UPDATE wharf_quota_usage \
                         SET used_bytes = $2, used_files = $3, version = version + 1 \
                         WHERE user_name = $1 AND version = $4",
                        &[&user, &bytes, &files, &version],
                    )
                    .await?
            }
        };
        if recorded == 0 {
            tracing::debug!(user, "the quota ledger changed during the measurement; kept as it is");
        }
        Ok(())
    }

    async fn try_reserve(
        &self,
        user: &str,
        limits: QuotaConfig,
        reserve: Reserve,
    ) -> Result<bool, DbError> {
        let mut client = self.database.client().await?;
        let transaction = client.transaction().await?;
        // The lock on the user's row makes the count and the hold below one step cluster-wide.
        let used = transaction
            .query_opt(
                "SELECT used_bytes, used_files FROM wharf_quota_usage \
                 WHERE user_name = $1 FOR UPDATE",
                &[&user],
            )
            .await?
            .ok_or_else(|| DbError::QuotaNotMeasured(user.to_owned()))?;
        let timeout = NODE_TIMEOUT.as_secs_f64();
        let held = transaction
            .query_one(
                "SELECT coalesce(sum(h.bytes), 0)::bigint, coalesce(sum(h.files), 0)::bigint \
                 FROM wharf_quota_holds h JOIN wharf_nodes n ON n.node = h.node \
                 WHERE h.user_name = $1 AND n.heartbeat > now() - make_interval(secs => $2)",
                &[&user, &timeout],
            )
            .await?;
        let used = (from_db(used.get(0)), from_db(used.get(1)));
        let held = (from_db(held.get(0)), from_db(held.get(1)));
        if !reserve.fits(&limits, used, held) {
            return Ok(false);
        }
        let node: &str = &self.node;
        transaction
            .execute(
                "INSERT INTO wharf_quota_holds (node, user_name, bytes, files) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (node, user_name) DO UPDATE \
                 SET bytes = wharf_quota_holds.bytes + EXCLUDED.bytes, \
                     files = wharf_quota_holds.files + EXCLUDED.files",
                &[&node, &user, &db_value(reserve.bytes), &db_value(reserve.files)],
            )
            .await?;
        transaction.commit().await?;
        Ok(true)
    }

    async fn read_usage(&self, user: &str) -> Result<(u64, u64), DbError> {
        self.flush().await?;
        let client = self.database.client().await?;
        let row = client
            .query_opt(
                "SELECT used_bytes, used_files FROM wharf_quota_usage WHERE user_name = $1",
                &[&user],
            )
            .await?
            .ok_or_else(|| DbError::QuotaNotMeasured(user.to_owned()))?;
        Ok((from_db(row.get(0)), from_db(row.get(1))))
    }
}

impl SharedLedgers for ClusterQuotas {
    fn version(&self, user: &str) -> LedgerAnswer<LedgerVersion> {
        let (quotas, user) = (self.clone(), user.to_owned());
        Box::pin(async move { quotas.read_version(&user).await.map_err(unavailable) })
    }

    fn measured(&self, user: &str, used: (u64, u64), since: LedgerVersion) -> LedgerAnswer<()> {
        let (quotas, user) = (self.clone(), user.to_owned());
        Box::pin(
            async move { quotas.record_measurement(&user, used, since).await.map_err(unavailable) },
        )
    }

    fn reserve(&self, user: &str, limits: QuotaConfig, reserve: Reserve) -> LedgerAnswer<bool> {
        let (quotas, user) = (self.clone(), user.to_owned());
        Box::pin(
            async move { quotas.try_reserve(&user, limits, reserve).await.map_err(unavailable) },
        )
    }

    fn settle(&self, user: &str, settlement: Settlement) {
        self.pending.add(user, settlement);
        self.pending.wake.notify_one();
    }

    fn usage(&self, user: &str) -> LedgerAnswer<(u64, u64)> {
        let (quotas, user) = (self.clone(), user.to_owned());
        Box::pin(async move { quotas.read_usage(&user).await.map_err(unavailable) })
    }
}
