//! Users in the database: one row per user, its definition the same document as a users-file
//! entry (stored as JSON), so one validation serves both.

use serde_json::Value;
use wharf_access::{UserConfig, UserDb};

use crate::Database;
use crate::error::DbError;

/// A user as stored.
#[derive(Debug, Clone)]
pub struct StoredUser {
    /// The login name (the row's key).
    pub name: String,
    /// The definition, valid as a users-file entry.
    pub config: UserConfig,
    /// When the row last changed (RFC 3339).
    pub updated_at: String,
}

/// What an import changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Users that were not in the database.
    pub added: usize,
    /// Users whose definition was replaced.
    pub updated: usize,
}

impl Database {
    /// Every user, each definition validated as the users file's are.
    pub async fn list_users(&self) -> Result<Vec<StoredUser>, DbError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT name, definition, to_char(updated_at AT TIME ZONE 'UTC', \
                 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM wharf_users ORDER BY name",
                &[],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let name: String = row.get(0);
                let definition: Value = row.get(1);
                let config = user_config(&name, definition)?;
                Ok(StoredUser { name, config, updated_at: row.get(2) })
            })
            .collect()
    }

    /// Every user, as the authenticator takes them. Fails on any invalid user (the caller
    /// keeps the users it has).
    pub async fn load_users(&self) -> Result<UserDb, DbError> {
        let configs: Vec<UserConfig> =
            self.list_users().await?.into_iter().map(|user| user.config).collect();
        Ok(UserDb::from_configs(configs)?)
    }

    /// Every user's definition as stored (a users-file entry as JSON), by name.
    pub async fn user_definitions(&self) -> Result<Vec<(String, Value)>, DbError> {
        let client = self.client().await?;
        let rows =
            client.query("SELECT name, definition FROM wharf_users ORDER BY name", &[]).await?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    /// Stores `definition` (a users-file entry as JSON, validated first) as user `name`'s;
    /// whether the user is new. Every node follows (the change is notified).
    pub async fn put_user(&self, name: &str, definition: &Value) -> Result<bool, DbError> {
        UserDb::from_configs([user_config(name, definition.clone())?])?;
        let client = self.client().await?;
        let row = client
            .query_one(
                "INSERT INTO wharf_users (name, definition) VALUES ($1, $2) \
                 ON CONFLICT (name) DO UPDATE SET definition = EXCLUDED.definition, \
                 updated_at = now() RETURNING (xmax = 0)",
                &[&name, definition],
            )
            .await?;
        Ok(row.get(0))
    }

    /// Removes user `name`; whether there was one. Every node follows.
    pub async fn delete_user(&self, name: &str) -> Result<bool, DbError> {
        let client = self.client().await?;
        Ok(client.execute("DELETE FROM wharf_users WHERE name = $1", &[&name]).await? > 0)
    }

    /// Adds or replaces the users of a users file's text (`users: [...]`), in one
    /// transaction: every user is validated first, and one bad user changes nothing. Users
    /// in the database but not in the file are left as they are.
    pub async fn import_users(&self, users_yaml: &str) -> Result<ImportReport, DbError> {
        let documents = parse_users_file(users_yaml)?;
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        let mut report = ImportReport::default();
        for (name, definition) in documents {
            let row = transaction
                .query_one(
                    "INSERT INTO wharf_users (name, definition) VALUES ($1, $2) \
                     ON CONFLICT (name) DO UPDATE SET definition = EXCLUDED.definition, \
                     updated_at = now() RETURNING (xmax = 0)",
                    &[&name, &definition],
                )
                .await?;
            if row.get::<_, bool>(0) {
                report.added += 1;
            } else {
                report.updated += 1;
            }
        }
        transaction.commit().await?;
        Ok(report)
    }
}

/// The users of a users file, each with its definition as JSON, all validated (each user,
/// and the set: no name twice).
fn parse_users_file(text: &str) -> Result<Vec<(String, Value)>, DbError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        users: Vec<serde_yaml::Value>,
    }
    let file: File =
        serde_yaml::from_str(text).map_err(|err| DbError::UsersFile(err.to_string()))?;
    let mut documents = Vec::with_capacity(file.users.len());
    let mut configs = Vec::with_capacity(file.users.len());
    for entry in file.users {
        let config: UserConfig = serde_yaml::from_value(entry.clone())
            .map_err(|err| DbError::UsersFile(err.to_string()))?;
        let definition = serde_json::to_value(&entry).map_err(|err| DbError::BadUser {
            name: config.name.clone(),
            reason: format!("not representable as JSON: {err}"),
        })?;
        // What is stored must read back as the same user.
        user_config(&config.name, definition.clone())?;
        documents.push((config.name.clone(), definition));
        configs.push(config);
    }
    UserDb::from_configs(configs)?;
    Ok(documents)
}

/// The user a row's definition describes; its name must be the row's.
fn user_config(name: &str, definition: Value) -> Result<UserConfig, DbError> {
    let bad = |reason: String| DbError::BadUser { name: name.to_owned(), reason };
    let config: UserConfig =
        serde_json::from_value(definition).map_err(|err| bad(err.to_string()))?;
    if config.name != name {
        return Err(bad(format!("its definition names `{}`", config.name)));
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_users_file_becomes_json_documents_that_read_back() {
        let text = "users:\n  - name: alice\n    home: alice\n    quota: { bytes: 10MiB }\n    \
                    mounts: { /firmware: firmware }\n  - { name: bob, home: bob, passwordless: true, protocols: [tftp] }\n";
        let documents = parse_users_file(text).expect("valid");
        assert_eq!(documents.len(), 2);
        assert_eq!(documents[0].0, "alice");
        assert_eq!(documents[0].1["quota"]["bytes"], "10MiB");
        let alice = user_config("alice", documents[0].1.clone()).expect("reads back");
        assert_eq!(alice.mounts.len(), 1);
    }

    #[test]
    fn a_bad_user_or_file_is_refused_whole() {
        let twice = "users:\n  - { name: a, home: a }\n  - { name: a, home: b }\n";
        assert!(matches!(parse_users_file(twice), Err(DbError::Users(_))));
        let misspelled = "users:\n  - { name: a, hmoe: a }\n";
        let err = parse_users_file(misspelled).expect_err("unknown field");
        assert!(err.to_string().contains("hmoe"), "{err}");
        assert!(parse_users_file("user: []\n").is_err());
        let renamed = serde_json::json!({ "name": "mallory" });
        assert!(matches!(user_config("alice", renamed), Err(DbError::BadUser { .. })));
    }
}
