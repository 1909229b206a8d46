//! The defender's bans, shared by every node: one row per banned address, its end the latest
//! any node decided.

use std::net::IpAddr;

use wharf_access::Ban;

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
