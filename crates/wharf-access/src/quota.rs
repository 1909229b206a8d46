//! Per-user quotas (bytes and files in the user's home) and bandwidth settings.
//!
//! Usage is measured at the user's first login after start or reload, by walking the home,
//! into one ledger per user that lives as long as the process: sessions opened before and
//! after a reload share it. After that Wharf keeps it current from its own uploads, renames
//! and deletions; changes made outside Wharf are picked up at the next measurement.
//! Only the home (the folder mounted at `/`) counts: shared folders mounted elsewhere belong
//! to nobody's quota.
//!
//! The rule, so that concurrent sessions of one user (on any protocols) cannot together
//! cross either limit:
//!
//! - **Reserve before spending.** An upload that may add a file (its name was free when it
//!   opened) reserves a place in the file count when it opens, and is refused there when
//!   files used plus places reserved reach the limit. Bytes are reserved before each write
//!   reaches storage, for the growth that write causes; the write that would cross the limit
//!   is refused.
//! - **Settle on what storage did.** A whole-file upload is checked once more while its
//!   name is held still by the backend, with what the name holds at that moment (the backend
//!   looks in the same blocking call as the publishing rename): if the name was freed since
//!   the open, a place must be reserved now; if the replaced file is smaller than thought,
//!   more bytes must be; otherwise the upload is refused and the old file stays. Publication
//!   then settles exactly: one file more only if no regular file was replaced, and the
//!   size difference with the replaced file. Two uploads to one new name therefore count one
//!   file: the second replaces the first. An abandoned whole-file upload releases everything.
//! - In-place writes (append, resume) keep what they wrote even when interrupted, and add a
//!   file when the backend's open created it (the kernel says so, `O_EXCL`). A resume whose
//!   file is deleted between the session's look and the open recreates it without a reserved
//!   place; that one file is counted even if it goes over the file limit.
//! - Deleting or replacing a file by a rename frees exactly the regular file storage reports
//!   it removed. A rename never moves a file between the home and another mount (the tree
//!   refuses it), so it moves no usage.
//!
//! In a cluster the ledger lives in the shared database instead, with the same rules; see
//! `shared_quota.rs` for what changes.

use std::sync::{Arc, Mutex, MutexGuard};

use serde::Deserialize;
use wharf_vfs::{CheckAnswer, Error, PublishCheck, Result, WriteMode};

use crate::shared_quota::{LedgerVersion, RESERVE_AHEAD, Reserve, Settlement, SharedLedgers};
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

/// A ledger kept by this process.
#[derive(Debug, Default)]
struct Ledger {
    limits: QuotaConfig,
    used_bytes: u64,
    used_files: u64,
    /// Growth reserved by uploads in progress.
    reserved_bytes: u64,
    /// Places in the file count reserved by uploads in progress that may add a file.
    reserved_files: u64,
}

/// Where an account's numbers live.
#[derive(Debug)]
enum Book {
    /// In this process.
    Local(Mutex<Ledger>),
    /// In a store the nodes of a cluster share; `held` is what this process's uploads hold
    /// there (bytes, places).
    Shared {
        ledgers: Arc<dyn SharedLedgers>,
        user: String,
        limits: Mutex<QuotaConfig>,
        held: Mutex<(u64, u64)>,
    },
}

/// What one upload holds reserved.
#[derive(Debug, Default)]
struct Held {
    bytes: u64,
    place: bool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// A user's quota: the limits and the shared ledger of what is used.
#[derive(Debug, Clone)]
pub struct QuotaAccount {
    book: Arc<Book>,
}

impl QuotaAccount {
    /// An account kept by this process with `limits`, starting at the measured usage.
    pub fn new(limits: QuotaConfig, used_bytes: u64, used_files: u64) -> Self {
        let ledger = Ledger { limits, used_bytes, used_files, ..Ledger::default() };
        QuotaAccount { book: Arc::new(Book::Local(Mutex::new(ledger))) }
    }

    /// An account of `user` kept in `ledgers`, shared with the other nodes of a cluster,
    /// with `limits`; the measured usage (bytes, files), begun when the ledger stood at
    /// `since`, is recorded there.
    pub async fn shared(
        ledgers: Arc<dyn SharedLedgers>,
        user: &str,
        limits: QuotaConfig,
        used: (u64, u64),
        since: LedgerVersion,
    ) -> Result<Self> {
        ledgers.measured(user, used, since).await?;
        let book = Book::Shared {
            ledgers,
            user: user.to_owned(),
            limits: Mutex::new(limits),
            held: Mutex::new((0, 0)),
        };
        Ok(QuotaAccount { book: Arc::new(book) })
    }

