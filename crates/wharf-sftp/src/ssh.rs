//! The russh handler of one connection: authentication (delegated to [`crate::auth`]), session
//! channels, the `sftp` subsystem, and the refusal of everything else.
//!
//! An SFTP account must never become a shell or a tunnel: shell and exec requests are answered
//! with one message on the channel's stderr, a failure and the channel's end; terminals, X11,
//! agent forwarding and environment variables are refused; port forwarding requests (global
//! and channel opens) are refused by russh's defaults, which this handler keeps.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use russh::keys::PublicKey;
use russh::server::{
    Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Response, Session, VerifiedPublicKey,
};
use russh::{Channel, ChannelId, ChannelOpenFailure, Pty};
use tokio::sync::watch;
use tokio_util::task::TaskTracker;
use wharf_access::Gateway;

use crate::auth::Authentication;
use crate::sftp::{self, ConnectionMemory, HandleDescriptors, SubsystemSettings};

/// What a client is told when it asks for anything but SFTP.
pub(crate) const REFUSAL_MESSAGE: &str =
    "This server provides SFTP only: shells, commands and forwarding are disabled.\r\n";

/// Session channels one connection may hold at once (OpenSSH clients use one).
pub(crate) const MAX_CHANNELS_PER_CONNECTION: usize = 4;

/// The subsystem served.
const SFTP_SUBSYSTEM: &str = "sftp";

/// The handler russh drives for one connection.
pub(crate) struct SshHandler {
    peer: SocketAddr,
    auth: Authentication,
    /// Session channels opened and not yet turned into an SFTP session.
    unused_channels: HashMap<ChannelId, Channel<Msg>>,
    /// The SFTP sessions of this connection.
    subsystems: TaskTracker,
    settings: SubsystemSettings,
    /// Holds the session once the client is authenticated: ends the authentication deadline,
    /// and the connection then watches whether an operator ends the session.
    authenticated: watch::Sender<Option<wharf_access::Session>>,
    /// The connection's memory, shared by its SFTP sessions: one client, one budget, however
    /// many channels it opens.
    memory: ConnectionMemory,
    /// Where its SFTP sessions' open handles take their descriptors from, shared likewise.
    descriptors: HandleDescriptors,
}

impl SshHandler {
    pub(crate) fn new(
        gateway: Arc<Gateway>,
        peer: SocketAddr,
        subsystems: TaskTracker,
        settings: SubsystemSettings,
        authenticated: watch::Sender<Option<wharf_access::Session>>,
    ) -> Self {
        SshHandler {
            peer,
            memory: ConnectionMemory::new(gateway.memory.session()),
            descriptors: HandleDescriptors::new(settings.descriptors.clone()),
            auth: Authentication::new(gateway, peer),
            unused_channels: HashMap::new(),
            subsystems,
            settings,
            authenticated,
        }
    }

    /// Refuses a request that would run something on the server: says why on the channel's
    /// stderr, fails the request and ends the channel.
    fn refuse_execution(
        &mut self,
        channel: ChannelId,
        what: &str,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        tracing::info!(peer = %self.peer, request = what, "refused a non-SFTP request");
        self.unused_channels.remove(&channel);
        session.extended_data(channel, 1, REFUSAL_MESSAGE.as_bytes().to_vec())?;
        session.channel_failure(channel)?;
        session.exit_status_request(channel, 1)?;
        session.eof(channel)?;
        session.close(channel)
    }

    fn note(&self, auth: &Auth) {
        if *auth == Auth::Accept {
            self.authenticated.send_replace(self.auth.session().cloned());
        }
    }

    async fn check_key(&mut self, user: &str, key: &PublicKey) -> Auth {
        let auth = self.auth.key_verified(user, key).await;
        self.note(&auth);
        auth
    }
}

impl russh::server::Handler for SshHandler {
    type Error = russh::Error;

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        let auth = self.auth.password(user, password).await;
        self.note(&auth);
        Ok(auth)
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(self.auth.offer_key(user, offer.public_key, offer.algorithm).await)
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(self.check_key(user, key.public_key).await)
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        _submethods: &str,
        response: Option<Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        let Some(response) = response else { return Ok(Authentication::password_prompt()) };
        let answers: Vec<_> = response.collect();
        let auth = self.auth.prompt_answered(user, answers).await;
        self.note(&auth);
        Ok(auth)
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.auth.session().is_none() {
            reply.reject(ChannelOpenFailure::AdministrativelyProhibited).await;
        } else if self.unused_channels.len() + self.subsystems.len() >= MAX_CHANNELS_PER_CONNECTION
        {
            reply.reject(ChannelOpenFailure::ResourceShortage).await;
        } else {
            self.unused_channels.insert(channel.id(), channel);
            reply.accept().await;
        }
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if name != SFTP_SUBSYSTEM {
            return self.refuse_execution(channel, "subsystem", session);
        }
        let login = self.auth.session().cloned();
        let open = self.unused_channels.remove(&channel);
        match (login, open) {
            (Some(login), Some(open)) if !self.settings.shutdown.is_draining() => {
                session.channel_success(channel)?;
                self.subsystems.spawn(sftp::serve(
                    open,
                    login,
                    self.settings.clone(),
                    self.memory.clone(),
                    self.descriptors.clone(),
                ));
            }
            _ => session.channel_failure(channel)?,
        }
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.refuse_execution(channel, "shell", session)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _command: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.refuse_execution(channel, "exec", session)
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _x11_auth_protocol: &str,
        _x11_auth_cookie: &str,
        _x11_screen_number: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        _variable_name: &str,
        _variable_value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.unused_channels.remove(&channel);
        Ok(())
    }
}
