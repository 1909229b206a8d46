//! One transfer, from request to end: who the client is (source-network rules, then a login
//! to the shared layer), which path it means (remapping), opening the file through the
//! session (permissions, audit), option negotiation, then the read or write engine on the
//! transfer's own socket and thread.

mod blocks;
mod busy_wait;
mod channel;
mod numbering;
mod pace;
mod read;
mod receive_window;
mod send_window;
mod write;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use wharf_access::audit::AuditEvent;
use wharf_access::{
    Credential, Download, Gateway, LoginError, LoginRequest, Operation, Outcome, Permissions,
    Protocol, Upload,
};
use wharf_vfs::{Error, WriteMode};

use self::blocks::BlockStore;
pub(crate) use self::busy_wait::SpinSlots;
use self::channel::{Channel, Patience};
use self::read::ReadTransfer;
use self::receive_window::ReceiveWindow;
use self::send_window::SendWindow;
use self::write::{UploadSink, WriteTransfer};
use crate::admission::{Superseded, Ticket};
use crate::config::OverCap;
use crate::errors::{self, ErrorCode};
use crate::options::{self, Direction, Negotiation, OptionLimits};
use crate::packet::{DATA_HEADER_LEN, Packet, Request, TransferMode, WireOption};
use crate::remap::FilenameMapper;
use crate::rules::AccessRules;

/// Descriptors one transfer holds at most, besides one per mount of its identity: its own
/// socket ([`Channel::open`]) and, for an upload, the temporary file and the folder it is
/// published into (a download holds its one file).
pub const DESCRIPTORS_PER_TRANSFER: usize = 3;

/// What every transfer of a server shares.
pub(crate) struct Services {
    pub(crate) gateway: Arc<Gateway>,
    pub(crate) rules: AccessRules,
    pub(crate) mapper: FilenameMapper,
    pub(crate) limits: OptionLimits,
    /// Retransmission timeout unless the client negotiates one.
    pub(crate) timeout: Duration,
    pub(crate) max_retries: u32,
    /// Longest a transfer polls for a fast peer's next packet before sleeping (zero: never).
    pub(crate) busy_wait: Duration,
    /// The leave to poll, shared by the server's transfers.
    pub(crate) spin_slots: Arc<SpinSlots>,
    /// What a request over a cap gets.
    pub(crate) over_cap: OverCap,
}

/// A read or write request, owned so it can move into the transfer's task.
#[derive(Debug, Clone)]
pub(crate) struct IncomingRequest {
    direction: Direction,
    filename: Vec<u8>,
    mode: TransferMode,
    options: Vec<(String, String)>,
}

impl IncomingRequest {
    /// The request carried by `packet`, if it is one.
    pub(crate) fn from_packet(packet: &Packet<'_>) -> Option<IncomingRequest> {
        let (direction, request): (Direction, &Request<'_>) = match packet {
            Packet::Rrq(request) => (Direction::Read, request),
            Packet::Wrq(request) => (Direction::Write, request),
            _ => return None,
        };
        Some(IncomingRequest {
            direction,
            filename: request.filename.to_vec(),
            mode: request.mode,
            options: request
                .options
                .iter()
                .map(|o| (o.name.to_owned(), o.value.to_owned()))
                .collect(),
        })
    }

    fn wire_options(&self) -> Vec<WireOption<'_>> {
        self.options.iter().map(|(name, value)| WireOption { name, value }).collect()
    }
}

/// How a transfer ended, for the log. The audit event (bytes, duration, outcome) comes from
/// the shared layer's `Download` / `Upload`.
#[derive(Debug)]
pub(crate) enum End {
    /// Every block acknowledged (read) or the file published and acknowledged (write).
    Complete,
    /// The client sent an ERROR.
    PeerError {
        /// Its code.
        code: u16,
        /// Its message.
        message: String,
    },
    /// Retries ran out.
    TimedOut,
    /// The server's grace period ended first.
    ShuttingDown,
    /// An operator ended the session.
    Killed,
    /// The client sent a new request from the same port: it has moved on, and the transfer
    /// stopped without another packet.
    Superseded,
    /// The server gave up (storage or socket error, protocol violation).
    Failed(String),
}

/// A request refused before any data moved: the ERROR to answer with and why, for the log.
struct Refusal {
    code: ErrorCode,
    message: &'static str,
    reason: String,
}

impl Refusal {
    fn storage(err: &Error, what: &str) -> Refusal {
        let (code, message) = errors::for_error(err);
        Refusal { code, message, reason: format!("{what}: {err}") }
    }
}

/// The file opened and the options settled.
enum Opened {
    Read(Download, Negotiation),
    Write(Upload, Negotiation),
}

impl Opened {
    /// The session the transfer runs in.
    fn session(&self) -> &wharf_access::Session {
        match self {
            Opened::Read(download, _) => download.session(),
            Opened::Write(upload, _) => upload.session(),
        }
    }
}

