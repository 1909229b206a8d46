//! Session places counted across the nodes of a cluster.
//!
//! Each listener's caps are counted by its own process first ([`crate::Admission::admit`], at
//! accept, cheap and synchronous). With shared places (a cluster's database), a session also
//! takes a place counted over every node before it starts ([`crate::Admission::admit_shared`],
//! async, on the session's own task): a listener's caps, in total and per address, are then
//! the caps of the whole cluster. The place is held until the session ends; a node that dies loses its
//! places when its heartbeat stops.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

/// A place taken across the cluster; given back when dropped.
pub type SharedPlace = Box<dyn Send + Sync>;

/// Why no shared place was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SharedPlaceRefused {
    /// The listener holds this many sessions across the cluster already.
    #[error("the listener holds {0} sessions across the cluster")]
    Total(usize),
    /// The address holds this many sessions of this listener across the cluster already.
    #[error("the address holds {0} sessions of this listener across the cluster")]
    PerAddress(usize),
    /// The user holds this many sessions across the cluster already (its `max_sessions`).
    #[error("the user holds {0} sessions across the cluster")]
    PerUser(usize),
}

/// The caps a shared place is taken under, for one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedCaps {
    /// Sessions of the listener across the cluster, from everyone.
    pub total: usize,
    /// Sessions of the listener across the cluster from one address.
    pub per_address: usize,
}

/// What answers a request for a shared place.
pub type PlaceRequest =
    Pin<Box<dyn Future<Output = Result<SharedPlace, SharedPlaceRefused>> + Send>>;

/// Places counted across the nodes of a cluster.
pub trait SharedPlaces: Send + Sync + std::fmt::Debug {
    /// Takes a place for a session of `listener` from `address` under `caps`, counted over
    /// the cluster. When the count cannot be had (the shared store is away), gives a place
    /// that counts nothing: the node's own caps still hold, and logins are paused meanwhile
    /// anyway.
    fn take(&self, listener: &'static str, address: IpAddr, caps: SharedCaps) -> PlaceRequest;

    /// Takes a place for a session of `user`, who may hold `cap` sessions across the
    /// cluster (on every listener and protocol). Without the shared store, as
    /// [`SharedPlaces::take`]: a place that counts nothing.
    fn take_for_user(&self, user: &str, cap: usize) -> PlaceRequest;
}
