//! Ctrl-C and SIGTERM: the default action would end the bench without running the guards'
//! destructors, leaving servers on loopback ports and gigabytes of scratch files behind. A
//! watcher thread stops every registered process and removes the scratch directory instead.

use std::path::PathBuf;
use std::sync::Mutex;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// The scratch directory to remove if the bench is interrupted.
static SCRATCH: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Other directories an interrupt must remove: those of servers started through the tests'
/// harness, which removes them on drop.
static OTHERS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Registers the directory an interrupt must remove (replacing any earlier one).
pub fn remove_on_interrupt(dir: Option<PathBuf>) {
    *SCRATCH.lock().unwrap_or_else(|p| p.into_inner()) = dir;
}

/// A directory outside the scratch directory that an interrupt removes too, for as long as
/// this lives (whoever made it removes it otherwise).
#[derive(Debug)]
pub struct AlsoRemoved(PathBuf);

/// Registers `dir` to be removed on interrupt, after the processes are stopped.
pub fn also_remove_on_interrupt(dir: PathBuf) -> AlsoRemoved {
    OTHERS.lock().unwrap_or_else(|p| p.into_inner()).push(dir.clone());
    AlsoRemoved(dir)
}

impl Drop for AlsoRemoved {
    fn drop(&mut self) {
        OTHERS.lock().unwrap_or_else(|p| p.into_inner()).retain(|dir| *dir != self.0);
    }
}

/// Installs the watcher. After it runs the process exits with 130, as a shell would report.
pub fn install() -> anyhow::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            eprintln!("\nwharf-bench: interrupted (signal {signal}); stopping servers and clients");
            crate::process::stop_all_live();
            if let Some(dir) = SCRATCH.lock().unwrap_or_else(|p| p.into_inner()).take() {
                let _ = std::fs::remove_dir_all(dir);
            }
            for dir in OTHERS.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
                let _ = std::fs::remove_dir_all(dir);
            }
            std::process::exit(130);
        }
    });
    Ok(())
}
