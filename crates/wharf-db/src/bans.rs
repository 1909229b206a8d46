//! The defender's bans, shared by every node: one row per banned address, its end the latest
//! any node decided; and its scores, added up over the nodes: an address is banned on all
//! when its offenses on all of them, within one observation window, reach the threshold.

use std::net::IpAddr;

use wharf_access::{Ban, DefenderConfig};

use crate::Database;
use crate::error::DbError;

impl Database {
    /// Records `ban` (decided on this node); an address banned already keeps the later end.
    /// Bans that have ended are removed in the same transaction.
    pub async fn record_ban(&self, ban: &Ban) -> Result<(), DbError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        let until = ban.until_unix as f64;
        let score = i32::try_from(ban.score).unwrap_or(i32::MAX);
        transaction
            .execute(
                "INSERT INTO wharf_bans (address, until, score) VALUES ($1, to_timestamp($2), $3) \
                 ON CONFLICT (address) DO UPDATE SET until = GREATEST(wharf_bans.until, EXCLUDED.until), \
                 score = EXCLUDED.score",
                &[&ban.address, &until, &score],
            )
            .await?;
        transaction.execute("DELETE FROM wharf_bans WHERE until <= now()", &[]).await?;
        transaction.commit().await?;
        Ok(())
    }

    /// Adds `points` (negative: forgiven) to the score of `address` across the cluster, under
    /// `rules`; when that reaches the threshold, bans the address (every node is told) and
    /// starts its score again from zero. Returns the ban decided, if any. A score whose
    /// observation window is over starts again from zero first.
    pub async fn add_to_score(
        &self,
        address: IpAddr,
        points: i64,
        rules: &DefenderConfig,
    ) -> Result<Option<Ban>, DbError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        let window = rules.observation_window.as_secs_f64();
        transaction
            .execute(
                "DELETE FROM wharf_scores WHERE window_start < now() - make_interval(secs => $1)",
                &[&window],
            )
            .await?;
        let points = i32::try_from(points.clamp(i32::MIN.into(), i32::MAX.into())).unwrap_or(0);
        let score: i32 = transaction
            .query_one(
                "INSERT INTO wharf_scores (address, score) VALUES ($1, GREATEST(0, $2)) \
                 ON CONFLICT (address) DO UPDATE \
                 SET score = GREATEST(0, wharf_scores.score + $2) RETURNING score",
                &[&address, &points],
            )
            .await?
            .get(0);
        let score = u32::try_from(score).unwrap_or(0);
        if score < rules.threshold {
            transaction.commit().await?;
            return Ok(None);
        }
        transaction.execute("DELETE FROM wharf_scores WHERE address = $1", &[&address]).await?;
        let ban_secs = rules.ban_time.as_secs_f64();
        let score_value = i32::try_from(score).unwrap_or(i32::MAX);
        let until: i64 = transaction
            .query_one(
                "INSERT INTO wharf_bans (address, until, score) \
                 VALUES ($1, now() + make_interval(secs => $2), $3) \
                 ON CONFLICT (address) DO UPDATE \
                 SET until = GREATEST(wharf_bans.until, EXCLUDED.until), score = EXCLUDED.score \
                 RETURNING extract(epoch FROM until)::bigint",
                &[&address, &ban_secs, &score_value],
            )
            .await?
            .get(0);
        transaction.commit().await?;
        Ok(Some(Ban { address, until_unix: u64::try_from(until).unwrap_or(0), score }))
    }

    /// Lifts the ban of `address` on every node and forgets its score across the cluster;
    /// whether a ban was in force. Every node hears of it on [`crate::LIFTED_CHANNEL`].
    pub async fn lift_ban(&self, address: IpAddr) -> Result<bool, DbError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        let lifted = transaction
            .execute("DELETE FROM wharf_bans WHERE address = $1 AND until > now()", &[&address])
            .await?;
        transaction.execute("DELETE FROM wharf_bans WHERE address = $1", &[&address]).await?;
        transaction.execute("DELETE FROM wharf_scores WHERE address = $1", &[&address]).await?;
        // Sent at commit, to every listening node (this one too).
        transaction
            .execute("SELECT pg_notify($1, $2)", &[&crate::LIFTED_CHANNEL, &address.to_string()])
            .await?;
        transaction.commit().await?;
        Ok(lifted > 0)
    }

    /// Tells every node to end the open sessions of `user` (on [`crate::END_SESSIONS_CHANNEL`]).
    pub async fn end_sessions_of(&self, user: &str) -> Result<(), DbError> {
        let client = self.client().await?;
        client.execute("SELECT pg_notify($1, $2)", &[&crate::END_SESSIONS_CHANNEL, &user]).await?;
        Ok(())
    }

    /// The bans that have not ended.
    pub async fn active_bans(&self) -> Result<Vec<Ban>, DbError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT address, extract(epoch FROM until)::bigint, score FROM wharf_bans \
                 WHERE until > now() ORDER BY until",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| {
                let address: IpAddr = row.get(0);
                let until: i64 = row.get(1);
                let score: i32 = row.get(2);
                Ban {
                    address,
                    until_unix: u64::try_from(until).unwrap_or(0),
                    score: u32::try_from(score).unwrap_or(0),
                }
            })
            .collect())
    }
}
