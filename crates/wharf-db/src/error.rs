//! What can go wrong with the shared database.

/// An error of the shared database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The `database` section cannot be used as written.
    #[error("database configuration: {0}")]
    Config(String),
    /// No connection could be had within the connect timeout (the server is down, refuses
    /// us, or the pool is exhausted).
    #[error("the database cannot be reached: {0}")]
    Unreachable(String),
    /// The server answered a query with an error.
    #[error("database query failed: {0}")]
    Query(#[from] tokio_postgres::Error),
    /// A stored user definition is not a valid user.
    #[error("user `{name}` in the database is not valid: {reason}")]
    BadUser {
        /// The row's name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The users together are not valid (a name twice, a bad hash, ...).
    #[error(transparent)]
    Users(#[from] wharf_access::user::UserError),
    /// A quota reservation or reading for a user whose home was never measured.
    #[error("no quota usage is recorded for user `{0}`")]
    QuotaNotMeasured(String),
    /// A users file to import could not be read.
    #[error("users file: {0}")]
    UsersFile(String),
}

impl DbError {
    pub(crate) fn from_pool(err: deadpool_postgres::PoolError) -> DbError {
        use deadpool_postgres::PoolError;
        match err {
            PoolError::Backend(err) => DbError::Unreachable(with_causes(&err)),
            other => DbError::Unreachable(with_causes(&other)),
        }
    }
}

/// `err` and the errors beneath it, as one line: the driver's own message ("error performing
/// TLS handshake") does not say why, its cause does ("invalid peer certificate: ...").
pub(crate) fn with_causes(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(next) = cause {
        let next_text = next.to_string();
        if !text.contains(&next_text) {
            text.push_str(": ");
            text.push_str(&next_text);
        }
        cause = next.source();
    }
    text
}
