//! One FTP session: the state machine behind a control connection.
//!
//! The session greets the client, reads command lines, parses them with the pure parser,
//! checks the login state, and turns each command into calls on the user's
//! [`wharf_access::Session`]. A transfer runs as a future beside the control connection, so
//! `ABOR`, `STAT`, `NOOP` and `QUIT` are answered while bytes move; any other command that
//! arrives then waits until the transfer has ended, as a pipelining client expects.
//!
//! The handlers live by topic: `login` (USER, PASS, REIN), `security` (AUTH, PBSZ, PROT, CCC),
//! `info` (SYST, FEAT, HELP, STAT, OPTS and the transfer parameters), `files` (paths and
//! attributes) and `transfers` (data connections, uploads, downloads, listings).

mod files;
mod info;
mod login;
mod security;
mod transfers;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use tokio::time::Instant;
use wharf_access::{Offense, Session};
use wharf_vfs::VPath;

use crate::codec::Decoded;
use crate::command::{self, ByteRange, Command, PathArg};
use crate::control::ControlChannel;
use crate::data::DataSetup;
use crate::data::transfer::Progress;
use crate::errors::reply_for_error;
use crate::hash::HashAlgorithm;
use crate::listing::MlstFact;
use crate::probe::{PeerProbe, UploadWitness};
use crate::reply::Reply;
use crate::server::{ControlConnection, ServerContext};
use crate::tls::{FtpTlsConnection, TlsPolicy};

/// Over-long lines a client may send before the connection is closed.
const MAX_OVERSIZED_LINES: u32 = 3;

/// What a handler leaves the session to do.
enum Answer {
    /// Send this reply and go on.
    Reply(Reply),
    /// Send this reply, then close the connection.
    ReplyAndClose(Reply),
    /// The handler sent its replies itself.
    Sent,
    /// Close without a reply (the control connection is broken).
    Close,
}

/// The result of a handler that answers with one reply: `Err` carries the refusal, so
/// handlers can use `?` on each step.
type Handled = Result<Reply, Reply>;

/// The result of a handler that starts a transfer: how its `150` is answered, or the refusal.
type Started = Result<Answer, Reply>;

impl From<Started> for Answer {
    fn from(started: Started) -> Answer {
        started.unwrap_or_else(Answer::Reply)
    }
}

impl From<Reply> for Answer {
    fn from(reply: Reply) -> Answer {
        Answer::Reply(reply)
    }
}

impl From<Handled> for Answer {
    fn from(handled: Handled) -> Answer {
        match handled {
            Ok(reply) | Err(reply) => Answer::Reply(reply),
        }
    }
}

/// Whether the session goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Close,
}

/// A logged-in user.
struct LoggedIn {
    session: Session,
    cwd: VPath,
}

/// Where the session is in logging in.
enum LoginState {
    /// Waiting for `USER`.
    AwaitingUser,
    /// `USER` was given; waiting for `PASS`.
    AwaitingPassword {
        /// The name as given.
        user: String,
        /// The client asked for anonymous login, and it is configured.
        anonymous: bool,
    },
    /// Logged in.
    LoggedIn(Box<LoggedIn>),
}

/// TLS state of the session (RFC 4217).
#[derive(Default)]
struct TlsState {
    /// This connection's TLS state, once `AUTH` started it (or the listener was implicit).
    connection: Option<Arc<dyn FtpTlsConnection>>,
    /// `PBSZ` was given.
    pbsz_done: bool,
    /// `PROT P` is in force: data connections are protected.
    protect_data: bool,
}

impl TlsState {
    fn control_secure(&self) -> bool {
        self.connection.is_some()
    }
}

/// `TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataType {
    Ascii,
    Binary,
}

/// Choices that last until changed or `REIN`.
struct Settings {
    data_type: DataType,
    mlst_facts: Vec<MlstFact>,
    hash: HashAlgorithm,
    /// `EPSV ALL` was given: only `EPSV` may set up data connections.
    epsv_only: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            // Binary by default: a client that never sends TYPE gets its bytes unchanged.
            data_type: DataType::Binary,
            mlst_facts: MlstFact::ALL.to_vec(),
            hash: HashAlgorithm::Sha256,
            epsv_only: false,
        }
    }
}

/// State that only the next command may use.
#[derive(Default)]
struct Pending {
    /// `REST`: where the next `RETR`/`STOR` starts.
    restart: Option<u64>,
    /// `RANG`: the byte range of the next `RETR`/`HASH`.
    range: Option<ByteRange>,
    /// `RNFR`: what the next `RNTO` renames.
    rename_from: Option<VPath>,
}

