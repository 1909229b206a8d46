//! Serving a write request: the [`ReceiveWindow`] state machine driven over the transfer's
//! socket, the bytes gathered into large writes to the upload, published when the last block
//! arrives and acknowledged only once published.

use bytes::BytesMut;
use std::time::Duration;
use std::time::Instant;

use tokio::runtime::Handle;
use wharf_access::Upload;
use wharf_vfs::{Result, TRANSFER_CHUNK};

use super::End;
use super::channel::{Channel, Received};
use super::receive_window::{DataEffect, ReceiveTimeout, ReceiveWindow};
use crate::admission::Superseded;
use crate::errors::{self, ErrorCode};
use crate::netascii;
use crate::packet::{DATA_HEADER_LEN, Packet, encode_ack};

/// Where received bytes go: gathered into chunks of [`TRANSFER_CHUNK`] so the upload sees a
/// few large writes instead of one per block, converted from netascii when asked.
pub(crate) struct UploadSink {
    upload: Upload,
    buffer: BytesMut,
    decoder: Option<netascii::Decoder>,
}

impl UploadSink {
    /// A sink into `upload`, decoding netascii when `netascii`.
    pub(crate) fn new(upload: Upload, netascii: bool) -> Self {
        UploadSink {
            upload,
            buffer: BytesMut::new(),
            decoder: netascii.then(netascii::Decoder::new),
        }
    }

    /// Takes `payload`; every [`TRANSFER_CHUNK`] gathered is written through `runtime`.
    fn write(&mut self, payload: &[u8], runtime: &Handle) -> Result<()> {
        if self.buffer.capacity() == 0 {
            self.buffer.reserve(TRANSFER_CHUNK + DATA_HEADER_LEN + payload.len());
        }
        match &mut self.decoder {
            Some(decoder) => decoder.decode_into(payload, &mut self.buffer),
            None => self.buffer.extend_from_slice(payload),
        }
        if self.buffer.len() >= TRANSFER_CHUNK {
            let chunk = self.buffer.split().freeze();
            runtime.block_on(self.upload.write(chunk))?;
        }
        Ok(())
    }

    /// Writes what is left and publishes the file.
    fn commit(mut self, runtime: &Handle) -> Result<u64> {
        if let Some(decoder) = &mut self.decoder {
            decoder.finish(&mut self.buffer);
        }
        let rest = self.buffer.split().freeze();
        runtime.block_on(async move {
            if !rest.is_empty() {
                self.upload.write(rest).await?;
            }
            self.upload.commit().await
        })
    }
}

/// Longest linger after an upload; the file is already published, so this only helps a
/// client whose last ACK was lost, and must not hold up a shutdown.
const MAX_DALLY: Duration = Duration::from_secs(2);

/// A write request ready to run: the upload opened, the options negotiated.
pub(crate) struct WriteTransfer {
    pub(crate) channel: Channel,
    /// `None` once the upload is committed.
    pub(crate) sink: Option<UploadSink>,
    pub(crate) window: ReceiveWindow,
    /// The OACK to answer with, if options were accepted (else ACK 0).
    pub(crate) option_ack: Option<Vec<u8>>,
    pub(crate) block_size: u16,
    pub(crate) timeout: Duration,
    pub(crate) max_retries: u32,
    /// Set when the client sends a new request from the same port.
    pub(crate) superseded: Superseded,
}

impl WriteTransfer {
    fn first_answer(&self) -> Vec<u8> {
        self.option_ack.clone().unwrap_or_else(|| encode_ack(0).to_vec())
    }

    fn acknowledge(&self) -> std::io::Result<()> {
        self.channel.send(&encode_ack(self.window.ack_number()))
    }

