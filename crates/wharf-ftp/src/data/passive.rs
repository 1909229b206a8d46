//! Passive data connections (`PASV`, `EPSV`): a listener on the control connection's local
//! address, on a port from the configured range, that accepts one connection, and only from
//! the control connection's peer (RFC 2577: no third party can steal or inject the data).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use wharf_access::ProxyProtocol;

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
    /// Which peers are load balancers, whose data connections begin with a PROXY header.
    proxy: ProxyProtocol,
}

impl PassivePorts {
    /// Ports from `range`, or any free port; data connections from a load balancer of
    /// `proxy` are taken to be from the client its PROXY header names.
    pub(crate) fn new(range: Option<PortRange>, proxy: ProxyProtocol) -> PassivePorts {
        PassivePorts { range, next: AtomicU32::new(0), proxy }
    }

    /// Binds a listener on `ip` on a free port of the range (with no range, of the kernel's
    /// ephemeral range, see [`bind_any`]).
    pub(crate) fn bind(&self, ip: IpAddr) -> io::Result<PassiveListener> {
        let Some(range) = self.range else {
            return bind_any(ip).map(|listener| PassiveListener::new(listener, &self.proxy));
        };
        let count = range.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % count;
        for step in 0..count {
            let offset = (start + step) % count;
            let Ok(port) = u16::try_from(u32::from(range.first) + offset) else { continue };
            match listen(SocketAddr::new(ip, port)) {
                Ok(listener) => return Ok(PassiveListener::new(listener, &self.proxy)),
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

/// Ports of the ephemeral range tried at random before the choice is left to the kernel.
const RANDOM_PORT_TRIES: usize = 16;

/// The kernel's ephemeral port range when it cannot be read (Linux's default).
const DEFAULT_EPHEMERAL_PORTS: RangeInclusive<u16> = 32768..=60999;

/// A listener on `ip` on a port of the kernel's ephemeral range, picked here at random.
///
/// Binding port 0 leaves the pick to the kernel, which looks for a port that no socket is
/// bound to, skipping those held by connections in `TIME_WAIT`, and checks each candidate
/// against the bind hash: with the thousands of such connections that one client fetching
/// many small files leaves (one data connection per file, each closed by the server after
/// a download), each bind could take milliseconds of kernel time (`inet_csk_get_port` and
/// `inet_bhash2_conflict` were half of the server's profile in such a run, and lftp
/// `mirror` of 1,000 files of 4 KiB ran at half speed on 0.9 to 2 s of server CPU instead
/// of 0.1 to 0.5 s; docs/BENCHMARKS.md). Binding a chosen port
/// with `SO_REUSEADDR` is one lookup, and `TIME_WAIT` connections do not stand in its way.
/// Random ports also keep one session's ports from following each other.
fn bind_any(ip: IpAddr) -> io::Result<TcpListener> {
    let ports = ephemeral_ports();
    for _ in 0..RANDOM_PORT_TRIES {
        let port = rand::random_range(ports.clone());
        match listen(SocketAddr::new(ip, port)) {
            Ok(listener) => return Ok(listener),
            Err(err) if err.kind() == io::ErrorKind::AddrInUse => continue,
            Err(err) => return Err(err),
        }
    }
    listen(SocketAddr::new(ip, 0))
}

/// The kernel's ephemeral port range (`net.ipv4.ip_local_port_range`, which applies to IPv6
/// as well), read once.
fn ephemeral_ports() -> RangeInclusive<u16> {
    static PORTS: OnceLock<RangeInclusive<u16>> = OnceLock::new();
    PORTS
        .get_or_init(|| {
            std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
                .ok()
                .and_then(|text| parse_port_range(&text))
                .unwrap_or(DEFAULT_EPHEMERAL_PORTS)
        })
        .clone()
}

/// `"32768\t60999\n"` as a range of unprivileged ports; `None` for anything else.
fn parse_port_range(text: &str) -> Option<RangeInclusive<u16>> {
    let mut bounds = text.split_whitespace().map(str::parse::<u16>);
    let (Some(Ok(first)), Some(Ok(last)), None) = (bounds.next(), bounds.next(), bounds.next())
    else {
        return None;
    };
    (1024 <= first && first <= last).then_some(first..=last)
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
    /// With load balancers configured: where connections arrive once their client is known.
    proxied: Option<Proxied>,
}

/// Connections to a passive listener behind load balancers: each goes through
/// [`ProxyProtocol::accept`] (a balancer's PROXY header is read on a task of its own, so a
/// slow one holds nothing up) and arrives here with its client's address.
#[derive(Debug)]
struct Proxied {
    proxy: ProxyProtocol,
    known: mpsc::UnboundedReceiver<(TcpStream, SocketAddr)>,
    sender: mpsc::UnboundedSender<(TcpStream, SocketAddr)>,
}

impl PassiveListener {
    fn new(listener: TcpListener, proxy: &ProxyProtocol) -> PassiveListener {
        let proxied = proxy.is_enabled().then(|| {
            let (sender, known) = mpsc::unbounded_channel();
            Proxied { proxy: proxy.clone(), known, sender }
        });
        PassiveListener { listener, proxied }
    }

    /// The address the listener is bound to.
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// A connection from `peer_ip` the kernel has already completed, taken without waiting;
    /// `None` when there is none yet. Connections from other addresses are closed and logged,
    /// as [`PassiveListener::accept`] does.
    pub(crate) fn take_waiting(&self, peer_ip: IpAddr) -> Result<Option<TcpStream>, DataError> {
        if self.proxied.is_some() {
            // A balancer's connection is known only once its header is read.
            return Ok(None);
        }
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
        mut self,
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
    pub(crate) async fn accept_from(&mut self, peer_ip: IpAddr) -> Result<TcpStream, DataError> {
        let expected = canonical(peer_ip);
        let PassiveListener { listener, proxied } = self;
        loop {
            let (stream, from) = match proxied {
                None => listener.accept().await.map_err(DataError::Io)?,
                Some(proxied) => tokio::select! {
                    accepted = listener.accept() => {
                        let (stream, peer) = accepted.map_err(DataError::Io)?;
                        let sender = proxied.sender.clone();
                        proxied.proxy.accept("FTP data", stream, peer, move |stream, client| {
                            // The receiver lives as long as the listener; a connection that
                            // arrives after it is gone is closed with it.
                            let _ = sender.send((stream, client));
                        });
                        continue;
                    }
                    // Never `None`: the listener holds a sender.
                    Some(known) = proxied.known.recv() => known,
                },
            };
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

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn the_kernel_range_is_read_as_two_unprivileged_bounds() {
        assert_eq!(parse_port_range("32768\t60999\n"), Some(32768..=60999));
        assert_eq!(parse_port_range("1024 1024"), Some(1024..=1024));
        for bad in ["", "32768", "60999 32768", "80 90", "1 2 3", "a b", "32768 70000"] {
            assert_eq!(parse_port_range(bad), None, "{bad:?}");
        }
    }

    #[tokio::test]
    async fn without_a_range_listeners_get_distinct_ephemeral_ports() {
        let ports = PassivePorts::new(None, ProxyProtocol::default());
        let ephemeral = ephemeral_ports();
        let listeners: Vec<PassiveListener> =
            (0..32).map(|_| ports.bind(IpAddr::V4(Ipv4Addr::LOCALHOST)).expect("bind")).collect();
        let mut bound: Vec<u16> =
            listeners.iter().map(|l| l.local_addr().expect("address").port()).collect();
        assert!(bound.iter().all(|port| ephemeral.contains(port)), "{bound:?} in {ephemeral:?}");
        bound.sort_unstable();
        bound.dedup();
        assert_eq!(bound.len(), listeners.len(), "every listener has its own port");
    }
}
