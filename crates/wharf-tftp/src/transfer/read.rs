//! Serving a read request: the [`SendWindow`] state machine driven over the transfer's socket.

use std::time::{Duration, Instant};

use tokio::runtime::Handle;

use super::End;
use super::blocks::BlockStore;
use super::channel::{Channel, Received};
use super::numbering::wire;
use super::pace::Pace;
use super::send_window::{AckEffect, SendWindow, TimeoutEffect, Transmission};
use crate::admission::Superseded;
use crate::errors::{self, ErrorCode};
use crate::packet::Packet;

/// A read request ready to run: the file opened, the options negotiated.
pub(crate) struct ReadTransfer {
    pub(crate) channel: Channel,
    pub(crate) blocks: BlockStore,
    pub(crate) window: SendWindow,
    /// The OACK to send first, if options were accepted.
    pub(crate) option_ack: Option<Vec<u8>>,
    pub(crate) block_size: u16,
    pub(crate) timeout: Duration,
    /// Set when the client sends a new request from the same port.
    pub(crate) superseded: Superseded,
}

/// Room for an ACK or an ERROR with a long message; anything longer is cut, which no valid
/// packet for the sender needs.
const RECEIVE_BUFFER: usize = 1024;

impl ReadTransfer {
    /// Runs the transfer to its end on the calling thread; `runtime` runs the file reads.
    pub(crate) fn run(mut self, runtime: &Handle) -> End {
        let mut receive_buffer = vec![0u8; RECEIVE_BUFFER];
        let mut deadline = Instant::now() + self.timeout;
        let mut pace = Pace::default();
        // Whether the next block sent starts a burst (a window, or a burst after a pause).
        let mut burst_starts = true;
        // A pause between bursts stays well inside the retransmission timeout.
        let longest_pause = self.timeout / 4;
        loop {
            // A client that asked for something new from this port gets nothing more from
            // here. Its last ACK may still be on its way (it sent it before the new request),
            // so the transfer listens until its deadline and completes if it comes.
            let quiet = self.superseded.is_set();
            // Send whatever the window allows now.
            let mut sent_any = false;
            while let Some(transmission) =
                (!quiet).then(|| self.window.next_transmission()).flatten()
            {
                let sent = match transmission {
                    Transmission::OptionAck => {
                        self.channel.send(self.option_ack.as_deref().unwrap_or_default())
                    }
                    Transmission::Block(n) => {
                        pace.sent(std::mem::take(&mut burst_starts), Instant::now());
                        let block = match self.blocks.block_on_thread(n, runtime) {
                            Ok(block) => block,
                            Err(err) => {
                                let (code, message) = errors::for_error(&err);
                                self.channel.send_error(code, message);
                                return End::Failed(format!("reading the file: {err}"));
                            }
                        };
                        if block.len() < usize::from(self.block_size) {
                            self.window.mark_last(n);
                        }
                        self.channel.send_data(wire(n), block.parts())
                    }
                };
                if let Err(err) = sent {
                    return End::Failed(format!("sending: {err}"));
                }
                sent_any = true;
            }
            if sent_any {
                deadline = Instant::now() + self.timeout;
            }
            // Wait for the client; between the bursts of a window, only for the pause.
            let pausing = !quiet && self.window.pause_due();
            let wait_until = if pausing {
                (Instant::now() + pace.pause(self.window.burst(), longest_pause)).min(deadline)
            } else {
                deadline
            };
            let received = match self.channel.receive(&mut receive_buffer, wait_until) {
                Ok(received) => received,
                Err(err) => return End::Failed(format!("receiving: {err}")),
            };
            match received {
                Received::Datagram(len) => match Packet::parse(&receive_buffer[..len]) {
                    Ok(Packet::Ack { block }) => {
                        let before = self.window.first_unacknowledged();
                        match self.window.on_ack(block) {
                            AckEffect::Advanced => {
                                let after = self.window.first_unacknowledged();
                                if after > before && self.window.all_acknowledged() {
                                    pace.all_acknowledged(Instant::now());
                                }
                                burst_starts = true;
                                self.blocks.release_before(after);
                            }
                            AckEffect::Ignored => {}
                            AckEffect::Complete => {
                                self.blocks.finish();
                                return End::Complete;
                            }
                        }
                    }
                    Ok(Packet::Error { code, message }) => {
                        return End::PeerError {
                            code,
                            message: String::from_utf8_lossy(message).into_owned(),
                        };
                    }
                    // Anything else from the client (a stray DATA, garbage) changes nothing.
                    Ok(_) | Err(_) => {}
                },
                Received::TimedOut if quiet => return End::Superseded,
                // The pause is over, not the client's time.
                Received::TimedOut if pausing && Instant::now() < deadline => {
                    self.window.next_burst();
                    burst_starts = true;
                }
                Received::TimedOut => {
                    burst_starts = true;
                    if self.window.on_timeout() == TimeoutEffect::GiveUp {
                        self.channel.send_error(ErrorCode::NotDefined, "timed out");
                        return End::TimedOut;
                    }
                }
                Received::Terminated => {
                    self.channel.send_error(ErrorCode::NotDefined, "server shutting down");
                    return End::ShuttingDown;
                }
                Received::Killed => {
                    self.channel
                        .send_error(ErrorCode::NotDefined, "session ended by an administrator");
                    return End::Killed;
                }
            }
        }
    }
}