    /// Replaces the limits and the usage with a new measurement (a reload); reservations of
    /// uploads in progress stay, and every session sharing the account sees the change. A
    /// shared account records the measurement only if its ledger still stands at `since`.
    pub async fn remeasured(
        &self,
        limits: QuotaConfig,
        used: (u64, u64),
        since: LedgerVersion,
    ) -> Result<()> {
        match &*self.book {
            Book::Local(ledger) => {
                let mut ledger = lock(ledger);
                ledger.limits = limits;
                (ledger.used_bytes, ledger.used_files) = used;
                Ok(())
            }
            Book::Shared { ledgers, user, limits: current, .. } => {
                *lock(current) = limits;
                ledgers.measured(user, used, since).await
            }
        }
    }

    /// Bytes and files used now (reservations not included); across the cluster for a
    /// shared account.
    pub async fn used(&self) -> Result<(u64, u64)> {
        match &*self.book {
            Book::Local(ledger) => {
                let ledger = lock(ledger);
                Ok((ledger.used_bytes, ledger.used_files))
            }
            Book::Shared { ledgers, user, .. } => ledgers.usage(user).await,
        }
    }

    /// Bytes and file places reserved by this process's uploads in progress.
    pub fn reserved(&self) -> (u64, u64) {
        match &*self.book {
            Book::Local(ledger) => {
                let ledger = lock(ledger);
                (ledger.reserved_bytes, ledger.reserved_files)
            }
            Book::Shared { held, .. } => *lock(held),
        }
    }

    /// Opens the quota side of an upload in `mode` to a name that held a file of
    /// `existing` bytes (`None`: no file, so the upload may add one and reserves a place).
    /// Refused when that place is not free, or when the byte limit is already reached
    /// (opening a file that would stay empty is refused too: the user must free space first).
    pub async fn open_upload(&self, mode: WriteMode, existing: Option<u64>) -> Result<QuotaCharge> {
        let place = existing.is_none();
        let held = Arc::new(Mutex::new(Held::default()));
        self.reserve(&held, Reserve { bytes: 0, files: u64::from(place), must_fit: 1 }).await?;
        let end = match mode {
            WriteMode::Append => existing.unwrap_or(0),
            _ => 0,
        };
        Ok(QuotaCharge {
            account: self.clone(),
            mode,
            old_size: existing.unwrap_or(0),
            adds_file: place,
            end,
            held,
            settled: false,
        })
    }

    /// Adds `reserve` to what `held` holds, if it fits.
    async fn reserve(&self, held: &Mutex<Held>, reserve: Reserve) -> Result<()> {
        match &*self.book {
            Book::Local(ledger) => {
                let mut ledger = lock(ledger);
                let used = (ledger.used_bytes, ledger.used_files);
                let reserved = (ledger.reserved_bytes, ledger.reserved_files);
                if !reserve.fits(&ledger.limits, used, reserved) {
                    return Err(Error::QuotaExceeded);
                }
                ledger.reserved_bytes += reserve.bytes;
                ledger.reserved_files += reserve.files;
            }
            Book::Shared { ledgers, user, limits, held: total } => {
                let limits = *lock(limits);
                if !ledgers.reserve(user, limits, reserve).await? {
                    return Err(Error::QuotaExceeded);
                }
                let mut total = lock(total);
                total.0 += reserve.bytes;
                total.1 += reserve.files;
            }
        }
        let mut held = lock(held);
        held.bytes += reserve.bytes;
        held.place |= reserve.files > 0;
        Ok(())
    }

    /// Reserves `need` more bytes for `held`, which holds `holding` now. A shared account
    /// asks for more ahead (see `shared_quota.rs`), and for just `need` when that is refused.
    async fn reserve_growth(&self, held: &Mutex<Held>, need: u64, holding: u64) -> Result<()> {
        let exact = Reserve { bytes: need, ..Reserve::default() };
        if matches!(*self.book, Book::Shared { .. }) {
            let ahead = holding.saturating_add(need).min(RESERVE_AHEAD);
            let generous = Reserve { bytes: need.saturating_add(ahead), ..Reserve::default() };
            match self.reserve(held, generous).await {
                Err(Error::QuotaExceeded) => {}
                other => return other,
            }
        }
        self.reserve(held, exact).await
    }

