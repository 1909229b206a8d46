//! The receiving side of a transfer as a state machine without I/O: which DATA to keep, when
//! to acknowledge.
//!
//! - Blocks are taken strictly in order; the ACK goes out after every `window` blocks
//!   (RFC 7440; 1 = RFC 1350) and right away for the final, short block once it is stored.
//! - A block after a gap is dropped and the last in-order block is acknowledged, once per gap,
//!   so the sender restarts the window there.
//! - A duplicate of the last block taken means the ACK for it was lost: it is acknowledged
//!   again. Older duplicates (the rest of a retransmitted window) are ignored, so a
//!   retransmitted window draws one ACK, not one per block.

#[cfg(doc)]
use super::numbering::MAX_OFFSET;
use super::numbering::{end_offset, wire};

/// What a DATA packet did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DataEffect {
    /// The next block: store its payload. `last` ends the transfer (store, publish, then
    /// acknowledge); otherwise `acknowledge` says whether an ACK is due now.
    Accept {
        /// Whether an ACK for it goes out now.
        acknowledge: bool,
        /// Whether it is the final block.
        last: bool,
    },
    /// Nothing to store; `acknowledge` says whether to repeat the ACK of the last block taken.
    Skip {
        /// Whether an ACK goes out now.
        acknowledge: bool,
    },
    /// The next block, but it would take the file past the largest offset
    /// ([`MAX_OFFSET`]): the transfer is refused.
    PastMaxOffset,
}

/// What a timeout did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReceiveTimeout {
    /// Repeat the last ACK (or the OACK / ACK 0 if nothing came yet).
    Reacknowledge,
    /// Retries ran out.
    GiveUp,
}

/// The receiver's state machine.
#[derive(Debug, Clone)]
pub(crate) struct ReceiveWindow {
    window: u64,
    block_size: usize,
    /// Blocks taken in order so far.
    received: u64,
    /// Blocks taken since the last ACK went out.
    since_ack: u64,
    /// Whether the current gap was already reported.
    gap_reported: bool,
    finished: bool,
    retries: u32,
    max_retries: u32,
}

impl ReceiveWindow {
    /// A receiver for blocks of `block_size` bytes, acknowledging every `window` blocks.
    pub(crate) fn new(window: u16, block_size: u16, max_retries: u32) -> Self {
        ReceiveWindow {
            window: u64::from(window.max(1)),
            block_size: usize::from(block_size),
            received: 0,
            since_ack: 0,
            gap_reported: false,
            finished: false,
            retries: 0,
            max_retries,
        }
    }

    /// Blocks taken so far.
    pub(crate) fn received(&self) -> u64 {
        self.received
    }

    /// The wire number the next ACK carries: the last block taken (0 before any).
    pub(crate) fn ack_number(&self) -> u16 {
        wire(self.received)
    }

    /// Handles DATA with `wire_number` and a payload of `len` bytes (at most the block size;
    /// the caller refuses larger ones).
    pub(crate) fn on_data(&mut self, wire_number: u16, len: usize) -> DataEffect {
        if self.finished {
            let repeat = wire_number == wire(self.received);
            return DataEffect::Skip { acknowledge: repeat };
        }
        let expected = wire(self.received + 1);
        // Signed distance from the expected block: negative is the past, positive a gap.
        let offset = wire_number.wrapping_sub(expected) as i16;
        if offset == 0 {
            if end_offset(self.received + 1, self.block_size, len).is_none() {
                self.finished = true;
                return DataEffect::PastMaxOffset;
            }
            self.received += 1;
            self.retries = 0;
            self.gap_reported = false;
            if len < self.block_size {
                self.finished = true;
                self.since_ack = 0;
                return DataEffect::Accept { acknowledge: false, last: true };
            }
            self.since_ack += 1;
            let acknowledge = self.since_ack >= self.window;
            if acknowledge {
                self.since_ack = 0;
            }
            return DataEffect::Accept { acknowledge, last: false };
        }
        let acknowledge = if offset < 0 {
            self.received > 0 && offset == -1
        } else {
            !std::mem::replace(&mut self.gap_reported, true)
        };
        if acknowledge {
            self.since_ack = 0;
        }
        DataEffect::Skip { acknowledge }
    }

