//! TLS negotiation (RFC 4217): `AUTH`, `PBSZ`, `PROT`, `CCC`. The TLS itself belongs to the
//! provider behind [`crate::tls::FtpTls`]; without one these commands are refused.

use std::io;
use std::sync::Arc;

use super::{Answer, FtpSession, LoginState};
use crate::command::{AuthMechanism, ProtectionLevel};
use crate::reply::Reply;
use crate::tls::FtpTlsConnection;

fn no_tls() -> Reply {
    Reply::new(502, "TLS is not available on this server.")
}

impl FtpSession {
    pub(super) async fn auth(&mut self, mechanism: AuthMechanism) -> Answer {
        let Some(setup) = self.context.tls.as_ref() else { return no_tls().into() };
        if self.tls.control_secure() {
            return Reply::new(503, "The control connection is already protected.").into();
        }
        if self.is_logged_in() {
            return Reply::new(503, "AUTH must come before login.").into();
        }
        let legacy_ssl = match mechanism {
            AuthMechanism::Tls => false,
            AuthMechanism::Ssl => true,
            AuthMechanism::Other(name) => {
                return Reply::new(504, format!("AUTH {name} is not supported; use AUTH TLS."))
                    .into();
            }
        };
        let connection: Arc<dyn FtpTlsConnection> = setup.provider.connection();
        if self.control.send(&Reply::new(234, "Proceed with TLS negotiation.")).await.is_err() {
            return Answer::Close;
        }
        // The handshake is bounded like a login: a client that never finishes it cannot hold
        // the session.
        let limit = self.context.config.login_timeout;
        let handshake = tokio::time::timeout(limit, self.control.secure(connection.as_ref()));
        match handshake.await.unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into())) {
            Ok(discarded) => {
                if discarded {
                    tracing::warn!(peer = %self.peer, "discarded plaintext sent after AUTH");
                }
                self.tls.connection = Some(connection);
                // A user name given in the clear is forgotten: it must come again, protected.
                self.login = LoginState::AwaitingUser;
                if legacy_ssl {
                    // `AUTH SSL` clients expect protected data without asking for it.
                    self.tls.pbsz_done = true;
                    self.tls.protect_data = true;
                }
                Answer::Sent
            }
            Err(err) => {
                tracing::info!(peer = %self.peer, error = %err, "TLS handshake on control failed");
                Answer::Close
            }
        }
    }

    pub(super) fn pbsz(&mut self, _size: u64) -> Reply {
        if self.context.tls.is_none() {
            return no_tls();
        }
        if !self.tls.control_secure() {
            return Reply::new(503, "PBSZ needs a protected control connection: AUTH TLS first.");
        }
        self.tls.pbsz_done = true;
        // TLS is a stream protection: the buffer size is always 0 (RFC 4217, section 8).
        Reply::new(200, "PBSZ=0")
    }

    pub(super) fn prot(&mut self, level: ProtectionLevel) -> Reply {
        if self.context.tls.is_none() {
            return no_tls();
        }
        if !self.tls.control_secure() {
            return Reply::new(503, "PROT needs a protected control connection: AUTH TLS first.");
        }
        if !self.tls.pbsz_done {
            return Reply::new(503, "PBSZ must come before PROT.");
        }
        match level {
            ProtectionLevel::Private => {
                self.tls.protect_data = true;
                Reply::new(200, "PROT P: data connections are protected.")
            }
            ProtectionLevel::Clear if self.data_tls_required() => {
                Reply::new(534, "Data connections must be protected here; use PROT P.")
            }
            ProtectionLevel::Clear => {
                self.tls.protect_data = false;
                Reply::new(200, "PROT C: data connections are in the clear.")
            }
            ProtectionLevel::Safe | ProtectionLevel::Confidential => {
                Reply::new(536, "Only PROT C and PROT P are supported.")
            }
        }
    }

    pub(super) fn ccc(&mut self) -> Reply {
        if self.context.tls.is_none() {
            return no_tls();
        }
        Reply::new(534, "CCC refused: the control connection stays protected.")
    }

    /// Whether this listener or this user demands protected data connections.
    pub(super) fn data_tls_required(&self) -> bool {
        let by_user = match &self.login {
            LoginState::LoggedIn(user) => user.session.user().require_tls.data,
            _ => false,
        };
        self.policy.require_data || by_user
    }

    /// The TLS state data connections must use, or the refusal when they must be protected
    /// but `PROT P` is not in force.
    pub(super) fn data_protection(&self) -> Result<Option<Arc<dyn FtpTlsConnection>>, Reply> {
        match (&self.tls.connection, self.tls.protect_data) {
            (Some(connection), true) => Ok(Some(connection.clone())),
            _ if self.data_tls_required() => Err(Reply::new(
                521,
                "Data connections must be protected: send PBSZ 0 and PROT P first.",
            )),
            _ => Ok(None),
        }
    }
}
