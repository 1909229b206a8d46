//! One transfer's UDP socket: its own ephemeral port (the server's transfer ID), talking to
//! one client address and port (the client's).
//!
//! The socket is blocking and serves one transfer on its own thread (see `transfer/mod.rs`
//! for why). It is not `connect`ed, so a datagram from anyone else still arrives here and is
//! answered with "unknown transfer ID" (error 5, RFC 1350) without disturbing the transfer:
//! its deadline is not touched and nothing of it is read.

use std::io::{self, IoSlice};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustix::io::Errno;
use rustix::net::{RecvFlags, SendAncillaryBuffer, SendFlags};
use wharf_access::{Session, Shutdown};

use super::busy_wait::{SpinBudget, SpinSlots, TransferInProgress};
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
    /// An operator ended the transfer's session.
    Killed,
}

/// The longest a receive blocks before the end of the grace period is checked again.
const TERMINATION_CHECK: Duration = Duration::from_millis(100);

/// Largest socket buffer asked of the kernel (it may grant less): twice the largest window
/// ([`crate::options::RECEIVE_BUFFER_BYTES`]), rounded up.
const MAX_SOCKET_BUFFER: usize = 512 * 1024;

/// The transfer's socket and its peer.
pub(crate) struct Channel {
    socket: UdpSocket,
    peer: SocketAddr,
    shutdown: Shutdown,
    /// The session the transfer runs in, once logged in: an operator may end it.
    session: Option<Session>,
    /// The receive timeout the socket has now (changing it is a system call).
    read_timeout: Duration,
    /// How long to poll for the peer's next packet before sleeping.
    spin_budget: SpinBudget,
    /// The server's leave to poll.
    spin_slots: Arc<SpinSlots>,
    /// Counts this transfer among those in progress (polling depends on how many there are).
    _in_progress: TransferInProgress,
}

/// How a transfer waits for its peer: polling for at most `limit` while the peer answers
/// that fast, when one of the server's `slots` is free (see `busy_wait.rs`).
pub(crate) struct Patience {
    pub(crate) limit: Duration,
    pub(crate) slots: Arc<SpinSlots>,
}