/// Serves one request on its own socket; `ticket` holds its place among the running
/// transfers until the transfer ends.
///
/// Checking the client and opening the file is async work of the shared layer and runs here.
/// The transfer itself then runs on a thread of its own with a blocking socket, like
/// tftpd-hpa's process per transfer: in lock-step TFTP every block is a round trip, and a
/// thread blocked in `recvfrom` answers an ACK sooner than a task woken by the reactor
/// (measured on loopback: 15-25 % more round trips per second). File chunks still come from
/// the runtime's read-ahead, so the thread never waits on the disk for a single block. The
/// task waits for the thread, so shutdown waits for the transfer as for any connection.
pub(crate) async fn serve(
    services: Arc<Services>,
    local_ip: IpAddr,
    peer: SocketAddr,
    request: IncomingRequest,
    ticket: Ticket,
) {
    let patience = Patience { limit: services.busy_wait, slots: Arc::clone(&services.spin_slots) };
    let mut channel = match Channel::open(local_ip, peer, &services.gateway.shutdown, patience) {
        Ok(channel) => channel,
        Err(err) => {
            tracing::warn!(target: "wharf::tftp", %peer, %err, "cannot open a transfer socket");
            return;
        }
    };
    let kind = match request.direction {
        Direction::Read => "read",
        Direction::Write => "write",
    };
    let opened = match open(&services, peer, &request).await {
        Ok(opened) => opened,
        Err(refusal) => {
            tracing::info!(
                target: "wharf::tftp",
                %peer,
                kind,
                file = %String::from_utf8_lossy(&request.filename),
                reason = %refusal.reason,
                "request refused"
            );
            channel.send_error(refusal.code, refusal.message);
            return;
        }
    };
    channel.watch_session(opened.session().clone());
    let netascii = request.mode == TransferMode::Netascii;
    let engine = Engine::new(&services, channel, opened, netascii, ticket.superseded());
    let runtime = tokio::runtime::Handle::current();
    let (report_finished, finished) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new().name("wharf-tftp".to_owned()).spawn(move || {
        let end = engine.run(&runtime, ticket);
        log_end(peer, kind, &end);
        let _ = report_finished.send(());
    });
    match spawned {
        Ok(_) => {
            let _ = finished.await;
        }
        // The client hears nothing and asks again; by then a thread may be available.
        Err(err) => {
            tracing::warn!(target: "wharf::tftp", %peer, %err, "cannot start a transfer thread");
        }
    }
}

/// A transfer ready to run on its thread.
enum Engine {
    Read(ReadTransfer),
    Write(WriteTransfer),
}

impl Engine {
    fn new(
        services: &Services,
        channel: Channel,
        opened: Opened,
        netascii: bool,
        superseded: Superseded,
    ) -> Engine {
        let timeout_of = |n: &Negotiation| n.settings.timeout.unwrap_or(services.timeout);
        match opened {
            Opened::Read(download, negotiation) => {
                let settings = negotiation.settings;
                channel.size_buffers(window_bytes(&negotiation));
                let option_ack = option_ack(&negotiation);
                Engine::Read(ReadTransfer {
                    blocks: BlockStore::new(download.stream(0), netascii, settings.block_size),
                    window: SendWindow::new(
                        settings.window_size,
                        option_ack.is_some(),
                        services.max_retries,
                    ),
                    option_ack,
                    block_size: settings.block_size,
                    timeout: timeout_of(&negotiation),
                    superseded,
                    channel,
                })
            }
            Opened::Write(upload, negotiation) => {
                let settings = negotiation.settings;
                channel.size_buffers(window_bytes(&negotiation));
                Engine::Write(WriteTransfer {
                    sink: Some(UploadSink::new(upload, netascii)),
                    window: ReceiveWindow::new(
                        settings.window_size,
                        settings.block_size,
                        services.max_retries,
                    ),
                    option_ack: option_ack(&negotiation),
                    block_size: settings.block_size,
                    timeout: timeout_of(&negotiation),
                    max_retries: services.max_retries,
                    superseded,
                    channel,
                })
            }
        }
    }

    /// Runs the transfer on the calling thread. After a completed upload, lingers for a lost
    /// last ACK; that is no longer a running transfer, so `ticket` is given back first.
    fn run(self, runtime: &tokio::runtime::Handle, ticket: Ticket) -> End {
        match self {
            Engine::Read(transfer) => transfer.run(runtime),
            Engine::Write(mut transfer) => {
                let end = transfer.run(runtime);
                drop(ticket);
                if matches!(end, End::Complete) {
                    transfer.dally();
                }
                end
            }
        }
    }
}

