//! The TFTP server: its listening sockets, and the loop that turns requests into transfers.
//!
//! The listener only parses and admits; everything that may wait (login, opening the file,
//! the transfer itself) runs in the transfer's own task on its own socket, so one slow disk
//! or client never holds up the next request.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use rustix::net::{AddressFamily, SocketFlags, SocketType};
use tokio::net::UdpSocket;
use tokio::task::JoinSet;
use wharf_access::{Gateway, LimitExceeded, ProtocolFamily, UserDb};

use crate::admission::{Admission, Refusal};
use crate::config::{InvalidSetting, OverCap, TftpConfig};
use crate::errors::ErrorCode;
use crate::options::OptionLimits;
use crate::packet::{Packet, ParseError, encode_error};
use crate::remap::{FilenameMapper, RemapError};
use crate::rules::AccessRules;
use crate::transfer::{self, IncomingRequest, Services, SpinSlots};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum TftpError {
    /// A listening address could not be bound.
    #[error("tftp: cannot listen on UDP {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The operating system's error.
        source: io::Error,
    },
    /// A numeric setting is out of range.
    #[error(transparent)]
    Setting(#[from] InvalidSetting),
    /// A rule names a user that does not exist.
    #[error("tftp.rules #{rule} ({network}): identity `{identity}` is not a known user")]
    UnknownIdentity {
        /// Position of the rule, from 1.
        rule: usize,
        /// The rule's network.
        network: String,
        /// The name given.
        identity: String,
    },
    /// A rule names a user that TFTP cannot act as.
    #[error("tftp.rules #{rule} ({network}): identity `{identity}` {reason}")]
    UnusableIdentity {
        /// Position of the rule, from 1.
        rule: usize,
        /// The rule's network.
        network: String,
        /// The name given.
        identity: String,
        /// What the user lacks.
        reason: &'static str,
    },
    /// A remap rule is invalid.
    #[error(transparent)]
    Remap(#[from] RemapError),
}

/// Biggest request datagram read. Requests are small (a name of at most 4096 bytes and a few
/// options); a longer datagram is cut and then fails to parse.
const REQUEST_BUFFER: usize = 8 * 1024;

struct Listener {
    socket: UdpSocket,
    addr: SocketAddr,
}

/// A bound TFTP server; [`TftpServer::run`] serves it.
pub struct TftpServer {
    listeners: Vec<Listener>,
    services: Arc<Services>,
    admission: Admission,
}

impl std::fmt::Debug for TftpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TftpServer")
            .field("local_addrs", &self.local_addrs())
            .finish_non_exhaustive()
    }
}

/// A UDP socket bound to `addr`. An IPv6 wildcard is made IPv6-only, so `0.0.0.0:69` and
/// `[::]:69` can both be listed and serve their own family.
fn bind_udp(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let family = if addr.is_ipv4() { AddressFamily::INET } else { AddressFamily::INET6 };
    let fd = rustix::net::socket_with(
        family,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    if let SocketAddr::V6(v6) = addr
        && v6.ip().is_unspecified()
    {
        rustix::net::sockopt::set_ipv6_v6only(&fd, true)?;
    }
    rustix::net::bind(&fd, &addr)?;
    Ok(std::net::UdpSocket::from(fd))
}

/// Checks what `config` needs beyond its own values: its remap rules compile, and every rule
/// names a user of `users` that TFTP clients can act as (`passwordless`, `tftp` among its
/// protocols). What [`TftpServer::bind`] checks before binding, and `wharf check` without.
pub fn check_config(config: &TftpConfig, users: &UserDb) -> Result<(), TftpError> {
    prepare(config, users).map(drop)
}

/// The checked rules and filename mapper of `config`.
fn prepare(
    config: &TftpConfig,
    users: &UserDb,
) -> Result<(AccessRules, FilenameMapper), TftpError> {
    config.validate()?;
    let mapper = FilenameMapper::new(config.dos_paths, &config.remap)?;
    let rules = AccessRules::new(config.rules.clone());
    check_rules(&rules, users)?;
    Ok((rules, mapper))
}

fn check_rules(rules: &AccessRules, users: &UserDb) -> Result<(), TftpError> {
    for (index, rule) in rules.iter().enumerate() {
        let unusable = |reason| TftpError::UnusableIdentity {
            rule: index + 1,
            network: rule.network.to_string(),
            identity: rule.identity.clone(),
            reason,
        };
        let Some(user) = users.get(&rule.identity) else {
            return Err(TftpError::UnknownIdentity {
                rule: index + 1,
                network: rule.network.to_string(),
                identity: rule.identity.clone(),
            });
        };
        if !user.passwordless {
            return Err(unusable("is not `passwordless: true`"));
        }
        if !user.protocols.contains(&ProtocolFamily::Tftp) {
            return Err(unusable("does not list `tftp` in its `protocols`"));
        }
    }
    Ok(())
}

impl TftpServer {
    /// Checks `config` against the users of `gateway` and binds every listening address.
    /// Must be called inside a tokio runtime.
    pub async fn bind(config: TftpConfig, gateway: Arc<Gateway>) -> Result<TftpServer, TftpError> {
        let (rules, mapper) = prepare(&config, &gateway.authenticator.users())?;
        if config.rules.is_empty() && !config.listen.is_empty() {
            tracing::warn!(target: "wharf::tftp", "tftp.rules is empty: every request will be refused");
        }
        let mut listeners = Vec::with_capacity(config.listen.len());
        for &addr in &config.listen {
            let bound = bind_udp(addr)
                .and_then(|socket| {
                    let local = socket.local_addr()?;
                    Ok((UdpSocket::from_std(socket)?, local))
                })
                .map_err(|source| TftpError::Bind { addr, source })?;
            listeners.push(Listener { socket: bound.0, addr: bound.1 });
        }
        let admission = Admission::new(
            config.max_transfers,
            config.max_transfers_per_address,
            gateway.descriptors.clone(),
        );
        let services = Services {
            gateway,
            rules,
            mapper,
            limits: OptionLimits {
                max_block_size: config.max_block_size,
                max_window_size: config.max_window_size,
            },
            timeout: config.timeout,
            max_retries: config.max_retries,
            busy_wait: config.busy_wait,
            spin_slots: Arc::new(SpinSlots::for_this_machine()),
            over_cap: config.over_cap,
        };
        Ok(TftpServer { listeners, services: Arc::new(services), admission })
    }

    /// The addresses actually bound (with the ports the kernel chose for port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.iter().map(|l| l.addr).collect()
    }

    /// Serves until the gateway starts draining. Transfers run as tasks of
    /// `gateway.shutdown`, so those in progress may finish until the grace period ends.
    pub async fn run(self) {
        let mut loops = JoinSet::new();
        for listener in self.listeners {
            let services = self.services.clone();
            let admission = self.admission.clone();
            loops.spawn(serve_listener(listener, services, admission));
        }
        while loops.join_next().await.is_some() {}
    }
}

