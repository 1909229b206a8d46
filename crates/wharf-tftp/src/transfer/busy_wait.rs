//! Waiting for a fast peer without going to sleep.
//!
//! Lock-step TFTP waits for the peer after every block. When the peer answers within tens of
//! microseconds (loopback, a virtual machine and its host), putting the transfer thread to
//! sleep and having the kernel wake it again, usually on another CPU, takes longer than the
//! answer does: measured on loopback, most of a transfer thread's CPU time went to that sleep
//! and wake, and a round trip took about 65 µs with it against 22 µs when the thread polled
//! the socket instead. So a transfer whose peer has lately answered quickly polls for a short
//! while before it blocks.
//!
//! Bounded twice, since a polling thread holds a CPU:
//! - per transfer, by [`SpinBudget`]: only while the peer's typical answer time is within the
//!   configured limit, and never longer than the limit. A peer across a real network (hundreds
//!   of microseconds or more) never makes the transfer poll;
//! - per server, by [`SpinSlots`]: at most one polling transfer per CPU but one, so polling
//!   never takes the last CPU from the peer or the rest of the server (none on one CPU); and
//!   nobody polls while more transfers are in progress than there are slots, since then the
//!   CPUs have other transfers (and their clients) to run. Measured with 50 tftp-hpa
//!   downloads at once on two CPUs: the one polling transfer made Wharf spend 10-12 s of CPU
//!   where it spends 9-10 s without, and the aggregate fell to 0.86-0.92x of tftpd-hpa.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Answer times above this count as this much: one lost packet (a retransmission after a
/// second) must not stop polling for the rest of a fast transfer.
const LONGEST_SAMPLE: Duration = Duration::from_millis(1);

/// The weight of the newest answer time in the running typical time: 1/8.
const NEWEST_SAMPLE_SHARE: u32 = 8;

/// How long one transfer polls before it sleeps, learnt from its peer's answer times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SpinBudget {
    /// The longest poll; zero turns polling off.
    limit: Duration,
    /// A running average of how long the peer took to answer.
    typical: Duration,
}

impl SpinBudget {
    /// A budget that polls at most `limit` at a time (zero: never). Until the peer has
    /// answered, its answers are assumed to take half the limit, so the first waits poll.
    pub(crate) fn new(limit: Duration) -> SpinBudget {
        SpinBudget { limit, typical: limit / 2 }
    }

    /// How long to poll for the next answer: twice the typical answer time, at most the limit,
    /// and nothing while the peer's answers take longer than the limit.
    pub(crate) fn current(&self) -> Duration {
        if self.limit.is_zero() || self.typical > self.limit {
            return Duration::ZERO;
        }
        (self.typical * 2).min(self.limit)
    }

    /// Records that the peer answered (or a wait timed out) after `waited`.
    pub(crate) fn record(&mut self, waited: Duration) {
        let sample = waited.min(LONGEST_SAMPLE);
        self.typical = (self.typical * (NEWEST_SAMPLE_SHARE - 1) + sample) / NEWEST_SAMPLE_SHARE;
    }
}

/// The server-wide count of transfers polling at this moment, how many may, and how many
/// transfers are in progress.
#[derive(Debug)]
pub(crate) struct SpinSlots {
    polling: AtomicUsize,
    limit: usize,
    transfers: AtomicUsize,
}

impl SpinSlots {
    /// Slots for `limit` transfers polling at once.
    pub(crate) fn new(limit: usize) -> SpinSlots {
        SpinSlots { polling: AtomicUsize::new(0), limit, transfers: AtomicUsize::new(0) }
    }

    /// Counts a transfer in progress until the returned guard is dropped.
    pub(crate) fn enter(self: &Arc<Self>) -> TransferInProgress {
        self.transfers.fetch_add(1, Ordering::AcqRel);
        TransferInProgress { slots: Arc::clone(self) }
    }

    /// One slot per CPU of this machine but one.
    pub(crate) fn for_this_machine() -> SpinSlots {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        SpinSlots::new(cpus.saturating_sub(1))
    }

