//! Data connections and transfers: `PASV`, `EPSV`, `PORT`, `EPRT`, `RETR`, `STOR`, `STOU`,
//! `APPE`, `LIST`, `NLST`, `MLSD`, and `ABOR` when nothing is running.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use wharf_access::Session;
use wharf_vfs::{Error, VPath, WriteMode};

use super::{
    Answer, DataType, FtpSession, Handled, HeldOpening, RunningTransfer, Started, storage_error,
};
use crate::command::{EpsvArg, NetworkProtocol, PathArg};
use crate::config::PassiveAddress;
use crate::data::transfer::{ListingFormat, Payload, Progress, Transfer};
use crate::data::{DataLink, DataSetup, Opening, PassiveListener, canonical, check_active_target};
use crate::listing;
use crate::pacing::{passive_reply_hold, sleep_precisely};
use crate::probe::UploadWitness;
use crate::reply::Reply;
use crate::tls::FtpTlsConnection;

/// Names `STOU` tries before giving up.
const UNIQUE_NAME_ATTEMPTS: u32 = 8;

/// Which listing a data command sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ListKind {
    /// `LIST`.
    Long,
    /// `NLST`.
    Names,
    /// `MLSD`.
    Facts,
}

impl FtpSession {
    fn bind_passive(&self, ip: IpAddr) -> Result<PassiveListener, Reply> {
        self.context.passive_ports.bind(ip).map_err(|err| {
            tracing::warn!(error = %err, "cannot open a passive data port");
            Reply::new(425, "Can't open a passive data port.")
        })
    }

    fn passive_port(listener: &PassiveListener) -> Result<u16, Reply> {
        listener
            .local_addr()
            .map(|addr| addr.port())
            .map_err(|_| Reply::new(425, "Can't open a passive data port."))
    }

