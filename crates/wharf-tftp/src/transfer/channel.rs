//! One transfer's UDP socket: its own ephemeral port (the server's transfer ID), talking to
//! one client address and port (the client's).
//!
//! The socket is not `connect`ed, so a datagram from anyone else still arrives here and is
//! answered with "unknown transfer ID" (error 5, RFC 1350) without disturbing the transfer:
//! its timer is not touched and nothing of it is read.

use std::future::Future;
use std::io::{self, IoSlice};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsFd;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use rustix::net::{SendAncillaryBuffer, SendFlags};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::time::{Instant, Sleep};
use wharf_access::Shutdown;

use crate::errors::ErrorCode;
use crate::packet::{Opcode, data_header, encode_error};

/// What waiting for the peer produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Received {
    /// A datagram of this many bytes from the peer is in the buffer.
    Datagram(usize),
    /// The deadline passed.
    TimedOut,
    /// The server's grace period is over.
    Terminated,
}

/// The transfer's socket and its peer.
pub(crate) struct Channel {
    socket: UdpSocket,
    peer: SocketAddr,
    terminated: Pin<Box<dyn Future<Output = ()> + Send + Sync>>,
    /// Whether `terminated` has completed (a finished future must not be polled again).
    is_terminated: bool,
    /// The retransmission timer, armed lazily: a later deadline does not re-arm it (in
    /// lock-step that would be once per block); when it fires early it is re-armed for the
    /// deadline then current.
    timer: Pin<Box<Sleep>>,
    /// When `timer` fires.
    timer_at: Instant,
}

/// Where the timer rests before the first deadline.
const IDLE_TIMER: Duration = Duration::from_secs(3600);

/// Largest socket buffer asked of the kernel (it may grant less).
const MAX_SOCKET_BUFFER: usize = 4 * 1024 * 1024;

impl Channel {
    /// Binds a fresh ephemeral port on `local_ip` (the address the request arrived on, or the
    /// wildcard of its family) for a transfer with `peer`.
    pub(crate) fn open(
        local_ip: IpAddr,
        peer: SocketAddr,
        shutdown: &Shutdown,
    ) -> io::Result<Channel> {
        let local_ip = match (local_ip, peer) {
            (ip, _) if !ip.is_unspecified() => ip,
            (_, SocketAddr::V4(_)) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            (_, SocketAddr::V6(_)) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        let socket = std::net::UdpSocket::bind(SocketAddr::new(local_ip, 0))?;
        socket.set_nonblocking(true)?;
        let socket = UdpSocket::from_std(socket)?;
        let shutdown = shutdown.clone();
        let terminated = Box::pin(async move { shutdown.terminated().await });
        let timer_at = Instant::now() + IDLE_TIMER;
        Ok(Channel {
            socket,
            peer,
            terminated,
            is_terminated: false,
            timer: Box::pin(tokio::time::sleep_until(timer_at)),
            timer_at,
        })
    }

    /// Sizes the kernel's buffers for windows of `window_bytes`, so a window in flight does not
    /// overflow them. Best effort: the kernel caps what it grants.
    pub(crate) fn size_buffers(&self, window_bytes: usize) {
        let wanted = window_bytes.saturating_mul(2).clamp(256 * 1024, MAX_SOCKET_BUFFER);
        let fd = self.socket.as_fd();
        let _ = rustix::net::sockopt::set_socket_send_buffer_size(fd, wanted);
        let _ = rustix::net::sockopt::set_socket_recv_buffer_size(fd, wanted);
    }

    /// Sends one datagram to the peer.
    pub(crate) async fn send(&self, datagram: &[u8]) -> io::Result<()> {
        self.socket.send_to(datagram, self.peer).await.map(|_| ())
    }

    /// Sends DATA `block` whose payload is `pieces`, in order, to the peer. The header and the
    /// pieces go out as one datagram gathered from their buffers (`sendmsg`), so the payload,
    /// slices of file chunks, is not copied into a packet first.
    pub(crate) async fn send_data(&self, block: u16, pieces: &[Bytes]) -> io::Result<()> {
        let header = data_header(block);
        match pieces {
            [whole] => self.send_gathered(&[IoSlice::new(&header), IoSlice::new(whole)]).await,
            _ => {
                let parts: Vec<IoSlice<'_>> = std::iter::once(IoSlice::new(&header))
                    .chain(pieces.iter().map(|piece| IoSlice::new(piece)))
                    .collect();
                self.send_gathered(&parts).await
            }
        }
    }

    /// Sends one datagram made of `parts` to the peer.
    async fn send_gathered(&self, parts: &[IoSlice<'_>]) -> io::Result<()> {
        self.socket
            .async_io(Interest::WRITABLE, || {
                let mut no_control = SendAncillaryBuffer::default();
                rustix::net::sendmsg_addr(
                    &self.socket,
                    &self.peer,
                    parts,
                    &mut no_control,
                    SendFlags::empty(),
                )
                .map_err(io::Error::from)
            })
            .await
            .map(|_| ())
    }

    /// Sends an ERROR to the peer; a failure to send is only logged, since the transfer ends
    /// either way.
    pub(crate) async fn send_error(&self, code: ErrorCode, message: &str) {
        if let Err(err) = self.send(&encode_error(code.wire(), message)).await {
            tracing::debug!(target: "wharf::tftp", peer = %self.peer, %err, "could not send ERROR");
        }
    }

    /// Waits for a datagram from the peer until `deadline`, answering strangers on the way.
    pub(crate) async fn receive(
        &mut self,
        buf: &mut [u8],
        deadline: Instant,
    ) -> io::Result<Received> {
        loop {
            if self.is_terminated {
                return Ok(Received::Terminated);
            }
            if self.timer_at > deadline {
                self.arm_timer(deadline);
            }
            let received = tokio::select! {
                biased;
                received = self.socket.recv_from(buf) => received,
                () = self.timer.as_mut() => {
                    if Instant::now() >= deadline {
                        return Ok(Received::TimedOut);
                    }
                    self.arm_timer(deadline);
                    continue;
                }
                () = self.terminated.as_mut() => {
                    self.is_terminated = true;
                    return Ok(Received::Terminated);
                }
            };
            match received {
                Ok((len, from)) if from == self.peer => return Ok(Received::Datagram(len)),
                Ok((len, from)) => self.answer_stranger(&buf[..len], from),
                // A reply to an earlier datagram bounced (ICMP); the peer may still answer.
                Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => {}
                Err(err) => return Err(err),
            }
        }
    }

    fn arm_timer(&mut self, at: Instant) {
        self.timer.as_mut().reset(at);
        self.timer_at = at;
    }

    fn answer_stranger(&self, datagram: &[u8], from: SocketAddr) {
        // Never answer an ERROR with an ERROR: two confused hosts would ping-pong forever.
        if datagram.get(..2) == Some(&(Opcode::Error as u16).to_be_bytes()[..]) {
            return;
        }
        let reply = encode_error(ErrorCode::UnknownTransferId.wire(), "unknown transfer ID");
        // Best effort and without waiting: a stranger must not slow the transfer down.
        let _ = self.socket.try_send_to(&reply, from);
        tracing::debug!(target: "wharf::tftp", peer = %self.peer, stranger = %from, "datagram from another transfer ID refused");
    }
}
