//! How many sessions each user has open, against the user's `max_sessions`.
//!
//! A login that passed every check takes a place for its user before the session opens, on
//! every protocol (an FTP control connection, an SSH connection, a TFTP transfer each are one
//! session), and holds it until the session ends. The process counts its own sessions first;
//! in a cluster the place is then also taken across the nodes ([`SharedPlaces::take_for_user`]),
//! so a cap of N is N for the whole cluster. A user without `max_sessions` is not counted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::shared_places::{SharedPlace, SharedPlaces};

/// The sessions each user has open in this process.
#[derive(Debug, Default)]
pub(crate) struct UserSessions {
    open: Mutex<HashMap<String, usize>>,
}

/// Why a user got no place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UserCapReached(pub usize);

/// A session's place among its user's; given back when dropped.
pub(crate) struct UserPlace {
    sessions: Arc<UserSessions>,
    user: String,
    /// The place across the cluster, if counted there.
    _shared: Option<SharedPlace>,
}

impl std::fmt::Debug for UserPlace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserPlace").field("user", &self.user).finish_non_exhaustive()
    }
}

impl UserSessions {
    /// Takes a place for a session of `user` under `cap`, in this process and then (when
    /// `shared` is given) across the cluster.
    pub(crate) async fn take(
        self: &Arc<Self>,
        user: &str,
        cap: usize,
        shared: Option<&Arc<dyn SharedPlaces>>,
    ) -> Result<UserPlace, UserCapReached> {
        {
            let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
            let count = open.entry(user.to_owned()).or_default();
            if *count >= cap {
                return Err(UserCapReached(cap));
            }
            *count += 1;
        }
        // From here a refusal drops `place`, which gives the local place back.
        let mut place = UserPlace { sessions: self.clone(), user: user.to_owned(), _shared: None };
        if let Some(shared) = shared {
            let taken = shared.take_for_user(user, cap).await.map_err(|_| UserCapReached(cap))?;
            place._shared = Some(taken);
        }
        Ok(place)
    }

    /// Sessions `user` has open in this process.
    #[cfg(test)]
    fn count(&self, user: &str) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).get(user).copied().unwrap_or(0)
    }
}

impl Drop for UserPlace {
    fn drop(&mut self) {
        let mut open = self.sessions.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_user_holds_at_most_its_cap_and_places_come_back() {
        let sessions = Arc::new(UserSessions::default());
        let first = sessions.take("carol", 2, None).await.expect("first");
        let _second = sessions.take("carol", 2, None).await.expect("second");
        assert_eq!(sessions.take("carol", 2, None).await.expect_err("third"), UserCapReached(2));
        sessions.take("dave", 2, None).await.expect("another user counts apart");
        drop(first);
        let _third = sessions.take("carol", 2, None).await.expect("a place came back");
        assert_eq!(sessions.count("carol"), 2);
        drop(_third);
        drop(_second);
        assert_eq!(sessions.count("carol"), 0);
        assert!(sessions.open.lock().expect("lock").is_empty(), "no entry left behind");
    }
}
