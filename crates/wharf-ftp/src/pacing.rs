//! When the reply to `PASV` or `EPSV` leaves: not before a nearby client looks for it.
//!
//! curl 7.x and 8.0 to 8.6 (fixed in 8.7.0) read the control connection once, without
//! waiting, right after sending `EPSV` or `PASV`. When the reply is already there, curl sets
//! up the data connection's address but, having no socket to wait on yet, waits its whole
//! poll timeout (one second) before connecting; when the reply comes a moment later, curl is
//! waiting on the control connection and connects at once. A server on the same host answers
//! within microseconds and loses that race for most files of a `curl -K` list or a
//! `curl -T "{a,b,c}"` on one connection. Nothing the server sends afterwards can wake curl:
//! only when the reply arrives matters.
//!
//! So the reply to a passive command leaves no sooner than `ftp.passive_reply_delay` after
//! the client sent it, counting the network's share: the server holds it for the delay less
//! the kernel's smallest round-trip estimate for the control connection. A client that far
//! away or further gets its reply that late by the network alone and is not held; neither is
//! a client that has sent `FEAT` (curl never does; clients that do wait for the reply, and
//! the hold would only slow them down). The hold is a kernel timer (`timerfd`), not the
//! runtime's millisecond timer, and gives the CPU up, so a client on the same core gets to
//! run. Correctness never depends on it: it only changes how soon such a
//! client connects. Measurements are in `docs/protocols/ftp.md`.

use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;

use rustix::time::{Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// How long after its command was read the reply to a passive command leaves, for a client
/// whose smallest measured round trip is `min_rtt`: `delay`, less what the network already
/// adds (the reply reaches the client a round trip after it sent the command, whatever the
/// server does). Unknown distance: all of `delay`.
///
/// A client that has asked for `FEAT` in this session is not held: curl never sends it,
/// while lftp, FileZilla and WinSCP do at login, and for a client that waits for the reply
/// the hold is only lost time (lftp `mirror` of 1,000 small files on loopback: a third
/// slower at 100 µs).
pub(crate) fn passive_reply_hold(
    delay: Duration,
    min_rtt: Option<Duration>,
    asked_for_features: bool,
) -> Duration {
    if asked_for_features {
        return Duration::ZERO;
    }
    delay.saturating_sub(min_rtt.unwrap_or_default())
}

/// Waits `duration` on a kernel timer, to the microsecond (the runtime's own timer rounds up
/// to the next millisecond). Holds one descriptor while it waits. When no timer can be made
/// it returns at once: the wait only ever changes speed.
pub(crate) async fn sleep_precisely(duration: Duration) {
    if duration.is_zero() {
        return;
    }
    if let Err(err) = timer(duration).await {
        tracing::debug!(error = %err, "no precise timer; not waiting");
    }
}

async fn timer(duration: Duration) -> io::Result<()> {
    let timer = rustix::time::timerfd_create(
        TimerfdClockId::Monotonic,
        TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
    )?;
    let value = Timespec::try_from(duration).map_err(|_| io::ErrorKind::InvalidInput)?;
    let zero = Timespec { tv_sec: 0, tv_nsec: 0 };
    let setting = Itimerspec { it_interval: zero, it_value: value };
    rustix::time::timerfd_settime(&timer, TimerfdTimerFlags::empty(), &setting)?;
    let timer = register(timer)?;
    // Readable once expired; the expiry count need not be read, the timer is closed next.
    timer.readable().await?.retain_ready();
    Ok(())
}

/// `timer` registered with the runtime, to wait until it is readable.
#[allow(unsafe_code)]
fn register(timer: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: an `OwnedFd` is an open descriptor that it alone closes, when dropped, so it
    // stays open and the same for as long as the `AsyncFd` owns it.
    unsafe { AsyncFd::register_with_interest(timer, Interest::READABLE) }.map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_network_counts_towards_the_hold_and_zero_holds_none() {
        let delay = Duration::from_micros(100);
        let hold = |rtt| passive_reply_hold(delay, rtt, false);
        assert_eq!(hold(Some(Duration::from_micros(8))), Duration::from_micros(92));
        assert_eq!(hold(None), delay, "unknown distance: all of it");
        assert_eq!(hold(Some(Duration::from_micros(100))), Duration::ZERO);
        assert_eq!(hold(Some(Duration::from_millis(20))), Duration::ZERO, "far enough");
        assert_eq!(passive_reply_hold(Duration::ZERO, None, false), Duration::ZERO, "off");
    }

    #[test]
    fn a_client_that_asked_for_features_is_never_held() {
        let delay = Duration::from_micros(100);
        for rtt in [None, Some(Duration::from_micros(8))] {
            assert_eq!(passive_reply_hold(delay, rtt, true), Duration::ZERO);
        }
    }

    #[tokio::test]
    async fn a_precise_sleep_lasts_at_least_its_duration() {
        for micros in [1, 50, 200, 1500] {
            let duration = Duration::from_micros(micros);
            let started = std::time::Instant::now();
            sleep_precisely(duration).await;
            assert!(started.elapsed() >= duration, "{micros} us");
        }
        sleep_precisely(Duration::ZERO).await;
    }
}
