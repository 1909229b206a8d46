//! Passive data connections (`PASV`, `EPSV`): a listener on the control connection's local
//! address, on a port from the configured range, that accepts one connection, and only from
//! the control connection's peer (RFC 2577: no third party can steal or inject the data).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::Instant;

use super::{DataError, canonical};
use crate::config::PortRange;

/// Connections a passive listener queues before it accepts; one is expected.
const PASSIVE_BACKLOG: u32 = 4;

/// Hands out passive ports from the configured range, rotating so consecutive transfers do not
/// all fight for the first port.
#[derive(Debug)]
pub(crate) struct PassivePorts {
    range: Option<PortRange>,
    next: AtomicU32,
}

impl PassivePorts {
    /// Ports from `range`, or any free port.
    pub(crate) fn new(range: Option<PortRange>) -> PassivePorts {
        PassivePorts { range, next: AtomicU32::new(0) }
    }

    /// Binds a listener on `ip` on a free port of the range.
    pub(crate) fn bind(&self, ip: IpAddr) -> io::Result<PassiveListener> {
        let Some(range) = self.range else {
            return listen(SocketAddr::new(ip, 0)).map(PassiveListener::new);
        };
        let count = range.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % count;
        for step in 0..count {
            let offset = (start + step) % count;
            let Ok(port) = u16::try_from(u32::from(range.first) + offset) else { continue };
            match listen(SocketAddr::new(ip, port)) {
                Ok(listener) => return Ok(PassiveListener::new(listener)),
                Err(err) if err.kind() == io::ErrorKind::AddrInUse => continue,
                Err(err) => return Err(err),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("every passive port of {range} is in use"),
        ))
    }
}

fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    // Earlier data connections on this port may linger in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(PASSIVE_BACKLOG)
}

/// A listener waiting for one passive data connection.
#[derive(Debug)]
pub(crate) struct PassiveListener {
    listener: TcpListener,
}

impl PassiveListener {
    fn new(listener: TcpListener) -> PassiveListener {
        PassiveListener { listener }
    }

    /// The address the listener is bound to.
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// A connection from `peer_ip` the kernel has already completed, taken without waiting;
    /// `None` when there is none yet. Connections from other addresses are closed and logged,
    /// as [`PassiveListener::accept`] does.
    pub(crate) fn take_waiting(&self, peer_ip: IpAddr) -> Result<Option<TcpStream>, DataError> {
        let expected = canonical(peer_ip);
        loop {
            let accepted = rustix::net::acceptfrom_with(
                &self.listener,
                rustix::net::SocketFlags::NONBLOCK | rustix::net::SocketFlags::CLOEXEC,
            );
            let (socket, from) = match accepted {
                Ok(accepted) => accepted,
                Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => return Ok(None),
                Err(err) => return Err(DataError::Io(err.into())),
            };
            let from = from.and_then(|from| SocketAddr::try_from(from).ok());
            if from.is_some_and(|from| canonical(from.ip()) == expected) {
                let stream = std::net::TcpStream::from(socket);
                return TcpStream::from_std(stream).map(Some).map_err(DataError::Io);
            }
            tracing::warn!(
                from = ?from,
                expected = %expected,
                "refused a passive data connection from a foreign address"
            );
        }
    }

    /// Accepts the data connection from `peer_ip` by `deadline`. Connections from any other
    /// address are closed at once and logged.
    pub(crate) async fn accept(
        self,
        peer_ip: IpAddr,
        deadline: Instant,
    ) -> Result<TcpStream, DataError> {
        match tokio::time::timeout_at(deadline, self.accept_from(peer_ip)).await {
            Ok(accepted) => accepted,
            Err(_) => Err(DataError::Timeout),
        }
    }

    /// Waits for the data connection from `peer_ip`, closing and logging connections from any
    /// other address. Cancel-safe: a connection not yet taken stays queued.
    pub(crate) async fn accept_from(&self, peer_ip: IpAddr) -> Result<TcpStream, DataError> {
        let expected = canonical(peer_ip);
        loop {
            let (stream, from) = self.listener.accept().await.map_err(DataError::Io)?;
            if canonical(from.ip()) == expected {
                return Ok(stream);
            }
            tracing::warn!(
                from = %from,
                expected = %expected,
                "refused a passive data connection from a foreign address"
            );
        }
    }
}
