//! Where changes to users made through the admin API go: the shared database when one is
//! configured (every node follows its notifications), otherwise the users file — read,
//! changed, validated whole, then written beside and renamed, so no reader ever sees half a
//! file and a bad change leaves the file as it was.
//!
//! Changes are carried out one at a time by the server's signal loop, the same loop that
//! carries out reloads (SIGHUP or the API), so a change and a reload never interleave and no
//! change is lost to a reload that read the file before it. The file is rewritten from its
//! parsed form: comments and formatting of a hand-written users file do not survive.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Where users are kept.
#[derive(Debug, Clone)]
pub enum UserStore {
    /// The users file (`access.users_file`).
    File(PathBuf),
    /// The shared database (boxed: a pool handle is much larger than a path).
    Database(Box<wharf_db::Database>),
    /// Written inline in the configuration (`access.users`): not changed by the API.
    Inline,
}

/// A change to one user.
#[derive(Debug, Clone)]
pub enum UserChange {
    /// Create or replace user `name` with `definition` (a users-file entry).
    Put {
        /// The user.
        name: String,
        /// The whole definition (its `name`, if given, is `name`).
        definition: Map<String, Value>,
    },
    /// Change some keys of user `name`'s definition (a `null` removes the key).
    Patch {
        /// The user.
        name: String,
        /// The keys to set.
        changes: Map<String, Value>,
    },
    /// Remove user `name`.
    Delete {
        /// The user.
        name: String,
    },
}

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// A new user.
    Created,
    /// A user's definition replaced or changed.
    Changed,
    /// A user removed.
    Deleted,
}

/// Why a change was not made.
#[derive(Debug, thiserror::Error)]
pub enum UserStoreError {
    /// No such user.
    #[error("no user named {0:?}")]
    NotFound(String),
    /// The change would make an invalid user (or users file).
    #[error("{0}")]
    Invalid(String),
    /// The users are inline in the configuration.
    #[error(
        "the users are written in the configuration (`access.users`); give them a users file \
         (`access.users_file`) to manage them through the API"
    )]
    Inline,
    /// The users file could not be read or written.
    #[error("users file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The database could not be used.
    #[error("{0}")]
    Database(wharf_db::DbError),
    /// The change was saved, but the reload that applies it failed.
    #[error("the change was saved, but the reload that applies it failed: {0}")]
    ReloadFailed(String),
}

impl From<wharf_db::DbError> for UserStoreError {
    fn from(err: wharf_db::DbError) -> Self {
        match err {
            wharf_db::DbError::BadUser { .. } | wharf_db::DbError::Users(_) => {
                UserStoreError::Invalid(err.to_string())
            }
            other => UserStoreError::Database(other),
        }
    }
}

/// A users file as rewritten: the entries kept as documents.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersDocument {
    #[serde(default)]
    users: Vec<Value>,
}

fn name_of(entry: &Value) -> Option<&str> {
    entry.get("name").and_then(Value::as_str)
}

impl UserStore {
    /// Every user's definition, ordered by name.
    pub async fn definitions(&self) -> Result<Vec<Value>, UserStoreError> {
        let mut entries = match self {
            UserStore::File(path) => read(path)?.users,
            UserStore::Database(database) => {
                database.user_definitions().await?.into_iter().map(|(_, d)| d).collect()
            }
            UserStore::Inline => return Err(UserStoreError::Inline),
        };
        entries.sort_by(|a, b| name_of(a).cmp(&name_of(b)));
        Ok(entries)
    }

    /// Makes `change`; returns what it did and the user's definition after it (`Null` when
    /// deleted). With a users file, the caller reloads to apply it.
    pub async fn apply(&self, change: &UserChange) -> Result<(Applied, Value), UserStoreError> {
        match self {
            UserStore::Inline => Err(UserStoreError::Inline),
            UserStore::File(path) => {
                let mut document = read(path)?;
                let outcome = change_entries(&mut document.users, change)?;
                write(path, &document)?;
                Ok(outcome)
            }
            UserStore::Database(database) => {
                let name = change.name();
                let mut entries: Vec<Value> = database
                    .user_definitions()
                    .await?
                    .into_iter()
                    .filter(|(stored, _)| stored == name)
                    .map(|(_, definition)| definition)
                    .collect();
                let (applied, user) = change_entries(&mut entries, change)?;
                match applied {
                    Applied::Deleted => {
                        database.delete_user(name).await?;
                    }
                    Applied::Created | Applied::Changed => {
                        database.put_user(name, &user).await?;
                    }
                }
                Ok((applied, user))
            }
        }
    }
}

impl UserChange {
    /// The user changed.
    pub fn name(&self) -> &str {
        match self {
            UserChange::Put { name, .. }
            | UserChange::Patch { name, .. }
            | UserChange::Delete { name } => name,
        }
    }
}

