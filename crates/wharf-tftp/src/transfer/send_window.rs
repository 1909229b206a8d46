//! The sending side of a transfer as a state machine without I/O: which packet goes out next,
//! what an ACK or a timeout changes.
//!
//! - At most one window is unacknowledged: blocks are sent only up to the last acknowledged
//!   block plus the window size (RFC 7440; a window of 1 is RFC 1350's lock-step).
//! - An ACK for the block already acknowledged is a duplicate and changes nothing. Answering
//!   duplicates with data is the Sorcerer's Apprentice bug (RFC 1123, 4.2.3.1): every
//!   delayed ACK would double the traffic from then on.
//! - An ACK inside the window (the client saw a gap) moves the window to start right after it;
//!   the blocks from there are sent again (RFC 7440).
//! - Only a timeout retransmits without new information, and only a bounded number of times
//!   in a row.

use super::numbering::distance_after;

/// Where the sender is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendState {
    /// An OACK is out; the client's ACK 0 starts the data.
    Negotiating,
    /// Data blocks are going out.
    Sending,
    /// The last block is acknowledged.
    Complete,
    /// Retries ran out.
    Abandoned,
}

/// The next packet to put on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transmission {
    /// The OACK.
    OptionAck,
    /// Data block `n` (counted from 1).
    Block(u64),
}

/// What an ACK did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AckEffect {
    /// The window moved on.
    Advanced,
    /// A duplicate or an ACK for nothing sent: ignored.
    Ignored,
    /// The last block is acknowledged; the transfer is done.
    Complete,
}

/// What a timeout did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeoutEffect {
    /// The unacknowledged packets go out again.
    Retransmit,
    /// Retries ran out.
    GiveUp,
}

/// The sender's state machine.
#[derive(Debug, Clone)]
pub(crate) struct SendWindow {
    state: SendState,
    window: u64,
    /// Highest block the client acknowledged (0: none).
    acked: u64,
    /// Next block to send.
    next: u64,
    /// Highest block sent so far.
    highest_sent: u64,
    /// The final (short) block, once it has been produced.
    last: Option<u64>,
    /// Whether the OACK is due (again).
    option_ack_due: bool,
    retries: u32,
    max_retries: u32,
}

impl SendWindow {
    /// A sender with `window` blocks per window that starts with an OACK when `with_oack`.
    pub(crate) fn new(window: u16, with_oack: bool, max_retries: u32) -> Self {
        SendWindow {
            state: if with_oack { SendState::Negotiating } else { SendState::Sending },
            window: u64::from(window.max(1)),
            acked: 0,
            next: 1,
            highest_sent: 0,
            last: None,
            option_ack_due: with_oack,
            retries: 0,
            max_retries,
        }
    }

    /// The state.
    #[cfg(test)]
    pub(crate) fn state(&self) -> SendState {
        self.state
    }

    /// The next packet to send now, if the window allows one; the caller sends it.
    pub(crate) fn next_transmission(&mut self) -> Option<Transmission> {
        match self.state {
            SendState::Negotiating if self.option_ack_due => {
                self.option_ack_due = false;
                Some(Transmission::OptionAck)
            }
            SendState::Sending
                if self.next <= self.acked + self.window
                    && self.last.is_none_or(|last| self.next <= last) =>
            {
                let block = self.next;
                self.next += 1;
                self.highest_sent = self.highest_sent.max(block);
                Some(Transmission::Block(block))
            }
            _ => None,
        }
    }

    /// Records that block `n`, just sent, is the final one (shorter than the block size).
    pub(crate) fn mark_last(&mut self, n: u64) {
        self.last = Some(n);
    }