/// A transfer running beside the control connection.
struct RunningTransfer {
    future: Pin<Box<dyn Future<Output = Reply> + Send>>,
    progress: Arc<Progress>,
    /// `RETR /path`, for `STAT`.
    description: String,
    /// For an upload: what decides, if the control connection ends first, whether it goes on.
    witness: Option<Arc<UploadWitness>>,
    /// The `150`, while the transfer holds it back.
    opening: Option<HeldOpening>,
}

/// A `150` the transfer has not let go yet (`crate::data::Opening`).
struct HeldOpening {
    reply: Reply,
    /// Fires (or closes) when the transfer lets it go.
    released: tokio::sync::oneshot::Receiver<()>,
}

/// What woke the session up.
enum Event {
    Input(io::Result<Option<Decoded>>),
    /// The running transfer let its `150` go.
    Opened,
    /// The data connection set up for the next transfer went a step further.
    DataProgress,
    TransferDone(Reply),
    Timeout,
    Draining,
    /// The shutdown's grace period is over.
    Terminated,
    /// An operator ended this session.
    Killed,
}

/// One control connection's session.
pub(crate) struct FtpSession {
    context: Arc<ServerContext>,
    control: ControlChannel,
    peer: SocketAddr,
    local: SocketAddr,
    policy: TlsPolicy,
    login: LoginState,
    tls: TlsState,
    settings: Settings,
    pending: Pending,
    data: Option<DataSetup>,
    transfer: Option<RunningTransfer>,
    /// A command that arrived during a transfer, run when it ends.
    deferred: Option<Vec<u8>>,
    /// `QUIT` arrived during a transfer: close once it ends.
    quit_after_transfer: bool,
    /// The control connection ended during an upload that goes on (the client had sent
    /// something since it began): close once it ends, with no more reading.
    control_ended: bool,
    login_failures: u32,
    oversized_lines: u32,
    connected_at: Instant,
    last_command_at: Instant,
    /// The kernel's view of the control connection, for uploads that end with their data
    /// connection (`crate::probe`).
    probe: Option<Arc<PeerProbe>>,
    /// The client sent `FEAT`: its passive replies are not held (`crate::pacing`).
    asked_for_features: bool,
}

impl FtpSession {
    pub(crate) fn new(context: Arc<ServerContext>, connection: ControlConnection) -> FtpSession {
        let ControlConnection { stream, peer, local, tls, policy, probe } = connection;
        let implicit = tls.is_some();
        let control = ControlChannel::new(stream, context.config.idle_timeout, implicit);
        let now = Instant::now();
        FtpSession {
            context,
            control,
            probe: probe.map(Arc::new),
            peer,
            local,
            policy,
            login: LoginState::AwaitingUser,
            // Implicit FTPS protects data connections from the start, as its clients expect.
            tls: TlsState { connection: tls, pbsz_done: implicit, protect_data: implicit },
            settings: Settings::default(),
            pending: Pending::default(),
            data: None,
            transfer: None,
            deferred: None,
            quit_after_transfer: false,
            control_ended: false,
            login_failures: 0,
            oversized_lines: 0,
            connected_at: now,
            last_command_at: now,
            asked_for_features: false,
        }
    }

    /// Runs the session until the client leaves, a limit closes it, or shutdown.
    pub(crate) async fn run(mut self) {
        let greeting = Reply::new(220, self.context.config.banner.clone());
        if self.control.send(&greeting).await.is_err() {
            return;
        }
        loop {
            let flow = match self.next_event().await {
                Event::Input(input) => self.on_input(input).await,
                Event::Opened => self.send_opening().await,
                Event::DataProgress => Flow::Continue,
                Event::TransferDone(reply) => self.on_transfer_done(reply).await,
                Event::Timeout => {
                    let text = if self.is_logged_in() {
                        "Idle timeout; closing the control connection."
                    } else {
                        "Login timeout; closing the control connection."
                    };
                    self.answer(Answer::ReplyAndClose(Reply::new(421, text))).await
                }
                Event::Draining => {
                    let reply = Reply::new(421, "Server shutting down; closing the connection.");
                    self.answer(Answer::ReplyAndClose(reply)).await
                }
                Event::Terminated => self.close_now("Server shutting down").await,
                Event::Killed => {
                    tracing::info!(peer = %self.peer, "session ended by an administrator");
                    self.close_now("Session ended by an administrator").await
                }
            };
            if flow == Flow::Close {
                break;
            }
        }
        tracing::debug!(peer = %self.peer, "control connection closed");
    }

