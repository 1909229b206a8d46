//! Per-user quotas (bytes and files in the user's home) and bandwidth settings.
//!
//! Usage is measured once, at the user's first login after start or reload, by walking the
//! home; after that Wharf keeps it current from its own uploads and deletions. Changes made
//! outside Wharf are picked up at the next reload. Only the home (the folder mounted at `/`)
//! counts: shared folders mounted elsewhere belong to nobody's quota.
//!
//! An upload reserves the growth it causes as it writes, so concurrent uploads of one user
//! cannot together cross the limit; the write that would cross it is refused before it
//! reaches storage. A whole-file upload's growth is charged when it is published; an in-place
//! write (append, resume) is charged for what it left on disk even if interrupted.

use std::sync::{Arc, Mutex};

use serde::Deserialize;
use wharf_vfs::{Error, Result, WriteMode};

use crate::size::ByteSize;

/// The `quota` of a user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaConfig {
    /// Total size of the files in the home (`10GiB`, or bytes). Unlimited when absent.
    #[serde(default)]
    pub bytes: Option<ByteSize>,
    /// Number of files in the home. Unlimited when absent.
    #[serde(default)]
    pub files: Option<u64>,
}

impl QuotaConfig {
    /// Whether any limit is set.
    pub fn is_limited(&self) -> bool {
        self.bytes.is_some() || self.files.is_some()
    }
}

/// The `bandwidth` of a user: bytes per second, shared by all the user's sessions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BandwidthConfig {
    /// Downloads, per second (`10MiB`, or bytes). Unlimited when absent.
    #[serde(default)]
    pub download: Option<ByteSize>,
    /// Uploads, per second. Unlimited when absent.
    #[serde(default)]
    pub upload: Option<ByteSize>,
}

#[derive(Debug, Default)]
struct Ledger {
    used_bytes: u64,
    used_files: u64,
    /// Growth reserved by uploads in progress.
    reserved_bytes: u64,
}

/// A user's quota: the limits and the shared ledger of what is used.
#[derive(Debug, Clone)]
pub struct QuotaAccount {
    limits: QuotaConfig,
    ledger: Arc<Mutex<Ledger>>,
}

impl QuotaAccount {
    /// An account with `limits` that starts at the measured usage.
    pub fn new(limits: QuotaConfig, used_bytes: u64, used_files: u64) -> Self {
        QuotaAccount {
            limits,
            ledger: Arc::new(Mutex::new(Ledger { used_bytes, used_files, reserved_bytes: 0 })),
        }
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes and files used now (reservations not included).
    pub fn used(&self) -> (u64, u64) {
        let ledger = self.ledger();
        (ledger.used_bytes, ledger.used_files)
    }

    /// Refuses a new file when the file count is at its limit, or any write when the byte
    /// limit is already reached.
    pub fn check_open(&self, new_file: bool) -> Result<()> {
        let ledger = self.ledger();
        if new_file && self.limits.files.is_some_and(|max| ledger.used_files >= max) {
            return Err(Error::QuotaExceeded);
        }
        if self.limits.bytes.is_some_and(|max| ledger.used_bytes + ledger.reserved_bytes >= max.0) {
            // Writing nothing is fine; writing anything is not. Opening a file that would stay
            // empty is still refused: the user must free space first.
            return Err(Error::QuotaExceeded);
        }
        Ok(())
    }

    fn reserve(&self, bytes: u64) -> Result<()> {
        let mut ledger = self.ledger();
        if let Some(max) = self.limits.bytes {
            if ledger.used_bytes + ledger.reserved_bytes + bytes > max.0 {
                return Err(Error::QuotaExceeded);
            }
        }
        ledger.reserved_bytes += bytes;
        Ok(())
    }

    fn settle(&self, reserved: u64, growth: i64, new_files: i64) {
        let mut ledger = self.ledger();
        ledger.reserved_bytes = ledger.reserved_bytes.saturating_sub(reserved);
        ledger.used_bytes = ledger.used_bytes.saturating_add_signed(growth);
        ledger.used_files = ledger.used_files.saturating_add_signed(new_files);
    }

    /// Records that a file of `size` bytes was removed.
    pub fn removed(&self, size: u64) {
        self.settle(0, -i64::try_from(size).unwrap_or(i64::MAX), -1);
    }

    /// Starts charging an upload in `mode` of a file that had `old_size` bytes (`None`: new).
    pub fn charge(&self, mode: WriteMode, old_size: Option<u64>) -> QuotaCharge {
        let base = match mode {
            WriteMode::Append => old_size.unwrap_or(0),
            _ => 0,
        };
        QuotaCharge {
            account: self.clone(),
            mode,
            old_size: old_size.unwrap_or(0),
            new_file: old_size.is_none(),
            end: base,
            reserved: 0,
            settled: false,
        }
    }
}

/// The quota side of one upload in progress.
#[derive(Debug)]
pub struct QuotaCharge {
    account: QuotaAccount,
    mode: WriteMode,
    old_size: u64,
    new_file: bool,
    /// The end of the data written so far (the file's projected size for whole uploads).
    end: u64,
    reserved: u64,
    settled: bool,
}

impl QuotaCharge {
    /// Where sequential writes of this upload begin in the file.
    pub fn sequential_start(&self) -> u64 {
        match self.mode {
            WriteMode::Replace | WriteMode::CreateNew => 0,
            WriteMode::Append => self.old_size,
            WriteMode::At(offset) => offset,
        }
    }

