//! How long a sender pauses between the bursts of a window once loss has made it send a window
//! in several bursts (see `send_window.rs`): about as long as the receiver takes to read a
//! burst, learnt from how fast it acknowledged blocks so far. The pause never decides what is
//! sent, only when; a wrong estimate costs speed, not data.

use std::time::{Duration, Instant};

/// The weight of the newest sample in the running per-block time: 1/4.
const NEWEST_SAMPLE_SHARE: u32 = 4;

/// The receiver's pace, as the sender sees it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Pace {
    /// A running average of the time from a burst's first block to the ACK of its last, per
    /// block of the burst.
    per_block: Option<Duration>,
    /// When the current burst's first block went out, and how many blocks it has sent.
    burst: Option<(Instant, u32)>,
}

impl Pace {
    /// Notes that a block went out `at`, the first of a burst when `first`.
    pub(crate) fn sent(&mut self, first: bool, at: Instant) {
        match &mut self.burst {
            Some((_, blocks)) if !first => *blocks = blocks.saturating_add(1),
            _ => self.burst = Some((at, 1)),
        }
    }

    /// Notes that an ACK received `at` acknowledged every block sent so far.
    pub(crate) fn all_acknowledged(&mut self, at: Instant) {
        let Some((started, blocks)) = self.burst.take() else { return };
        let sample = at.saturating_duration_since(started) / blocks;
        self.per_block = Some(match self.per_block {
            None => sample,
            Some(typical) => (typical * (NEWEST_SAMPLE_SHARE - 1) + sample) / NEWEST_SAMPLE_SHARE,
        });
    }

    /// The pause after a burst of `burst` blocks: the time the receiver takes to read them, at
    /// most `longest`. Zero until an ACK has been timed.
    pub(crate) fn pause(&self, burst: u64, longest: Duration) -> Duration {
        let Some(per_block) = self.per_block else { return Duration::ZERO };
        per_block.saturating_mul(u32::try_from(burst).unwrap_or(u32::MAX)).min(longest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONGEST: Duration = Duration::from_millis(50);

    #[test]
    fn the_pause_follows_the_receivers_pace_and_stays_bounded() {
        let mut pace = Pace::default();
        assert_eq!(pace.pause(4, LONGEST), Duration::ZERO, "nothing timed yet");
        let start = Instant::now();
        // A burst of 8 blocks, acknowledged 800 µs after its first went out: 100 µs a block.
        pace.sent(true, start);
        for _ in 1..8 {
            pace.sent(false, start);
        }
        pace.all_acknowledged(start + Duration::from_micros(800));
        assert_eq!(pace.pause(4, LONGEST), Duration::from_micros(400));
        // An ACK with no burst out (a duplicate) changes nothing.
        pace.all_acknowledged(start + Duration::from_secs(1));
        assert_eq!(pace.pause(4, LONGEST), Duration::from_micros(400));
        // Only the last burst counts: earlier bursts and the pauses between them do not.
        pace.sent(true, start);
        pace.sent(true, start + Duration::from_millis(10));
        pace.all_acknowledged(start + Duration::from_millis(10) + Duration::from_micros(500));
        assert_eq!(pace.pause(1, LONGEST), Duration::from_micros(200));
        assert_eq!(pace.pause(1_000_000, LONGEST), LONGEST);
    }
}
