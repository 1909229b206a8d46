//! Starting each protocol front-end the configuration enables: one file per protocol, each
//! turning its section into bound listeners, banner lines and a running task.

pub mod ftp;
pub mod sftp;
pub mod tftp;

use crate::server::ListenerInfo;

/// A front-end that is bound and running.
pub struct Started {
    /// Its listeners, for the banner.
    pub listeners: Vec<ListenerInfo>,
    /// Extra banner lines (fingerprints, ...).
    pub notes: Vec<String>,
    /// The task serving it; it ends when shutdown drains.
    pub task: tokio::task::JoinHandle<()>,
}
