//! Active data connections (`PORT`, `EPRT`): the server connects back to the client.
//!
//! RFC 2577's bounce attack is closed by only ever connecting to the control connection's own
//! peer address, and only to unprivileged ports (1024 and up), so a client cannot make the
//! server connect to a third host or to a service port.

use std::net::{IpAddr, SocketAddr};

use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

use super::{DataError, canonical};

/// Lowest port the server connects to.
pub(crate) const MIN_ACTIVE_PORT: u16 = 1024;

/// Why a `PORT`/`EPRT` target was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ActiveRefusal {
    /// The address is not the control connection's peer.
    #[error("data connections go only to your own address")]
    ForeignAddress,
    /// The port is below 1024.
    #[error("data connections go only to ports from 1024 up")]
    PrivilegedPort,
}

/// Checks a `PORT`/`EPRT` target against the control connection's peer (RFC 2577).
pub(crate) fn check_active_target(
    target: SocketAddr,
    control_peer: IpAddr,
) -> Result<SocketAddr, ActiveRefusal> {
    let ip = canonical(target.ip());
    if ip != canonical(control_peer) {
        return Err(ActiveRefusal::ForeignAddress);
    }
    if target.port() < MIN_ACTIVE_PORT {
        return Err(ActiveRefusal::PrivilegedPort);
    }
    Ok(SocketAddr::new(ip, target.port()))
}

/// Connects to `target` from the control connection's local address, by `deadline`.
pub(crate) async fn connect_active(
    target: SocketAddr,
    local_ip: IpAddr,
    deadline: Instant,
) -> Result<TcpStream, DataError> {
    let socket = if target.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }
        .map_err(DataError::Io)?;
    let local = canonical(local_ip);
    // Leave from the interface the client reached us on, so its firewall sees a known peer.
    if local.is_ipv4() == target.is_ipv4() {
        socket.bind(SocketAddr::new(local, 0)).map_err(DataError::Io)?;
    }
    match tokio::time::timeout_at(deadline, socket.connect(target)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(err)) => Err(DataError::Io(err)),
        Err(_) => Err(DataError::Timeout),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("socket address")
    }

    #[test]
    fn only_the_peer_and_unprivileged_ports() {
        let peer: IpAddr = "192.0.2.10".parse().expect("ip");
        assert_eq!(
            check_active_target(addr("192.0.2.10:50000"), peer),
            Ok(addr("192.0.2.10:50000"))
        );
        assert_eq!(
            check_active_target(addr("192.0.2.11:50000"), peer),
            Err(ActiveRefusal::ForeignAddress)
        );
        assert_eq!(
            check_active_target(addr("192.0.2.10:25"), peer),
            Err(ActiveRefusal::PrivilegedPort)
        );
        assert_eq!(check_active_target(addr("192.0.2.10:1024"), peer), Ok(addr("192.0.2.10:1024")));
    }

    #[test]
    fn ipv4_on_an_ipv6_control_connection() {
        let mapped: IpAddr = "::ffff:192.0.2.10".parse().expect("ip");
        assert_eq!(
            check_active_target(addr("192.0.2.10:4000"), mapped),
            Ok(addr("192.0.2.10:4000"))
        );
        let v6: IpAddr = "2001:db8::1".parse().expect("ip");
        assert_eq!(
            check_active_target(addr("[2001:db8::1]:4000"), v6),
            Ok(addr("[2001:db8::1]:4000"))
        );
        assert_eq!(
            check_active_target(addr("[2001:db8::2]:4000"), v6),
            Err(ActiveRefusal::ForeignAddress)
        );
    }
}
