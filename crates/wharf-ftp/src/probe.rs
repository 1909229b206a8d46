//! Whether the client behind a control connection is still there, asked without reading.
//!
//! In stream mode the end of an upload's data connection is the end of the file. A client
//! process that dies mid-upload has both of its connections closed by its kernel at once, so
//! the data connection's end looks like a complete upload. What tells the two apart is the
//! control connection: a client that finished waits there for the `226`; a vanished one has
//! closed it too. The session's reader owns the control stream (possibly wrapped in TLS), so
//! the probe keeps its own handle on the socket and peeks at the kernel's state.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::net::RecvFlags;

/// How many times the probe gives the CPU away before it concludes the client is there.
const YIELDS_BEFORE_CONCLUDING: usize = 3;

/// A yield that took longer than this gave the CPU to other work for a time slice: the
/// machine is busy, and each further yield would cost the client as much again (measured with
/// two CPU-bound processes beside 300 small uploads from lftp: three yields per upload made
/// 143-151 files/s, none 410-605).
const BUSY_YIELD: Duration = Duration::from_micros(200);

/// A second handle on a control connection's socket.
#[derive(Debug)]
pub struct PeerProbe {
    socket: OwnedFd,
    /// Whether the client runs on this host, so its exit may be waiting for our CPU.
    client_on_this_host: bool,
}

impl PeerProbe {
    /// A probe of `socket` (a duplicate of its descriptor, closed with the probe), a
    /// connection from `peer` to `local`.
    pub fn of(socket: &impl AsFd, local: SocketAddr, peer: SocketAddr) -> io::Result<PeerProbe> {
        Ok(PeerProbe {
            socket: socket.as_fd().try_clone_to_owned()?,
            client_on_this_host: on_this_host(local.ip(), peer.ip()),
        })
    }

    /// True when the client has closed or reset the connection and sent nothing before
    /// (pending bytes, such as a `QUIT` or a TLS close, mean it ended deliberately).
    ///
    /// A killed client's kernel releases its sockets last-opened first, so the data
    /// connection's end arrives before the control connection's; and when the thread that saw
    /// the data end was woken on the dying client's CPU, the client's exit waits for that CPU.
    /// Giving the CPU away a few times before concluding lets the exit finish. That costs a
    /// client that finished a few microseconds on an idle machine, but a time slice per yield
    /// on a busy one, so the probe stops yielding after a yield that took a slice; and it
    /// cannot help a client on another host (its exit is not waiting for our CPU), so only a
    /// client on this host is yielded for.
    pub(crate) fn peer_has_gone(&self) -> bool {
        let yields = if self.client_on_this_host { YIELDS_BEFORE_CONCLUDING } else { 0 };
        for _ in 0..yields {
            if self.closed_now() {
                return true;
            }
            let yielded = Instant::now();
            std::thread::yield_now();
            if yielded.elapsed() > BUSY_YIELD {
                break;
            }
        }
        self.closed_now()
    }

    fn closed_now(&self) -> bool {
        let mut byte = [0u8; 1];
        match rustix::net::recv(&self.socket, &mut byte, RecvFlags::PEEK | RecvFlags::DONTWAIT) {
            Ok((0, _)) => true,
            Ok(_) => false,
            Err(Errno::AGAIN | Errno::INTR) => false,
            Err(_) => true,
        }
    }
}

/// Whether a connection from `peer` to `local` comes from this host: over loopback, or to
/// one of the host's own addresses from that same address.
fn on_this_host(local: IpAddr, peer: IpAddr) -> bool {
    let peer = peer.to_canonical();
    peer.is_loopback() || peer == local.to_canonical()
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};

    use super::*;

    #[test]
    fn tells_a_closed_peer_from_a_quiet_or_talking_one() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, peer) = listener.accept().expect("accept");
        let local = server.local_addr().expect("local address");
        let probe = PeerProbe::of(&server, local, peer).expect("probe");
        assert!(!probe.peer_has_gone(), "connected and quiet");
        client.write_all(b"QUIT\r\n").expect("write");
        drop(client);
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!probe.peer_has_gone(), "closed after a command the session has not read");
        let mut line = [0u8; 6];
        std::io::Read::read_exact(&mut &server, &mut line).expect("read the command");
        assert!(probe.peer_has_gone(), "closed, nothing left to read");
    }

    #[test]
    fn only_clients_on_this_host_are_yielded_for() {
        let ip = |text: &str| text.parse::<IpAddr>().expect("address");
        assert!(on_this_host(ip("127.0.0.1"), ip("127.0.0.1")));
        assert!(on_this_host(ip("::1"), ip("::1")));
        assert!(on_this_host(ip("::ffff:127.0.0.1"), ip("::ffff:127.0.0.1")));
        assert!(on_this_host(ip("192.0.2.7"), ip("192.0.2.7")), "to our own address");
        assert!(on_this_host(ip("::ffff:192.0.2.7"), ip("192.0.2.7")));
        assert!(!on_this_host(ip("192.0.2.7"), ip("192.0.2.8")));
        assert!(!on_this_host(ip("2001:db8::1"), ip("2001:db8::2")));
    }
}