    /// Closes the connection at once, aborting a transfer in progress, and tells the client
    /// `why`.
    async fn close_now(&mut self, why: &str) -> Flow {
        if self.transfer.take().is_some() {
            let _ = self.control.send(&Reply::new(426, format!("Transfer aborted. {why}."))).await;
        }
        let reply = Reply::new(421, format!("{why}; closing the connection."));
        self.answer(Answer::ReplyAndClose(reply)).await
    }

    async fn next_event(&mut self) -> Event {
        let shutdown = &self.context.gateway.shutdown;
        let session = match &self.login {
            LoginState::LoggedIn(logged_in) => Some(&logged_in.session),
            _ => None,
        };
        let killed = async {
            match session {
                Some(session) => session.killed().await,
                None => std::future::pending().await,
            }
        };
        match self.transfer.as_mut() {
            Some(transfer) => {
                let may_read =
                    self.deferred.is_none() && !self.quit_after_transfer && !self.control_ended;
                let held = transfer.opening.as_mut().map(|opening| &mut opening.released);
                let opened = async {
                    match held {
                        Some(released) => drop(released.await),
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    biased;
                    () = shutdown.terminated() => Event::Terminated,
                    () = killed => Event::Killed,
                    () = opened => Event::Opened,
                    reply = transfer.future.as_mut() => Event::TransferDone(reply),
                    input = self.control.next_line(), if may_read => Event::Input(input),
                }
            }
            None => {
                let deadline = self.deadline();
                // A protected passive connection goes as far as its client leads before the
                // transfer command (`DataSetup::advance`).
                let early = match (&mut self.data, &self.tls.connection) {
                    (Some(setup), Some(tls)) if self.tls.protect_data && setup.can_advance() => {
                        Some((setup, tls))
                    }
                    _ => None,
                };
                let peer = self.peer.ip();
                let advance = async {
                    match early {
                        Some((setup, tls)) => setup.advance(peer, tls).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    biased;
                    () = shutdown.draining() => Event::Draining,
                    () = killed => Event::Killed,
                    () = tokio::time::sleep_until(deadline) => Event::Timeout,
                    () = advance => Event::DataProgress,
                    input = self.control.next_line() => Event::Input(input),
                }
            }
        }
    }

    /// When the session times out unless a command comes: the idle timeout, and before login
    /// also the login timeout (which commands do not extend).
    fn deadline(&self) -> Instant {
        let config = &self.context.config;
        let idle = self.last_command_at + config.idle_timeout;
        if self.is_logged_in() { idle } else { idle.min(self.connected_at + config.login_timeout) }
    }

    async fn on_input(&mut self, input: io::Result<Option<Decoded>>) -> Flow {
        match input {
            Ok(Some(Decoded::Line(line))) => {
                if self.transfer.is_some() {
                    self.on_line_during_transfer(line).await
                } else {
                    self.on_line(&line).await
                }
            }
            Ok(Some(Decoded::TooLong)) => {
                self.report(Offense::ProtocolError);
                self.oversized_lines += 1;
                if self.oversized_lines >= MAX_OVERSIZED_LINES {
                    let reply = Reply::new(421, "Too many over-long command lines; closing.");
                    return self.answer(Answer::ReplyAndClose(reply)).await;
                }
                self.answer(Reply::new(500, "Command line too long.").into()).await
            }
            Ok(None) => self.on_control_end(),
            Err(err) => {
                tracing::debug!(peer = %self.peer, error = %err, "control connection failed");
                self.on_control_end()
            }
        }
    }

    /// The control connection ended. The session closes, and a transfer with it, except an
    /// upload the rule of `crate::probe` lets finish: that one runs to its end first.
    fn on_control_end(&mut self) -> Flow {
        let witness = self.transfer.as_ref().and_then(|transfer| transfer.witness.as_ref());
        match witness {
            Some(witness) if !witness.drop_at_control_end() => {
                tracing::debug!(peer = %self.peer, "control connection ended; finishing the upload");
                self.control_ended = true;
                Flow::Continue
            }
            _ => Flow::Close,
        }
    }

    async fn on_line(&mut self, line: &[u8]) -> Flow {
        self.last_command_at = Instant::now();
        if !self.is_logged_in() && line.starts_with(b"PROXY ") {
            // A load balancer's header from an address that is not one of the configured
            // balancers (theirs is read before the session starts): nobody else may say who
            // the client is (`wharf_access::proxy_protocol`).
            tracing::warn!(peer = %self.peer, "PROXY header from an address that is not a trusted load balancer");
            self.report(Offense::ProtocolError);
            let reply = Reply::new(421, "PROXY header refused: not a trusted load balancer.");
            return self.answer(Answer::ReplyAndClose(reply)).await;
        }
        match command::parse(line) {
            Ok(command) => {
                tracing::debug!(peer = %self.peer, verb = command.verb(), "command");
                self.dispatch(command).await
            }
            Err(err) => {
                // Not scored: a line the parser refuses (an unknown command or SITE
                // subcommand, a malformed argument) costs no more than a NOOP and reaches
                // nothing; clients probing for extensions send them.
                self.pending.rename_from = None;
                self.answer(err.reply().into()).await
            }
        }
    }

    /// During a transfer only `ABOR`, `STAT`, `NOOP` and `QUIT` are acted on at once.
    async fn on_line_during_transfer(&mut self, line: Vec<u8>) -> Flow {
        match command::parse(&line) {
            Ok(Command::Abor) => {
                self.transfer = None;
                let _ = self
                    .control
                    .send(&Reply::new(426, "Connection closed; transfer aborted."))
                    .await;
                self.answer(Reply::new(226, "Abort successful.").into()).await
            }
            Ok(Command::Stat(None)) => {
                let reply = self.server_status();
                self.answer(reply.into()).await
            }
            Ok(Command::Noop) => self.answer(Reply::new(200, "NOOP ok.").into()).await,
            Ok(Command::Quit) => {
                self.quit_after_transfer = true;
                Flow::Continue
            }
            Err(err) => self.answer(err.reply().into()).await,
            Ok(_) => {
                self.deferred = Some(line);
                Flow::Continue
            }
        }
    }

    /// Sends the running transfer's held `150`, if it has one.
    async fn send_opening(&mut self) -> Flow {
        match self.transfer.as_mut().and_then(|transfer| transfer.opening.take()) {
            Some(opening) => self.answer(opening.reply.into()).await,
            None => Flow::Continue,
        }
    }

    async fn on_transfer_done(&mut self, reply: Reply) -> Flow {
        // A transfer that ended before it let its 150 go (its data connection failed) still
        // answers in order: 150, then the outcome.
        if self.send_opening().await == Flow::Close {
            self.transfer = None;
            return Flow::Close;
        }
        self.transfer = None;
        self.last_command_at = Instant::now();
        if self.control_ended {
            // A client that closed only its sending side may still read the outcome.
            return self.answer(Answer::ReplyAndClose(reply)).await;
        }
        if self.answer(reply.into()).await == Flow::Close {
            return Flow::Close;
        }
        if self.quit_after_transfer {
            return self.answer(Answer::ReplyAndClose(Reply::new(221, "Goodbye."))).await;
        }
        match self.deferred.take() {
            Some(line) => self.on_line(&line).await,
            None => Flow::Continue,
        }
    }

    async fn answer(&mut self, answer: Answer) -> Flow {
        match answer {
            Answer::Reply(reply) => match self.control.send(&reply).await {
                Ok(()) => Flow::Continue,
                Err(_) => Flow::Close,
            },
            Answer::ReplyAndClose(reply) => {
                let _ = self.control.send(&reply).await;
                Flow::Close
            }
            Answer::Sent => Flow::Continue,
            Answer::Close => Flow::Close,
        }
    }

    async fn dispatch(&mut self, command: Command) -> Flow {
        // RNTO must come right after RNFR: any other command forgets the source.
        let rename_from = self.pending.rename_from.take();
        if command.needs_login() && !self.is_logged_in() {
            let reply = Reply::new(530, "Please log in with USER and PASS first.");
            return self.answer(reply.into()).await;
        }
        let answer: Answer = match command {
            Command::User(name) => self.user(name).into(),
            Command::Pass(password) => self.pass(password).await,
            Command::Acct => Reply::new(202, "ACCT is not needed on this server.").into(),
            Command::Quit => Answer::ReplyAndClose(Reply::new(221, "Goodbye.")),
            Command::Rein => self.rein().into(),
            Command::Noop => Reply::new(200, "NOOP ok.").into(),
            Command::Syst => Reply::new(215, "UNIX Type: L8").into(),
            Command::Stat(None) => self.server_status().into(),
            Command::Stat(Some(path)) => self.stat_path(path).await,
            Command::Help(topic) => self.help(topic).into(),
            Command::Feat => {
                self.asked_for_features = true;
                self.features().into()
            }
            Command::Opts(option) => self.opts(option).into(),
            Command::Pwd => self.pwd().into(),
            Command::Cwd(path) => self.cwd(&path).await.into(),
            Command::Cdup => self.cwd(&PathArg::new("..")).await.into(),
            Command::Mkd(path) => self.mkd(&path).await.into(),
            Command::Rmd(path) => self.rmd(&path).await.into(),
            Command::Dele(path) => self.dele(&path).await.into(),
            Command::Rnfr(path) => self.rnfr(&path).await.into(),
            Command::Rnto(path) => self.rnto(rename_from, &path).await.into(),
            Command::Size(path) => self.size(&path).await.into(),
            Command::Mdtm(path) => self.mdtm(&path).await.into(),
            Command::Mfmt { modified, path } => self.mfmt(modified, &path).await.into(),
            Command::Type(kind) => self.set_type(kind).into(),
            Command::Mode(mode) => self.set_mode(mode).into(),
            Command::Stru(structure) => self.set_structure(structure).into(),
            Command::Allo => Reply::new(202, "No storage allocation necessary.").into(),
            Command::Rest(offset) => self.rest(offset).into(),
            Command::Rang(range) => self.rang(range).into(),
            Command::Retr(path) => self.retr(&path).await.into(),
            Command::Stor(path) => self.stor(&path).await.into(),
            Command::Stou(path) => self.stou(path.as_ref()).await.into(),
            Command::Appe(path) => self.appe(&path).await.into(),
            Command::List(path) => self.list(path.as_ref(), transfers::ListKind::Long).await.into(),
            Command::Nlst(path) => {
                self.list(path.as_ref(), transfers::ListKind::Names).await.into()
            }
            Command::Mlsd(path) => {
                self.list(path.as_ref(), transfers::ListKind::Facts).await.into()
            }
            Command::Mlst(path) => self.mlst(path.as_ref()).await.into(),
            Command::Abor => self.abor_idle().into(),
            Command::Pasv => self.pasv().await.into(),
            Command::Epsv(arg) => self.epsv(arg).await.into(),
            Command::Port(target) => self.port(SocketAddr::V4(target)).into(),
            Command::Eprt(target) => self.port(target).into(),
            Command::Site(site) => self.site(site).await.into(),
            Command::Hash(path) => self.hash(&path).await.into(),
            Command::Auth(mechanism) => self.auth(mechanism).await,
            Command::Pbsz(size) => self.pbsz(size).into(),
            Command::Prot(level) => self.prot(level).into(),
            Command::Ccc => self.ccc().into(),
        };
        self.answer(answer).await
    }

    fn is_logged_in(&self) -> bool {
        matches!(self.login, LoginState::LoggedIn(_))
    }

    fn logged_in(&self) -> Result<&LoggedIn, Reply> {
        match &self.login {
            LoginState::LoggedIn(user) => Ok(user),
            _ => Err(Reply::new(530, "Please log in with USER and PASS first.")),
        }
    }

    /// The user's session and `arg` resolved against the working directory. `..` never climbs
    /// above the user's `/` and an absolute host path is just a path in the user's tree.
    fn resolve(&self, arg: &PathArg) -> Result<(Session, VPath), Reply> {
        let user = self.logged_in()?;
        let path = VPath::resolve_bytes(&user.cwd, arg.as_bytes()).map_err(|err| {
            if let Some(offense) = Offense::for_refused_path(&err) {
                self.report(offense);
            }
            reply_for_error(&err.into())
        })?;
        Ok((user.session.clone(), path))
    }

    /// Counts `offense` against the client's address on every protocol.
    pub(crate) fn report(&self, offense: Offense) {
        self.context.gateway.defender().report(self.peer.ip(), offense);
    }

    /// Like [`FtpSession::resolve`], with the working directory when there is no argument.
    fn resolve_or_cwd(&self, arg: Option<&PathArg>) -> Result<(Session, VPath), Reply> {
        match arg {
            Some(arg) => self.resolve(arg),
            None => {
                let user = self.logged_in()?;
                Ok((user.session.clone(), user.cwd.clone()))
            }
        }
    }
}

/// The reply for a failed storage or session operation.
fn storage_error(err: wharf_vfs::Error) -> Reply {
    reply_for_error(&err)
}
