//! Caps on concurrent sessions, in total and per client address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use serde::Deserialize;

use crate::user::canonical_ip;

/// Session caps of one listener or protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionLimits {
    /// Sessions at once, from everyone.
    #[serde(default = "default_max_sessions")]
    pub max_sessions: usize,
    /// Sessions at once from one address.
    #[serde(default = "default_max_per_address")]
    pub max_sessions_per_address: usize,
}

fn default_max_sessions() -> usize {
    2_000
}

fn default_max_per_address() -> usize {
    50
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            max_sessions: default_max_sessions(),
            max_sessions_per_address: default_max_per_address(),
        }
    }
}

/// Which cap a new session would exceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitExceeded {
    /// Too many sessions in total.
    #[error("too many sessions; try again later")]
    Total,
    /// Too many sessions from this address.
    #[error("too many sessions from your address")]
    PerAddress,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

/// Counts sessions against [`SessionLimits`]; a [`SessionPermit`] holds one place.
#[derive(Debug, Clone)]
pub struct SessionLimiter {
    limits: SessionLimits,
    counts: Arc<Mutex<Counts>>,
}

/// One admitted session; its place is given back when dropped.
#[derive(Debug)]
pub struct SessionPermit {
    addr: IpAddr,
    counts: Arc<Mutex<Counts>>,
}

impl SessionLimiter {
    /// A limiter enforcing `limits`.
    pub fn new(limits: SessionLimits) -> Self {
        SessionLimiter { limits, counts: Arc::default() }
    }

    /// The caps.
    pub fn limits(&self) -> SessionLimits {
        self.limits
    }

    /// Admits a session from `addr`, or says which cap it would exceed.
    pub fn try_admit(&self, addr: IpAddr) -> Result<SessionPermit, LimitExceeded> {
        let addr = canonical_ip(addr);
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if counts.total >= self.limits.max_sessions {
            return Err(LimitExceeded::Total);
        }
        let from_addr = counts.per_address.get(&addr).copied().unwrap_or(0);
        if from_addr >= self.limits.max_sessions_per_address {
            return Err(LimitExceeded::PerAddress);
        }
        counts.total += 1;
        counts.per_address.insert(addr, from_addr + 1);
        Ok(SessionPermit { addr, counts: self.counts.clone() })
    }

    /// Sessions currently admitted.
    pub fn active(&self) -> usize {
        self.counts.lock().map(|c| c.total).unwrap_or(0)
    }
}

impl Drop for SessionPermit {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_address.get_mut(&self.addr) {
            *n -= 1;
            if *n == 0 {
                counts.per_address.remove(&self.addr);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_total_and_per_address() {
        let limiter =
            SessionLimiter::new(SessionLimits { max_sessions: 3, max_sessions_per_address: 2 });
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let a_mapped: IpAddr = "::ffff:10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        let first = limiter.try_admit(a).expect("1st");
        let _second = limiter.try_admit(a_mapped).expect("2nd, same address over IPv6");
        assert_eq!(limiter.try_admit(a).err(), Some(LimitExceeded::PerAddress));
        let _third = limiter.try_admit(b).expect("other address");
        assert_eq!(limiter.try_admit(b).err(), Some(LimitExceeded::Total));
        drop(first);
        assert_eq!(limiter.active(), 2);
        let _again = limiter.try_admit(a).expect("place given back");
    }
}
