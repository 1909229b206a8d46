//! A TFTP client written for this suite (RFC 1350, options of RFC 2347/2348/7440), independent
//! of the server's own codec: octet mode, `blksize`, `windowsize`, block numbers rolling over
//! from 65535 to 0, retransmission on silence, and a way to vanish in the middle of an upload.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;

use super::Refusal;

const RRQ: u16 = 1;
const WRQ: u16 = 2;
const DATA: u16 = 3;
const ACK: u16 = 4;
const ERROR: u16 = 5;
const OACK: u16 = 6;

/// The largest datagram the client expects (the largest block plus its header).
const MAX_DATAGRAM: usize = 65_468;

/// A TFTP client sending from one source address (which decides the server-side identity).
#[derive(Debug, Clone)]
pub struct TftpClient {
    /// The server's listening address.
    pub server: SocketAddr,
    /// The address the client sends from.
    pub source: IpAddr,
    /// Block size to ask for; 512 asks for nothing (RFC 1350).
    pub blksize: u16,
    /// Window size to ask for; 1 asks for nothing (lock-step).
    pub windowsize: u16,
    /// Resend the last packet after this much silence.
    pub retransmit_after: Duration,
    /// Give up after this many retransmissions in a row.
    pub max_retries: u32,
}

/// What a download saw.
#[derive(Debug, Clone, Default)]
pub struct Received {
    /// The file's bytes.
    pub data: Vec<u8>,
    /// The block size in force.
    pub blksize: usize,
    /// Distinct blocks received.
    pub blocks: u64,
    /// Whether block numbers rolled over from 65535 to 0.
    pub rolled_over: bool,
}

fn request(opcode: u16, filename: &[u8], options: &[(&str, String)]) -> Vec<u8> {
    let mut packet = opcode.to_be_bytes().to_vec();
    packet.extend_from_slice(filename);
    packet.push(0);
    packet.extend_from_slice(b"octet\0");
    for (name, value) in options {
        packet.extend_from_slice(name.as_bytes());
        packet.push(0);
        packet.extend_from_slice(value.as_bytes());
        packet.push(0);
    }
    packet
}

fn ack(block: u16) -> Vec<u8> {
    [ACK.to_be_bytes(), block.to_be_bytes()].concat()
}

fn data(block: u16, payload: &[u8]) -> Vec<u8> {
    [DATA.to_be_bytes().as_slice(), &block.to_be_bytes(), payload].concat()
}

fn u16_at(packet: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*packet.get(at)?, *packet.get(at + 1)?]))
}

fn error_of(packet: &[u8]) -> Refusal {
    let code = u16_at(packet, 2).unwrap_or(u16::MAX);
    let text = packet.get(4..).unwrap_or_default();
    let text = text.split(|b| *b == 0).next().unwrap_or_default();
    Refusal::Tftp { code, message: String::from_utf8_lossy(text).into_owned() }
}

/// The options of an OACK as name/value pairs (names lowercased).
fn oack_options(packet: &[u8]) -> Vec<(String, String)> {
    let fields: Vec<String> = packet
        .get(2..)
        .unwrap_or_default()
        .split(|b| *b == 0)
        .map(|field| String::from_utf8_lossy(field).into_owned())
        .collect();
    fields
        .chunks(2)
        .filter(|pair| pair.len() == 2 && !pair[0].is_empty())
        .map(|pair| (pair[0].to_ascii_lowercase(), pair[1].clone()))
        .collect()
}

/// The client's end of one transfer: its socket, the port the server answers from (its
/// transfer ID) once seen, and what to resend when the server goes quiet.
struct Peer {
    buffer: Vec<u8>,
    settings: TftpClient,
    socket: UdpSocket,
    listener: SocketAddr,
    tid: Option<SocketAddr>,
    resend: Vec<u8>,
    silent_rounds: u32,
}

impl Peer {
    async fn open(client: &TftpClient) -> Peer {
        let socket =
            UdpSocket::bind(SocketAddr::new(client.source, 0)).await.expect("bind TFTP client");
        Peer {
            socket,
            listener: client.server,
            tid: None,
            resend: Vec::new(),
            silent_rounds: 0,
            settings: client.clone(),
            buffer: vec![0; MAX_DATAGRAM + 1],
        }
    }

