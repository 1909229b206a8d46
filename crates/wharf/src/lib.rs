//! The `wharf` binary as a library: configuration, start-up and shutdown of every protocol,
//! so end-to-end tests can run the real server in-process.

pub mod admin;
pub mod allocator;
pub mod check;
pub mod cli;
pub mod config;
pub mod descriptors;
pub mod external_auth;
pub mod frontends;
pub mod hash_password;
pub mod http_listener;
pub mod logging;
pub mod observe;
pub mod private_file;
pub mod provision;
pub mod server;
pub mod shared_state;
pub mod user_store;
pub mod users;

pub use config::{LoadedConfig, WharfConfig};
pub use server::{ListenerInfo, Server};