    fn projected_size(&self, end: u64) -> u64 {
        match self.mode {
            WriteMode::Replace | WriteMode::CreateNew => end,
            WriteMode::Append | WriteMode::At(_) => end.max(self.old_size),
        }
    }

    fn growth(&self) -> i64 {
        let projected = i64::try_from(self.projected_size(self.end)).unwrap_or(i64::MAX);
        projected - i64::try_from(self.old_size).unwrap_or(i64::MAX)
    }

    /// Reserves what writing up to offset `end` (exclusive) would add; refuses the write if
    /// it would cross the limit.
    pub fn before_write(&mut self, end: u64) -> Result<()> {
        let end = end.max(self.end);
        let growth = self.projected_size(end).saturating_sub(self.old_size);
        if growth > self.reserved {
            self.account.reserve(growth - self.reserved)?;
            self.reserved = growth;
        }
        self.end = end;
        Ok(())
    }

    /// The upload ended; `kept` says whether its bytes are on disk (published, or written in
    /// place).
    pub fn finish(&mut self, kept: bool) {
        if self.settled {
            return;
        }
        self.settled = true;
        let (growth, files) = if kept { (self.growth(), i64::from(self.new_file)) } else { (0, 0) };
        self.account.settle(self.reserved, growth, files);
    }
}

impl Drop for QuotaCharge {
    fn drop(&mut self) {
        // An abandoned in-place write keeps what it wrote; an abandoned whole upload does not.
        let kept = !self.mode.is_atomic();
        self.finish(kept);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(bytes: u64, files: u64) -> QuotaAccount {
        QuotaAccount::new(QuotaConfig { bytes: Some(ByteSize(bytes)), files: Some(files) }, 0, 0)
    }

    #[test]
    fn concurrent_uploads_cannot_cross_together() {
        let quota = account(1_000, 10);
        let mut a = quota.charge(WriteMode::Replace, None);
        let mut b = quota.charge(WriteMode::Replace, None);
        a.before_write(600).expect("first half");
        assert!(matches!(b.before_write(600), Err(Error::QuotaExceeded)));
        b.before_write(400).expect("what is left");
        a.finish(true);
        b.finish(false);
        assert_eq!(quota.used(), (600, 1));
    }

    #[test]
    fn replacing_counts_the_difference_and_aborts_count_nothing() {
        let quota =
            QuotaAccount::new(QuotaConfig { bytes: Some(ByteSize(1_000)), files: None }, 900, 3);
        let mut smaller = quota.charge(WriteMode::Replace, Some(500));
        smaller.before_write(100).expect("shrinking needs no room");
        smaller.finish(true);
        assert_eq!(quota.used(), (500, 3));
        drop(quota.charge(WriteMode::Replace, None));
        assert_eq!(quota.used(), (500, 3), "an abandoned whole upload costs nothing");
        let mut resume = quota.charge(WriteMode::At(100), Some(100));
        resume.before_write(300).expect("grows by 200");
        drop(resume);
        assert_eq!(quota.used(), (700, 3), "an interrupted resume keeps what it wrote");
        quota.removed(700);
        assert_eq!(quota.used(), (0, 2));
    }

    #[test]
    fn file_count_limit() {
        let quota = QuotaAccount::new(QuotaConfig { bytes: None, files: Some(2) }, 0, 2);
        assert!(matches!(quota.check_open(true), Err(Error::QuotaExceeded)));
        quota.check_open(false).expect("overwriting an existing file adds no file");
    }
}
