//! The session a front-end gets after login: the user's view of the tree, with every
//! operation checked against the user's rules before it reaches storage, and audited.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use wharf_vfs::{
    Capabilities, DirEntry, DirLister, Error, Metadata, Result, Space, Storage, Tree, VPath,
    WriteMode,
};

use crate::audit::{Actor, AuditEvent, Operation, Outcome};
use crate::defender::{Defender, Offense};
use crate::live_sessions::{LiveTicket, TransferTicket};
use crate::permissions::Permissions;
use crate::protocol::Protocol;
use crate::quota::QuotaAccount;
use crate::throttle::RateLimiter;
use crate::transfer::{Download, Upload};
use crate::user::User;
use crate::user_sessions::UserPlace;

/// The resources a session draws on, shared with the user's other sessions: the quota of
/// the home and the bandwidth limits.
#[derive(Debug, Clone, Default)]
pub struct ResourceLimits {
    /// The home's quota, if the user has one.
    pub quota: Option<QuotaAccount>,
    /// The download rate limit, if any.
    pub download: Option<Arc<RateLimiter>>,
    /// The upload rate limit, if any.
    pub upload: Option<Arc<RateLimiter>>,
}

/// A logged-in user's view of the tree. Cheap to clone; clones share the session.
#[derive(Clone)]
pub struct Session {
    inner: Arc<SessionInner>,
}

struct SessionInner {
    actor: Actor,
    user: Arc<User>,
    tree: Tree,
    /// Permissions the login method allows at most (anonymous logins read only).
    mask: Permissions,
    limits: ResourceLimits,
    defender: Arc<Defender>,
    started: Instant,
    places: Places,
}

/// Where a session is counted and listed while it is open; it leaves both when it ends.
#[derive(Debug)]
pub(crate) struct Places {
    /// The session's place among its user's sessions (`max_sessions`), if counted; held
    /// only to be given back.
    pub(crate) _user: Option<UserPlace>,
    /// The session's entry in the list of live sessions, with its kill signal.
    pub(crate) live: LiveTicket,
}

impl Drop for SessionInner {
    fn drop(&mut self) {
        AuditEvent {
            actor: &self.actor,
            op: Operation::Logout,
            path: None,
            to: None,
            bytes: None,
            sha256: None,
            duration: self.started.elapsed(),
            outcome: Outcome::Ok,
            detail: None,
        }
        .emit();
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("actor", &self.inner.actor).finish_non_exhaustive()
    }
}

impl Session {
    pub(crate) fn new(
        actor: Actor,
        user: Arc<User>,
        tree: Tree,
        mask: Permissions,
        limits: ResourceLimits,
        defender: Arc<Defender>,
        places: Places,
    ) -> Session {
        let started = Instant::now();
        let inner = SessionInner { actor, user, tree, mask, limits, defender, started, places };
        Session { inner: Arc::new(inner) }
    }

    /// Resolves when an operator ends this session ([`crate::LiveSessions::kill`]). Every
    /// front-end watches it next to the shutdown's `terminated` and closes the connection.
    pub async fn killed(&self) {
        self.inner.places.live.kill_signal().cancelled().await
    }

    /// Whether an operator has ended this session.
    pub fn is_killed(&self) -> bool {
        self.inner.places.live.kill_signal().is_cancelled()
    }

    /// Lists a transfer in progress under this session, for operators.
    pub(crate) fn list_transfer(&self, op: Operation, path: VPath) -> TransferTicket {
        self.inner.places.live.transfer(op, path)
    }

    /// Counts `offense` (a hostile path, a malformed request) against the client's address,
    /// on every protocol.
    pub fn report(&self, offense: Offense) {
        self.inner.defender.report(self.inner.actor.peer.ip(), offense);
    }

    /// The quota that `path` counts against: the home's, for paths in the home.
    fn quota_at(&self, path: &VPath) -> Option<&QuotaAccount> {
        let in_home = self.inner.tree.mount_point_of(path).is_some_and(VPath::is_root);
        self.inner.limits.quota.as_ref().filter(|_| in_home)
    }

    /// The quota of the user's home, if any: (bytes used, files used), across the cluster
    /// when the quota is shared.
    pub async fn quota_used(&self) -> Result<Option<(u64, u64)>> {
        match &self.inner.limits.quota {
            Some(quota) => quota.used().await.map(Some),
            None => Ok(None),
        }
    }

    /// Who is acting, for front-ends' own log lines.
    pub fn actor(&self) -> &Actor {
        &self.inner.actor
    }