    /// Makes `held` cover publishing `size` bytes over what the name holds now (`replaced`):
    /// a place if no regular file is replaced, the growth in bytes. Refuses when that does not
    /// fit. Called by the backend with the name held still.
    fn cover(self, held: Arc<Mutex<Held>>, replaced: Option<u64>, size: u64) -> CheckAnswer {
        Box::pin(async move {
            let missing = {
                let held = lock(&held);
                let place = replaced.is_none() && !held.place;
                let bytes = size.saturating_sub(replaced.unwrap_or(0)).saturating_sub(held.bytes);
                Reserve { bytes, files: u64::from(place), must_fit: 0 }
            };
            if missing == Reserve::default() {
                return Ok(());
            }
            self.reserve(&held, missing).await
        })
    }

    /// Releases what `held` reserves and records that the home grew by `growth` bytes (less
    /// when negative) and `files` files.
    fn settle(&self, held: &Mutex<Held>, growth: i64, files: i64) {
        let held = std::mem::take(&mut *lock(held));
        self.apply(Settlement {
            released_bytes: held.bytes,
            released_files: u64::from(held.place),
            growth_bytes: growth,
            growth_files: files,
        });
    }

    fn apply(&self, settlement: Settlement) {
        match &*self.book {
            Book::Local(ledger) => {
                let mut ledger = lock(ledger);
                ledger.reserved_bytes =
                    ledger.reserved_bytes.saturating_sub(settlement.released_bytes);
                ledger.reserved_files =
                    ledger.reserved_files.saturating_sub(settlement.released_files);
                ledger.used_bytes =
                    ledger.used_bytes.saturating_add_signed(settlement.growth_bytes);
                ledger.used_files =
                    ledger.used_files.saturating_add_signed(settlement.growth_files);
            }
            Book::Shared { ledgers, user, held, .. } => {
                {
                    let mut held = lock(held);
                    held.0 = held.0.saturating_sub(settlement.released_bytes);
                    held.1 = held.1.saturating_sub(settlement.released_files);
                }
                if settlement != Settlement::default() {
                    ledgers.settle(user, settlement);
                }
            }
        }
    }

    /// Holds a place for `held` without asking whether it fits: the file exists already. A
    /// shared account holds nothing; the file is counted when the upload settles.
    fn hold_unchecked_place(&self, held: &Mutex<Held>) {
        if let Book::Local(ledger) = &*self.book {
            lock(ledger).reserved_files += 1;
            lock(held).place = true;
        }
    }

    /// Records that storage removed the regular file of `size` bytes from the home (deleted,
    /// or replaced by a rename); `None` (a link, a special file, nothing) frees nothing.
    pub fn removed(&self, size: Option<u64>) {
        if let Some(size) = size {
            self.apply(Settlement {
                growth_bytes: -signed(size),
                growth_files: -1,
                ..Settlement::default()
            });
        }
    }
}

/// The quota side of one upload in progress.
#[derive(Debug)]
pub struct QuotaCharge {
    account: QuotaAccount,
    mode: WriteMode,
    /// The size of the file when the upload opened.
    old_size: u64,
    /// Whether the upload adds a file to the count, as far as is known so far.
    adds_file: bool,
    /// The end of the data written so far (the file's projected size for whole uploads).
    end: u64,
    /// What the upload holds reserved; shared with the publish check.
    held: Arc<Mutex<Held>>,
    settled: bool,
}

fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
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

    /// Reserves what writing up to offset `end` (exclusive) would add; refuses the write if
    /// it would cross the limit.
    pub async fn before_write(&mut self, end: u64) -> Result<()> {
        let end = end.max(self.end);
        let growth = self.projected_size(end).saturating_sub(self.old_size);
        let holding = lock(&self.held).bytes;
        if growth > holding {
            self.account.reserve_growth(&self.held, growth - holding, holding).await?;
        }
        self.end = end;
        Ok(())
    }

    /// An in-place write was opened; `created` says whether the backend's open created the
    /// file. A place reserved for a file that existed after all is released; a file created
    /// without one (its old file was deleted since the session looked) is counted anyway.
    pub fn opened_in_place(&mut self, created: bool) {
        if created == self.adds_file {
            return;
        }
        self.adds_file = created;
        if created {
            self.account.hold_unchecked_place(&self.held);
            return;
        }
        let had_place = std::mem::take(&mut lock(&self.held).place);
        if had_place {
            self.account.apply(Settlement { released_files: 1, ..Settlement::default() });
        }
    }

    /// The check the backend runs just before publishing a whole-file upload (see the module
    /// documentation); `None` for in-place writes, which publish nothing.
    pub fn publish_check(&self) -> Option<PublishCheck> {
        if !self.mode.is_atomic() {
            return None;
        }
        let (account, held) = (self.account.clone(), self.held.clone());
        Some(Box::new(move |replaced, size| account.cover(held, replaced, size)))
    }

