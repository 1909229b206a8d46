//! The harness of Wharf's cross-protocol end-to-end suite (issue 7).
//!
//! - [`server`]: the real server started in-process (`wharf::Server`) with every protocol on
//!   loopback port 0 over one temporary root, and the users every test relies on.
//! - [`clients`]: a Rust client per protocol (FTP over a raw control connection and through
//!   suppaftp, SFTP through russh + russh-sftp, TFTP written here) behind one [`Protocol`]
//!   switch, and the real command-line clients (curl, lftp, OpenSSH `sftp`, tftp-hpa).
//! - [`tree`]: digests of the storage tree, the sentinel outside it, temporary upload files.
//! - [`errors_doc`]: the error-mapping table of `docs/ERRORS.md`, parsed.
//! - [`interrupted`]: what an interrupted upload must leave behind.
//! - [`matrix`]: every protocol reads what every protocol wrote, on any share.
//!
//! Every network call and every child process is bounded in time (see [`within`]).

pub mod clients;
pub mod errors_doc;
pub mod interrupted;
pub mod matrix;
pub mod server;
pub mod tree;

use std::future::Future;
use std::time::Duration;

pub use clients::Protocol;
pub use server::Wharf;

/// The longest any single step (a login, a transfer, a client run) may take.
pub const STEP_LIMIT: Duration = Duration::from_secs(120);

/// Runs `future` within `limit`, failing the test with `what` when it takes longer.
pub async fn within<T>(limit: Duration, what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, future).await {
        Ok(value) => value,
        Err(_) => panic!("{what} took longer than {limit:?}"),
    }
}

/// Runs `future` within [`STEP_LIMIT`].
pub async fn step<T>(what: &str, future: impl Future<Output = T>) -> T {
    within(STEP_LIMIT, what, future).await
}

/// Sizes every matrix transfers: empty, one byte, one TFTP block, 1 MiB, and 40 MiB, which
/// crosses TFTP's block-number rollover at 512-byte blocks (65,536 blocks are 32 MiB).
pub const MATRIX_SIZES: [usize; 5] = [0, 1, 512, 1024 * 1024, 40 * 1024 * 1024];

/// One mebibyte.
pub const MIB: usize = 1024 * 1024;
