//! SSH user authentication, decided by the shared login.
//!
//! russh runs the protocol (it verifies key signatures, counts rejections and closes the
//! connection after too many); this module decides each step with
//! [`wharf_access::Authenticator`]:
//!
//! - a key *offer* is answered with `offer_key` (no login yet, so unknown keys cost nothing
//!   locally; a name of the external authentication service is asked there);
//! - a key whose signature russh verified logs in with `Credential::PublicKey`; for a user who
//!   needs key *and* password the login says `NeedsPassword`, which becomes SSH "partial
//!   success": the client is asked for the password next, by `password` or
//!   `keyboard-interactive`, and that login carries both;
//! - a password (directly or as the answer to the keyboard-interactive prompt) logs in with
//!   `Credential::Password`.
//!
//! Unknown users and wrong passwords are rejected alike (the login makes them take the same
//! time); the reason is in the audit log only.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use russh::keys::{Algorithm, PublicKey};
use russh::server::Auth;
use russh::{MethodKind, MethodSet};
use wharf_access::{Credential, Gateway, LoginError, LoginRequest, Password, Protocol, Session};

use crate::algorithms::user_key_algorithm_allowed;

/// The methods every connection is offered; each user's own choice is enforced by the login.
pub(crate) const OFFERED_METHODS: &[MethodKind] =
    &[MethodKind::PublicKey, MethodKind::Password, MethodKind::KeyboardInteractive];

/// What remains to be proven once a key was accepted for a key-and-password user.
const SECOND_FACTOR_METHODS: &[MethodKind] =
    &[MethodKind::Password, MethodKind::KeyboardInteractive];

/// The single keyboard-interactive prompt.
const PASSWORD_PROMPT: &str = "Password: ";

/// Where a connection's authentication stands.
enum Phase {
    /// Nothing proven yet.
    Pending,
    /// `user` proved possession of `key`; their password is still required.
    KeyVerified { user: String, key: PublicKey },
    /// Logged in; the session is waiting to be used by channels.
    Authenticated(Session),
}

/// Authentication state of one SSH connection.
pub(crate) struct Authentication {
    gateway: Arc<Gateway>,
    peer: SocketAddr,
    phase: Phase,
}

impl Authentication {
    pub(crate) fn new(gateway: Arc<Gateway>, peer: SocketAddr) -> Self {
        Authentication { gateway, peer, phase: Phase::Pending }
    }

    /// The logged-in session, once authentication succeeded.
    pub(crate) fn session(&self) -> Option<&Session> {
        match &self.phase {
            Phase::Authenticated(session) => Some(session),
            _ => None,
        }
    }

    /// Answers a key offered before any signature: accepted only if the login would take it.
    pub(crate) async fn offer_key(
        &self,
        user: &str,
        key: &PublicKey,
        algorithm: &Algorithm,
    ) -> Auth {
        if user_key_algorithm_allowed(algorithm)
            && self.gateway.authenticator.offer_key(user, key, self.peer).await
        {
            Auth::Accept
        } else {
            Auth::reject()
        }
    }

    /// Logs in with a key whose signature has been verified.
    pub(crate) async fn key_verified(&mut self, user: &str, key: &PublicKey) -> Auth {
        let result = self.login(user, Credential::PublicKey(key.clone())).await;
        match result {
            Err(LoginError::NeedsPassword) => {
                self.phase = Phase::KeyVerified { user: user.to_owned(), key: key.clone() };
                Auth::Reject {
                    proceed_with_methods: Some(MethodSet::from(SECOND_FACTOR_METHODS)),
                    partial_success: true,
                }
            }
            other => self.conclude(other),
        }
    }

    /// Logs in with a password; after a verified key of the same user, with both.
    pub(crate) async fn password(&mut self, user: &str, password: &str) -> Auth {
        let password = Password::new(password);
        let credential = match std::mem::replace(&mut self.phase, Phase::Pending) {
            Phase::KeyVerified { user: key_user, key } if key_user == user => {
                Credential::PublicKeyAndPassword { key, password }
            }
            _ => Credential::Password(password),
        };
        let result = self.login(user, credential).await;
        self.conclude(result)
    }

    /// The first step of keyboard-interactive: one hidden prompt for the password.
    pub(crate) fn password_prompt() -> Auth {
        Auth::Partial {
            name: Cow::Borrowed(""),
            instructions: Cow::Borrowed(""),
            prompts: Cow::Borrowed(&[(Cow::Borrowed(PASSWORD_PROMPT), false)]),
        }
    }

    /// The client's answers to the password prompt.
    pub(crate) async fn prompt_answered(&mut self, user: &str, answers: Vec<Bytes>) -> Auth {
        let [answer] = answers.as_slice() else { return Auth::reject() };
        match std::str::from_utf8(answer) {
            Ok(password) => self.password(user, password).await,
            Err(_) => Auth::reject(),
        }
    }

    async fn login(&self, user: &str, credential: Credential) -> Result<Session, LoginError> {
        let request = LoginRequest {
            protocol: Protocol::Sftp,
            peer: self.peer,
            user: user.to_owned(),
            credential,
        };
        self.gateway.authenticator.login(request).await
    }

    fn conclude(&mut self, result: Result<Session, LoginError>) -> Auth {
        match result {
            Ok(session) => {
                self.phase = Phase::Authenticated(session);
                Auth::Accept
            }
            Err(LoginError::Unavailable(err)) => {
                tracing::warn!(peer = %self.peer, error = %err, "login refused: storage unavailable");
                Auth::reject()
            }
            Err(LoginError::Paused) => {
                tracing::warn!(peer = %self.peer, "login refused: the user database cannot be reached");
                Auth::reject()
            }
            Err(LoginError::AuthServiceUnavailable) => {
                tracing::warn!(peer = %self.peer, "login refused: the authentication service is unavailable");
                Auth::reject()
            }
            Err(LoginError::TooManySessions(cap)) => {
                tracing::info!(peer = %self.peer, cap, "login refused: the user's session cap is reached");
                Auth::reject()
            }
            // Denied, or a second factor asked out of turn: the client learns nothing more.
            Err(_) => Auth::reject(),
        }
    }
}