async fn serve_listener(listener: Listener, services: Arc<Services>, admission: Admission) {
    let shutdown = services.gateway.shutdown.clone();
    let mut buffer = vec![0u8; REQUEST_BUFFER];
    tracing::debug!(target: "wharf::tftp", addr = %listener.addr, "listening");
    loop {
        let received = tokio::select! {
            biased;
            () = shutdown.draining() => break,
            received = listener.socket.recv_from(&mut buffer) => received,
        };
        match received {
            Ok((len, peer)) => {
                on_datagram(&listener, &services, &admission, &buffer[..len], peer);
            }
            // ICMP errors for earlier replies surface here on some systems; they concern
            // nobody now.
            Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => {}
            Err(err) => {
                tracing::warn!(target: "wharf::tftp", addr = %listener.addr, %err, "receive failed");
                // Do not spin on a persistent error.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
    tracing::debug!(target: "wharf::tftp", addr = %listener.addr, "stopped listening");
}

fn on_datagram(
    listener: &Listener,
    services: &Arc<Services>,
    admission: &Admission,
    datagram: &[u8],
    peer: SocketAddr,
) {
    // A banned or deny-listed address learns nothing, not even that a server is here. The
    // listener reports no offenses itself: a UDP source address is not proven, and a forged
    // one would get a bystander banned from every protocol.
    if !services.gateway.defender().verdict(peer.ip()).is_allowed() {
        tracing::debug!(target: "wharf::tftp", %peer, "request from a refused address ignored");
        return;
    }
    let reply = |code: ErrorCode, message: &str| {
        // Without waiting: the listener never blocks on one client.
        let _ = listener.socket.try_send_to(&encode_error(code.wire(), message), peer);
    };
    let packet = match Packet::parse(datagram) {
        Ok(packet) => packet,
        // Too short to be anything: not worth an answer.
        Err(ParseError::NoOpcode) => return,
        Err(err) => {
            tracing::debug!(target: "wharf::tftp", %peer, %err, "malformed request");
            reply(ErrorCode::IllegalOperation, &format!("malformed request: {err}"));
            return;
        }
    };
    let Some(request) = IncomingRequest::from_packet(&packet) else {
        // DATA, ACK or OACK for no transfer; never answer an ERROR.
        if !matches!(packet, Packet::Error { .. }) {
            reply(ErrorCode::UnknownTransferId, "unknown transfer ID");
        }
        return;
    };
    // A transfer holds its socket and, for an upload, a temporary file and its folder, plus a
    // folder per mount of its identity (the most any user has: a reload may change it).
    let descriptors = crate::transfer::DESCRIPTORS_PER_TRANSFER
        .saturating_add(services.gateway.authenticator.users().max_mounts());
    match admission.admit(peer, datagram, descriptors) {
        Ok(ticket) => {
            let local_ip: IpAddr = listener.addr.ip();
            services.gateway.shutdown.spawn(transfer::serve(
                services.clone(),
                local_ip,
                peer,
                request,
                ticket,
            ));
        }
        Err(Refusal::Retransmission) => {
            tracing::debug!(target: "wharf::tftp", %peer, "retransmitted request ignored");
        }
        // By default not refused but dropped, so the client asks again after its timeout and
        // is served once a place is free, as a lab of devices behind one address expects while
        // they all boot at once. No answer also means nothing to reflect at a forged source.
        Err(refusal @ (Refusal::Limit(_) | Refusal::Descriptors)) => {
            let (cap, message) = match refusal {
                Refusal::Limit(LimitExceeded::PerAddress) => {
                    ("max_transfers_per_address", "too many transfers from your address")
                }
                Refusal::Limit(LimitExceeded::Total) => {
                    ("max_transfers", "too many transfers; try again later")
                }
                _ => ("descriptors", "too many transfers; try again later"),
            };
            match services.over_cap {
                OverCap::Wait => tracing::info!(
                    target: "wharf::tftp",
                    %peer,
                    cap,
                    "request over a cap dropped; the client will ask again"
                ),
                OverCap::Refuse => {
                    tracing::info!(target: "wharf::tftp", %peer, cap, "request refused");
                    reply(ErrorCode::NotDefined, message);
                }
            }
        }
    }
}
