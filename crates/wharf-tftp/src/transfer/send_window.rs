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
//!
//! The window itself is fixed for the transfer: an RFC 7440 receiver acknowledges after
//! `windowsize` blocks (or a gap), so a sender that sent fewer would wait for the receiver's
//! own timeout. What adapts to loss is how a window goes out: in bursts of `burst` blocks,
//! with a pause between bursts (see `pace.rs`) so a receiver slower than the sender can read
//! one burst before the next arrives. The burst halves on a sign of loss (a timeout, an ACK
//! short of what was sent, a duplicate of the last ACK while blocks are outstanding), at most
//! once per window, and grows by one block with every window acknowledged whole without one,
//! up to the whole window. It starts whole: the window granted already fits a default receive
//! buffer (`options::window_cap`).

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
    /// Blocks sent back to back before a pause, 1..=`window`.
    burst: u64,
    /// The last block the current burst may send.
    burst_end: u64,
    /// Whether the current window has shown a sign of loss (the burst shrinks once per window).
    window_lost: bool,
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
        let window = u64::from(window.max(1));
        SendWindow {
            state: if with_oack { SendState::Negotiating } else { SendState::Sending },
            window,
            burst: window,
            burst_end: window,
            window_lost: false,
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
            SendState::Sending if self.may_send() && self.next <= self.burst_end => {
                let block = self.next;
                self.next += 1;
                self.highest_sent = self.highest_sent.max(block);
                Some(Transmission::Block(block))
            }
            _ => None,
        }
    }

    /// Whether the window allows the next block (the burst aside).
    fn may_send(&self) -> bool {
        self.next <= self.acked + self.window && self.last.is_none_or(|last| self.next <= last)
    }

    /// Whether the current burst is out but the window is not: the sender pauses, then calls
    /// [`SendWindow::next_burst`].
    pub(crate) fn pause_due(&self) -> bool {
        self.state == SendState::Sending && self.may_send() && self.next > self.burst_end
    }

    /// Lets the next burst of the window go out (after the pause).
    pub(crate) fn next_burst(&mut self) {
        self.burst_end = self.next - 1 + self.burst;
    }

    /// Whether every block sent so far is acknowledged.
    pub(crate) fn all_acknowledged(&self) -> bool {
        self.acked == self.highest_sent
    }

    /// Blocks sent back to back before a pause.
    pub(crate) fn burst(&self) -> u64 {
        self.burst
    }

    /// Starts a window right after the last acknowledged block.
    fn start_window(&mut self) {
        self.next = self.acked + 1;
        self.burst_end = self.acked + self.burst;
        self.window_lost = false;
    }

    /// A sign of loss: the burst halves, once per window.
    fn on_loss(&mut self) {
        if !std::mem::replace(&mut self.window_lost, true) {
            self.burst = (self.burst / 2).max(1);
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
                self.start_window();
                AckEffect::Advanced
            }
            SendState::Sending => {
                let block = self.acked + distance_after(self.acked, wire_number);
                if block == self.acked {
                    // The receiver repeats itself while blocks are out: it missed some.
                    if self.highest_sent > self.acked {
                        self.on_loss();
                    }
                    return AckEffect::Ignored;
                }
                if block > self.highest_sent {
                    return AckEffect::Ignored;
                }
                if block < self.highest_sent {
                    // An ACK short of what was sent reports a gap.
                    self.on_loss();
                } else if block == self.acked + self.window && !self.window_lost {
                    self.burst = (self.burst + 1).min(self.window);
                }
                self.acked = block;
                self.retries = 0;
                if self.last == Some(block) {
                    self.state = SendState::Complete;
                    return AckEffect::Complete;
                }
                // Resume right after the acknowledged block.
                self.start_window();
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
            _ => {
                self.on_loss();
                self.start_window();
            }
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

    /// Sends what the window allows now, pausing between bursts as the driver does; a block is
    /// the last when it is `total`.
    fn pump(sender: &mut SendWindow, total: u64) -> Vec<u64> {
        let mut sent = pump_burst(sender, total);
        while sender.pause_due() {
            sender.next_burst();
            sent.extend(pump_burst(sender, total));
        }
        sent
    }

    /// Sends what the current burst allows.
    fn pump_burst(sender: &mut SendWindow, total: u64) -> Vec<u64> {
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

    #[test]
    fn a_lost_window_halves_the_burst_and_clean_windows_grow_it_back() {
        let mut s = SendWindow::new(8, false, 3);
        assert_eq!(pump_burst(&mut s, 100), (1..=8).collect::<Vec<_>>(), "whole at first");
        assert!(!s.pause_due());
        // Blocks 6 to 8 were dropped by the receiver's kernel: it reports the gap.
        assert_eq!(s.on_ack(5), AckEffect::Advanced);
        assert_eq!(s.burst(), 4);
        assert_eq!(pump_burst(&mut s, 100), vec![6, 7, 8, 9]);
        assert!(s.pause_due(), "the rest of the window waits for a pause");
        assert_eq!(pump_burst(&mut s, 100), Vec::<u64>::new());
        s.next_burst();
        assert_eq!(pump_burst(&mut s, 100), vec![10, 11, 12, 13]);
        assert!(!s.pause_due(), "the window is out");
        // The window arrived whole: one block more per burst, up to the window.
        assert_eq!(s.on_ack(13), AckEffect::Advanced);
        assert_eq!(s.burst(), 5);
        for expected in 6..=8 {
            let sent = pump(&mut s, 100);
            assert_eq!(sent.len(), 8);
            let highest = *sent.last().expect("sent");
            assert_eq!(s.on_ack(wire(highest)), AckEffect::Advanced);
            assert_eq!(s.burst(), expected);
        }
        assert_eq!(s.on_ack(wire(29)), AckEffect::Ignored, "nothing sent past 29");
        assert_eq!(pump_burst(&mut s, 100).len(), 8, "whole again");
    }

    #[test]
    fn timeouts_and_repeated_acks_shrink_the_burst_once_per_window() {
        let mut s = SendWindow::new(16, false, 10);
        pump(&mut s, 1000);
        assert_eq!(s.on_timeout(), TimeoutEffect::Retransmit);
        assert_eq!(s.burst(), 8);
        assert_eq!(pump(&mut s, 1000), (1..=16).collect::<Vec<_>>(), "the window again");
        assert_eq!(s.on_ack(16), AckEffect::Advanced);
        assert_eq!(s.burst(), 9, "the window sent again came whole: the burst grows");
        pump(&mut s, 1000);
        // The receiver repeats ACK 16 while 17..32 are out: some went missing. Twice.
        assert_eq!(s.on_ack(16), AckEffect::Ignored);
        assert_eq!(s.on_ack(16), AckEffect::Ignored);
        assert_eq!(s.burst(), 4, "halved once for the window");
        assert_eq!(pump(&mut s, 1000), Vec::<u64>::new(), "a duplicate sends nothing");
        assert_eq!(s.on_timeout(), TimeoutEffect::Retransmit);
        assert_eq!(s.burst(), 4, "the same window's loss counts once");
        assert_eq!(s.on_timeout(), TimeoutEffect::Retransmit);
        assert_eq!(s.burst(), 2, "the window sent again was lost too");
        assert_eq!(s.on_timeout(), TimeoutEffect::Retransmit);
        assert_eq!(s.on_timeout(), TimeoutEffect::Retransmit);
        assert_eq!(s.burst(), 1, "never below one block");
        assert_eq!(pump_burst(&mut s, 1000), vec![17]);
    }

    #[test]
    fn lock_step_never_pauses() {
        let mut s = SendWindow::new(1, false, 5);
        for n in 1..=5 {
            assert_eq!(pump_burst(&mut s, 5), vec![n]);
            assert!(!s.pause_due());
            if n < 5 {
                assert_eq!(s.on_timeout(), TimeoutEffect::Retransmit);
                assert_eq!(pump_burst(&mut s, 5), vec![n]);
                assert_eq!(s.on_ack(wire(n)), AckEffect::Advanced);
            }
            assert_eq!(s.burst(), 1);
        }
    }

    proptest! {
        /// Whatever ACKs and timeouts come, the burst stays within 1..=window, a pause is due
        /// only when the burst is out and the window is not, and the pumped blocks stay in
        /// the window.
        #[test]
        fn the_burst_stays_within_the_window(
            window in 1u16..32,
            events in prop::collection::vec(prop_oneof![
                (0u16..80).prop_map(Some),
                Just(None),
            ], 0..200),
        ) {
            let total = 60;
            let mut s = SendWindow::new(window, false, 1000);
            pump(&mut s, total);
            for event in events {
                match event {
                    Some(ack) => { s.on_ack(ack); }
                    None => { s.on_timeout(); }
                }
                prop_assert!(s.burst() >= 1 && s.burst() <= u64::from(window));
                let burst = pump_burst(&mut s, total);
                prop_assert!(burst.len() as u64 <= s.burst());
                if s.pause_due() {
                    prop_assert!(s.next_transmission().is_none());
                }
                for block in pump(&mut s, total).into_iter().chain(burst) {
                    prop_assert!(block >= s.first_unacknowledged());
                    prop_assert!(block < s.first_unacknowledged() + u64::from(window));
                }
            }
        }

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
