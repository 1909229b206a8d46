//! Which requests start a transfer: caps on transfers in total and per address, the
//! descriptors a transfer may hold (from the process's budget, which every protocol's sessions
//! share), and no second transfer for a request a client merely retransmitted.
//!
//! A client port has at most one transfer at a time. A request from the port of a running
//! transfer is a retransmission when it repeats, byte for byte, the request that started that
//! transfer (the client has not heard from the transfer yet and asks again): it is dropped.
//! Any other request from there is new: the client has moved on, which a client does only
//! after the last ACK of the transfer before (tftp-hpa's `get f1 f2 ...` sends each request
//! from the same port right after that ACK, so the new request often reaches the listener
//! before the old transfer has read its last ACK) or after giving up on it. The running
//! transfer is then marked superseded: it sends nothing more (a client that does not check
//! transfer IDs would take its packets for the new transfer's), finishes only if the client's
//! last ACK is already on its way, and the new request is admitted like any other.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use wharf_access::{
    DescriptorBudget, DescriptorPermit, LimitExceeded, SessionLimiter, SessionLimits, SessionPermit,
};

/// Why a request starts no transfer. Either way the request is dropped without an answer: a
/// retransmission is being served already, and a client over a cap asks again after its
/// timeout, by when a place may be free (see `docs/protocols/tftp.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The request repeats the one a running transfer for this client address and port
    /// serves.
    Retransmission,
    /// A cap is reached.
    Limit(LimitExceeded),
    /// The process's descriptor budget cannot hold one more transfer.
    Descriptors,
}

/// The running transfer of one client port.
#[derive(Debug)]
struct Running {
    /// The datagram that started it, to recognise a retransmission.
    request: Box<[u8]>,
    /// Which admission it was, so a superseded transfer's end does not forget its successor.
    id: u64,
    superseded: Arc<AtomicBool>,
}

#[derive(Debug, Default)]
struct Serving {
    by_peer: HashMap<SocketAddr, Running>,
    next_id: u64,
}

/// Admits requests; one per server.
#[derive(Debug, Clone)]
pub(crate) struct Admission {
    limiter: SessionLimiter,
    descriptors: DescriptorBudget,
    serving: Arc<Mutex<Serving>>,
}

/// A running transfer's place; given back when dropped.
#[derive(Debug)]
pub(crate) struct Ticket {
    peer: SocketAddr,
    id: u64,
    superseded: Arc<AtomicBool>,
    serving: Arc<Mutex<Serving>>,
    _permit: SessionPermit,
    _descriptors: DescriptorPermit,
}

impl Admission {
    /// Caps of `max_transfers` in total and `max_per_address` from one address; transfers take
    /// their descriptors from `descriptors`.
    pub(crate) fn new(
        max_transfers: usize,
        max_per_address: usize,
        descriptors: DescriptorBudget,
    ) -> Self {
        Admission {
            limiter: SessionLimiter::new(SessionLimits {
                max_sessions: max_transfers,
                max_sessions_per_address: max_per_address,
            }),
            descriptors,
            serving: Arc::default(),
        }
    }

    /// Admits `request`, the datagram of a read or write request from `peer`, for a transfer
    /// holding at most `descriptors` descriptors, or says why not.
    pub(crate) fn admit(
        &self,
        peer: SocketAddr,
        request: &[u8],
        descriptors: usize,
    ) -> Result<Ticket, Refusal> {
        let mut serving = self.serving.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(running) = serving.by_peer.get(&peer) {
            if *running.request == *request {
                return Err(Refusal::Retransmission);
            }
            // The client has moved on from the running transfer, whether or not this request
            // finds a place now.
            running.superseded.store(true, Ordering::Release);
        }
        let permit = self.limiter.try_admit(peer.ip()).map_err(Refusal::Limit)?;
        // Taken after the place: a refusal here drops `permit`, which gives the place back.
        let descriptors = self.descriptors.try_take(descriptors).ok_or(Refusal::Descriptors)?;
        serving.next_id += 1;
        let id = serving.next_id;
        let superseded = Arc::new(AtomicBool::new(false));
        let running = Running { request: request.into(), id, superseded: superseded.clone() };
        serving.by_peer.insert(peer, running);
        Ok(Ticket {
            peer,
            id,
            superseded,
            serving: self.serving.clone(),
            _permit: permit,
            _descriptors: descriptors,
        })
    }