    /// The upload was committed: a whole-file upload of `size` bytes was published over the
    /// regular file of `replaced` bytes (`None`: none); an in-place write keeps what it wrote.
    pub fn committed(&mut self, replaced: Option<u64>, size: u64) {
        if !self.mode.is_atomic() {
            return self.finish();
        }
        if std::mem::replace(&mut self.settled, true) {
            return;
        }
        let growth = signed(size) - signed(replaced.unwrap_or(0));
        self.account.settle(&self.held, growth, i64::from(replaced.is_none()));
    }

    /// The upload ended without publishing a whole file: an in-place write keeps what it
    /// wrote, a whole-file upload leaves nothing.
    pub fn finish(&mut self) {
        if std::mem::replace(&mut self.settled, true) {
            return;
        }
        let (growth, files) = if self.mode.is_atomic() {
            (0, 0)
        } else {
            (
                signed(self.projected_size(self.end)) - signed(self.old_size),
                i64::from(self.adds_file),
            )
        };
        self.account.settle(&self.held, growth, files);
    }
}

impl Drop for QuotaCharge {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(bytes: Option<u64>, files: Option<u64>, used: (u64, u64)) -> QuotaAccount {
        QuotaAccount::new(QuotaConfig { bytes: bytes.map(ByteSize), files }, used.0, used.1)
    }

    async fn used(quota: &QuotaAccount) -> (u64, u64) {
        quota.used().await.expect("a local account answers")
    }

    /// Publishes `charge` as the backend would: the check with what the name holds, then the
    /// settlement.
    async fn publish(mut charge: QuotaCharge, replaced: Option<u64>, size: u64) -> Result<()> {
        let check = charge.publish_check().expect("a whole-file upload");
        check(replaced, size).await?;
        charge.committed(replaced, size);
        Ok(())
    }

    #[tokio::test]
    async fn concurrent_uploads_cannot_cross_the_byte_limit_together() {
        let quota = account(Some(1_000), None, (0, 0));
        let mut a = quota.open_upload(WriteMode::Replace, None).await.expect("a");
        let mut b = quota.open_upload(WriteMode::Replace, None).await.expect("b");
        a.before_write(600).await.expect("first half");
        assert!(matches!(b.before_write(600).await, Err(Error::QuotaExceeded)));
        b.before_write(400).await.expect("what is left");
        publish(a, None, 600).await.expect("publish a");
        drop(b);
        assert_eq!(used(&quota).await, (600, 1));
        assert_eq!(quota.reserved(), (0, 0));
    }

    #[tokio::test]
    async fn a_new_file_reserves_its_place_when_it_opens() {
        let quota = account(None, Some(3), (10, 1));
        let a = quota.open_upload(WriteMode::Replace, None).await.expect("a");
        let b = quota.open_upload(WriteMode::CreateNew, None).await.expect("b");
        assert_eq!(quota.reserved(), (0, 2));
        let refused = quota.open_upload(WriteMode::Replace, None).await.expect_err("no place left");
        assert!(matches!(refused, Error::QuotaExceeded));
        let refused = quota.open_upload(WriteMode::At(0), None).await.expect_err("in place too");
        assert!(matches!(refused, Error::QuotaExceeded));
        // Overwriting an existing file needs no place.
        let c = quota.open_upload(WriteMode::Replace, Some(10)).await.expect("overwrite");
        publish(a, None, 0).await.expect("a");
        drop(b);
        assert_eq!(
            (used(&quota).await, quota.reserved()),
            ((10, 2), (0, 0)),
            "an abort frees its place"
        );
        publish(c, Some(10), 4).await.expect("c");
        assert_eq!(used(&quota).await, (4, 2), "the replaced file's bytes are freed");
    }

    #[tokio::test]
    async fn publication_settles_on_what_was_really_replaced() {
        let quota = account(Some(1_000), Some(10), (500, 2));
        // Opened as a replacement of a 300-byte file, which was deleted meanwhile: the upload
        // adds a file after all, and all its bytes.
        let mut charge = quota.open_upload(WriteMode::Replace, Some(300)).await.expect("open");
        charge.before_write(400).await.expect("400 bytes, 100 more than the old file");
        quota.removed(Some(300));
        assert_eq!(used(&quota).await, (200, 1));
        publish(charge, None, 400).await.expect("there is room");
        assert_eq!((used(&quota).await, quota.reserved()), ((600, 2), (0, 0)));

        // Replacing a 100-byte file with 50 bytes shrinks the home.
        let charge = quota.open_upload(WriteMode::Replace, Some(100)).await.expect("open");
        publish(charge, Some(100), 50).await.expect("smaller");
        assert_eq!(used(&quota).await, (550, 2));
    }