    /// The user's name.
    pub fn user_name(&self) -> &str {
        &self.inner.user.name
    }

    /// The user's settings (TLS requirement, SSH methods, ...).
    pub fn user(&self) -> &User {
        &self.inner.user
    }

    /// The protocol of this session.
    pub fn protocol(&self) -> Protocol {
        self.inner.actor.protocol
    }

    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.inner.actor.peer
    }

    /// What the storage under this view can do.
    pub fn capabilities(&self) -> Capabilities {
        self.inner.tree.capabilities()
    }

    /// The permissions that apply at `path` for this session.
    pub fn permissions(&self, path: &VPath) -> Permissions {
        self.inner.user.rules.at(path) & self.inner.mask
    }

    /// Whether a rule granting something lies strictly below `path`, so the user must be able
    /// to pass through it even without rights of its own there.
    fn leads_somewhere(&self, path: &VPath) -> bool {
        self.inner.user.rules.iter().any(|(prefix, perms)| {
            prefix != path && prefix.starts_with(path) && !(*perms & self.inner.mask).is_empty()
        })
    }

    /// Whether `path` is a granting rule's prefix or leads to one.
    fn on_way_to_rule(&self, path: &VPath) -> bool {
        self.inner.user.rules.iter().any(|(prefix, perms)| {
            prefix.starts_with(path) && !(*perms & self.inner.mask).is_empty()
        })
    }

    /// Whether `path` shows up at all: a path without any permission is invisible.
    fn visible(&self, path: &VPath) -> bool {
        !self.permissions(path).is_empty() || self.leads_somewhere(path)
    }

    /// Checks that `needed` is granted at `path`. A path the user has no rights at all on
    /// answers "not found", as if it did not exist.
    fn require(&self, path: &VPath, needed: Permissions) -> Result<()> {
        let granted = self.permissions(path);
        if granted.is_empty() && !self.leads_somewhere(path) {
            Err(Error::NotFound)
        } else if granted.contains(needed) {
            Ok(())
        } else {
            Err(Error::PermissionDenied)
        }
    }

    pub(crate) fn audit(
        &self,
        op: Operation,
        path: &VPath,
        to: Option<&VPath>,
        started: Instant,
        outcome: Outcome,
    ) {
        AuditEvent {
            actor: &self.inner.actor,
            op,
            path: Some(path),
            to,
            bytes: None,
            sha256: None,
            duration: started.elapsed(),
            outcome,
            detail: None,
        }
        .emit();
    }

    async fn audited<T>(
        &self,
        op: Operation,
        path: &VPath,
        to: Option<&VPath>,
        work: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let started = Instant::now();
        let result = work.await;
        self.audit(op, path, to, started, Outcome::of(&result));
        result
    }

    /// Attributes of `path` (links inside the tree followed). Visible paths only.
    pub async fn stat(&self, path: &VPath) -> Result<Metadata> {
        self.audited(Operation::Stat, path, None, async {
            if !self.visible(path) {
                return Err(Error::NotFound);
            }
            self.inner.tree.stat(path).await
        })
        .await
    }

    /// Attributes of `path` itself, not following a final symbolic link.
    pub async fn lstat(&self, path: &VPath) -> Result<Metadata> {
        self.audited(Operation::Stat, path, None, async {
            if !self.visible(path) {
                return Err(Error::NotFound);
            }
            self.inner.tree.lstat(path).await
        })
        .await
    }

    /// Starts listing the directory `dir` (needs `list`, or a rule further down to lead to).
    /// Entries the user has no rights on are left out.
    pub async fn list(&self, dir: &VPath) -> Result<Listing> {
        self.audited(Operation::List, dir, None, async {
            // Without `list`, a directory on the way to a deeper rule can still be listed, but
            // only the entries leading to granted rules are shown.
            let passing_through = !self.permissions(dir).contains(Permissions::LIST);
            if passing_through && !self.leads_somewhere(dir) {
                self.require(dir, Permissions::LIST)?;
            }
            let lister = self.inner.tree.list(dir).await?;
            Ok(Listing { lister, dir: dir.clone(), session: self.clone(), passing_through })
        })
        .await
    }

    /// Opens `path` for download (needs `download`).
    pub async fn open_read(&self, path: &VPath) -> Result<Download> {
        let started = Instant::now();
        let opened = async {
            self.require(path, Permissions::DOWNLOAD)?;
            self.inner.tree.open_read(path).await
        }
        .await;
        match opened {
            Ok(file) => Ok(Download::new(
                self.clone(),
                path.clone(),
                file,
                started,
                self.inner.limits.download.clone(),
            )),
            Err(err) => {
                self.audit(Operation::Download, path, None, started, Outcome::of_error(&err));
                Err(err)
            }
        }
    }

    /// Opens `path` for upload.
    ///
    /// A whole-file upload ([`WriteMode::Replace`]) needs `upload` for a new file and
    /// `overwrite` for an existing one; [`WriteMode::CreateNew`] needs `upload`. Writing in
    /// place ([`WriteMode::Append`], [`WriteMode::At`]) into an existing file is a resume and
    /// needs `append`; into a new file it needs `upload`.
    ///
    /// The name is looked up first only when the answer changes what is decided here (see
    /// [`Session::open_needs_lookup`]); otherwise the publishing commit is what finds out, with
    /// the name locked, whether it replaces a file or meets a directory.
    pub async fn open_write(&self, path: &VPath, mode: WriteMode) -> Result<Upload> {
        let started = Instant::now();
        let opened = async {
            let existing = if self.open_needs_lookup(path, mode) {
                match self.inner.tree.lstat(path).await {
                    Ok(meta) if meta.is_dir() => return Err(Error::IsADirectory),
                    Ok(meta) => Some(meta),
                    Err(Error::NotFound) => None,
                    Err(err) => return Err(err),
                }
            } else {
                None
            };
            let exists = existing.is_some();
            let needed = match (mode, exists) {
                (_, false) => Permissions::UPLOAD,
                (WriteMode::Replace, true) => Permissions::OVERWRITE,
                (WriteMode::CreateNew, true) => Permissions::UPLOAD,
                (WriteMode::Append | WriteMode::At(_), true) => Permissions::APPEND,
            };
            self.require(path, needed)?;
            let capabilities = self.inner.tree.capabilities_at(path);
            // A resume at the end of the stored file is an append: storage that can append
            // but not write at any offset (object storage) still takes it.
            let at_the_end = |offset: u64| existing.as_ref().is_some_and(|m| m.size == offset);
            match mode {
                WriteMode::Append if !capabilities.append => {
                    return Err(Error::Unsupported("appending is not supported on this folder"));
                }
                WriteMode::At(offset)
                    if offset > 0
                        && !capabilities.random_write
                        && !(capabilities.append && at_the_end(offset)) =>
                {
                    return Err(Error::Unsupported(
                        "resuming uploads is not supported on this folder",
                    ));
                }
                _ => {}
            }
            // Quotas count regular files: an upload over a link adds one.
            let existing_file = existing.filter(Metadata::is_file).map(|meta| meta.size);
            let mut charge = match self.quota_at(path) {
                Some(quota) => Some(quota.open_upload(mode, existing_file).await?),
                None => None,
            };
            let file = self.inner.tree.open_write(path, mode).await?;
            if let Some(charge) = charge.as_mut().filter(|_| !mode.is_atomic()) {
                charge.opened_in_place(file.created());
            }
            Ok((file, charge))
        }
        .await;
        match opened {
            Ok((file, charge)) => Ok(Upload::new(
                self.clone(),
                path.clone(),
                file,
                mode,
                started,
                charge,
                self.inner.limits.upload.clone(),
            )),
            Err(err) => {
                self.audit(Operation::Upload, path, None, started, Outcome::of_error(&err));
                Err(err)
            }
        }
    }

    /// Whether opening `path` for upload in `mode` must look the name up first: for anything
    /// but a whole-file upload ([`WriteMode::Replace`]), when the user lacks `upload` or
    /// `overwrite` there (which one is needed depends on it), and under a quota (what is
    /// reserved at open depends on the size of the file replaced). A whole-file upload by a user
    /// who may both create and replace, outside any quota, needs no lookup: the commit renames
    /// over whatever the name holds (and refuses a directory), which costs a storage round
    /// trip less per file (docs/BENCHMARKS.md, "The SFTP small-file upload").
    fn open_needs_lookup(&self, path: &VPath, mode: WriteMode) -> bool {
        mode != WriteMode::Replace
            || !self.permissions(path).contains(Permissions::UPLOAD | Permissions::OVERWRITE)
            || self.quota_at(path).is_some()
    }

    /// Renames `from` to `to`: needs `rename` at the source, and at the target `overwrite`
    /// if something is there, else `upload` for a file or `mkdir` for a directory.
    pub async fn rename(&self, from: &VPath, to: &VPath) -> Result<()> {
        self.audited(Operation::Rename, from, Some(to), async {
            self.require(from, Permissions::RENAME)?;
            let source = self.inner.tree.lstat(from).await?;
            let needed = match self.inner.tree.lstat(to).await {
                Ok(_) => Permissions::OVERWRITE,
                Err(Error::NotFound) if source.is_dir() => Permissions::MKDIR,
                Err(Error::NotFound) => Permissions::UPLOAD,
                Err(err) => return Err(err),
            };
            self.require(to, needed)?;
            // Both ends are in one mount (the tree refuses others), so under one quota or
            // none: the rename moves no usage and frees only the file it replaced.
            let replaced = self.inner.tree.rename(from, to).await?;
            if let Some(quota) = self.quota_at(to) {
                quota.removed(replaced);
            }
            Ok(())
        })
        .await
    }

    /// Removes the file `path` (needs `delete`).
    pub async fn remove_file(&self, path: &VPath) -> Result<()> {
        self.audited(Operation::RemoveFile, path, None, async {
            self.require(path, Permissions::DELETE)?;
            let removed = self.inner.tree.remove_file(path).await?;
            if let Some(quota) = self.quota_at(path) {
                quota.removed(removed);
            }
            Ok(())
        })
        .await
    }

    /// Creates the directory `path` (needs `mkdir`).
    pub async fn make_dir(&self, path: &VPath) -> Result<()> {
        self.audited(Operation::MakeDir, path, None, async {
            self.require(path, Permissions::MKDIR)?;
            self.inner.tree.make_dir(path).await
        })
        .await
    }

    /// Removes the empty directory `path` (needs `rmdir`).
    pub async fn remove_dir(&self, path: &VPath) -> Result<()> {
        self.audited(Operation::RemoveDir, path, None, async {
            self.require(path, Permissions::RMDIR)?;
            self.inner.tree.remove_dir(path).await
        })
        .await
    }

    /// Sets the modification time (and optionally access time) of `path` (needs `setattr`).
    pub async fn set_times(
        &self,
        path: &VPath,
        modified: SystemTime,
        accessed: Option<SystemTime>,
    ) -> Result<()> {
        self.audited(Operation::SetTimes, path, None, async {
            self.require(path, Permissions::SETATTR)?;
            self.inner.tree.set_times(path, modified, accessed).await
        })
        .await
    }

    /// Sets the permission bits of `path` (needs `setattr`; set-id bits are never set).
    pub async fn set_mode(&self, path: &VPath, mode: u32) -> Result<()> {
        self.audited(Operation::SetMode, path, None, async {
            self.require(path, Permissions::SETATTR)?;
            self.inner.tree.set_mode(path, mode).await
        })
        .await
    }

    /// The target of the symbolic link `path` (needs `list`).
    pub async fn read_link(&self, path: &VPath) -> Result<String> {
        self.audited(Operation::ReadLink, path, None, async {
            self.require(path, Permissions::LIST)?;
            self.inner.tree.read_link(path).await
        })
        .await
    }

    /// Free and total space where `path` lives (any visible path).
    pub async fn space(&self, path: &VPath) -> Result<Space> {
        self.audited(Operation::Space, path, None, async {
            if !self.visible(path) {
                return Err(Error::NotFound);
            }
            self.inner.tree.space(path).await
        })
        .await
    }
}

/// A directory listing in progress, in batches, showing only what the user may see.
pub struct Listing {
    lister: Box<dyn DirLister>,
    dir: VPath,
    session: Session,
    passing_through: bool,
}

impl Listing {
    /// Up to `max` further entries; an empty batch means the listing is complete.
    pub async fn next_batch(&mut self, max: usize) -> Result<Vec<DirEntry>> {
        loop {
            let mut batch = self.lister.next_batch(max).await?;
            if batch.is_empty() {
                return Ok(batch);
            }
            batch.retain(|entry| match self.dir.join(&entry.name) {
                Ok(path) if self.passing_through => self.session.on_way_to_rule(&path),
                Ok(path) => self.session.visible(&path),
                Err(_) => false,
            });
            // An empty batch would end the listing, so one emptied by the filter is skipped.
            if !batch.is_empty() {
                return Ok(batch);
            }
        }
    }

    /// The directory being listed.
    pub fn dir(&self) -> &VPath {
        &self.dir
    }
}