    /// Transfers running now.
    #[cfg(test)]
    pub(crate) fn active(&self) -> usize {
        self.limiter.active()
    }
}

impl Ticket {
    /// Whether the client has since sent a new request from the same port: the transfer must
    /// then send nothing more.
    pub(crate) fn superseded(&self) -> Superseded {
        Superseded(self.superseded.clone())
    }
}

/// A transfer's view of whether its client has moved on to a new request.
#[derive(Debug, Clone)]
pub(crate) struct Superseded(Arc<AtomicBool>);

impl Superseded {
    /// Whether it has.
    pub(crate) fn is_set(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut serving = self.serving.lock().unwrap_or_else(|p| p.into_inner());
        // A superseded transfer's successor has taken the entry over: leave it.
        if serving.by_peer.get(&self.peer).is_some_and(|running| running.id == self.id) {
            serving.by_peer.remove(&self.peer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("addr")
    }

    const RRQ_A: &[u8] = b"\x00\x01a.bin\x00octet\x00";
    const RRQ_B: &[u8] = b"\x00\x01b.bin\x00octet\x00";

    #[test]
    fn retransmitted_requests_and_caps() {
        let admission = Admission::new(3, 2, DescriptorBudget::unlimited());
        let first = admission.admit(addr("10.0.0.1:1000"), RRQ_A, 3).expect("first");
        assert_eq!(
            admission.admit(addr("10.0.0.1:1000"), RRQ_A, 3).err(),
            Some(Refusal::Retransmission)
        );
        let _second = admission.admit(addr("10.0.0.1:1001"), RRQ_A, 3).expect("other port");
        assert_eq!(
            admission.admit(addr("10.0.0.1:1002"), RRQ_A, 3).err(),
            Some(Refusal::Limit(LimitExceeded::PerAddress))
        );
        let _third = admission.admit(addr("10.0.0.2:1000"), RRQ_A, 3).expect("other address");
        assert_eq!(
            admission.admit(addr("10.0.0.3:1000"), RRQ_A, 3).err(),
            Some(Refusal::Limit(LimitExceeded::Total))
        );
        drop(first);
        assert_eq!(admission.active(), 2);
        let _again = admission.admit(addr("10.0.0.1:1000"), RRQ_A, 3).expect("place given back");
    }

    /// tftp-hpa's `get a.bin b.bin`: the request for `b.bin` comes from the port whose
    /// transfer of `a.bin` has not yet read its last ACK.
    #[test]
    fn a_different_request_from_a_busy_port_is_new_and_supersedes() {
        let admission = Admission::new(10, 10, DescriptorBudget::unlimited());
        let peer = addr("10.0.0.1:1000");
        let first = admission.admit(peer, RRQ_A, 3).expect("first");
        assert!(!first.superseded().is_set());
        let second = admission.admit(peer, RRQ_B, 3).expect("a new request is served at once");
        assert!(first.superseded().is_set(), "the old transfer sends nothing more");
        assert!(!second.superseded().is_set());
        assert_eq!(admission.active(), 2);
        // The old transfer ending does not forget the new one: its retransmission is still
        // recognised.
        drop(first);
        assert_eq!(admission.admit(peer, RRQ_B, 3).err(), Some(Refusal::Retransmission));
        drop(second);
        assert_eq!(admission.active(), 0);
        let _third = admission.admit(peer, RRQ_B, 3).expect("the port is free again");
    }

    #[test]
    fn a_transfer_takes_its_descriptors_and_gives_them_back() {
        let budget = DescriptorBudget::new(7);
        let admission = Admission::new(10, 10, budget.clone());
        let first = admission.admit(addr("10.0.0.1:1000"), RRQ_A, 4).expect("fits");
        assert_eq!(budget.held(), 4);
        assert_eq!(
            admission.admit(addr("10.0.0.2:1000"), RRQ_A, 4).err(),
            Some(Refusal::Descriptors)
        );
        assert_eq!(admission.active(), 1, "the refused request took no place");
        drop(first);
        assert_eq!(budget.held(), 0);
        let _again = admission.admit(addr("10.0.0.2:1000"), RRQ_A, 4).expect("room again");
    }
}