/// Checks who the client is and what it may do, and opens the file.
async fn open(
    services: &Services,
    peer: SocketAddr,
    request: &IncomingRequest,
) -> Result<Opened, Refusal> {
    if request.mode == TransferMode::Mail {
        return Err(Refusal {
            code: ErrorCode::IllegalOperation,
            message: "mail mode is not supported",
            reason: "mail mode".to_owned(),
        });
    }
    let Some(identity) = services.rules.identity_for(peer.ip()) else {
        audit_unmatched(&services.gateway, peer);
        return Err(Refusal {
            code: ErrorCode::AccessViolation,
            message: "access violation",
            reason: "no rule matches the client's address".to_owned(),
        });
    };
    let login = LoginRequest {
        protocol: Protocol::Tftp,
        peer,
        user: identity.to_owned(),
        credential: Credential::SourceNetwork,
    };
    let session = services.gateway.authenticator.login(login).await.map_err(|err| match err {
        LoginError::Unavailable(err) => Refusal::storage(&err, "identity's storage"),
        LoginError::Paused => Refusal {
            code: ErrorCode::NotDefined,
            message: "temporarily unavailable",
            reason: "logins are paused: the user database cannot be reached".to_owned(),
        },
        // TFTP identities are local (the external service checks credentials TFTP has not),
        // but the mapping is kept complete.
        LoginError::AuthServiceUnavailable => Refusal {
            code: ErrorCode::NotDefined,
            message: "temporarily unavailable",
            reason: "the authentication service is unavailable".to_owned(),
        },
        LoginError::TooManySessions(cap) => Refusal {
            code: ErrorCode::NotDefined,
            message: "too many transfers for this identity",
            reason: format!("`{identity}` has {cap} sessions open already"),
        },
        other => Refusal {
            code: ErrorCode::AccessViolation,
            message: "access violation",
            reason: format!("login as `{identity}` refused: {other}"),
        },
    })?;
    let path = services
        .mapper
        .map(&request.filename)
        .map_err(|err| Refusal::storage(&Error::InvalidPath(err), "file name"))?;
    let requested = request.wire_options();
    match request.direction {
        Direction::Read => {
            let download =
                session.open_read(&path).await.map_err(|err| Refusal::storage(&err, "open"))?;
            let size = download.metadata().size;
            let negotiation = options::negotiate(
                Direction::Read,
                request.mode,
                &requested,
                services.limits,
                Some(size),
            );
            Ok(Opened::Read(download, negotiation))
        }
        Direction::Write => {
            // Without the right to overwrite, a file that appears meanwhile is not replaced.
            let mode = if session.permissions(&path).contains(Permissions::OVERWRITE) {
                WriteMode::Replace
            } else {
                WriteMode::CreateNew
            };
            let negotiation = options::negotiate(
                Direction::Write,
                request.mode,
                &requested,
                services.limits,
                None,
            );
            // A size announced past the largest offset could never be written whole.
            if negotiation.settings.announced_size.is_some_and(|size| size > numbering::MAX_OFFSET)
            {
                return Err(Refusal {
                    code: ErrorCode::IllegalOperation,
                    message: "the file would pass the largest offset (2^63-1)",
                    reason: "tsize past the largest offset".to_owned(),
                });
            }
            let upload = session
                .open_write(&path, mode)
                .await
                .map_err(|err| Refusal::storage(&err, "create"))?;
            Ok(Opened::Write(upload, negotiation))
        }
    }
}

/// The OACK for what was accepted, or `None` when nothing was (RFC 2347: the transfer then
/// starts as if no options had been sent).
fn option_ack(negotiation: &Negotiation) -> Option<Vec<u8>> {
    if negotiation.accepted.is_empty() {
        return None;
    }
    let options: Vec<WireOption<'_>> =
        negotiation.accepted.iter().map(|(name, value)| WireOption { name, value }).collect();
    Some(Packet::Oack { options }.to_bytes())
}

fn window_bytes(negotiation: &Negotiation) -> usize {
    let settings = negotiation.settings;
    usize::from(settings.window_size) * (DATA_HEADER_LEN + usize::from(settings.block_size))
}

/// A client no rule admits never reaches a login, but still shows in the audit log.
fn audit_unmatched(gateway: &Gateway, peer: SocketAddr) {
    let actor = gateway.authenticator.actor("-".to_owned(), Protocol::Tftp, peer);
    AuditEvent {
        actor: &actor,
        op: Operation::Login,
        path: None,
        to: None,
        bytes: None,
        sha256: None,
        duration: Duration::ZERO,
        outcome: Outcome::Denied,
        detail: Some("no TFTP rule matches the source address"),
    }
    .emit();
}

fn log_end(peer: SocketAddr, kind: &'static str, end: &End) {
    match end {
        End::Complete => tracing::debug!(target: "wharf::tftp", %peer, kind, "transfer complete"),
        End::PeerError { code, message } => {
            tracing::info!(target: "wharf::tftp", %peer, kind, code, message, "client ended the transfer")
        }
        End::TimedOut => tracing::info!(target: "wharf::tftp", %peer, kind, "transfer timed out"),
        End::ShuttingDown => {
            tracing::info!(target: "wharf::tftp", %peer, kind, "transfer cut by shutdown")
        }
        End::Killed => {
            tracing::info!(target: "wharf::tftp", %peer, kind, "transfer ended by an administrator")
        }
        End::Superseded => {
            tracing::info!(target: "wharf::tftp", %peer, kind, "client moved on to a new request")
        }
        End::Failed(reason) => {
            tracing::warn!(target: "wharf::tftp", %peer, kind, reason, "transfer failed")
        }
    }
}
