//! Who you are and what you may do: Wharf's users, credentials, permission rules, sessions and
//! audit events, shared by every protocol.
//!
//! A front-end calls [`Authenticator::login`] with what the client offered and gets a
//! [`Session`]: the user's view of the storage tree, where every operation is checked against
//! the user's rules before it reaches storage and emits one audit event. Errors are the
//! protocol-neutral [`Error`] of `wharf-vfs`, which each front-end maps to its own replies.

pub mod admission;
pub mod audit;
pub mod budget;
pub mod config;
pub mod defender;
pub mod external_auth;
pub mod gateway;
pub mod lifecycle;
pub mod limits;
pub mod live_sessions;
pub mod login;
pub mod password;
pub mod permissions;
pub mod protocol;
pub mod proxy_protocol;
pub mod quota;
pub mod session;
pub mod shared_places;
pub mod shared_quota;
pub mod size;
pub mod throttle;
pub mod transfer;
pub mod user;
mod user_sessions;
mod verifier;

pub use admission::{Admission, AdmissionPermit, DescriptorBudget, DescriptorPermit, Refusal};
pub use audit::{AUDIT_TARGET, Actor, AuditEvent, AuditSink, Operation, Outcome};
pub use budget::{MemoryBudget, MemoryConfig, MemoryConfigError, Reservation, SessionBudget};
pub use config::{AccessConfig, UsersLoadError};
pub use defender::{Ban, Defender, DefenderConfig, Offense, Verdict};
pub use external_auth::{
    Directory, DirectoryAnswer, DirectoryCredential, DirectoryReply, DirectoryRequest,
    ExternalAuth, ExternalAuthSettings,
};
pub use gateway::Gateway;
pub use lifecycle::Shutdown;
pub use limits::{LimitExceeded, SessionLimiter, SessionLimits, SessionPermit};
pub use live_sessions::{Direction, LiveSession, LiveSessions, LiveTransfer};
pub use login::{Authenticator, Credential, LoginError, LoginRequest, LoginSettings, QuotaReading};
pub use password::{Password, StoredHash, hash_password};
pub use permissions::{Permissions, Rules};
pub use protocol::{Protocol, ProtocolFamily};
pub use proxy_protocol::{Announced, ProxyConfig, ProxyError, ProxyProtocol};
pub use quota::{BandwidthConfig, QuotaAccount, QuotaConfig};
pub use session::{Listing, ResourceLimits, Session};
pub use shared_places::{PlaceRequest, SharedCaps, SharedPlace, SharedPlaceRefused, SharedPlaces};
pub use shared_quota::{LedgerAnswer, LedgerVersion, Reserve, Settlement, SharedLedgers};
pub use size::ByteSize;
pub use throttle::RateLimiter;
pub use transfer::{Download, DownloadStream, Upload};
pub use user::{SshAuthMethod, TlsRequirement, User, UserConfig, UserDb, UsersFile};
pub use wharf_vfs::{Error, ErrorKind, Result, VPath, WriteMode};
