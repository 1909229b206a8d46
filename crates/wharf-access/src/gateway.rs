//! What every front-end is handed: the shared layer in one handle.

use crate::admission::DescriptorBudget;
use crate::budget::MemoryBudget;
use crate::defender::Defender;
use crate::lifecycle::Shutdown;
use crate::login::Authenticator;
use crate::proxy_protocol::ProxyProtocol;
use crate::shared_places::SharedPlaces;

/// The shared layer a front-end plugs into: logins and sessions, and the server's lifecycle.
/// One per process, shared by every protocol.
#[derive(Debug)]
pub struct Gateway {
    /// Logins and sessions.
    pub authenticator: Authenticator,
    /// Shutdown signals and connection tracking.
    pub shutdown: Shutdown,
    /// Descriptors sessions may hold, shared by every listener's [`crate::Admission`].
    /// Unlimited until the binary sets it from its open-file limit.
    pub descriptors: DescriptorBudget,
    /// The process-wide memory budget; each session takes its own from it
    /// ([`MemoryBudget::session`]).
    pub memory: MemoryBudget,
    /// Which peers are load balancers whose connections begin with a PROXY header; none
    /// unless the binary sets them.
    pub proxy: ProxyProtocol,
    /// Session places counted across a cluster's nodes; none on a single node.
    pub shared_places: Option<std::sync::Arc<dyn SharedPlaces>>,
}

impl Gateway {
    /// A gateway around `authenticator`, running, with the default memory budget.
    pub fn new(authenticator: Authenticator) -> Self {
        Gateway {
            authenticator,
            shutdown: Shutdown::new(),
            descriptors: DescriptorBudget::unlimited(),
            memory: MemoryBudget::default(),
            proxy: ProxyProtocol::default(),
            shared_places: None,
        }
    }

    /// This gateway with `memory` as its memory budget.
    pub fn with_memory(mut self, memory: MemoryBudget) -> Self {
        self.memory = memory;
        self
    }

    /// This gateway with `proxy` saying which peers are load balancers.
    pub fn with_proxy(mut self, proxy: ProxyProtocol) -> Self {
        self.proxy = proxy;
        self
    }

    /// This gateway with its sessions' places also counted across a cluster: each listener's
    /// caps, and each user's `max_sessions`.
    pub fn with_shared_places(mut self, places: std::sync::Arc<dyn SharedPlaces>) -> Self {
        self.authenticator.count_user_sessions_in(places.clone());
        self.shared_places = Some(places);
        self
    }

    /// The defender shared by every protocol: ask it at accept (`verdict`), report offenses
    /// (`report`). Failed logins are reported by the authenticator itself.
    pub fn defender(&self) -> &Defender {
        self.authenticator.defender()
    }
}
