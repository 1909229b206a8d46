//! A TFTP client for tests, built on the crate's own packet codec, with knobs real clients
//! lack: drop every n-th ACK, send every ACK twice, count what the server sent.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;
use wharf_tftp::packet::{Packet, Request, TransferMode, WireOption, encode_ack, encode_data};

/// How the client behaves.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// Transfer mode.
    pub mode: TransferMode,
    /// Options to request, such as `("blksize", "1468")`.
    pub options: Vec<(&'static str, String)>,
    /// Skip sending every n-th ACK (never the last one).
    pub drop_every_nth_ack: Option<u64>,
    /// Send every ACK twice.
    pub duplicate_acks: bool,
    /// Resend the last packet when nothing arrives for this long.
    pub retransmit_after: Duration,
    /// Give up after this many retransmissions in a row.
    pub max_retries: u32,
    /// The address the client sends from.
    pub source: IpAddr,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            mode: TransferMode::Octet,
            options: Vec::new(),
            drop_every_nth_ack: None,
            duplicate_acks: false,
            retransmit_after: Duration::from_secs(2),
            max_retries: 5,
            source: "127.0.0.1".parse().expect("ip"),
        }
    }
}

impl Behaviour {
    /// Octet mode with `options`.
    pub fn with_options(options: &[(&'static str, &str)]) -> Self {
        Behaviour {
            options: options.iter().map(|(n, v)| (*n, (*v).to_owned())).collect(),
            ..Behaviour::default()
        }
    }
}

/// Why a transfer failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// The server sent an ERROR.
    Server {
        /// Its code.
        code: u16,
        /// Its message.
        message: String,
    },
    /// The server stopped answering.
    Timeout,
    /// The server broke the protocol.
    Protocol(String),
}

impl ClientError {
    /// The error code, if the server sent one.
    pub fn code(&self) -> Option<u16> {
        match self {
            ClientError::Server { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// What a download saw.
#[derive(Debug, Clone, Default)]
pub struct Received {
    /// The file's bytes as they came over the wire.
    pub data: Vec<u8>,
    /// The server's OACK, if any.
    pub oack: Option<Vec<(String, String)>>,
    /// DATA packets received, duplicates included.
    pub data_packets: u64,
    /// Distinct blocks received.
    pub blocks: u64,
    /// DATA packets received before the client sent its first ACK of data.
    pub blocks_before_first_ack: u64,
}

/// What an upload saw.
#[derive(Debug, Clone, Default)]
pub struct Sent {
    /// The server's OACK, if any.
    pub oack: Option<Vec<(String, String)>>,
    /// ACKs received after the first answer, duplicates included.
    pub acks: u64,
    /// DATA blocks the file took.
    pub blocks: u64,
}

fn owned_options(options: &[WireOption<'_>]) -> Vec<(String, String)> {
    options.iter().map(|o| (o.name.to_owned(), o.value.to_owned())).collect()
}

fn option_value(oack: &Option<Vec<(String, String)>>, name: &str) -> Option<u64> {
    oack.as_ref()?.iter().find(|(n, _)| n == name)?.1.parse().ok()
}

fn request(write: bool, name: &str, behaviour: &Behaviour) -> Vec<u8> {
    let options: Vec<WireOption<'_>> =
        behaviour.options.iter().map(|(name, value)| WireOption { name, value }).collect();
    let request = Request { filename: name.as_bytes(), mode: behaviour.mode, options };
    if write { Packet::Wrq(request) } else { Packet::Rrq(request) }.to_bytes()
}

/// One side of a transfer: the socket, the server's transfer ID once known, and the last
/// packet for retransmission.
struct Conversation {
    socket: UdpSocket,
    server: SocketAddr,
    tid: Option<SocketAddr>,
    last_sent: Vec<u8>,
    retries: u32,
    behaviour: Behaviour,
}

impl Conversation {
    async fn open(server: SocketAddr, behaviour: &Behaviour) -> Conversation {
        let socket =
            UdpSocket::bind(SocketAddr::new(behaviour.source, 0)).await.expect("bind client");
        Conversation {
            socket,
            server,
            tid: None,
            last_sent: Vec::new(),
            retries: 0,
            behaviour: behaviour.clone(),
        }
    }

    async fn send(&mut self, datagram: Vec<u8>) {
        let to = self.tid.unwrap_or(self.server);
        self.socket.send_to(&datagram, to).await.expect("client send");
        self.last_sent = datagram;
    }

    /// The next datagram from the server's transfer ID, retransmitting on silence.
    async fn receive(&mut self, buf: &mut [u8]) -> Result<usize, ClientError> {
        loop {
            match tokio::time::timeout(self.behaviour.retransmit_after, self.socket.recv_from(buf))
                .await
            {
                Ok(Ok((len, from))) => {
                    match self.tid {
                        None => self.tid = Some(from),
                        Some(tid) if tid != from => continue,
                        Some(_) => {}
                    }
                    self.retries = 0;
                    return Ok(len);
                }
                Ok(Err(err)) => return Err(ClientError::Protocol(format!("receive: {err}"))),
                Err(_) => {
                    self.retries += 1;
                    if self.retries > self.behaviour.max_retries {
                        return Err(ClientError::Timeout);
                    }
                    let again = self.last_sent.clone();
                    let to = self.tid.unwrap_or(self.server);
                    self.socket.send_to(&again, to).await.expect("client resend");
                }
            }
        }
    }
}

fn server_error(code: u16, message: &[u8]) -> ClientError {
    ClientError::Server { code, message: String::from_utf8_lossy(message).into_owned() }
}

/// Downloads `name` from `server`.
pub async fn download(
    server: SocketAddr,
    name: &str,
    behaviour: &Behaviour,
) -> Result<Received, ClientError> {
    let mut conv = Conversation::open(server, behaviour).await;
    conv.send(request(false, name, behaviour)).await;
    let mut received = Received::default();
    let mut block_size = 512usize;
    let mut window = 1u64;
    let mut since_ack = 0u64;
    let mut acks_sent = 0u64;
    let mut any_data_acked = false;
    let mut buf = vec![0u8; 65_536];
    loop {
        let len = conv.receive(&mut buf).await?;
        let mut ack = None;
        let mut done = false;
        match Packet::parse(&buf[..len]) {
            Ok(Packet::Oack { options }) if received.blocks == 0 => {
                let oack = Some(owned_options(&options));
                block_size = option_value(&oack, "blksize").map_or(512, |v| v as usize);
                window = option_value(&oack, "windowsize").unwrap_or(1);
                received.oack = oack;
                ack = Some(0);
            }
            Ok(Packet::Data { block, payload }) => {
                received.data_packets += 1;
                if !any_data_acked {
                    received.blocks_before_first_ack += 1;
                }
                let expected = ((received.blocks + 1) & 0xffff) as u16;
                if block == expected {
                    received.blocks += 1;
                    received.data.extend_from_slice(payload);
                    since_ack += 1;
                    if payload.len() < block_size {
                        done = true;
                        ack = Some(block);
                    } else if since_ack >= window {
                        ack = Some(block);
                    }
                } else {
                    // A duplicate or a gap: acknowledge what we have, restarting the window.
                    ack = Some((received.blocks & 0xffff) as u16);
                }
                if payload.len() > block_size {
                    return Err(ClientError::Protocol(format!("block of {} bytes", payload.len())));
                }
            }
            Ok(Packet::Error { code, message }) => return Err(server_error(code, message)),
            Ok(other) => {
                return Err(ClientError::Protocol(format!("unexpected {:?}", other.opcode())));
            }
            Err(err) => return Err(ClientError::Protocol(format!("unparsable reply: {err}"))),
        }
        if let Some(block) = ack {
            since_ack = 0;
            if block != 0 || received.blocks > 0 {
                any_data_acked = true;
            }
            acks_sent += 1;
            let dropped =
                !done && behaviour.drop_every_nth_ack.is_some_and(|n| acks_sent.is_multiple_of(n));
            if dropped {
                // Remember it anyway: a retransmission on silence repeats it.
                conv.last_sent = encode_ack(block).to_vec();
            } else {
                conv.send(encode_ack(block).to_vec()).await;
                if behaviour.duplicate_acks {
                    conv.send(encode_ack(block).to_vec()).await;
                }
            }
        }
        if done {
            return Ok(received);
        }
    }
}

/// Uploads `content` as `name` to `server`, windowed as negotiated.
pub async fn upload(
    server: SocketAddr,
    name: &str,
    content: &[u8],
    behaviour: &Behaviour,
) -> Result<Sent, ClientError> {
    let mut conv = Conversation::open(server, behaviour).await;
    conv.send(request(true, name, behaviour)).await;
    let mut buf = vec![0u8; 2048];
    let mut sent = Sent::default();
    // The first answer: ACK 0 or an OACK.
    let len = conv.receive(&mut buf).await?;
    match Packet::parse(&buf[..len]) {
        Ok(Packet::Ack { block: 0 }) => {}
        Ok(Packet::Oack { options }) => sent.oack = Some(owned_options(&options)),
        Ok(Packet::Error { code, message }) => return Err(server_error(code, message)),
        other => return Err(ClientError::Protocol(format!("unexpected first answer {other:?}"))),
    }
    let block_size = option_value(&sent.oack, "blksize").map_or(512, |v| v as usize);
    let window = option_value(&sent.oack, "windowsize").unwrap_or(1);
    let last = content.len() as u64 / block_size as u64 + 1;
    sent.blocks = last;
    let block_bytes = |n: u64| {
        let start = ((n - 1) as usize * block_size).min(content.len());
        let end = (start + block_size).min(content.len());
        &content[start..end]
    };
    let mut acked = 0u64;
    let mut next = 1u64;
    let mut packet = Vec::new();
    let mut silent_rounds = 0;
    loop {
        while next <= last && next <= acked + window {
            encode_data(&mut packet, (next & 0xffff) as u16, block_bytes(next));
            conv.socket.send_to(&packet, conv.tid.unwrap_or(server)).await.expect("send DATA");
            next += 1;
        }
        match tokio::time::timeout(behaviour.retransmit_after, conv.socket.recv_from(&mut buf))
            .await
        {
            Err(_) => {
                silent_rounds += 1;
                if silent_rounds > behaviour.max_retries {
                    return Err(ClientError::Timeout);
                }
                next = acked + 1;
            }
            Ok(Err(err)) => return Err(ClientError::Protocol(format!("receive: {err}"))),
            Ok(Ok((len, from))) => {
                if Some(from) != conv.tid {
                    continue;
                }
                match Packet::parse(&buf[..len]) {
                    Ok(Packet::Ack { block }) => {
                        sent.acks += 1;
                        let ahead = u64::from(block.wrapping_sub((acked & 0xffff) as u16));
                        if ahead == 0 || acked + ahead >= next {
                            continue;
                        }
                        silent_rounds = 0;
                        acked += ahead;
                        if acked == last {
                            return Ok(sent);
                        }
                        next = acked + 1;
                    }
                    Ok(Packet::Error { code, message }) => return Err(server_error(code, message)),
                    other => return Err(ClientError::Protocol(format!("unexpected {other:?}"))),
                }
            }
        }
    }
}

/// Sends `datagram` to `to` from a fresh socket and returns the first reply within `wait`.
pub async fn exchange(
    to: SocketAddr,
    datagram: &[u8],
    wait: Duration,
) -> Option<(Vec<u8>, SocketAddr)> {
    exchange_from("127.0.0.1", to, datagram, wait).await
}

/// [`exchange`] from a fresh socket on the loopback address `source`.
pub async fn exchange_from(
    source: &str,
    to: SocketAddr,
    datagram: &[u8],
    wait: Duration,
) -> Option<(Vec<u8>, SocketAddr)> {
    let socket = UdpSocket::bind(format!("{source}:0")).await.expect("bind");
    socket.send_to(datagram, to).await.expect("send");
    let mut buf = vec![0u8; 65_536];
    let (len, from) = tokio::time::timeout(wait, socket.recv_from(&mut buf)).await.ok()?.ok()?;
    buf.truncate(len);
    Some((buf, from))
}

/// The code of an ERROR packet.
pub fn error_code(datagram: &[u8]) -> Option<u16> {
    match Packet::parse(datagram) {
        Ok(Packet::Error { code, .. }) => Some(code),
        _ => None,
    }
}

/// A client driven step by step by the test, for exchanges the other helpers cannot express.
pub struct Manual {
    /// The client's socket.
    pub socket: UdpSocket,
    /// The server's listening address.
    pub server: SocketAddr,
    /// The server's transfer ID, once a reply came.
    pub tid: Option<SocketAddr>,
}

impl Manual {
    /// A client sending from `source`.
    pub async fn new(server: SocketAddr, source: &str) -> Manual {
        let socket = UdpSocket::bind(format!("{source}:0")).await.expect("bind");
        Manual { socket, server, tid: None }
    }

    /// Sends a read request for `name` to the listening port.
    pub async fn read_request(&self, name: &str, options: &[(&str, &str)]) {
        let options = options.iter().map(|(name, value)| WireOption { name, value }).collect();
        let request =
            Packet::Rrq(Request { filename: name.as_bytes(), mode: TransferMode::Octet, options });
        self.socket.send_to(&request.to_bytes(), self.server).await.expect("RRQ");
    }

    /// Sends `datagram` to the transfer ID.
    pub async fn send(&self, datagram: &[u8]) {
        let tid = self.tid.expect("a transfer is running");
        self.socket.send_to(datagram, tid).await.expect("send");
    }

    /// Acknowledges `block`.
    pub async fn ack(&self, block: u16) {
        self.send(&encode_ack(block)).await;
    }

    /// The next datagram within `wait`, with its sender; the first sender becomes the TID.
    pub async fn receive(&mut self, wait: Duration) -> Option<(Vec<u8>, SocketAddr)> {
        let mut buf = vec![0u8; 65_536];
        let (len, from) =
            tokio::time::timeout(wait, self.socket.recv_from(&mut buf)).await.ok()?.ok()?;
        self.tid.get_or_insert(from);
        buf.truncate(len);
        Some((buf, from))
    }

    /// The next DATA within `wait`: its block number and payload. Panics on anything else.
    pub async fn expect_data(&mut self, wait: Duration) -> (u16, Vec<u8>) {
        let (datagram, _) = self.receive(wait).await.expect("DATA in time");
        match Packet::parse(&datagram) {
            Ok(Packet::Data { block, payload }) => (block, payload.to_vec()),
            other => panic!("expected DATA, got {other:?}"),
        }
    }

    /// Acknowledges and collects blocks from `next` on until the short last one; returns the
    /// bytes.
    pub async fn finish_download(&mut self, mut next: u16, block_size: usize) -> Vec<u8> {
        let mut data = Vec::new();
        loop {
            let (block, payload) = self.expect_data(Duration::from_secs(3)).await;
            if block != next {
                continue;
            }
            data.extend_from_slice(&payload);
            self.ack(block).await;
            if payload.len() < block_size {
                return data;
            }
            next = next.wrapping_add(1);
        }
    }

    /// Acknowledges block 1 (whose payload was `first`) and downloads the rest of a file of
    /// 512-byte blocks; returns the whole file.
    pub async fn finish_after_first_block(&mut self, first: Vec<u8>) -> Vec<u8> {
        self.ack(1).await;
        let rest = self.finish_download(2, 512).await;
        [first, rest].concat()
    }
}
