//! Loopback ports for the peers, which (unlike Wharf) cannot bind port 0 and report it.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// The only address anything in the bench binds or connects to.
pub const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// A TCP port on 127.0.0.1 that was free a moment ago (the kernel picked it for port 0).
pub fn free_tcp_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((LOOPBACK, 0)).context("finding a free TCP port")?;
    Ok(listener.local_addr()?.port())
}

/// A UDP port on 127.0.0.1 that was free a moment ago.
pub fn free_udp_port() -> anyhow::Result<u16> {
    let socket = UdpSocket::bind((LOOPBACK, 0)).context("finding a free UDP port")?;
    Ok(socket.local_addr()?.port())
}

/// Waits until something accepts TCP connections at `addr`.
pub fn wait_for_tcp(addr: SocketAddr, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("nothing listens on {addr} after {} s", limit.as_secs());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether a UDP port on 127.0.0.1 is bound (so a TFTP server has started): binding it
/// ourselves fails then.
pub fn udp_port_taken(port: u16) -> bool {
    UdpSocket::bind((LOOPBACK, port)).is_err()
}
