//! Paths and attributes: `PWD`, `CWD`, `CDUP`, `MKD`, `RMD`, `DELE`, `RNFR`, `RNTO`, `SIZE`,
//! `MDTM`, `MFMT`, `SITE CHMOD`, `HASH`, `MLST`, and `STAT path`.

use std::time::SystemTime;

use wharf_vfs::VPath;

use super::{Answer, DataType, FtpSession, Handled, LoginState, storage_error};
use crate::ascii::ToNetwork;
use crate::command::{PathArg, SiteCommand};
use crate::data::transfer::LISTING_BATCH;
use crate::errors::reply_for_kind;
use crate::listing::{self, mlsx_line, timestamp};
use crate::reply::{LinePosition, Reply, encode_line, quote_path};

/// Largest file whose ASCII size `SIZE` computes (it has to read the file to count line
/// ends); above it, `SIZE` in ASCII mode is refused.
pub(crate) const ASCII_SIZE_LIMIT: u64 = 16 * 1024 * 1024;

impl FtpSession {
    pub(super) fn pwd(&self) -> Handled {
        let user = self.logged_in()?;
        Ok(Reply::new(257, format!("{} is the current directory.", quote_path(user.cwd.as_str()))))
    }

    pub(super) async fn cwd(&mut self, arg: &PathArg) -> Handled {
        let (session, path) = self.resolve(arg)?;
        let meta = session.stat(&path).await.map_err(storage_error)?;
        if !meta.is_dir() {
            return Err(Reply::new(550, "Not a directory."));
        }
        if let LoginState::LoggedIn(user) = &mut self.login {
            user.cwd = path.clone();
        }
        Ok(Reply::new(250, format!("Directory changed to {path}.")))
    }

    pub(super) async fn mkd(&mut self, arg: &PathArg) -> Handled {
        let (session, path) = self.resolve(arg)?;
        session.make_dir(&path).await.map_err(storage_error)?;
        Ok(Reply::new(257, format!("{} created.", quote_path(path.as_str()))))
    }

    pub(super) async fn rmd(&mut self, arg: &PathArg) -> Handled {
        let (session, path) = self.resolve(arg)?;
        session.remove_dir(&path).await.map_err(storage_error)?;
        Ok(Reply::new(250, "Directory removed."))
    }

    pub(super) async fn dele(&mut self, arg: &PathArg) -> Handled {
        let (session, path) = self.resolve(arg)?;
        session.remove_file(&path).await.map_err(storage_error)?;
        Ok(Reply::new(250, "File deleted."))
    }

    pub(super) async fn rnfr(&mut self, arg: &PathArg) -> Handled {
        let (session, path) = self.resolve(arg)?;
        session.lstat(&path).await.map_err(storage_error)?;
        self.pending.rename_from = Some(path);
        Ok(Reply::new(350, "Ready for RNTO."))
    }

    pub(super) async fn rnto(&mut self, from: Option<VPath>, arg: &PathArg) -> Handled {
        let Some(from) = from else {
            return Err(Reply::new(503, "RNFR must come right before RNTO."));
        };
        let (session, to) = self.resolve(arg)?;
        session.rename(&from, &to).await.map_err(storage_error)?;
        Ok(Reply::new(250, "Rename successful."))
    }

    /// `SIZE`: the size in the current type. In binary it is the stored size; in ASCII it is
    /// the size with CRLF line ends, counted by reading the file (up to [`ASCII_SIZE_LIMIT`]).
    pub(super) async fn size(&mut self, arg: &PathArg) -> Handled {
        let (session, path) = self.resolve(arg)?;
        let meta = session.stat(&path).await.map_err(storage_error)?;
        if !meta.is_file() {
            return Err(Reply::new(550, "Not a regular file."));
        }
        if self.settings.data_type == DataType::Binary {
            return Ok(Reply::new(213, meta.size.to_string()));
        }
        if meta.size > ASCII_SIZE_LIMIT {
            return Err(Reply::new(
                550,
                "SIZE in ASCII mode is only computed for files up to 16 MiB; use TYPE I.",
            ));
        }
        let download = session.open_read(&path).await.map_err(storage_error)?;
        let mut chunks = download.stream(0);
        let mut counter = ToNetwork::new();
        let mut size = 0;
        loop {
            match chunks.next_chunk().await {
                Ok(Some(chunk)) => size += counter.converted_len(&chunk),
                Ok(None) => break,
                Err(err) => {
                    let reply = storage_error(err.replicate());
                    chunks.fail(&err);
                    return Err(reply);
                }
            }
        }
        chunks.finish();
        Ok(Reply::new(213, size.to_string()))
    }

    pub(super) async fn mdtm(&mut self, arg: &PathArg) -> Handled {
        let (session, path) = self.resolve(arg)?;
        let meta = session.stat(&path).await.map_err(storage_error)?;
        match meta.modified.and_then(timestamp) {
            Some(time) => Ok(Reply::new(213, time)),
            None => Err(Reply::new(550, "Modification time unknown.")),
        }
    }

