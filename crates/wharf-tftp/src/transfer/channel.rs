//! One transfer's UDP socket: its own ephemeral port (the server's transfer ID), talking to
//! one client address and port (the client's).
//!
//! The socket is blocking and serves one transfer on its own thread (see `transfer/mod.rs`
//! for why). It is not `connect`ed, so a datagram from anyone else still arrives here and is
//! answered with "unknown transfer ID" (error 5, RFC 1350) without disturbing the transfer:
//! its deadline is not touched and nothing of it is read.

use std::io::{self, IoSlice};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustix::net::{SendAncillaryBuffer, SendFlags};
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

/// The longest a receive blocks before the end of the grace period is checked again.
const TERMINATION_CHECK: Duration = Duration::from_millis(100);

/// Largest socket buffer asked of the kernel (it may grant less).
const MAX_SOCKET_BUFFER: usize = 4 * 1024 * 1024;

/// The transfer's socket and its peer.
pub(crate) struct Channel {
    socket: UdpSocket,
    peer: SocketAddr,
    shutdown: Shutdown,
    /// The receive timeout the socket has now (changing it is a system call).
    read_timeout: Duration,
}

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
        let socket = UdpSocket::bind(SocketAddr::new(local_ip, 0))?;
        socket.set_read_timeout(Some(TERMINATION_CHECK))?;
        Ok(Channel { socket, peer, shutdown: shutdown.clone(), read_timeout: TERMINATION_CHECK })
    }

    /// Whether the server has begun shutting down.
    pub(crate) fn is_draining(&self) -> bool {
        self.shutdown.is_draining()
    }

    /// Sizes the kernel's buffers for windows of `window_bytes`, so a window in flight does not
    /// overflow them. Best effort: the kernel caps what it grants.
    pub(crate) fn size_buffers(&self, window_bytes: usize) {
        let wanted = window_bytes.saturating_mul(2).clamp(256 * 1024, MAX_SOCKET_BUFFER);
        let _ = rustix::net::sockopt::set_socket_send_buffer_size(&self.socket, wanted);
        let _ = rustix::net::sockopt::set_socket_recv_buffer_size(&self.socket, wanted);
    }

    /// Sends one datagram to the peer.
    pub(crate) fn send(&self, datagram: &[u8]) -> io::Result<()> {
        self.socket.send_to(datagram, self.peer).map(|_| ())
    }

    /// Sends DATA `block` whose payload is `pieces`, in order, to the peer. The header and the
    /// pieces go out as one datagram gathered from their buffers (`sendmsg`), so the payload,
    /// slices of file chunks, is not copied into a packet first.
    pub(crate) fn send_data(&self, block: u16, pieces: &[Bytes]) -> io::Result<()> {
        let header = data_header(block);
        match pieces {
            [whole] => self.send_gathered(&[IoSlice::new(&header), IoSlice::new(whole)]),
            _ => {
                let parts: Vec<IoSlice<'_>> = std::iter::once(IoSlice::new(&header))
                    .chain(pieces.iter().map(|piece| IoSlice::new(piece)))
                    .collect();
                self.send_gathered(&parts)
            }
        }
    }

    fn send_gathered(&self, parts: &[IoSlice<'_>]) -> io::Result<()> {
        let mut no_control = SendAncillaryBuffer::default();
        rustix::net::sendmsg_addr(
            &self.socket,
            &self.peer,
            parts,
            &mut no_control,
            SendFlags::empty(),
        )
        .map(|_| ())
        .map_err(io::Error::from)
    }

    /// Sends an ERROR to the peer; a failure to send is only logged, since the transfer ends
    /// either way.
    pub(crate) fn send_error(&self, code: ErrorCode, message: &str) {
        if let Err(err) = self.send(&encode_error(code.wire(), message)) {
            tracing::debug!(target: "wharf::tftp", peer = %self.peer, %err, "could not send ERROR");
        }
    }

    /// Waits for a datagram from the peer until `deadline`, answering strangers on the way and
    /// watching for the end of the server's grace period.
    pub(crate) fn receive(&mut self, buf: &mut [u8], deadline: Instant) -> io::Result<Received> {
        loop {
            if self.shutdown.is_terminated() {
                return Ok(Received::Terminated);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Received::TimedOut);
            }
            // Zero would mean "block forever" to the socket.
            let wait = (deadline - now).clamp(Duration::from_millis(1), TERMINATION_CHECK);
            if wait != self.read_timeout {
                self.socket.set_read_timeout(Some(wait))?;
                self.read_timeout = wait;
            }
            match self.socket.recv_from(buf) {
                Ok((len, from)) if from == self.peer => return Ok(Received::Datagram(len)),
                Ok((len, from)) => self.answer_stranger(&buf[..len], from),
                Err(err)
                    if matches!(
                        err.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                            // A reply to an earlier datagram bounced (ICMP); the peer may still
                            // answer.
                            | io::ErrorKind::ConnectionRefused
                    ) => {}
                Err(err) => return Err(err),
            }
        }
    }

    fn answer_stranger(&self, datagram: &[u8], from: SocketAddr) {
        // Never answer an ERROR with an ERROR: two confused hosts would ping-pong forever.
        if datagram.get(..2) == Some(&(Opcode::Error as u16).to_be_bytes()[..]) {
            return;
        }
        let reply = encode_error(ErrorCode::UnknownTransferId.wire(), "unknown transfer ID");
        // Without waiting: a stranger must not slow the transfer down.
        let _ = rustix::net::sendto(&self.socket, &reply, SendFlags::DONTWAIT, &from);
        tracing::debug!(
            target: "wharf::tftp",
            peer = %self.peer,
            stranger = %from,
            "datagram from another transfer ID refused"
        );
    }
}