    /// A slot, if one is free and no more transfers are in progress than there are slots; it
    /// is given back when dropped.
    pub(crate) fn try_take(&self) -> Option<SpinSlot<'_>> {
        if self.transfers.load(Ordering::Acquire) > self.limit {
            return None;
        }
        self.polling
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |polling| {
                (polling < self.limit).then_some(polling + 1)
            })
            .ok()
            .map(|_| SpinSlot { slots: self })
    }
}

/// A transfer counted as in progress by [`SpinSlots`], for as long as it is held.
#[derive(Debug)]
pub(crate) struct TransferInProgress {
    slots: Arc<SpinSlots>,
}

impl Drop for TransferInProgress {
    fn drop(&mut self) {
        self.slots.transfers.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Leave to poll, held while polling.
#[derive(Debug)]
pub(crate) struct SpinSlot<'a> {
    slots: &'a SpinSlots,
}

impl Drop for SpinSlot<'_> {
    fn drop(&mut self) {
        self.slots.polling.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_micros(100);

    fn settle(budget: &mut SpinBudget, waited: Duration) {
        for _ in 0..64 {
            budget.record(waited);
        }
    }

    #[test]
    fn a_fast_peer_gets_twice_its_answer_time() {
        let mut budget = SpinBudget::new(LIMIT);
        assert_eq!(budget.current(), LIMIT, "the first waits poll");
        settle(&mut budget, Duration::from_micros(20));
        let current = budget.current();
        assert!(
            current >= Duration::from_micros(39) && current <= Duration::from_micros(41),
            "{current:?}"
        );
    }

    #[test]
    fn a_slow_peer_is_never_polled_for() {
        let mut budget = SpinBudget::new(LIMIT);
        settle(&mut budget, Duration::from_micros(400));
        assert_eq!(budget.current(), Duration::ZERO);
        // A peer that becomes fast again is polled for again.
        settle(&mut budget, Duration::from_micros(30));
        assert!(budget.current() > Duration::ZERO);
    }

    #[test]
    fn a_peer_just_within_the_limit_is_polled_for_the_whole_limit() {
        // Without polling, an answer time includes the sleep and wake, so it must not take a
        // peer that answers in 60 µs out of polling.
        let mut budget = SpinBudget::new(LIMIT);
        settle(&mut budget, Duration::from_micros(70));
        assert_eq!(budget.current(), LIMIT);
    }

    #[test]
    fn one_timeout_does_not_stop_polling_for_long() {
        let mut budget = SpinBudget::new(LIMIT);
        settle(&mut budget, Duration::from_micros(20));
        budget.record(Duration::from_secs(1));
        assert_eq!(budget.current(), Duration::ZERO);
        let mut answers = 0;
        while budget.current().is_zero() {
            budget.record(Duration::from_micros(20));
            answers += 1;
            assert!(answers < 30, "still not polling after {answers} fast answers");
        }
    }

    #[test]
    fn a_zero_limit_turns_polling_off() {
        let mut budget = SpinBudget::new(Duration::ZERO);
        assert_eq!(budget.current(), Duration::ZERO);
        settle(&mut budget, Duration::from_micros(1));
        assert_eq!(budget.current(), Duration::ZERO);
    }

    #[test]
    fn slots_are_limited_and_given_back() {
        let slots = SpinSlots::new(2);
        let first = slots.try_take().expect("a first slot");
        let second = slots.try_take().expect("a second slot");
        assert!(slots.try_take().is_none(), "a third transfer must not poll");
        drop(first);
        let third = slots.try_take().expect("a slot given back is free again");
        drop((second, third));
        assert!(SpinSlots::new(0).try_take().is_none(), "one CPU: nobody polls");
    }

    #[test]
    fn nobody_polls_while_transfers_outnumber_the_slots() {
        let slots = Arc::new(SpinSlots::new(1));
        let first = slots.enter();
        assert!(slots.try_take().is_some(), "one transfer, one slot: it polls");
        let second = slots.enter();
        assert!(slots.try_take().is_none(), "two transfers for one slot: the CPUs are wanted");
        drop(second);
        assert!(slots.try_take().is_some(), "back to one transfer: it polls again");
        drop(first);
    }
}
