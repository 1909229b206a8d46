//! The PROXY protocol (versions 1 and 2) on the TCP listeners, for nodes behind a load
//! balancer.
//!
//! The rule, in one sentence: a connection from a configured load-balancer address must begin
//! with a PROXY header, and the client address in it is the connection's address for
//! everything (the defender, the caps, users' `networks`, audit, xferlog, FTP's data
//! connection checks); a connection from any other address is a direct client, and a PROXY
//! header it sends is refused by the protocol it reached (FTP answers `421`, SSH and TLS fail
//! their handshake), since nothing but a trusted balancer may say who the client is.
//!
//! The header is read before the connection is admitted, on a task of its own (so a slow
//! balancer never holds the accept loop), at most [`ProxyConfig::max_pending`] at once and
//! each within [`ProxyConfig::header_timeout`]; a balancer's connection over that bound is
//! closed. Only the header's own bytes are taken from the socket: what follows belongs to the
//! protocol. Parsing is the `ppp` crate's.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::user::canonical_ip;

/// The `proxy_protocol` section: which addresses are load balancers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// Networks of the load balancers whose connections begin with a PROXY header (v1 or
    /// v2). Empty: no connection is expected to carry one.
    #[serde(default)]
    pub trusted: Vec<IpNet>,
    /// How long a balancer has to send the header once connected.
    #[serde(default = "default_header_timeout", with = "humantime_serde")]
    pub header_timeout: Duration,
    /// Balancer connections whose header is being read at once, over every listener.
    #[serde(default = "default_max_pending")]
    pub max_pending: usize,
}

fn default_header_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_max_pending() -> usize {
    256
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            trusted: Vec::new(),
            header_timeout: default_header_timeout(),
            max_pending: default_max_pending(),
        }
    }
}

/// Why a balancer's connection was closed before the protocol saw it.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The balancer closed the connection before the header was complete.
    #[error("the connection closed before its PROXY header was complete")]
    Closed,
    /// The header did not arrive in time.
    #[error("no complete PROXY header within {0:?}")]
    TimedOut(Duration),
    /// The connection began with something else.
    #[error("the connection does not begin with a PROXY header")]
    NotAHeader,
    /// The header is longer than any this server reads.
    #[error("the PROXY header is longer than {0} bytes")]
    TooLong(usize),
    /// The header is malformed.
    #[error("malformed PROXY header: {0}")]
    Malformed(String),
    /// The header names addresses of a family Wharf does not serve (Unix sockets).
    #[error("the PROXY header names a non-IP address")]
    NotIp,
    /// Too many balancer connections are waiting for their header.
    #[error("too many connections are waiting for their PROXY header")]
    Busy,
    /// Reading from the socket failed.
    #[error("reading the PROXY header failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Who a header says the connection is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announced {
    /// A relayed client, from this address.
    Client(SocketAddr),
    /// The balancer itself (a v2 `LOCAL` header, as a health check sends, or v1 `UNKNOWN`):
    /// the connection's own addresses apply.
    Balancer,
}

/// The PROXY protocol of this process's listeners. Cheap to clone; clones share the bound on
/// headers being read.
#[derive(Debug, Clone)]
pub struct ProxyProtocol {
    trusted: Arc<[IpNet]>,
    header_timeout: Duration,
    pending: Arc<Semaphore>,
}

impl Default for ProxyProtocol {
    /// No load balancer: every connection is a direct client.
    fn default() -> Self {
        ProxyProtocol::new(&ProxyConfig::default())
    }
}

impl ProxyProtocol {
    /// The PROXY protocol as `config` sets it.
    pub fn new(config: &ProxyConfig) -> Self {
        ProxyProtocol {
            trusted: config.trusted.iter().map(IpNet::trunc).collect(),
            header_timeout: config.header_timeout,
            pending: Arc::new(Semaphore::new(config.max_pending)),
        }
    }

    /// Whether any load balancer is configured.
    pub fn is_enabled(&self) -> bool {
        !self.trusted.is_empty()
    }

    /// Whether connections from `peer` begin with a PROXY header.
    pub fn is_balancer(&self, peer: IpAddr) -> bool {
        let peer = canonical_ip(peer);
        self.trusted.iter().any(|net| net.contains(&peer))
    }

