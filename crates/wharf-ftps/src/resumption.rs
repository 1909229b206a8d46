//! Keeping a control connection's TLS sessions to the client who owns them.
//!
//! Every control connection has a session store and a ticket key of its own, so the only
//! sessions a data connection can resume are the ones this control connection's handshakes
//! created. A data connection that does not resume one is refused — but its handshake must not
//! hand out a new resumable session first, or a stranger who was refused once could resume
//! that session on the next data connection and be let in.
//!
//! So a data connection's handshake issues tickets (and stores sessions) only through an
//! [`IssueGate`]:
//!
//! - it starts closed;
//! - a ticket or session ID that this control connection issued, presented in the client's
//!   hello, sets it ajar ([`GateState::Offered`]): a TLS 1.2 resumption renews the client's
//!   ticket while rustls processes the hello, before the provider can look;
//! - right after the hello the provider decides: resumed opens it; a full handshake is cut
//!   off before the server's flight (nothing was issued: tickets of full handshakes come at
//!   their end); a hello retry (TLS 1.3) seals it for the rest of the handshake, which is
//!   checked again at its end.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use rustls::server::{ProducesTickets, StoresServerSessions};

/// Where a data connection's handshake is, as far as issuing sessions goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum GateState {
    /// Nothing seen yet: nothing is issued.
    Closed = 0,
    /// The hello presented one of this control connection's sessions: a TLS 1.2 resumption
    /// may renew it.
    Offered = 1,
    /// The handshake resumed (or resumption is not required): sessions may be issued.
    Open = 2,
    /// The handshake did not resume after the first hello: nothing is ever issued.
    Sealed = 3,
}

/// Whether one data connection's handshake may create resumable sessions.
#[derive(Debug)]
pub(crate) struct IssueGate(AtomicU8);

impl IssueGate {
    /// A gate in `state`.
    pub(crate) fn new(state: GateState) -> Arc<IssueGate> {
        Arc::new(IssueGate(AtomicU8::new(state as u8)))
    }

    /// The current state.
    pub(crate) fn state(&self) -> GateState {
        match self.0.load(Ordering::Acquire) {
            0 => GateState::Closed,
            1 => GateState::Offered,
            2 => GateState::Open,
            _ => GateState::Sealed,
        }
    }

    /// Sets the state the provider decided on after the hello.
    pub(crate) fn set(&self, state: GateState) {
        self.0.store(state as u8, Ordering::Release);
    }

    /// The hello presented a session of this control connection (only a closed gate moves).
    fn offered(&self) {
        let _ = self.0.compare_exchange(
            GateState::Closed as u8,
            GateState::Offered as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    /// Whether sessions may be issued now.
    fn may_issue(&self) -> bool {
        matches!(self.state(), GateState::Offered | GateState::Open)
    }
}

/// The control connection's ticket key, used by a data connection: its tickets are accepted,
/// new ones are made only as the gate allows.
#[derive(Debug)]
pub(crate) struct GatedTicketer {
    /// The control connection's own ticketer.
    pub(crate) inner: Arc<dyn ProducesTickets>,
    /// The data connection's gate.
    pub(crate) gate: Arc<IssueGate>,
}

impl ProducesTickets for GatedTicketer {
    fn enabled(&self) -> bool {
        self.inner.enabled()
    }

    fn lifetime(&self) -> u32 {
        self.inner.lifetime()
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        if self.gate.may_issue() { self.inner.encrypt(plain) } else { None }
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        let plain = self.inner.decrypt(cipher)?;
        self.gate.offered();
        Some(plain)
    }
}

/// The control connection's session store (TLS 1.2 session IDs), used by a data connection:
/// its sessions are found, new ones are stored only as the gate allows.
#[derive(Debug)]
pub(crate) struct GatedSessions {
    /// The control connection's own store.
    pub(crate) inner: Arc<dyn StoresServerSessions>,
    /// The data connection's gate.
    pub(crate) gate: Arc<IssueGate>,
}

impl StoresServerSessions for GatedSessions {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.gate.may_issue() && self.inner.put(key, value)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let value = self.inner.get(key)?;
        self.gate.offered();
        Some(value)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        let value = self.inner.take(key)?;
        self.gate.offered();
        Some(value)
    }

    fn can_cache(&self) -> bool {
        self.inner.can_cache()
    }
}

#[cfg(test)]
mod tests {
    use rustls::server::ServerSessionMemoryCache;

    use super::*;

    #[test]
    fn tickets_are_issued_only_as_the_gate_allows() {
        let ticketer = rustls::crypto::aws_lc_rs::Ticketer::new().expect("ticketer");
        let existing = ticketer.encrypt(b"control session").expect("ticket");
        let foreign = rustls::crypto::aws_lc_rs::Ticketer::new()
            .expect("ticketer")
            .encrypt(b"another connection's session")
            .expect("ticket");
        let gate = IssueGate::new(GateState::Closed);
        let gated = GatedTicketer { inner: ticketer.clone(), gate: gate.clone() };
        assert!(gated.enabled());
        assert_eq!(gated.encrypt(b"stranger"), None, "closed: nothing issued");
        assert_eq!(gated.decrypt(&foreign), None);
        assert_eq!(gate.state(), GateState::Closed, "a foreign ticket does not move the gate");
        assert_eq!(gated.decrypt(&existing).as_deref(), Some(&b"control session"[..]));
        assert_eq!(gate.state(), GateState::Offered);
        let renewed = gated.encrypt(b"renewed").expect("offered: a resumption renews");
        assert_eq!(ticketer.decrypt(&renewed).as_deref(), Some(&b"renewed"[..]));

        gate.set(GateState::Sealed);
        assert_eq!(gated.encrypt(b"after a retry"), None, "sealed: nothing issued");
        assert!(gated.decrypt(&existing).is_some(), "sealed: tickets are still accepted");
        assert_eq!(gate.state(), GateState::Sealed, "and the seal holds");

        gate.set(GateState::Open);
        assert!(gated.encrypt(b"resumed").is_some());
    }

    #[test]
    fn sessions_are_stored_only_as_the_gate_allows() {
        let store = ServerSessionMemoryCache::new(4);
        assert!(store.put(b"id".to_vec(), b"control".to_vec()));
        let gate = IssueGate::new(GateState::Closed);
        let gated = GatedSessions { inner: store.clone(), gate: gate.clone() };
        assert!(!gated.put(b"other".to_vec(), b"stranger".to_vec()));
        assert_eq!(store.get(b"other"), None);
        assert_eq!(gated.get(b"unknown"), None);
        assert_eq!(gate.state(), GateState::Closed);
        assert_eq!(gated.get(b"id").as_deref(), Some(&b"control"[..]));
        assert_eq!(gate.state(), GateState::Offered);
        gate.set(GateState::Sealed);
        assert!(!gated.put(b"other".to_vec(), b"stranger".to_vec()));
        gate.set(GateState::Open);
        assert!(gated.put(b"other".to_vec(), b"resumed".to_vec()));
        assert_eq!(store.get(b"other").as_deref(), Some(&b"resumed"[..]));
    }
}