impl Channel {
    /// Binds a fresh ephemeral port on `local_ip` (the address the request arrived on, or the
    /// wildcard of its family) for a transfer with `peer`.
    pub(crate) fn open(
        local_ip: IpAddr,
        peer: SocketAddr,
        shutdown: &Shutdown,
        patience: Patience,
    ) -> io::Result<Channel> {
        let local_ip = match (local_ip, peer) {
            (ip, _) if !ip.is_unspecified() => ip,
            (_, SocketAddr::V4(_)) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            (_, SocketAddr::V6(_)) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        let socket = UdpSocket::bind(SocketAddr::new(local_ip, 0))?;
        socket.set_read_timeout(Some(TERMINATION_CHECK))?;
        Ok(Channel {
            socket,
            peer,
            shutdown: shutdown.clone(),
            session: None,
            read_timeout: TERMINATION_CHECK,
            spin_budget: SpinBudget::new(patience.limit),
            _in_progress: patience.slots.enter(),
            spin_slots: patience.slots,
        })
    }

    /// Ends the transfer when an operator ends `session`.
    pub(crate) fn watch_session(&mut self, session: Session) {
        self.session = Some(session);
    }

    /// Why the transfer must stop now, if it must: the end of the grace period, or an operator.
    fn stop_now(&self) -> Option<Received> {
        if self.shutdown.is_terminated() {
            Some(Received::Terminated)
        } else if self.session.as_ref().is_some_and(Session::is_killed) {
            Some(Received::Killed)
        } else {
            None
        }
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
    /// watching for the end of the server's grace period and for an operator ending the session.
    pub(crate) fn receive(&mut self, buf: &mut [u8], deadline: Instant) -> io::Result<Received> {
        if let Some(stop) = self.stop_now() {
            return Ok(stop);
        }
        let started = Instant::now();
        let received = match self.poll_briefly(buf, started, deadline)? {
            Some(len) => Received::Datagram(len),
            None => self.sleep_until_received(buf, deadline)?,
        };
        if matches!(received, Received::Datagram(_) | Received::TimedOut) {
            self.spin_budget.record(started.elapsed());
        }
        Ok(received)
    }

    /// Polls the socket without sleeping, for as long as the peer's recent answers suggest
    /// and a polling slot is free; the length of the peer's datagram if one came.
    fn poll_briefly(
        &mut self,
        buf: &mut [u8],
        started: Instant,
        deadline: Instant,
    ) -> io::Result<Option<usize>> {
        let budget = self.spin_budget.current();
        if budget.is_zero() {
            return Ok(None);
        }
        let Some(_slot) = self.spin_slots.try_take() else { return Ok(None) };
        let until = (started + budget).min(deadline);
        loop {
            match rustix::net::recvfrom(&self.socket, &mut *buf, RecvFlags::DONTWAIT) {
                Ok((len, _, from)) => match from.and_then(|from| SocketAddr::try_from(from).ok()) {
                    Some(from) if from == self.peer => return Ok(Some(len)),
                    Some(from) => self.answer_stranger(&buf[..len], from),
                    None => {}
                },
                // Nothing yet, or a bounced earlier datagram (as below).
                Err(Errno::AGAIN | Errno::INTR | Errno::CONNREFUSED) => {}
                Err(err) => return Err(err.into()),
            }
            if Instant::now() >= until {
                return Ok(None);
            }
            std::hint::spin_loop();
        }
    }

    /// Blocks in the kernel until the peer's datagram, the deadline, the end of the grace
    /// period or an operator ending the session.
    fn sleep_until_received(&mut self, buf: &mut [u8], deadline: Instant) -> io::Result<Received> {
        loop {
            if let Some(stop) = self.stop_now() {
                return Ok(stop);
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

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_millis(1);

    /// A channel on loopback whose peer is `peer`, polling for up to [`LIMIT`] when `slots`
    /// allow.
    fn channel_with(peer: &UdpSocket, slots: usize) -> Channel {
        let patience = Patience { limit: LIMIT, slots: Arc::new(SpinSlots::new(slots)) };
        let peer = peer.local_addr().expect("peer address");
        Channel::open(IpAddr::V4(Ipv4Addr::LOCALHOST), peer, &Shutdown::new(), patience)
            .expect("channel")
    }

    fn loopback_socket() -> UdpSocket {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        socket
    }

    /// Waits (bounded) until the channel's socket has a datagram queued, so a poll finds it.
    fn wait_until_queued(channel: &Channel) {
        let mut probe = [0u8; 1];
        for _ in 0..500 {
            if rustix::net::recvfrom(
                &channel.socket,
                &mut probe,
                RecvFlags::PEEK | RecvFlags::DONTWAIT,
            )
            .is_ok()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        panic!("the datagram never arrived");
    }

    #[test]
    fn polling_finds_the_peers_datagram_and_answers_strangers_on_the_way() {
        let peer = loopback_socket();
        let stranger = loopback_socket();
        let mut channel = channel_with(&peer, 1);
        let channel_addr = channel.socket.local_addr().expect("address");
        stranger.send_to(b"\x00\x04\x00\x01", channel_addr).expect("stranger sends");
        wait_until_queued(&channel);
        peer.send_to(b"\x00\x04\x00\x07", channel_addr).expect("peer sends");
        std::thread::sleep(Duration::from_millis(20));

        let mut buf = [0u8; 64];
        let polled = channel.poll_briefly(&mut buf, Instant::now(), Instant::now() + LIMIT);
        assert_eq!(polled.expect("no error"), Some(4), "the peer's ACK, found by polling");
        assert_eq!(&buf[..4], b"\x00\x04\x00\x07");

        let mut answer = [0u8; 64];
        let (len, from) = stranger.recv_from(&mut answer).expect("the stranger is answered");
        assert_eq!(from, channel_addr);
        assert_eq!(&answer[..4], b"\x00\x05\x00\x05", "ERROR 5, unknown transfer ID");
        assert!(len > 4);
    }

    #[test]
    fn polling_gives_up_after_its_budget_and_the_sleeping_wait_takes_over() {
        let peer = loopback_socket();
        let mut channel = channel_with(&peer, 1);
        let mut buf = [0u8; 64];
        let started = Instant::now();
        let polled = channel.poll_briefly(&mut buf, started, started + Duration::from_secs(5));
        assert_eq!(polled.expect("no error"), None);
        let waited = started.elapsed();
        assert!(waited >= LIMIT / 2, "polled only {waited:?}");
        assert!(waited < Duration::from_secs(1), "polled {waited:?}, past its budget");

        let deadline = Instant::now() + Duration::from_millis(50);
        let received = channel.receive(&mut buf, deadline).expect("no error");
        assert_eq!(received, Received::TimedOut);
    }

    #[test]
    fn without_a_free_slot_a_transfer_does_not_poll() {
        let peer = loopback_socket();
        let mut channel = channel_with(&peer, 0);
        let channel_addr = channel.socket.local_addr().expect("address");
        peer.send_to(b"\x00\x04\x00\x01", channel_addr).expect("peer sends");
        wait_until_queued(&channel);

        let mut buf = [0u8; 64];
        let polled = channel.poll_briefly(&mut buf, Instant::now(), Instant::now() + LIMIT);
        assert_eq!(polled.expect("no error"), None, "polled without a slot");
        let received = channel.receive(&mut buf, Instant::now() + Duration::from_secs(5));
        assert_eq!(received.expect("no error"), Received::Datagram(4), "the sleeping wait");
    }
}