    /// Hands the connection `stream` from `peer` to `serve` with the client's address: at once
    /// for a direct client; for a balancer, from a task of its own once the header is read
    /// (within the timeout and the bound on pending headers; a connection whose header fails
    /// is closed and logged). `listener` names the listener in logs. Call it from the accept
    /// loop: it never waits.
    pub fn accept<F>(&self, listener: &'static str, stream: TcpStream, peer: SocketAddr, serve: F)
    where
        F: FnOnce(TcpStream, SocketAddr) + Send + 'static,
    {
        if !self.is_balancer(peer.ip()) {
            serve(stream, peer);
            return;
        }
        let Ok(permit) = self.pending.clone().try_acquire_owned() else {
            tracing::warn!(listener, %peer, error = %ProxyError::Busy, "load balancer connection closed");
            return;
        };
        let this = self.clone();
        tokio::spawn(async move {
            let mut stream = stream;
            let announced = this.read(&mut stream).await;
            drop(permit);
            match announced {
                Ok(Announced::Client(client)) => serve(stream, client),
                Ok(Announced::Balancer) => serve(stream, peer),
                Err(err) => {
                    tracing::info!(listener, %peer, error = %err, "load balancer connection closed");
                }
            }
        });
    }

    /// Reads the PROXY header `stream` begins with, within the timeout; for a connection whose
    /// peer [`ProxyProtocol::is_balancer`].
    pub async fn read(&self, stream: &mut TcpStream) -> Result<Announced, ProxyError> {
        let header = tokio::time::timeout(self.header_timeout, read_header(stream))
            .await
            .map_err(|_| ProxyError::TimedOut(self.header_timeout))??;
        parse(&header)
    }
}

/// The longest version 1 header, its CRLF included (the specification's figure).
const V1_MAX: usize = 107;

/// The first bytes of a version 1 header.
const V1_START: &[u8] = b"PROXY ";

/// The signature a version 2 header begins with.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// Bytes of a version 2 header before its addresses.
const V2_FIXED: usize = 16;

/// The most address and extension bytes of a version 2 header read here: an IPv6 address
/// block is 36 bytes, and a balancer adds extensions only when configured to.
const V2_MAX_PAYLOAD: usize = 1024;

/// Reads exactly the bytes of the header `stream` begins with.
async fn read_header(stream: &mut TcpStream) -> Result<Vec<u8>, ProxyError> {
    // Every header is longer than this (`PROXY UNKNOWN\r\n` is 15 bytes, version 2 16), so
    // nothing after it is taken.
    let mut header = vec![0; V1_START.len()];
    read_exact(stream, &mut header).await?;
    if header == V1_START {
        read_v1_rest(stream, &mut header).await?;
    } else if header[..] == V2_SIGNATURE[..V1_START.len()] {
        header.resize(V2_FIXED, 0);
        read_exact(stream, &mut header[V1_START.len()..]).await?;
        if header[..V2_SIGNATURE.len()] != V2_SIGNATURE {
            return Err(ProxyError::NotAHeader);
        }
        let payload = usize::from(u16::from_be_bytes([header[14], header[15]]));
        if payload > V2_MAX_PAYLOAD {
            return Err(ProxyError::TooLong(V2_FIXED + V2_MAX_PAYLOAD));
        }
        header.resize(V2_FIXED + payload, 0);
        read_exact(stream, &mut header[V2_FIXED..]).await?;
    } else {
        return Err(ProxyError::NotAHeader);
    }
    Ok(header)
}

/// Reads a version 1 header up to its line end: what has arrived is looked at without being
/// taken, and only the bytes up to the first `\n` are taken.
async fn read_v1_rest(stream: &mut TcpStream, header: &mut Vec<u8>) -> Result<(), ProxyError> {
    let mut window = [0; V1_MAX];
    loop {
        let room = V1_MAX - header.len();
        if room == 0 {
            return Err(ProxyError::TooLong(V1_MAX));
        }
        let seen = stream.peek(&mut window[..room]).await?;
        if seen == 0 {
            return Err(ProxyError::Closed);
        }
        let line_end = window[..seen].iter().position(|&byte| byte == b'\n');
        let take = line_end.map_or(seen, |at| at + 1);
        read_exact(stream, &mut window[..take]).await?;
        header.extend_from_slice(&window[..take]);
        if line_end.is_some() {
            return Ok(());
        }
    }
}

async fn read_exact(stream: &mut TcpStream, buf: &mut [u8]) -> Result<(), ProxyError> {
    match stream.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => Err(ProxyError::Closed),
        Err(err) => Err(ProxyError::Io(err)),
    }
}