    /// Handles the expiry of the timer (no DATA in time).
    pub(crate) fn on_timeout(&mut self) -> ReceiveTimeout {
        self.retries += 1;
        if self.retries > self.max_retries {
            return ReceiveTimeout::GiveUp;
        }
        self.since_ack = 0;
        ReceiveTimeout::Reacknowledge
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: usize = 512;

    fn accept(acknowledge: bool) -> DataEffect {
        DataEffect::Accept { acknowledge, last: false }
    }

    #[test]
    fn lock_step_acknowledges_every_block() {
        let mut r = ReceiveWindow::new(1, 512, 3);
        assert_eq!(r.on_data(1, FULL), accept(true));
        assert_eq!(r.ack_number(), 1);
        assert_eq!(r.on_data(2, FULL), accept(true));
        assert_eq!(r.on_data(3, 10), DataEffect::Accept { acknowledge: false, last: true });
        assert_eq!(r.ack_number(), 3);
        assert_eq!(r.received(), 3);
        // The final block again: its ACK was lost.
        assert_eq!(r.on_data(3, 10), DataEffect::Skip { acknowledge: true });
        assert_eq!(r.on_data(2, FULL), DataEffect::Skip { acknowledge: false });
    }

    #[test]
    fn duplicates_of_the_last_block_are_acknowledged_again_older_ones_not() {
        let mut r = ReceiveWindow::new(1, 512, 3);
        assert_eq!(r.on_data(0, FULL), DataEffect::Skip { acknowledge: false });
        r.on_data(1, FULL);
        r.on_data(2, FULL);
        assert_eq!(r.on_data(2, FULL), DataEffect::Skip { acknowledge: true });
        assert_eq!(r.on_data(1, FULL), DataEffect::Skip { acknowledge: false });
        assert_eq!(r.received(), 2);
    }

    #[test]
    fn windows_acknowledge_at_their_end_and_report_gaps_once() {
        let mut r = ReceiveWindow::new(4, 512, 3);
        for block in 1..=3 {
            assert_eq!(r.on_data(block, FULL), accept(false));
        }
        assert_eq!(r.on_data(4, FULL), accept(true));
        assert_eq!(r.on_data(5, FULL), accept(false));
        // Block 6 was lost: 7 and 8 are dropped, the gap reported once.
        assert_eq!(r.on_data(7, FULL), DataEffect::Skip { acknowledge: true });
        assert_eq!(r.ack_number(), 5);
        assert_eq!(r.on_data(8, FULL), DataEffect::Skip { acknowledge: false });
        // The sender restarts at 6; the window counts from the ACK.
        for block in 6..=8 {
            assert_eq!(r.on_data(block, FULL), accept(false));
        }
        assert_eq!(r.on_data(9, FULL), accept(true));
        assert_eq!(r.on_data(10, 0), DataEffect::Accept { acknowledge: false, last: true });
    }

    #[test]
    fn block_numbers_roll_over() {
        let mut r = ReceiveWindow::new(1, 512, 3);
        for n in 1..=70_000u64 {
            assert_eq!(r.on_data(wire(n), FULL), accept(true), "block {n}");
        }
        assert_eq!(r.received(), 70_000);
        assert_eq!(r.ack_number(), wire(70_000));
    }

    /// A client that keeps sending blocks (at any block size, across any number of rollovers)
    /// is refused once the file would pass offset i64::MAX, never wrapped.
    #[test]
    fn a_transfer_past_the_largest_offset_is_refused() {
        let block_size = 65_464u16;
        let mut r = ReceiveWindow::new(1, block_size, 3);
        // As if the client had sent all but the last blocks that fit (no real transfer gets
        // there: 2^63 bytes).
        let fitting = crate::transfer::numbering::MAX_OFFSET / u64::from(block_size);
        r.received = fitting - 1;
        assert_eq!(r.on_data(wire(fitting), usize::from(block_size)), accept(true));
        assert_eq!(
            r.on_data(wire(fitting + 1), usize::from(block_size)),
            DataEffect::PastMaxOffset
        );
        assert_eq!(r.received(), fitting, "the refused block is not taken");
        assert_eq!(r.on_data(wire(fitting + 1), 10), DataEffect::Skip { acknowledge: false });
        // A short last block that ends exactly at the limit is fine.
        let mut r = ReceiveWindow::new(1, block_size, 3);
        r.received = fitting;
        let rest = (crate::transfer::numbering::MAX_OFFSET % u64::from(block_size)) as usize;
        assert_eq!(
            r.on_data(wire(fitting + 1), rest),
            DataEffect::Accept { acknowledge: false, last: true }
        );
    }

    #[test]
    fn timeouts_are_bounded() {
        let mut r = ReceiveWindow::new(1, 512, 2);
        assert_eq!(r.on_timeout(), ReceiveTimeout::Reacknowledge);
        r.on_data(1, FULL);
        assert_eq!(r.on_timeout(), ReceiveTimeout::Reacknowledge);
        assert_eq!(r.on_timeout(), ReceiveTimeout::Reacknowledge);
        assert_eq!(r.on_timeout(), ReceiveTimeout::GiveUp);
    }
}
