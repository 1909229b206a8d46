//! Password verification on a few dedicated threads.
//!
//! An argon2id check allocates ~19 MiB and keeps a core busy for tens of milliseconds. Run on
//! tokio's blocking pool, checks would land on ever new threads, and the allocator keeps a
//! thread's freed memory for that thread: a server that has seen a few hundred logins would
//! hold hundreds of MiB it no longer needs. A fixed set of threads bounds that to one check's
//! memory per thread, and bounds how many checks run at once (a login flood queues instead of
//! exhausting memory).

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::password::{Password, StoredHash};

struct Job {
    hash: StoredHash,
    password: Password,
    verdict: oneshot::Sender<bool>,
}

/// A fixed pool of threads verifying passwords.
#[derive(Debug)]
pub(crate) struct PasswordChecker {
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl PasswordChecker {
    /// Starts `threads` verifier threads (at least one); they end when the checker is dropped.
    pub(crate) fn new(threads: usize) -> Self {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for index in 0..threads.max(1) {
            let receiver = receiver.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("wharf-password-{index}"))
                .spawn(move || {
                    loop {
                        let job = match receiver.lock() {
                            Ok(receiver) => receiver.recv(),
                            Err(_) => break,
                        };
                        let Ok(job) = job else { break };
                        let verdict = job.hash.verify(&job.password);
                        let _ = job.verdict.send(verdict);
                    }
                });
            if let Err(err) = spawned {
                tracing::error!(error = %err, "could not start a password verification thread");
            }
        }
        PasswordChecker { jobs: Mutex::new(sender) }
    }

    /// Whether `password` matches `hash`; false if the verifier threads are gone.
    pub(crate) async fn verify(&self, hash: StoredHash, password: Password) -> bool {
        let (verdict, answer) = oneshot::channel();
        let sent = match self.jobs.lock() {
            Ok(jobs) => jobs.send(Job { hash, password, verdict }).is_ok(),
            Err(_) => false,
        };
        sent && answer.await.unwrap_or(false)
    }
}