    async fn send(&mut self, packet: Vec<u8>) -> Result<(), Refusal> {
        let to = self.tid.unwrap_or(self.listener);
        self.socket.send_to(&packet, to).await.map_err(|err| Refusal::Failed(err.to_string()))?;
        self.resend = packet;
        Ok(())
    }

    /// The next datagram from the server's transfer ID (learning it from the first answer),
    /// resending the last packet on silence. ERROR packets end the transfer.
    async fn receive(&mut self) -> Result<Vec<u8>, Refusal> {
        loop {
            let wait = self.settings.retransmit_after;
            match tokio::time::timeout(wait, self.socket.recv_from(&mut self.buffer)).await {
                Err(_) => {
                    self.silent_rounds += 1;
                    if self.silent_rounds > self.settings.max_retries {
                        return Err(Refusal::Failed("TFTP server stopped answering".into()));
                    }
                    let to = self.tid.unwrap_or(self.listener);
                    let last = self.resend.clone();
                    self.socket
                        .send_to(&last, to)
                        .await
                        .map_err(|e| Refusal::Failed(e.to_string()))?;
                }
                Ok(Err(err)) => return Err(Refusal::Failed(err.to_string())),
                Ok(Ok((len, from))) => {
                    match self.tid {
                        None if from.ip() == self.listener.ip() => self.tid = Some(from),
                        Some(tid) if tid == from => {}
                        _ => continue,
                    }
                    let packet = self.buffer[..len].to_vec();
                    if u16_at(&packet, 0) == Some(ERROR) {
                        return Err(error_of(&packet));
                    }
                    return Ok(packet);
                }
            }
        }
    }
}

impl TftpClient {
    /// A client asking for 8 KiB blocks and windows of 8 blocks (quick on loopback).
    pub fn new(server: SocketAddr, source: IpAddr) -> TftpClient {
        TftpClient {
            server,
            source,
            blksize: 8192,
            windowsize: 8,
            retransmit_after: Duration::from_millis(600),
            max_retries: 8,
        }
    }

    /// The same client in plain RFC 1350 lock-step: 512-byte blocks, one at a time, no
    /// options.
    pub fn lockstep(mut self) -> TftpClient {
        self.blksize = 512;
        self.windowsize = 1;
        self
    }

    fn options(&self) -> Vec<(&'static str, String)> {
        let mut options = Vec::new();
        if self.blksize != 512 {
            options.push(("blksize", self.blksize.to_string()));
        }
        if self.windowsize != 1 {
            options.push(("windowsize", self.windowsize.to_string()));
        }
        options
    }

    /// Downloads `path`.
    pub async fn download(&self, path: &str) -> Result<Received, Refusal> {
        self.download_name(path.as_bytes()).await
    }

    /// Downloads the file named by `filename`, sent as raw bytes.
    pub async fn download_name(&self, filename: &[u8]) -> Result<Received, Refusal> {
        let limit = crate::STEP_LIMIT;
        crate::within(limit, "TFTP download", self.download_inner(filename)).await
    }

    async fn download_inner(&self, filename: &[u8]) -> Result<Received, Refusal> {
        let mut talk = Peer::open(self).await;
        talk.send(request(RRQ, filename, &self.options())).await?;
        let mut blksize = 512usize;
        let mut window = 1u16;
        let mut received = Received { blksize, ..Received::default() };
        let mut expected: u16 = 1;
        let mut in_window = 0u16;
        loop {
            let packet = talk.receive().await?;
            match u16_at(&packet, 0) {
                Some(OACK) if received.blocks == 0 => {
                    for (name, value) in oack_options(&packet) {
                        match name.as_str() {
                            "blksize" => blksize = value.parse().expect("blksize value"),
                            "windowsize" => window = value.parse().expect("windowsize value"),
                            _ => {}
                        }
                    }
                    received.blksize = blksize;
                    talk.send(ack(0)).await?;
                }
                Some(DATA) => {
                    let block = u16_at(&packet, 2).expect("block number");
                    if block != expected {
                        // A duplicate or a gap: acknowledge what arrived in order (RFC 7440).
                        talk.send(ack(expected.wrapping_sub(1))).await?;
                        in_window = 0;
                        continue;
                    }
                    talk.silent_rounds = 0;
                    let payload = &packet[4..];
                    assert!(payload.len() <= blksize, "DATA larger than the block size");
                    received.data.extend_from_slice(payload);
                    received.blocks += 1;
                    if block == 0 {
                        received.rolled_over = true;
                    }
                    expected = expected.wrapping_add(1);
                    in_window += 1;
                    if payload.len() < blksize {
                        talk.send(ack(block)).await?;
                        return Ok(received);
                    }
                    if in_window >= window {
                        talk.send(ack(block)).await?;
                        in_window = 0;
                    }
                }
                _ => return Err(Refusal::Failed(format!("unexpected TFTP packet {packet:?}"))),
            }
        }
    }

