//! Graceful shutdown shared by every front-end: stop accepting, let transfers finish for a
//! grace period, then close what is left.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Shutdown signals and the set of running connection tasks.
///
/// Front-ends spawn each connection with [`Shutdown::spawn`]; their accept loops stop when
/// [`Shutdown::draining`] fires; an idle session closes then too, a session in a transfer
/// finishes it first. When the grace period is over, [`Shutdown::terminated`] fires and every
/// session closes at once.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    drain: CancellationToken,
    terminate: CancellationToken,
    tasks: TaskTracker,
}

impl Shutdown {
    /// A new, running state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs a connection task, tracked so shutdown can wait for it.
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tasks.spawn(task)
    }

    /// Whether shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.drain.is_cancelled()
    }

    /// Resolves when shutdown begins: stop accepting, close idle sessions.
    pub async fn draining(&self) {
        self.drain.cancelled().await
    }

    /// Resolves when the grace period is over: close everything now.
    pub async fn terminated(&self) {
        self.terminate.cancelled().await
    }

    /// Whether the grace period is over.
    pub fn is_terminated(&self) -> bool {
        self.terminate.is_cancelled()
    }

    /// Number of connection tasks still running.
    pub fn running(&self) -> usize {
        self.tasks.len()
    }

    /// Shuts down: signals draining, waits up to `grace` for connections to end, then signals
    /// termination and waits briefly for the rest. Returns whether everything ended within
    /// the grace period.
    pub async fn shut_down(&self, grace: Duration) -> bool {
        self.drain.cancel();
        self.tasks.close();
        let clean = tokio::time::timeout(grace, self.tasks.wait()).await.is_ok();
        self.terminate.cancel();
        if !clean {
            let _ = tokio::time::timeout(Duration::from_secs(5), self.tasks.wait()).await;
        }
        clean
    }
}
