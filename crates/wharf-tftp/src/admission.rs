//! Which requests start a transfer: caps on transfers in total and per address, and no second
//! transfer for a request a client merely retransmitted.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use wharf_access::{LimitExceeded, SessionLimiter, SessionLimits, SessionPermit};

/// Why a request starts no transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A transfer for this client address and port is running: the request is a
    /// retransmission of the one being served, and is dropped silently.
    InProgress,
    /// A cap is reached.
    Limit(LimitExceeded),
}

/// Admits requests; one per server.
#[derive(Debug, Clone)]
pub(crate) struct Admission {
    limiter: SessionLimiter,
    serving: Arc<Mutex<HashSet<SocketAddr>>>,
}

/// A running transfer's place; given back when dropped.
#[derive(Debug)]
pub(crate) struct Ticket {
    peer: SocketAddr,
    serving: Arc<Mutex<HashSet<SocketAddr>>>,
    _permit: SessionPermit,
}

impl Admission {
    pub(crate) fn new(max_transfers: usize, max_per_address: usize) -> Self {
        Admission {
            limiter: SessionLimiter::new(SessionLimits {
                max_sessions: max_transfers,
                max_sessions_per_address: max_per_address,
            }),
            serving: Arc::default(),
        }
    }

    /// Admits a request from `peer`, or says why not.
    pub(crate) fn admit(&self, peer: SocketAddr) -> Result<Ticket, Refusal> {
        let mut serving = self.serving.lock().unwrap_or_else(|p| p.into_inner());
        if serving.contains(&peer) {
            return Err(Refusal::InProgress);
        }
        let permit = self.limiter.try_admit(peer.ip()).map_err(Refusal::Limit)?;
        serving.insert(peer);
        Ok(Ticket { peer, serving: self.serving.clone(), _permit: permit })
    }

    /// Transfers running now.
    #[cfg(test)]
    pub(crate) fn active(&self) -> usize {
        self.limiter.active()
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut serving = self.serving.lock().unwrap_or_else(|p| p.into_inner());
        serving.remove(&self.peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("addr")
    }

    #[test]
    fn retransmitted_requests_and_caps() {
        let admission = Admission::new(3, 2);
        let first = admission.admit(addr("10.0.0.1:1000")).expect("first");
        assert_eq!(admission.admit(addr("10.0.0.1:1000")).err(), Some(Refusal::InProgress));
        let _second = admission.admit(addr("10.0.0.1:1001")).expect("other port");
        assert_eq!(
            admission.admit(addr("10.0.0.1:1002")).err(),
            Some(Refusal::Limit(LimitExceeded::PerAddress))
        );
        let _third = admission.admit(addr("10.0.0.2:1000")).expect("other address");
        assert_eq!(
            admission.admit(addr("10.0.0.3:1000")).err(),
            Some(Refusal::Limit(LimitExceeded::Total))
        );
        drop(first);
        assert_eq!(admission.active(), 2);
        let _again = admission.admit(addr("10.0.0.1:1000")).expect("place given back");
    }
}