    /// Uploads `content` to `path`.
    pub async fn upload(&self, path: &str, content: &[u8]) -> Result<(), Refusal> {
        self.upload_name(path.as_bytes(), content).await
    }

    /// Uploads `content` to the file named by `filename`, sent as raw bytes.
    pub async fn upload_name(&self, filename: &[u8], content: &[u8]) -> Result<(), Refusal> {
        let limit = crate::STEP_LIMIT;
        crate::within(limit, "TFTP upload", self.upload_inner(filename, content, None)).await
    }

    /// Starts uploading `content` to `path`, then goes silent once `blocks` blocks were
    /// acknowledged, as a client that was killed. Returns when it stopped.
    pub async fn upload_and_vanish(
        &self,
        path: &str,
        content: &[u8],
        blocks: u64,
    ) -> Result<(), Refusal> {
        let limit = crate::STEP_LIMIT;
        let upload = self.upload_inner(path.as_bytes(), content, Some(blocks));
        crate::within(limit, "TFTP upload", upload).await
    }

    async fn upload_inner(
        &self,
        filename: &[u8],
        content: &[u8],
        vanish_after: Option<u64>,
    ) -> Result<(), Refusal> {
        let mut talk = Peer::open(self).await;
        talk.send(request(WRQ, filename, &self.options())).await?;
        let mut blksize = 512usize;
        let mut window = 1u64;
        let first = talk.receive().await?;
        match u16_at(&first, 0) {
            Some(OACK) => {
                for (name, value) in oack_options(&first) {
                    match name.as_str() {
                        "blksize" => blksize = value.parse().expect("blksize value"),
                        "windowsize" => window = value.parse().expect("windowsize value"),
                        _ => {}
                    }
                }
            }
            Some(ACK) if u16_at(&first, 2) == Some(0) => {}
            _ => return Err(Refusal::Failed(format!("unexpected answer to WRQ {first:?}"))),
        }
        // Blocks 1..=total; the last one is shorter than blksize (possibly empty).
        let total = content.len() as u64 / blksize as u64 + 1;
        let block_of = |index: u64| {
            let start = ((index - 1) as usize * blksize).min(content.len());
            let end = (start + blksize).min(content.len());
            data(index as u16, &content[start..end])
        };
        let mut acked = 0u64;
        while acked < total {
            if vanish_after.is_some_and(|blocks| acked >= blocks) {
                return Ok(());
            }
            let upto = (acked + window).min(total);
            for index in acked + 1..=upto {
                talk.send(block_of(index)).await?;
            }
            // Wait for an ACK inside the window; silence resends its last block.
            loop {
                let packet = talk.receive().await?;
                if u16_at(&packet, 0) != Some(ACK) {
                    return Err(Refusal::Failed(format!("expected an ACK, got {packet:?}")));
                }
                let number = u16_at(&packet, 2).expect("ACK number");
                let hit = (acked + 1..=upto).rev().find(|index| *index as u16 == number);
                if let Some(index) = hit {
                    acked = index;
                    talk.silent_rounds = 0;
                    break;
                }
            }
        }
        Ok(())
    }

    /// Sends `datagram` as a request and returns the server's first answer: the ERROR as a
    /// refusal, or the packet (DATA, OACK or ACK), after which the client goes silent.
    pub async fn first_answer(&self, datagram: &[u8]) -> Result<Vec<u8>, Refusal> {
        let mut talk = Peer::open(self).await;
        talk.send(datagram.to_vec()).await?;
        crate::within(crate::STEP_LIMIT, "TFTP answer", talk.receive()).await
    }
}
