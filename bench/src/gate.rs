//! A gate between the clients' logins and their transfers: each client script, once logged
//! in, says so (a file of its own in the gate's `ready` folder) and waits for a shared lock
//! on the gate's file, which the bench holds exclusively until every client is in. Opening
//! the gate releases them all at once. The scripts use `touch` and util-linux's `flock`
//! through their clients' `!` shell escape (sftp and lftp both have one).

use std::fs::File;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// A closed gate; opened by [`Gate::open`], removed with its folder when dropped.
pub struct Gate {
    dir: PathBuf,
    lock: File,
}

/// How often the bench counts the clients that are in.
const POLL: Duration = Duration::from_millis(5);

impl Gate {
    /// A closed gate in `dir` (made, and removed when the gate is dropped).
    pub fn close(dir: PathBuf) -> anyhow::Result<Gate> {
        std::fs::create_dir_all(dir.join("ready"))
            .with_context(|| format!("creating {}", dir.display()))?;
        let lock = File::create(dir.join("gate"))?;
        lock.lock().context("locking the gate")?;
        Ok(Gate { dir, lock })
    }

    /// The script lines with which client `index` says it is in and waits for the gate.
    pub fn wait_lines(&self, index: usize) -> Vec<String> {
        let ready = self.dir.join("ready").join(index.to_string());
        let gate = self.dir.join("gate");
        vec![
            format!("!touch '{}'", ready.display()),
            format!("!flock --shared '{}' true", gate.display()),
        ]
    }

    /// Waits until `count` clients are in, for at most `limit`.
    pub fn wait_for(&self, count: usize, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let ready = std::fs::read_dir(self.dir.join("ready"))?.count();
            if ready >= count {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("only {ready} of {count} clients logged in within {} s", limit.as_secs());
            }
            std::thread::sleep(POLL);
        }
    }

    /// Lets every waiting client through.
    pub fn open(&self) -> anyhow::Result<()> {
        self.lock.unlock().context("unlocking the gate")
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn waiting_clients_pass_only_once_the_gate_opens() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let gate = Gate::close(tmp.path().join("gate")).expect("gate");
        let script: String = gate
            .wait_lines(0)
            .iter()
            .map(|line| line.trim_start_matches('!').to_owned() + "\n")
            .collect::<String>()
            + "echo through\n";
        let mut client = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("sh");
        gate.wait_for(1, Duration::from_secs(20)).expect("the client is in");
        assert!(client.try_wait().expect("wait").is_none(), "held at the gate");
        gate.open().expect("open");
        let output = client.wait_with_output().expect("output");
        assert_eq!(String::from_utf8_lossy(&output.stdout), "through\n");
    }
}