    /// Runs the transfer on the calling thread until the file is published and its last block
    /// acknowledged, or the transfer fails (the upload is then dropped, which leaves any old
    /// file as it was); `runtime` runs the file writes.
    pub(crate) fn run(&mut self, runtime: &Handle) -> End {
        let first_answer = self.first_answer();
        if let Err(err) = self.channel.send(&first_answer) {
            return End::Failed(format!("sending: {err}"));
        }
        let block_size = usize::from(self.block_size);
        // One byte more than a full block, to recognise an oversized one.
        let mut buffer = vec![0u8; DATA_HEADER_LEN + block_size + 1];
        let mut deadline = Instant::now() + self.timeout;
        loop {
            // The client has moved on: the upload is abandoned (dropped unpublished), and
            // nothing more is sent to its port.
            if self.superseded.is_set() {
                return End::Superseded;
            }
            let received = match self.channel.receive(&mut buffer, deadline) {
                Ok(received) => received,
                Err(err) => return End::Failed(format!("receiving: {err}")),
            };
            let sent = match received {
                Received::Datagram(len) => match Packet::parse(&buffer[..len]) {
                    Ok(Packet::Data { block, payload }) => {
                        if payload.len() > block_size {
                            self.channel.send_error(
                                ErrorCode::IllegalOperation,
                                "DATA larger than the block size",
                            );
                            return End::Failed("oversized DATA".to_owned());
                        }
                        match self.window.on_data(block, payload.len()) {
                            DataEffect::Accept { acknowledge, last } => {
                                deadline = Instant::now() + self.timeout;
                                if let Err(end) = self.store(payload, runtime) {
                                    return end;
                                }
                                if last {
                                    return self.publish(runtime);
                                }
                                if acknowledge { self.acknowledge() } else { Ok(()) }
                            }
                            DataEffect::PastMaxOffset => {
                                self.channel.send_error(
                                    ErrorCode::IllegalOperation,
                                    "the file would pass the largest offset (2^63-1)",
                                );
                                return End::Failed("upload past the largest offset".to_owned());
                            }
                            DataEffect::Skip { acknowledge: true } => self.acknowledge(),
                            DataEffect::Skip { acknowledge: false } => Ok(()),
                        }
                    }
                    Ok(Packet::Error { code, message }) => {
                        return End::PeerError {
                            code,
                            message: String::from_utf8_lossy(message).into_owned(),
                        };
                    }
                    Ok(_) | Err(_) => Ok(()),
                },
                Received::TimedOut => match self.window.on_timeout() {
                    ReceiveTimeout::Reacknowledge => {
                        deadline = Instant::now() + self.timeout;
                        if self.window.received() == 0 {
                            self.channel.send(&first_answer)
                        } else {
                            self.acknowledge()
                        }
                    }
                    ReceiveTimeout::GiveUp => {
                        self.channel.send_error(ErrorCode::NotDefined, "timed out");
                        return End::TimedOut;
                    }
                },
                Received::Terminated => {
                    self.channel.send_error(ErrorCode::NotDefined, "server shutting down");
                    return End::ShuttingDown;
                }
                Received::Killed => {
                    self.channel
                        .send_error(ErrorCode::NotDefined, "session ended by an administrator");
                    return End::Killed;
                }
            };
            if let Err(err) = sent {
                return End::Failed(format!("sending: {err}"));
            }
        }
    }

    fn store(&mut self, payload: &[u8], runtime: &Handle) -> Result<(), End> {
        let Some(sink) = self.sink.as_mut() else {
            return Err(End::Failed("data after the upload was published".to_owned()));
        };
        if let Err(err) = sink.write(payload, runtime) {
            let (code, message) = errors::for_error(&err);
            self.channel.send_error(code, message);
            return Err(End::Failed(format!("writing the file: {err}")));
        }
        Ok(())
    }

    /// Publishes the upload, then acknowledges the last block: the client hears "done" only
    /// once the file is in place.
    fn publish(&mut self, runtime: &Handle) -> End {
        let Some(sink) = self.sink.take() else {
            return End::Failed("the upload was already published".to_owned());
        };
        match sink.commit(runtime) {
            Ok(_) => match self.acknowledge() {
                Ok(()) => End::Complete,
                Err(err) => End::Failed(format!("sending the last ACK: {err}")),
            },
            Err(err) => {
                let (code, message) = errors::for_error(&err);
                self.channel.send_error(code, message);
                End::Failed(format!("publishing the file: {err}"))
            }
        }
    }

    /// After the last ACK, lingers one timeout (at most [`MAX_DALLY`]) to acknowledge the last
    /// block again if the client repeats it (its copy of our ACK was lost), a bounded number
    /// of times.
    /// Nothing lingers once the server is shutting down.
    pub(crate) fn dally(&mut self) {
        if self.channel.is_draining() {
            return;
        }
        let mut buffer = vec![0u8; DATA_HEADER_LEN + usize::from(self.block_size) + 1];
        let deadline = Instant::now() + self.timeout.min(MAX_DALLY);
        let mut answers = 0;
        while answers < self.max_retries {
            match self.channel.receive(&mut buffer, deadline) {
                Ok(Received::Datagram(len)) => {
                    if let Ok(Packet::Data { block, payload }) = Packet::parse(&buffer[..len])
                        && self.window.on_data(block, payload.len())
                            == (DataEffect::Skip { acknowledge: true })
                    {
                        answers += 1;
                        if self.acknowledge().is_err() {
                            return;
                        }
                    }
                }
                _ => return,
            }
        }
    }
}
