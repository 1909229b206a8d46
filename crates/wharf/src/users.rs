//! `wharf users`: the users of the shared database, listed and imported from a users file.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use wharf_db::Database;

use crate::config::LoadedConfig;

/// Connects to the database `loaded` names, or says why there is none.
async fn database(loaded: &LoadedConfig) -> anyhow::Result<Database> {
    let Some(config) = &loaded.config.database else {
        anyhow::bail!(
            "{} has no `database` section: its users are in {}",
            loaded.source,
            loaded
                .users_file()
                .map_or("the configuration itself".to_owned(), |p| p.display().to_string())
        );
    };
    Database::connect(config).await.context("opening the shared database")
}

/// The users of the database, one line each: name, home, protocols, state, last change.
pub async fn list(loaded: &LoadedConfig) -> anyhow::Result<String> {
    let database = database(loaded).await?;
    let users = database.list_users().await?;
    let mut out = String::new();
    let _ = writeln!(out, "{} users in {}", users.len(), database.describe());
    for user in users {
        let config = &user.config;
        let home = config.home.as_ref().map_or("/".to_owned(), ToString::to_string);
        let protocols = match &config.protocols {
            Some(protocols) => protocols
                .iter()
                .map(|p| format!("{p:?}").to_lowercase())
                .collect::<Vec<_>>()
                .join(","),
            None => "ftp,sftp".to_owned(),
        };
        let state = if config.disabled { "disabled" } else { "enabled" };
        let _ = writeln!(
            out,
            "  {:<24} home {:<24} [{protocols}] {state}, changed {}",
            user.name, home, user.updated_at
        );
    }
    Ok(out)
}

/// Adds or replaces the users of the users file `file` in the database (all or nothing);
/// every node applies the change at once.
pub async fn import(loaded: &LoadedConfig, file: &Path) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let database = database(loaded).await?;
    let report = database
        .import_users(&text)
        .await
        .with_context(|| format!("importing {}", file.display()))?;
    Ok(format!(
        "{}: {} users added, {} replaced in {}",
        file.display(),
        report.added,
        report.updated,
        database.describe()
    ))
}