    #[tokio::test]
    async fn a_publication_that_would_cross_a_limit_is_refused_and_releases_everything() {
        // The file to overwrite is deleted and its bytes taken by another upload while this
        // upload runs: publishing it as a new file would go over both limits.
        let quota = account(Some(1_000), Some(2), (900, 2));
        let mut over = quota.open_upload(WriteMode::Replace, Some(900)).await.expect("overwrite");
        over.before_write(900).await.expect("no growth");
        quota.removed(Some(900));
        let mut other = quota.open_upload(WriteMode::Replace, None).await.expect("takes the place");
        other.before_write(900).await.expect("and the bytes");
        publish(other, None, 900).await.expect("published first");
        let err = publish(over, None, 900).await.expect_err("nothing left for it");
        assert!(matches!(err, Error::QuotaExceeded));
        assert_eq!((used(&quota).await, quota.reserved()), ((900, 2), (0, 0)));
    }

    #[tokio::test]
    async fn two_uploads_to_one_new_name_count_one_file() {
        let quota = account(Some(1_000), Some(5), (0, 0));
        let mut first = quota.open_upload(WriteMode::Replace, None).await.expect("first");
        let mut second = quota.open_upload(WriteMode::Replace, None).await.expect("second");
        first.before_write(100).await.expect("write");
        second.before_write(70).await.expect("write");
        publish(first, None, 100).await.expect("first publishes a new file");
        // The second finds the first's file under the name and replaces it.
        publish(second, Some(100), 70).await.expect("second replaces it");
        assert_eq!((used(&quota).await, quota.reserved()), ((70, 1), (0, 0)));
    }

    #[tokio::test]
    async fn in_place_writes_keep_what_they_wrote_and_count_created_files() {
        let quota = account(Some(1_000), Some(10), (100, 1));
        let mut resume = quota.open_upload(WriteMode::At(100), Some(100)).await.expect("resume");
        resume.opened_in_place(false);
        resume.before_write(300).await.expect("grows by 200");
        drop(resume);
        assert_eq!(used(&quota).await, (300, 1), "an interrupted resume keeps what it wrote");

        let mut append = quota.open_upload(WriteMode::Append, None).await.expect("new log");
        append.opened_in_place(true);
        append.before_write(50).await.expect("50 bytes");
        append.finish();
        assert_eq!((used(&quota).await, quota.reserved()), ((350, 2), (0, 0)));

        // Another session created the file between the look and the open: no file added.
        let mut raced = quota.open_upload(WriteMode::At(0), None).await.expect("open");
        assert_eq!(quota.reserved(), (0, 1));
        raced.opened_in_place(false);
        assert_eq!(quota.reserved(), (0, 0), "the place is released at once");
        drop(raced);
        // The file to resume was deleted between the look and the open: the open created it.
        quota.removed(Some(0));
        let mut recreated = quota.open_upload(WriteMode::At(0), Some(0)).await.expect("open");
        recreated.opened_in_place(true);
        drop(recreated);
        assert_eq!((used(&quota).await, quota.reserved()), ((350, 2), (0, 0)));
    }

    #[tokio::test]
    async fn deletes_and_renames_over_free_exactly_the_regular_file_removed() {
        let quota = account(Some(1_000), Some(3), (600, 3));
        quota.removed(Some(200));
        assert_eq!(used(&quota).await, (400, 2));
        quota.removed(None);
        assert_eq!(used(&quota).await, (400, 2), "a link or nothing frees nothing");
        quota.open_upload(WriteMode::Replace, None).await.expect("the freed place is usable");
    }

    #[tokio::test]
    async fn a_remeasurement_keeps_reservations_and_applies_new_limits_to_every_session() {
        let quota = account(None, Some(1), (0, 0));
        let session_before_reload = quota.clone();
        let upload =
            session_before_reload.open_upload(WriteMode::Replace, None).await.expect("open");
        quota
            .remeasured(
                QuotaConfig { bytes: None, files: Some(1) },
                (0, 0),
                LedgerVersion::default(),
            )
            .await
            .expect("remeasured");
        let err = quota.open_upload(WriteMode::Replace, None).await.expect_err("the place is held");
        assert!(matches!(err, Error::QuotaExceeded));
        publish(upload, None, 0).await.expect("publish");
        assert_eq!(used(&quota).await, (0, 1));
        quota
            .remeasured(
                QuotaConfig { bytes: None, files: Some(5) },
                (0, 1),
                LedgerVersion::default(),
            )
            .await
            .expect("remeasured");
        session_before_reload.open_upload(WriteMode::Replace, None).await.expect("new limit seen");
    }
}