/// What a complete header says.
fn parse(header: &[u8]) -> Result<Announced, ProxyError> {
    use ppp::{v1, v2};
    if header.starts_with(V1_START) {
        let parsed =
            v1::Header::try_from(header).map_err(|err| ProxyError::Malformed(err.to_string()))?;
        return Ok(match parsed.addresses {
            v1::Addresses::Tcp4(tcp) => {
                Announced::Client(SocketAddr::new(IpAddr::V4(tcp.source_address), tcp.source_port))
            }
            v1::Addresses::Tcp6(tcp) => {
                Announced::Client(SocketAddr::new(IpAddr::V6(tcp.source_address), tcp.source_port))
            }
            v1::Addresses::Unknown => Announced::Balancer,
        });
    }
    let parsed =
        v2::Header::try_from(header).map_err(|err| ProxyError::Malformed(err.to_string()))?;
    if parsed.command == v2::Command::Local {
        return Ok(Announced::Balancer);
    }
    match parsed.addresses {
        v2::Addresses::IPv4(ip) => {
            Ok(Announced::Client(SocketAddr::new(IpAddr::V4(ip.source_address), ip.source_port)))
        }
        v2::Addresses::IPv6(ip) => {
            Ok(Announced::Client(SocketAddr::new(IpAddr::V6(ip.source_address), ip.source_port)))
        }
        // The specification: an unspecified family means the connection's own addresses.
        v2::Addresses::Unspecified => Ok(Announced::Balancer),
        v2::Addresses::Unix(_) => Err(ProxyError::NotIp),
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use tokio::io::AsyncWriteExt as _;
    use tokio::net::TcpListener;

    use super::*;

    fn trusting_loopback() -> ProxyProtocol {
        ProxyProtocol::new(&ProxyConfig {
            trusted: vec!["127.0.0.0/8".parse().expect("net")],
            header_timeout: Duration::from_secs(5),
            max_pending: 4,
        })
    }

    /// The server end of a loopback connection whose client sent `chunks` (each written
    /// separately) and stays open.
    async fn connection_sending(chunks: Vec<Vec<u8>>) -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("listen");
        let mut client =
            TcpStream::connect(listener.local_addr().expect("addr")).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        for chunk in chunks {
            client.write_all(&chunk).await.expect("write");
            client.flush().await.expect("flush");
        }
        (server, client)
    }

    /// A version 2 header for a TCP connection from `source` to `destination`.
    fn v2_header(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
        let addresses: ppp::v2::Addresses = (source, destination).into();
        ppp::v2::Builder::with_addresses(
            ppp::v2::Version::Two | ppp::v2::Command::Proxy,
            ppp::v2::Protocol::Stream,
            addresses,
        )
        .build()
        .expect("header")
    }

    async fn rest_of(server: &mut TcpStream, len: usize) -> Vec<u8> {
        let mut rest = vec![0; len];
        server.read_exact(&mut rest).await.expect("rest");
        rest
    }

    #[tokio::test]
    async fn a_v1_header_gives_the_client_and_leaves_what_follows() {
        let (mut server, _client) = connection_sending(vec![
            b"PROXY TCP4 203.0.113.7 10.0.0.1 51234 21\r\nUSER demo\r\n".to_vec(),
        ])
        .await;
        let announced = trusting_loopback().read(&mut server).await.expect("header");
        let client = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)), 51234);
        assert_eq!(announced, Announced::Client(client));
        assert_eq!(rest_of(&mut server, 11).await, b"USER demo\r\n");
    }

    #[tokio::test]
    async fn a_v1_header_sent_in_pieces_is_read_whole() {
        let (mut server, _client) = connection_sending(vec![
            b"PROXY TCP6 2001:db8::7 ".to_vec(),
            b"2001:db8::1 4000 22\r".to_vec(),
            b"\nSSH-2.0-x\r\n".to_vec(),
        ])
        .await;
        let announced = trusting_loopback().read(&mut server).await.expect("header");
        let client = SocketAddr::new(IpAddr::V6("2001:db8::7".parse().expect("ip")), 4000);
        assert_eq!(announced, Announced::Client(client));
        assert_eq!(rest_of(&mut server, 11).await, b"SSH-2.0-x\r\n");
    }

    #[tokio::test]
    async fn a_v2_header_gives_the_client_and_leaves_what_follows() {
        let source =
            SocketAddr::new(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 9)), 60000);
        let destination = SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 2222);
        let mut bytes = v2_header(source, destination);
        bytes.extend_from_slice(b"\x16\x03\x01");
        let (mut server, _client) = connection_sending(vec![bytes]).await;
        let announced = trusting_loopback().read(&mut server).await.expect("header");
        assert_eq!(announced, Announced::Client(source));
        assert_eq!(rest_of(&mut server, 3).await, b"\x16\x03\x01");
    }

    #[tokio::test]
    async fn a_local_header_means_the_balancer_itself() {
        let header = ppp::v2::Builder::with_addresses(
            ppp::v2::Version::Two | ppp::v2::Command::Local,
            ppp::v2::Protocol::Unspecified,
            ppp::v2::Addresses::Unspecified,
        )
        .build()
        .expect("header");
        let (mut server, _client) = connection_sending(vec![header]).await;
        let announced = trusting_loopback().read(&mut server).await.expect("header");
        assert_eq!(announced, Announced::Balancer);
    }

    #[tokio::test]
    async fn anything_else_is_refused() {
        type Expected = fn(&ProxyError) -> bool;
        let cases: Vec<(Vec<u8>, Expected)> = vec![
            (b"USER demo\r\n".to_vec(), |err| matches!(err, ProxyError::NotAHeader)),
            (b"PROXY TCP4 nonsense\r\n".to_vec(), |err| matches!(err, ProxyError::Malformed(_))),
            ([b"PROXY TCP4 ".as_slice(), &[b'1'; 120]].concat(), |err| {
                matches!(err, ProxyError::TooLong(_))
            }),
            ([&V2_SIGNATURE[..], &[0x21, 0x11, 0xff, 0xff]].concat(), |err| {
                matches!(err, ProxyError::TooLong(_))
            }),
        ];
        for (bytes, expected) in cases {
            let (mut server, _client) = connection_sending(vec![bytes.clone()]).await;
            let err = trusting_loopback().read(&mut server).await.expect_err("refused");
            assert!(expected(&err), "{:?}: {err}", String::from_utf8_lossy(&bytes));
        }
    }

    #[tokio::test]
    async fn a_header_cut_short_or_late_is_refused() {
        let (mut server, client) = connection_sending(vec![b"PROXY TCP4 203.0".to_vec()]).await;
        drop(client);
        let err = trusting_loopback().read(&mut server).await.expect_err("refused");
        assert!(matches!(err, ProxyError::Closed), "{err}");

        let quick = ProxyProtocol::new(&ProxyConfig {
            trusted: vec!["127.0.0.0/8".parse().expect("net")],
            header_timeout: Duration::from_millis(50),
            max_pending: 4,
        });
        let (mut server, _client) = connection_sending(vec![b"PROXY TCP4 203.0".to_vec()]).await;
        let err = quick.read(&mut server).await.expect_err("refused");
        assert!(matches!(err, ProxyError::TimedOut(_)), "{err}");
    }

    #[tokio::test]
    async fn headers_read_at_once_are_bounded_and_the_one_over_is_closed() {
        let proxy = ProxyProtocol::new(&ProxyConfig {
            trusted: vec!["127.0.0.0/8".parse().expect("net")],
            header_timeout: Duration::from_secs(30),
            max_pending: 1,
        });
        let (served, mut serving) = tokio::sync::mpsc::unbounded_channel();
        let serve = |served: tokio::sync::mpsc::UnboundedSender<SocketAddr>| {
            move |_stream: TcpStream, client: SocketAddr| {
                let _ = served.send(client);
            }
        };
        // The first balancer connection holds the one place while it has sent nothing.
        let (first, mut first_client) = connection_sending(Vec::new()).await;
        let peer = first.peer_addr().expect("peer");
        proxy.accept("test", first, peer, serve(served.clone()));
        // The second finds no place: closed at once, never served.
        let (second, mut second_client) = connection_sending(Vec::new()).await;
        let peer = second.peer_addr().expect("peer");
        proxy.accept("test", second, peer, serve(served.clone()));
        let mut buf = [0; 1];
        let ended = tokio::time::timeout(Duration::from_secs(10), second_client.read(&mut buf))
            .await
            .expect("closed in time");
        assert!(matches!(ended, Ok(0) | Err(_)), "the connection over the bound is closed");
        // The first is served once its header arrives, with the client it names.
        first_client
            .write_all(b"PROXY TCP4 203.0.113.7 10.0.0.1 51234 21\r\n")
            .await
            .expect("header");
        let client = tokio::time::timeout(Duration::from_secs(10), serving.recv())
            .await
            .expect("served in time")
            .expect("served");
        assert_eq!(client, SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)), 51234));
        assert!(serving.try_recv().is_err(), "the second was never served");
    }

    #[test]
    fn only_configured_networks_are_balancers() {
        let proxy = trusting_loopback();
        assert!(proxy.is_enabled());
        assert!(proxy.is_balancer("127.0.0.1".parse().expect("ip")));
        assert!(proxy.is_balancer("::ffff:127.0.0.2".parse().expect("ip")));
        assert!(!proxy.is_balancer("192.0.2.1".parse().expect("ip")));
        assert!(!ProxyProtocol::default().is_enabled());
        assert!(!ProxyProtocol::default().is_balancer("127.0.0.1".parse().expect("ip")));
    }
}