    /// Handles an ACK carrying `wire_number`.
    pub(crate) fn on_ack(&mut self, wire_number: u16) -> AckEffect {
        match self.state {
            SendState::Negotiating if wire_number == 0 => {
                self.state = SendState::Sending;
                self.retries = 0;
                AckEffect::Advanced
            }
            SendState::Sending => {
                let block = self.acked + distance_after(self.acked, wire_number);
                if block == self.acked || block > self.highest_sent {
                    return AckEffect::Ignored;
                }
                self.acked = block;
                self.retries = 0;
                if self.last == Some(block) {
                    self.state = SendState::Complete;
                    return AckEffect::Complete;
                }
                // An ACK short of what was sent reports a gap: resume right after it.
                self.next = block + 1;
                AckEffect::Advanced
            }
            _ => AckEffect::Ignored,
        }
    }

    /// Handles the expiry of the retransmission timer.
    pub(crate) fn on_timeout(&mut self) -> TimeoutEffect {
        if matches!(self.state, SendState::Complete | SendState::Abandoned) {
            return TimeoutEffect::GiveUp;
        }
        self.retries += 1;
        if self.retries > self.max_retries {
            self.state = SendState::Abandoned;
            return TimeoutEffect::GiveUp;
        }
        match self.state {
            SendState::Negotiating => self.option_ack_due = true,
            _ => self.next = self.acked + 1,
        }
        TimeoutEffect::Retransmit
    }

