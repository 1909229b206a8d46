//! Changes made by any node (or by hand) reach every node through `LISTEN`/`NOTIFY`:
//! triggers notify each change to the users on [`USERS_CHANNEL`] and to the bans on
//! [`BANS_CHANNEL`]; an operator's lifted ban and ended sessions are told on
//! [`LIFTED_CHANNEL`] and [`END_SESSIONS_CHANNEL`]. Each node keeps one connection listening
//! on all four. The same connection tells whether the database can be
//! reached: it is pinged when quiet, and a node whose connection is gone tries again every
//! second until it is back.

use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::sync::mpsc;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{AsyncMessage, NoTls, Socket};

use crate::config::Connector;

/// The channel the users trigger notifies.
pub const USERS_CHANNEL: &str = "wharf_users";

/// The channel the bans trigger notifies.
pub const BANS_CHANNEL: &str = "wharf_bans";

/// The channel a lifted ban is told on, the address as payload: every node forgets it (the
/// bans trigger alone would only bring bans, never take one away).
pub const LIFTED_CHANNEL: &str = "wharf_ban_lifted";

/// The channel an operator's "end this user's sessions" is told on, the user name as payload.
pub const END_SESSIONS_CHANNEL: &str = "wharf_end_sessions";

/// How long the listening connection may stay quiet before it is pinged.
const PING_EVERY: Duration = Duration::from_secs(5);

/// How long a ping may take before the database counts as unreachable.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// How long to wait between attempts to reconnect.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// What the watcher tells the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reachability {
    /// Listening (first, or again after an outage): anything may have changed meanwhile.
    Reachable,
    /// The connection is gone or does not answer; the reason, for the log.
    Unreachable(String),
    /// The users changed.
    UsersChanged,
    /// The bans changed.
    BansChanged,
    /// An operator lifted the ban of this address.
    BanLifted(std::net::IpAddr),
    /// An operator ended the sessions of this user.
    SessionsEnded(String),
}

/// Listens for changes on a connection of its own (made by [`crate::Database::watcher`]).
pub struct ChangeWatcher {
    connector: Connector,
}

impl ChangeWatcher {
    pub(crate) fn new(connector: Connector) -> Self {
        ChangeWatcher { connector }
    }

    /// Runs until `events`' receiver is dropped: tells [`Reachability::Reachable`] once
    /// listening, [`Reachability::UsersChanged`] and [`Reachability::BansChanged`] at each
    /// change, and
    /// [`Reachability::Unreachable`] once per outage, reconnecting every second meanwhile.
    pub async fn run(self, events: mpsc::UnboundedSender<Reachability>) {
        let mut reachable = None;
        loop {
            let ended = match self.connector.tls() {
                None => listen(&self.connector, NoTls, &events).await,
                Some(tls) => {
                    let tls = tokio_postgres_rustls::MakeRustlsConnect::new((**tls).clone());
                    listen(&self.connector, tls, &events).await
                }
            };
            let reason = match ended {
                Ended::ReceiverGone => return,
                Ended::Lost { reason, was_listening } => {
                    if was_listening {
                        reachable = Some(true);
                    }
                    reason
                }
            };
            if reachable != Some(false) {
                reachable = Some(false);
                if events.send(Reachability::Unreachable(reason)).is_err() {
                    return;
                }
            }
            tokio::select! {
                () = tokio::time::sleep(RETRY_EVERY) => {}
                () = events.closed() => return,
            }
        }
    }
}

/// Why a listening session ended.
enum Ended {
    /// Nobody wants the events any more.
    ReceiverGone,
    /// The connection failed, or could not be made.
    Lost {
        reason: String,
        /// Whether it had been listening (and said so).
        was_listening: bool,
    },
}

/// One connection: `LISTEN`, then events until it fails.
async fn listen<T>(
    connector: &Connector,
    tls: T,
    events: &mpsc::UnboundedSender<Reachability>,
) -> Ended
where
    T: MakeTlsConnect<Socket>,
    T::Stream: Send + 'static,
{
    let lost = |reason: String, was_listening: bool| Ended::Lost { reason, was_listening };
    let (client, mut connection) = match connector.postgres_config.connect(tls).await {
        Ok(connected) => connected,
        Err(err) => return lost(crate::error::with_causes(&err), false),
    };
    // The connection is driven on a task of its own, which hands over the notifications and
    // the error that ends it.
    let (notes, mut noted) = mpsc::unbounded_channel::<Result<(String, String), String>>();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(note)) => {
                    let note = (note.channel().to_owned(), note.payload().to_owned());
                    if notes.send(Ok(note)).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(err) => {
                    let _ = notes.send(Err(err.to_string()));
                    return;
                }
            }
        }
        let _ = notes.send(Err("the server closed the connection".to_owned()));
    });
    let ended = async {
        let listen = format!(
            "LISTEN {USERS_CHANNEL}; LISTEN {BANS_CHANNEL}; LISTEN {LIFTED_CHANNEL}; \
             LISTEN {END_SESSIONS_CHANNEL}"
        );
        if let Err(err) = client.batch_execute(&listen).await {
            return lost(err.to_string(), false);
        }
        if events.send(Reachability::Reachable).is_err() {
            return Ended::ReceiverGone;
        }
        loop {
            tokio::select! {
                noted = noted.recv() => match noted {
                    Some(Ok((channel, payload))) => {
                        let event = match channel.as_str() {
                            USERS_CHANNEL => Reachability::UsersChanged,
                            BANS_CHANNEL => Reachability::BansChanged,
                            LIFTED_CHANNEL => match payload.parse() {
                                Ok(address) => Reachability::BanLifted(address),
                                Err(_) => continue,
                            },
                            END_SESSIONS_CHANNEL => Reachability::SessionsEnded(payload),
                            _ => continue,
                        };
                        if events.send(event).is_err() {
                            return Ended::ReceiverGone;
                        }
                    }
                    Some(Err(reason)) => return lost(reason, true),
                    None => return lost("the connection ended".to_owned(), true),
                },
                () = tokio::time::sleep(PING_EVERY) => {
                    match tokio::time::timeout(PING_TIMEOUT, client.simple_query("SELECT 1")).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(err)) => return lost(err.to_string(), true),
                        Err(_) => return lost(format!("no answer to a ping within {PING_TIMEOUT:?}"), true),
                    }
                }
                () = events.closed() => return Ended::ReceiverGone,
            }
        }
    }
    .await;
    driver.abort();
    ended
}