/// Makes `change` in `entries` (users-file entries), then validates them all as a users file.
fn change_entries(
    entries: &mut Vec<Value>,
    change: &UserChange,
) -> Result<(Applied, Value), UserStoreError> {
    let name = change.name();
    let index = entries.iter().position(|entry| name_of(entry) == Some(name));
    let outcome = match (change, index) {
        (UserChange::Put { definition, .. }, _) => {
            if definition.get("name").is_some_and(|given| given.as_str() != Some(name)) {
                return Err(UserStoreError::Invalid(format!(
                    "the definition's `name` is not {name:?}"
                )));
            }
            let mut definition = definition.clone();
            definition.insert("name".to_owned(), Value::String(name.to_owned()));
            let user = Value::Object(definition);
            match index {
                Some(index) => {
                    entries[index] = user.clone();
                    (Applied::Changed, user)
                }
                None => {
                    entries.push(user.clone());
                    (Applied::Created, user)
                }
            }
        }
        (UserChange::Patch { changes, .. }, Some(index)) => {
            if changes.get("name").is_some_and(|given| given.as_str() != Some(name)) {
                return Err(UserStoreError::Invalid("a user cannot be renamed".to_owned()));
            }
            let Value::Object(entry) = &mut entries[index] else {
                return Err(UserStoreError::Invalid(format!("user {name:?} is not a mapping")));
            };
            for (key, value) in changes {
                match value {
                    Value::Null => entry.remove(key),
                    value => entry.insert(key.clone(), value.clone()),
                };
            }
            (Applied::Changed, entries[index].clone())
        }
        (UserChange::Delete { .. }, Some(index)) => {
            entries.remove(index);
            (Applied::Deleted, Value::Null)
        }
        (UserChange::Patch { .. } | UserChange::Delete { .. }, None) => {
            return Err(UserStoreError::NotFound(name.to_owned()));
        }
    };
    validate(entries)?;
    Ok(outcome)
}

/// Whether `entries` make a valid users file: each a valid user, no name twice.
fn validate(entries: &[Value]) -> Result<(), UserStoreError> {
    let configs = entries
        .iter()
        .map(|entry| serde_json::from_value::<wharf_access::UserConfig>(entry.clone()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| UserStoreError::Invalid(err.to_string()))?;
    wharf_access::UserDb::from_configs(configs)
        .map(drop)
        .map_err(|err| UserStoreError::Invalid(err.to_string()))
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> UserStoreError + '_ {
    move |source| UserStoreError::Io { path: path.display().to_string(), source }
}

fn read(path: &Path) -> Result<UsersDocument, UserStoreError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_yaml::from_str(&text).map_err(|err| {
            UserStoreError::Invalid(format!(
                "the users file {} does not parse: {err}",
                path.display()
            ))
        }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(UsersDocument::default()),
        Err(err) => Err(io_error(path)(err)),
    }
}

/// Replaces the users file with `document` (see [`crate::private_file`]: it holds password
/// hashes).
fn write(path: &Path, document: &UsersDocument) -> Result<(), UserStoreError> {
    let text = serde_yaml::to_string(document)
        .map_err(|err| io_error(path)(std::io::Error::other(err)))?;
    crate::private_file::replace(path, text.as_bytes()).map_err(io_error(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(json: &str) -> Map<String, Value> {
        match serde_json::from_str(json).expect("json") {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    #[tokio::test]
    async fn changes_rewrite_the_users_file_whole_and_a_bad_one_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("users.yaml");
        std::fs::write(&path, "users:\n  - { name: alice, home: alice, passwordless: true }\n")
            .expect("write");
        let store = UserStore::File(path.clone());
        let put = UserChange::Put {
            name: "bob".into(),
            definition: object(r#"{"home":"bob","passwordless":true}"#),
        };
        assert_eq!(store.apply(&put).await.expect("put").0, Applied::Created);
        let patch =
            UserChange::Patch { name: "bob".into(), changes: object(r#"{"disabled":true}"#) };
        let (applied, bob) = store.apply(&patch).await.expect("patch");
        assert_eq!((applied, &bob["disabled"]), (Applied::Changed, &Value::Bool(true)));

        let before = std::fs::read_to_string(&path).expect("read");
        let bad = UserChange::Patch {
            name: "bob".into(),
            changes: object(r#"{"password":"plaintext"}"#),
        };
        assert!(matches!(store.apply(&bad).await, Err(UserStoreError::Invalid(_))));
        let renamed =
            UserChange::Put { name: "bob".into(), definition: object(r#"{"name":"eve"}"#) };
        assert!(matches!(store.apply(&renamed).await, Err(UserStoreError::Invalid(_))));
        let missing = UserChange::Delete { name: "nobody".into() };
        assert!(matches!(store.apply(&missing).await, Err(UserStoreError::NotFound(_))));
        assert_eq!(std::fs::read_to_string(&path).expect("read"), before, "unchanged");

        let file: wharf_access::UsersFile = serde_yaml::from_str(&before).expect("a users file");
        assert_eq!(file.users.len(), 2);
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777, 0o600);
        let names: Vec<_> =
            store.definitions().await.expect("list").iter().map(|u| u["name"].clone()).collect();
        assert_eq!(names, ["alice", "bob"]);
        assert_eq!(
            store.apply(&UserChange::Delete { name: "alice".into() }).await.expect("delete").0,
            Applied::Deleted
        );
        assert_eq!(store.definitions().await.expect("list").len(), 1);
    }
}
