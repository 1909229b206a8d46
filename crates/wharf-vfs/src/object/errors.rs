//! What an object store's failures mean to the tree: one table, so every operation reports
//! the same thing for the same failure.

use crate::error::Error;

/// The tree's error for an object-store failure. A store that cannot be reached, or answers
/// with something unexpected, is an I/O error carrying OpenDAL's description (operation,
/// path, status), which names no credential.
pub(super) fn from_store(err: opendal::Error) -> Error {
    use opendal::ErrorKind as Kind;
    match err.kind() {
        Kind::NotFound => Error::NotFound,
        Kind::PermissionDenied => Error::PermissionDenied,
        // `If-None-Match: *` lost the race: the name was taken meanwhile.
        Kind::AlreadyExists | Kind::ConditionNotMatch => Error::AlreadyExists,
        Kind::IsADirectory => Error::IsADirectory,
        Kind::NotADirectory => Error::NotADirectory,
        _ => Error::Io(std::io::Error::other(err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn the_table() {
        let of = |kind| from_store(opendal::Error::new(kind, "test")).kind();
        assert_eq!(of(opendal::ErrorKind::NotFound), ErrorKind::NotFound);
        assert_eq!(of(opendal::ErrorKind::PermissionDenied), ErrorKind::PermissionDenied);
        assert_eq!(of(opendal::ErrorKind::ConditionNotMatch), ErrorKind::AlreadyExists);
        assert_eq!(of(opendal::ErrorKind::RateLimited), ErrorKind::Io);
        assert_eq!(of(opendal::ErrorKind::Unexpected), ErrorKind::Io);
    }
}