    pub(super) async fn mfmt(&mut self, modified: SystemTime, arg: &PathArg) -> Handled {
        let (session, path) = self.resolve(arg)?;
        session.set_times(&path, modified, None).await.map_err(storage_error)?;
        let time = timestamp(modified).unwrap_or_default();
        Ok(Reply::new(213, format!("Modify={time}; {}", arg.display())))
    }

    pub(super) async fn site(&mut self, command: SiteCommand) -> Handled {
        match command {
            SiteCommand::Help => Ok(Reply::new(214, "SITE commands: CHMOD HELP")),
            SiteCommand::Chmod { mode, path } => {
                let (session, path) = self.resolve(&path)?;
                session.set_mode(&path, mode).await.map_err(storage_error)?;
                Ok(Reply::new(200, "SITE CHMOD command ok."))
            }
        }
    }

    /// `HASH` (draft-bryan-ftp-hash): the hash of the whole file, or of the bytes chosen by
    /// `RANG`. The reply names the range with its last byte included:
    /// `213 SHA-256 0-1023 <hex> <path>`.
    pub(super) async fn hash(&mut self, arg: &PathArg) -> Handled {
        let (session, path) = self.resolve(arg)?;
        let range = self.pending.range.take();
        let algorithm = self.settings.hash;
        let download = session.open_read(&path).await.map_err(storage_error)?;
        let size = download.metadata().size;
        let (start, length) = match range {
            Some(range) => (range.start(), range.length()),
            None => (0, size),
        };
        if start > size || (range.is_some() && start == size) {
            return Err(Reply::new(
                554,
                format!("Range starts beyond the end of the file ({size} bytes)."),
            ));
        }
        let mut hasher = algorithm.hasher();
        let mut remaining = length;
        let mut hashed: u64 = 0;
        let mut chunks = download.stream(start);
        while remaining > 0 {
            let chunk = match chunks.next_chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(err) => {
                    let reply = storage_error(err.replicate());
                    chunks.fail(&err);
                    return Err(reply);
                }
            };
            let take = usize::try_from(remaining).unwrap_or(usize::MAX).min(chunk.len());
            hasher.update(&chunk[..take]);
            remaining -= take as u64;
            hashed += take as u64;
        }
        chunks.finish();
        // The reply names the last byte hashed; nothing hashed (an empty file) reads `0-0`.
        let last = match hashed {
            0 => start,
            hashed => start + (hashed - 1),
        };
        Ok(Reply::new(
            213,
            format!(
                "{} {start}-{last} {} {}",
                algorithm.name(),
                hasher.finish_hex(),
                arg.display()
            ),
        ))
    }

    /// `MLST`: the facts of one file or directory over the control connection.
    pub(super) async fn mlst(&mut self, arg: Option<&PathArg>) -> Handled {
        let (session, path) = self.resolve_or_cwd(arg)?;
        let meta = session.stat(&path).await.map_err(storage_error)?;
        let facts =
            mlsx_line(path.as_str(), &meta, session.permissions(&path), &self.settings.mlst_facts);
        Ok(Reply::multiline(250, format!("Listing {path}"), [facts], "End"))
    }

    /// `STAT path`: a `LIST` over the control connection, streamed batch by batch.
    pub(super) async fn stat_path(&mut self, arg: PathArg) -> Answer {
        let (session, path) = match self.resolve(&arg) {
            Ok(resolved) => resolved,
            Err(reply) => return reply.into(),
        };
        let meta = match session.stat(&path).await {
            Ok(meta) => meta,
            Err(err) => return storage_error(err).into(),
        };
        let now = SystemTime::now();
        if !meta.is_dir() {
            let name = path.file_name().unwrap_or("/");
            let line = listing::list_line(name, &meta, now);
            return Reply::multiline(213, format!("Status of {path}:"), [line], "End of status.")
                .into();
        }
        let mut listing = match session.list(&path).await {
            Ok(listing) => listing,
            Err(err) => return storage_error(err).into(),
        };
        let header = format!("Status of {path}:");
        if self.control.send_line(213, LinePosition::First, &header).await.is_err() {
            return Answer::Close;
        }
        let mut end = "End of status.".to_owned();
        loop {
            let batch = match listing.next_batch(LISTING_BATCH).await {
                Ok(batch) => batch,
                Err(err) => {
                    // The multi-line reply is open: it ends, saying the listing is incomplete.
                    let (_, why) = reply_for_kind(err.kind());
                    end = format!("End of status; the listing is incomplete: {why}.");
                    break;
                }
            };
            if batch.is_empty() {
                break;
            }
            let mut lines = Vec::new();
            for entry in batch.iter().filter(|entry| listing::is_listable(&entry.name)) {
                let line = listing::list_line(&entry.name, &entry.metadata, now);
                encode_line(&mut lines, 213, LinePosition::Middle, &line);
            }
            if self.control.write(&lines).await.is_err() {
                return Answer::Close;
            }
        }
        match self.control.send_line(213, LinePosition::Last, &end).await {
            Ok(()) => Answer::Sent,
            Err(_) => Answer::Close,
        }
    }
}
