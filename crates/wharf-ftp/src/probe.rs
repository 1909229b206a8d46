//! Whether the client behind a control connection is still there, asked without reading.
//!
//! In stream mode the end of an upload's data connection is the end of the file. A client
//! process that dies mid-upload has both of its connections closed by its kernel at once, so
//! the data connection's end looks like a complete upload. What tells the two apart is the
//! control connection: a client that finished waits there for the `226`; a vanished one has
//! closed it too. The session's reader owns the control stream (possibly wrapped in TLS), so
//! the probe keeps its own handle on the socket and peeks at the kernel's state.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use rustix::io::Errno;
use rustix::net::RecvFlags;

/// How many times the probe gives the CPU away before it concludes the client is there.
const YIELDS_BEFORE_CONCLUDING: usize = 3;

/// A second handle on a control connection's socket.
#[derive(Debug)]
pub struct PeerProbe {
    socket: OwnedFd,
}

impl PeerProbe {
    /// A probe of `socket` (a duplicate of its descriptor, closed with the probe).
    pub fn of(socket: &impl AsFd) -> io::Result<PeerProbe> {
        Ok(PeerProbe { socket: socket.as_fd().try_clone_to_owned()? })
    }

    /// True when the client has closed or reset the connection and sent nothing before
    /// (pending bytes, such as a `QUIT` or a TLS close, mean it ended deliberately).
    ///
    /// A killed client's kernel releases its sockets last-opened first, so the data
    /// connection's end arrives before the control connection's; and when the thread that saw
    /// the data end was woken on the dying client's CPU, the client's exit waits for that CPU.
    /// Giving the CPU away a few times before concluding lets the exit finish (it costs a
    /// client that finished a few microseconds).
    pub(crate) fn peer_has_gone(&self) -> bool {
        for _ in 0..YIELDS_BEFORE_CONCLUDING {
            if self.closed_now() {
                return true;
            }
            std::thread::yield_now();
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

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};

    use super::*;

    #[test]
    fn tells_a_closed_peer_from_a_quiet_or_talking_one() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        let probe = PeerProbe::of(&server).expect("probe");
        assert!(!probe.peer_has_gone(), "connected and quiet");
        client.write_all(b"QUIT\r\n").expect("write");
        drop(client);
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!probe.peer_has_gone(), "closed after a command the session has not read");
        let mut line = [0u8; 6];
        std::io::Read::read_exact(&mut &server, &mut line).expect("read the command");
        assert!(probe.peer_has_gone(), "closed, nothing left to read");
    }
}