    /// Holds the reply to a passive command until `ftp.passive_reply_delay`, less the network's
    /// share, after the command was read (`crate::pacing`).
    fn hold_passive_reply(&self) -> impl Future<Output = ()> + Send + 'static {
        let delay = self.context.config.passive_reply_delay;
        let hold = if delay.is_zero() {
            Duration::ZERO
        } else {
            // A client that asked for features is never held: its distance need not be read.
            let min_rtt = match &self.probe {
                Some(probe) if !self.asked_for_features => probe.min_rtt(),
                _ => None,
            };
            passive_reply_hold(delay, min_rtt, self.asked_for_features)
        };
        let left = (self.last_command_at + hold).saturating_duration_since(Instant::now());
        sleep_precisely(left)
    }

    pub(super) async fn pasv(&mut self) -> Handled {
        if self.settings.epsv_only {
            return Err(Reply::new(503, "EPSV ALL is in force: use EPSV."));
        }
        let IpAddr::V4(local) = canonical(self.local.ip()) else {
            return Err(Reply::new(425, "PASV works over IPv4 only; use EPSV."));
        };
        // A listener still waiting from an earlier PASV is closed before the next is opened.
        self.data = None;
        let listener = self.bind_passive(IpAddr::V4(local))?;
        let port = Self::passive_port(&listener)?;
        let announced = match self.context.config.passive_address {
            PassiveAddress::Local => local,
            PassiveAddress::Public(public) => public,
        };
        self.data = Some(DataSetup::Passive(listener));
        let [a, b, c, d] = announced.octets();
        let [hi, lo] = port.to_be_bytes();
        self.hold_passive_reply().await;
        Ok(Reply::new(227, format!("Entering Passive Mode ({a},{b},{c},{d},{hi},{lo}).")))
    }

    pub(super) async fn epsv(&mut self, arg: EpsvArg) -> Handled {
        let local = canonical(self.local.ip());
        let family = NetworkProtocol::of(local);
        match arg {
            EpsvArg::All => {
                self.settings.epsv_only = true;
                return Ok(Reply::new(200, "EPSV ALL ok."));
            }
            EpsvArg::Protocol(asked) if asked != family => {
                return Err(Reply::new(
                    522,
                    format!("Network protocol not supported, use ({}).", family.number()),
                ));
            }
            EpsvArg::Protocol(_) | EpsvArg::Any => {}
        }
        self.data = None;
        let listener = self.bind_passive(local)?;
        let port = Self::passive_port(&listener)?;
        self.data = Some(DataSetup::Passive(listener));
        self.hold_passive_reply().await;
        Ok(Reply::new(229, format!("Entering Extended Passive Mode (|||{port}|).")))
    }

    /// `PORT` and `EPRT`: only to the client's own address and an unprivileged port.
    pub(super) fn port(&mut self, target: SocketAddr) -> Handled {
        if self.settings.epsv_only {
            return Err(Reply::new(503, "EPSV ALL is in force: use EPSV."));
        }
        if !self.context.config.active_mode {
            return Err(Reply::new(502, "Active mode is disabled; use PASV or EPSV."));
        }
        let target = check_active_target(target, self.peer.ip()).map_err(|refusal| {
            tracing::warn!(peer = %self.peer, %target, %refusal, "refused active data target");
            self.report(wharf_access::Offense::BounceAttempt);
            Reply::new(504, format!("Refused: {refusal}."))
        })?;
        self.data = Some(DataSetup::Active(target));
        Ok(Reply::new(200, "PORT command successful."))
    }

    pub(super) fn abor_idle(&mut self) -> Reply {
        self.data = None;
        Reply::new(226, "No transfer to abort.")
    }

    /// Checks what every transfer needs, in the order clients expect the refusals: protection
    /// policy, then a data connection set up.
    fn transfer_prerequisites(
        &mut self,
    ) -> Result<(Option<Arc<dyn FtpTlsConnection>>, DataSetup), Reply> {
        let tls = self.data_protection()?;
        let setup = self
            .data
            .take()
            .ok_or_else(|| Reply::new(425, "Use PORT, EPRT, PASV or EPSV first."))?;
        Ok((tls, setup))
    }

    /// Starts `payload` moving and answers `opening` (the `150`): at once, or, for a protected
    /// upload, once the transfer lets it go (`crate::data::Opening`).
    fn start_transfer(
        &mut self,
        setup: DataSetup,
        tls: Option<Arc<dyn FtpTlsConnection>>,
        payload: Payload,
        description: String,
        opening: Reply,
        success: Reply,
    ) -> Answer {
        let (held, reply, pending) = match (&tls, &payload) {
            (Some(_), Payload::Upload { .. }) => {
                let (held, released) = Opening::held();
                (held, Answer::Sent, Some(HeldOpening { reply: opening, released }))
            }
            _ => (Opening::default(), Answer::Reply(opening), None),
        };
        let config = &self.context.config;
        let link = DataLink {
            peer_ip: self.peer.ip(),
            local_ip: self.local.ip(),
            connect_timeout: config.data_connect_timeout,
            stall_timeout: config.data_stall_timeout,
            tls,
        };
        let progress = Arc::new(Progress::default());
        let witness = match &payload {
            Payload::Upload { client, .. } => Some(client.clone()),
            _ => None,
        };
        let transfer =
            Transfer { setup, link, payload, progress: progress.clone(), success, opening: held };
        self.transfer = Some(RunningTransfer {
            future: Box::pin(transfer.run()),
            progress,
            description,
            witness,
            opening: pending,
        });
        reply
    }

    /// The witness of an upload beginning now (`crate::probe`).
    fn upload_witness(&self) -> Arc<UploadWitness> {
        Arc::new(UploadWitness::new(self.control.activity().clone(), self.probe.clone()))
    }

    fn mode_name(&self) -> &'static str {
        match self.settings.data_type {
            DataType::Ascii => "ASCII",
            DataType::Binary => "BINARY",
        }
    }

    pub(super) async fn retr(&mut self, arg: &PathArg) -> Started {
        let (session, path) = self.resolve(arg)?;
        let restart = self.pending.restart.take();
        let range = self.pending.range.take();
        let (tls, setup) = self.transfer_prerequisites()?;
        let download = session.open_read(&path).await.map_err(storage_error)?;
        let size = download.metadata().size;
        let (offset, length) = match range {
            Some(range) => (range.start(), Some(range.length())),
            None => (restart.unwrap_or(0), None),
        };
        if offset > size {
            return Err(Reply::new(
                554,
                format!("Restart offset {offset} is beyond the end of the file ({size} bytes)."),
            ));
        }
        let ascii = self.settings.data_type == DataType::Ascii;
        let opening = Reply::new(
            150,
            format!("Opening {} mode data connection for {path} ({size} bytes).", self.mode_name()),
        );
        let payload = Payload::Download { download, offset, length, ascii };
        let success = Reply::new(226, "Transfer complete.");
        Ok(self.start_transfer(setup, tls, payload, format!("RETR {path}"), opening, success))
    }

    /// `STOR`: a whole-file upload published atomically when it completes, or after `REST`
    /// a resumed upload written in place from the offset.
    pub(super) async fn stor(&mut self, arg: &PathArg) -> Started {
        let mode = match self.pending.restart.take() {
            Some(offset) if offset > 0 => WriteMode::At(offset),
            _ => WriteMode::Replace,
        };
        self.upload(arg, mode, "STOR").await
    }

    /// `APPE`: written in place at the end of the file.
    pub(super) async fn appe(&mut self, arg: &PathArg) -> Started {
        self.pending.restart = None;
        self.upload(arg, WriteMode::Append, "APPE").await
    }

    async fn upload(&mut self, arg: &PathArg, mode: WriteMode, verb: &str) -> Started {
        self.pending.range = None;
        let (session, path) = self.resolve(arg)?;
        let (tls, setup) = self.transfer_prerequisites()?;
        let upload = session.open_write(&path, mode).await.map_err(storage_error)?;
        let ascii = self.settings.data_type == DataType::Ascii;
        let opening = Reply::new(
            150,
            format!("Opening {} mode data connection for {path}.", self.mode_name()),
        );
        let payload = Payload::Upload { upload, ascii, client: self.upload_witness() };
        let success = Reply::new(226, "Transfer complete.");
        Ok(self.start_transfer(setup, tls, payload, format!("{verb} {path}"), opening, success))
    }

    /// `STOU`: stores under a new name the server chooses, in the working directory, or next
    /// to the name given (`name.<random>`). Publishing refuses to replace a file that appeared
    /// meanwhile.
    pub(super) async fn stou(&mut self, arg: Option<&PathArg>) -> Started {
        self.pending.restart = None;
        self.pending.range = None;
        let (session, base) = self.resolve_or_cwd(arg)?;
        let (dir, stem) = match arg {
            Some(_) => match (base.parent(), base.file_name()) {
                (Some(dir), Some(name)) => (dir, name.to_owned()),
                _ => (VPath::root(), "upload".to_owned()),
            },
            None => (base, "upload".to_owned()),
        };
        let (tls, setup) = self.transfer_prerequisites()?;
        let (path, upload) = open_unique(&session, &dir, &stem).await?;
        let name = path.file_name().unwrap_or_default().to_owned();
        let ascii = self.settings.data_type == DataType::Ascii;
        let opening = Reply::new(150, format!("FILE: {name}"));
        let payload = Payload::Upload { upload, ascii, client: self.upload_witness() };
        let success = Reply::new(226, format!("Transfer complete; stored as {name}."));
        Ok(self.start_transfer(setup, tls, payload, format!("STOU {path}"), opening, success))
    }

    /// `LIST`, `NLST`, `MLSD`: a directory's entries over a data connection (or, for `LIST`
    /// and `NLST` of a file, that file alone).
    pub(super) async fn list(&mut self, arg: Option<&PathArg>, kind: ListKind) -> Started {
        let (session, path) = self.resolve_or_cwd(arg)?;
        let (tls, setup) = self.transfer_prerequisites()?;
        let meta = session.stat(&path).await.map_err(storage_error)?;
        let payload = if meta.is_dir() {
            let listing = session.list(&path).await.map_err(storage_error)?;
            let format = match kind {
                ListKind::Long => ListingFormat::Long { now: SystemTime::now() },
                ListKind::Names => ListingFormat::Names,
                ListKind::Facts => ListingFormat::Facts(self.settings.mlst_facts.clone()),
            };
            Payload::Listing { listing, session, format }
        } else {
            let name = path.file_name().unwrap_or_default();
            match kind {
                ListKind::Facts => {
                    return Err(Reply::new(501, "MLSD needs a directory; use MLST for a file."));
                }
                ListKind::Long => {
                    Payload::Lines(vec![listing::list_line(name, &meta, SystemTime::now())])
                }
                ListKind::Names => Payload::Lines(vec![name.to_owned()]),
            }
        };
        let success = Reply::new(226, "Directory send OK.");
        let opening = Reply::new(150, "Here comes the directory listing.");
        Ok(self.start_transfer(setup, tls, payload, format!("listing of {path}"), opening, success))
    }
}

/// Opens a new file `stem.<random>` in `dir` that did not exist before.
async fn open_unique(
    session: &Session,
    dir: &VPath,
    stem: &str,
) -> Result<(VPath, wharf_access::Upload), Reply> {
    for _ in 0..UNIQUE_NAME_ATTEMPTS {
        let name = format!("{stem}.{:08x}", rand::random::<u32>());
        let path = dir.join(&name).map_err(|err| storage_error(err.into()))?;
        match session.open_write(&path, WriteMode::CreateNew).await {
            Ok(upload) => return Ok((path, upload)),
            Err(Error::AlreadyExists) => continue,
            Err(err) => return Err(storage_error(err)),
        }
    }
    Err(Reply::new(553, "Could not find a unique file name."))
}
