//! Logging in: `USER`, `PASS`, `REIN`.

use wharf_access::{Credential, LoginError, LoginRequest, Password, Protocol};
use wharf_vfs::VPath;

use super::{Answer, FtpSession, LoggedIn, LoginState, Pending, Settings};
use crate::command::PasswordArg;
use crate::reply::Reply;

/// Names that ask for anonymous login (RFC 1635).
const ANONYMOUS_NAMES: [&str; 2] = ["anonymous", "ftp"];

impl FtpSession {
    pub(super) fn user(&mut self, name: String) -> Reply {
        if self.is_logged_in() {
            // RFC 959 lets USER change the user: the old login ends here.
            self.reinitialize();
        }
        // A refused USER must not leave an earlier one waiting for its password.
        self.login = LoginState::AwaitingUser;
        if !self.tls.control_secure() {
            if self.policy.require_control {
                return Reply::new(530, "This server requires TLS: send AUTH TLS before USER.");
            }
            if self.context.gateway.authenticator.tls_requirement(&name).control {
                return Reply::new(
                    530,
                    "This account requires a TLS-protected connection: send AUTH TLS before USER.",
                );
            }
        }
        let anonymous = self.context.config.anonymous_user.is_some()
            && ANONYMOUS_NAMES.iter().any(|anon| anon.eq_ignore_ascii_case(&name));
        let reply = if anonymous {
            Reply::new(331, "Anonymous login okay, send your e-mail address as password.")
        } else {
            Reply::new(331, format!("Password required for {name}."))
        };
        self.login = LoginState::AwaitingPassword { user: name, anonymous };
        reply
    }

    pub(super) async fn pass(&mut self, password: PasswordArg) -> Answer {
        let (user, anonymous) = match &self.login {
            LoginState::AwaitingPassword { user, anonymous } => (user.clone(), *anonymous),
            LoginState::LoggedIn(_) => return Reply::new(503, "Already logged in.").into(),
            LoginState::AwaitingUser => return Reply::new(503, "Send USER first.").into(),
        };
        self.login = LoginState::AwaitingUser;
        let anonymous_identity = self.context.config.anonymous_user.clone();
        let (user, credential) = match (anonymous, anonymous_identity) {
            (true, Some(identity)) => (identity, Credential::Anonymous),
            _ => (user, Credential::Password(Password::new(password.expose()))),
        };
        let protocol = if self.tls.control_secure() { Protocol::Ftps } else { Protocol::Ftp };
        let request = LoginRequest { protocol, peer: self.peer, user, credential };
        match self.context.gateway.authenticator.login(request).await {
            Ok(session) => {
                tracing::info!(peer = %self.peer, user = session.user_name(), "logged in");
                self.login =
                    LoginState::LoggedIn(Box::new(LoggedIn { session, cwd: VPath::root() }));
                Reply::new(230, "Login successful.").into()
            }
            Err(LoginError::TlsRequired) => Reply::new(
                530,
                "This account requires a TLS-protected connection: send AUTH TLS before USER.",
            )
            .into(),
            Err(LoginError::Paused) => Answer::ReplyAndClose(Reply::new(
                421,
                "Logins are paused: the user database cannot be reached. Try again later.",
            )),
            Err(LoginError::AuthServiceUnavailable) => Answer::ReplyAndClose(Reply::new(
                421,
                "The authentication service is unavailable. Try again later.",
            )),
            Err(LoginError::TooManySessions(_)) => Answer::ReplyAndClose(Reply::new(
                421,
                "Too many sessions for this user. Try again later.",
            )),
            Err(LoginError::Unavailable(err)) => {
                tracing::error!(peer = %self.peer, error = %err, "user storage unavailable");
                Reply::new(530, "Login failed: the account's storage is unavailable.").into()
            }
            Err(LoginError::Denied | LoginError::NeedsPassword) => {
                self.login_failures += 1;
                let reply = Reply::new(530, "Login incorrect.");
                if self.login_failures >= self.context.config.max_login_failures {
                    tracing::info!(peer = %self.peer, "too many failed logins; closing");
                    Answer::ReplyAndClose(reply)
                } else {
                    reply.into()
                }
            }
        }
    }

    pub(super) fn rein(&mut self) -> Reply {
        self.reinitialize();
        Reply::new(220, "Session reset; log in again.")
    }

    /// Back to the state right after the greeting. TLS on the control connection stays: it
    /// cannot be taken off again.
    pub(super) fn reinitialize(&mut self) {
        self.login = LoginState::AwaitingUser;
        self.settings = Settings::default();
        self.pending = Pending::default();
        self.data = None;
    }
}