    /// The lowest block not yet acknowledged; blocks before it may be forgotten.
    pub(crate) fn first_unacknowledged(&self) -> u64 {
        self.acked + 1
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::transfer::numbering::wire;

    /// Sends what the window allows; a block is the last when it is `total`.
    fn pump(sender: &mut SendWindow, total: u64) -> Vec<u64> {
        let mut sent = Vec::new();
        while let Some(t) = sender.next_transmission() {
            match t {
                Transmission::Block(n) => {
                    if n == total {
                        sender.mark_last(n);
                    }
                    sent.push(n);
                }
                Transmission::OptionAck => sent.push(0),
            }
        }
        sent
    }

    #[test]
    fn lock_step_without_options() {
        let mut s = SendWindow::new(1, false, 3);
        assert_eq!(pump(&mut s, 3), vec![1]);
        assert_eq!(s.on_ack(1), AckEffect::Advanced);
        assert_eq!(pump(&mut s, 3), vec![2]);
        assert_eq!(s.on_ack(2), AckEffect::Advanced);
        assert_eq!(pump(&mut s, 3), vec![3]);
        assert_eq!(s.on_ack(3), AckEffect::Complete);
        assert_eq!(s.state(), SendState::Complete);
        assert_eq!(pump(&mut s, 3), Vec::<u64>::new());
    }

    #[test]
    fn duplicate_acks_send_nothing() {
        let mut s = SendWindow::new(1, false, 3);
        pump(&mut s, 10);
        assert_eq!(s.on_ack(1), AckEffect::Advanced);
        assert_eq!(pump(&mut s, 10), vec![2]);
        // The Sorcerer's Apprentice: a delayed duplicate of ACK 1 must not resend block 2.
        assert_eq!(s.on_ack(1), AckEffect::Ignored);
        assert_eq!(pump(&mut s, 10), Vec::<u64>::new());
        // An ACK for a block never sent is ignored too.
        assert_eq!(s.on_ack(7), AckEffect::Ignored);
        assert_eq!(pump(&mut s, 10), Vec::<u64>::new());
    }

    #[test]
    fn option_ack_then_data() {
        let mut s = SendWindow::new(1, true, 3);
        assert_eq!(pump(&mut s, 2), vec![0]);
        assert_eq!(s.on_ack(1), AckEffect::Ignored);
        assert_eq!(s.on_timeout(), TimeoutEffect::Retransmit);
        assert_eq!(pump(&mut s, 2), vec![0]);
        assert_eq!(s.on_ack(0), AckEffect::Advanced);
        assert_eq!(pump(&mut s, 2), vec![1]);
        assert_eq!(s.on_ack(0), AckEffect::Ignored, "a repeated ACK 0 is a duplicate");
        assert_eq!(pump(&mut s, 2), Vec::<u64>::new());
    }

    #[test]
    fn windows_never_exceed_their_size() {
        let mut s = SendWindow::new(4, false, 3);
        assert_eq!(pump(&mut s, 10), vec![1, 2, 3, 4]);
        assert_eq!(s.on_ack(4), AckEffect::Advanced);
        assert_eq!(pump(&mut s, 10), vec![5, 6, 7, 8]);
        // The client saw a gap after 6: the window restarts at 7.
        assert_eq!(s.on_ack(6), AckEffect::Advanced);
        assert_eq!(pump(&mut s, 10), vec![7, 8, 9, 10]);
        assert_eq!(s.on_ack(6), AckEffect::Ignored);
        assert_eq!(s.on_ack(10), AckEffect::Complete);
    }

    #[test]
    fn a_short_file_ends_inside_the_window() {
        let mut s = SendWindow::new(8, false, 3);
        assert_eq!(pump(&mut s, 3), vec![1, 2, 3]);
        assert_eq!(s.on_ack(2), AckEffect::Advanced);
        assert_eq!(pump(&mut s, 3), vec![3]);
        assert_eq!(s.on_ack(3), AckEffect::Complete);
    }

    #[test]
    fn timeouts_resend_the_window_a_bounded_number_of_times() {
        let mut s = SendWindow::new(2, false, 2);
        assert_eq!(pump(&mut s, 9), vec![1, 2]);
        assert_eq!(s.on_timeout(), TimeoutEffect::Retransmit);
        assert_eq!(pump(&mut s, 9), vec![1, 2]);
        assert_eq!(s.on_ack(2), AckEffect::Advanced);
        assert_eq!(pump(&mut s, 9), vec![3, 4]);
        assert_eq!(s.on_timeout(), TimeoutEffect::Retransmit);
        assert_eq!(pump(&mut s, 9), vec![3, 4]);
        assert_eq!(s.on_timeout(), TimeoutEffect::Retransmit);
        assert_eq!(s.on_timeout(), TimeoutEffect::GiveUp);
        assert_eq!(s.state(), SendState::Abandoned);
        assert_eq!(pump(&mut s, 9), Vec::<u64>::new());
    }

    #[test]
    fn block_numbers_roll_over() {
        let mut s = SendWindow::new(4, false, 3);
        let total = 70_000;
        loop {
            let sent = pump(&mut s, total);
            let Some(&highest) = sent.last() else { break };
            if s.on_ack(wire(highest)) == AckEffect::Complete {
                break;
            }
        }
        assert_eq!(s.state(), SendState::Complete);
        assert_eq!(s.first_unacknowledged(), total + 1);
    }

    proptest! {
        /// Whatever ACKs arrive, in flight is never more than a window, and duplicates never
        /// cause a transmission.
        #[test]
        fn never_more_than_a_window_in_flight(
            window in 1u16..16,
            events in prop::collection::vec(prop_oneof![
                (0u16..40).prop_map(Some),
                Just(None),
            ], 0..200),
        ) {
            let total = 30;
            let mut s = SendWindow::new(window, false, 1000);
            pump(&mut s, total);
            for event in events {
                let before_acked = s.first_unacknowledged();
                let sent = match event {
                    Some(ack) => {
                        let effect = s.on_ack(ack);
                        let sent = pump(&mut s, total);
                        if effect == AckEffect::Ignored {
                            prop_assert!(sent.is_empty(), "ignored ACK {} sent {:?}", ack, sent);
                        }
                        sent
                    }
                    None => {
                        s.on_timeout();
                        pump(&mut s, total)
                    }
                };
                for block in sent {
                    prop_assert!(block >= s.first_unacknowledged());
                    prop_assert!(block < s.first_unacknowledged() + u64::from(window));
                    prop_assert!(block <= total);
                }
                prop_assert!(s.first_unacknowledged() >= before_acked);
            }
        }
    }
}
