//! Event hooks: what happens on the server — an upload published, a download finished, a
//! delete, a rename, a folder made or removed, a login, a ban — told to HTTP endpoints (a
//! signed JSON POST) and commands (the event in their environment), on every protocol.
//!
//! The path of an event:
//!
//! 1. The shared layer emits an audit event and gives it to the [`HookSink`] (an
//!    [`AuditSink`]) on the session's own task. The sink keeps the events some rule takes,
//!    as JSON, and hands them to the spool thread through a bounded channel without waiting:
//!    a hook never blocks or slows a transfer. A full channel drops the event (counted).
//! 2. The spool thread writes each event into the spool of every rule that takes it
//!    ([`spool`]): a file per event, kept until delivered, so events survive a restart. A
//!    full spool drops its oldest event (counted).
//! 3. Each rule has one delivery task, which delivers its spool's events one at a time,
//!    oldest first, retrying the oldest with growing pauses until it is taken: at least once,
//!    in the order they happened, one endpoint down holds back only its own rule.
//!
//! Uploads are events only once published (the shared layer reports an upload "ok" only
//! after it is in place), so a killed upload is never announced.

pub mod config;
pub mod deliver;
pub mod event;
mod rules;
mod spool;

use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use wharf_access::{AuditEvent, AuditSink};

pub use config::{CommandConfig, HooksConfig, HttpConfig, RetryConfig, RuleConfig};
pub use deliver::{DeliveryError, signature};
pub use event::{EventKind, HookEvent};

use deliver::{CommandDelivery, Delivery, HttpDelivery};
use rules::Filter;
use spool::Spool;

/// Events on their way from the sessions to the spool thread, at most.
const CHANNEL_EVENTS: usize = 4096;

/// The most [`Hooks::close`] waits for the spool thread to write what it was given.
const CLOSE_LIMIT: Duration = Duration::from_secs(10);

/// Why the hooks could not start.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The `hooks:` section is wrong.
    #[error("{0}")]
    Config(String),
    /// A spool folder or a secret file could not be used.
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
}

/// One rule at work: its filter, spool, delivery and counters.
#[derive(Debug)]
struct Rule {
    name: String,
    filter: Filter,
    spool: Spool,
    delivery: Delivery,
    retry: RetryConfig,
    delivered: AtomicU64,
    failed_attempts: AtomicU64,
    dropped: AtomicU64,
    /// Whether the last write into the spool failed: logged when it starts and when it ends,
    /// not once per event (a full disk must not become a flood of log lines).
    spool_failing: std::sync::atomic::AtomicBool,
}

impl Rule {
    fn drop_events(&self, count: usize) {
        self.dropped.fetch_add(count as u64, Ordering::Relaxed);
    }
}

/// What the spool thread is given.
enum Message {
    /// An event's document, for the rules (indices) that take it.
    Event(Arc<[u8]>, Vec<usize>),
    /// Write everything given before, answer, and stop.
    Close(tokio::sync::oneshot::Sender<()>),
}

/// The counters of one rule, for the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleCounters {
    /// The rule's name.
    pub rule: String,
    /// Events delivered.
    pub delivered: u64,
    /// Attempts that failed (each is retried).
    pub failed_attempts: u64,
    /// Events dropped: the spool or the channel to it was full, or the spool failed.
    pub dropped: u64,
    /// Events waiting in the spool.
    pub spooled: u64,
}

/// The counters of every rule of running hooks.
#[derive(Debug, Clone)]
pub struct HookCounters {
    rules: Arc<[Rule]>,
}

impl HookCounters {
    /// Each rule's counters now.
    pub fn snapshot(&self) -> Vec<RuleCounters> {
        self.rules
            .iter()
            .map(|rule| RuleCounters {
                rule: rule.name.clone(),
                delivered: rule.delivered.load(Ordering::Relaxed),
                failed_attempts: rule.failed_attempts.load(Ordering::Relaxed),
                dropped: rule.dropped.load(Ordering::Relaxed),
                spooled: rule.spool.len() as u64,
            })
            .collect()
    }
}

/// The running hooks of one server.
#[derive(Debug)]
pub struct Hooks {
    sink: Arc<HookSink>,
    rules: Arc<[Rule]>,
    deliverers: Vec<tokio::task::JoinHandle<()>>,
}

/// Takes the audit events and bans of the sessions (see the crate's documentation).
#[derive(Debug)]
pub struct HookSink {
    rules: Arc<[Rule]>,
    to_spool: mpsc::SyncSender<Message>,
    /// Whether events are being dropped: logged once when it starts, not once per event (a
    /// flood of events must not become a flood of log lines; the metrics count each).
    dropping: std::sync::atomic::AtomicBool,
    /// `hooks.upload_sha256`: whether uploads compute their content's digest.
    upload_sha256: bool,
}

impl Hooks {
    /// Starts the hooks `config` describes: opens the spools (under `data_dir` when relative),
    /// starts the spool thread and one delivery task per rule (on the current runtime).
    /// Events already spooled are delivered first.
    pub fn start(config: &HooksConfig, data_dir: &Path) -> Result<Hooks, HookError> {
        config.validate()?;
        let rules = open_rules(config, data_dir)?;
        let (sink, from_sessions) =
            HookSink::new(rules.clone(), CHANNEL_EVENTS, config.upload_sha256);
        let spooled_rules = rules.clone();
        // The spool thread logs where its starter does (the process's subscriber, or a test's).
        let logs = tracing::dispatcher::get_default(Clone::clone);
        std::thread::Builder::new()
            .name("wharf-hooks-spool".to_owned())
            .spawn(move || {
                tracing::dispatcher::with_default(&logs, || {
                    write_spools(&spooled_rules, &from_sessions);
                });
            })
            .map_err(|err| HookError::Io("starting the hooks' spool thread".to_owned(), err))?;
        let deliverers =
            (0..rules.len()).map(|index| tokio::spawn(deliver(rules.clone(), index))).collect();
        Ok(Hooks { sink: Arc::new(sink), rules, deliverers })
    }

    /// The sink the sessions give their events to.
    pub fn sink(&self) -> Arc<dyn AuditSink> {
        self.sink.clone()
    }

    /// The rules' counters, to read whenever the metrics are asked for.
    pub fn counters(&self) -> HookCounters {
        HookCounters { rules: self.rules.clone() }
    }

    /// At shutdown, once the sessions are over: writes the events given so far into the
    /// spools (waiting at most [`CLOSE_LIMIT`]) and stops delivering. What is undelivered
    /// stays spooled for the next start; events given after this are dropped (counted).
    pub async fn close(self) {
        let (written, done) = tokio::sync::oneshot::channel();
        let sink = self.sink.clone();
        let closing = async move {
            // A full channel makes the send wait for room: off the async workers.
            let sent = tokio::task::spawn_blocking(move || {
                sink.to_spool.send(Message::Close(written)).is_ok()
            });
            if matches!(sent.await, Ok(true)) {
                let _ = done.await;
            }
        };
        if tokio::time::timeout(CLOSE_LIMIT, closing).await.is_err() {
            tracing::warn!(
                "the hooks' spool did not finish writing in time; the last events may be lost"
            );
        }
        for deliverer in &self.deliverers {
            deliverer.abort();
        }
    }
}

/// Opens the rules of `config` (validated): their filters, deliveries and spools.
fn open_rules(config: &HooksConfig, data_dir: &Path) -> Result<Arc<[Rule]>, HookError> {
    let spool_dir = data_dir.join(&config.spool_dir);
    let mut rules = Vec::with_capacity(config.rules.len());
    for rule in &config.rules {
        let filter = Filter::of(rule).map_err(HookError::Config)?;
        let delivery = match (&rule.http, &rule.command) {
            (Some(http), _) => Delivery::Http(HttpDelivery::new(http, data_dir)?),
            (None, Some(command)) => Delivery::Command(CommandDelivery::new(command)),
            (None, None) => {
                return Err(HookError::Config(format!(
                    "hook rule `{}` delivers nowhere",
                    rule.name
                )));
            }
        };
        let dir = spool_dir.join(&rule.name);
        let spool = Spool::open(&dir, config.max_spooled_events).map_err(|err| {
            HookError::Io(format!("opening the hooks' spool {}", dir.display()), err)
        })?;
        if spool.len() > 0 {
            tracing::info!(rule = %rule.name, waiting = spool.len(), "hook events from before the restart will be delivered");
        }
        rules.push(Rule {
            name: rule.name.clone(),
            filter,
            spool,
            delivery,
            retry: rule.retry,
            delivered: AtomicU64::new(0),
            failed_attempts: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            spool_failing: std::sync::atomic::AtomicBool::new(false),
        });
    }
    Ok(rules.into())
}

impl HookSink {
    /// A sink for `rules` whose channel to the spool thread holds `capacity` events; the
    /// receiving end is the spool thread's.
    fn new(
        rules: Arc<[Rule]>,
        capacity: usize,
        upload_sha256: bool,
    ) -> (HookSink, mpsc::Receiver<Message>) {
        let (to_spool, from_sessions) = mpsc::sync_channel(capacity);
        let sink = HookSink {
            rules,
            to_spool,
            dropping: std::sync::atomic::AtomicBool::new(false),
            upload_sha256,
        };
        (sink, from_sessions)
    }

    fn offer(&self, event: HookEvent) {
        let takers: Vec<usize> =
            (0..self.rules.len()).filter(|index| self.rules[*index].filter.takes(&event)).collect();
        if takers.is_empty() {
            return;
        }
        let document: Arc<[u8]> = match serde_json::to_vec(&event) {
            Ok(document) => document.into(),
            Err(err) => {
                tracing::warn!(error = %err, "a hook event could not be written as JSON");
                return;
            }
        };
        if let Err(refused) = self.to_spool.try_send(Message::Event(document, takers)) {
            let (mpsc::TrySendError::Full(message) | mpsc::TrySendError::Disconnected(message)) =
                refused;
            if let Message::Event(_, takers) = message {
                for index in takers {
                    self.rules[index].drop_events(1);
                }
            }
            if !self.dropping.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    event = event.event.as_str(),
                    "hook events dropped: the spool is behind or closed (counted in \
                     wharf_hook_events_dropped_total)"
                );
            }
        } else {
            self.dropping.store(false, Ordering::Relaxed);
        }
    }
}

impl AuditSink for HookSink {
    fn event(&self, event: &AuditEvent<'_>) {
        if let Some(event) = HookEvent::of_audit(event) {
            self.offer(event);
        }
    }

    fn banned(&self, address: IpAddr, ban_time: Duration, reason: &str) {
        self.offer(HookEvent::ban(address, ban_time, reason));
    }

    fn upload_sha256(&self) -> bool {
        self.upload_sha256
    }
}

/// The spool thread: writes each event given into the spools of the rules that take it.
fn write_spools(rules: &[Rule], given: &mpsc::Receiver<Message>) {
    while let Ok(message) = given.recv() {
        match message {
            Message::Event(document, takers) => {
                for index in takers {
                    let rule = &rules[index];
                    let added = rule.spool.add(&document);
                    if added.is_ok() && rule.spool_failing.swap(false, Ordering::Relaxed) {
                        tracing::info!(rule = %rule.name, "the hooks' spool takes events again");
                    }
                    match added {
                        Ok(added) if added.dropped > 0 => {
                            rule.drop_events(added.dropped);
                            tracing::warn!(rule = %rule.name, dropped = added.dropped, "hooks' spool full: oldest events dropped");
                        }
                        Ok(_) => {}
                        Err(err) => {
                            rule.drop_events(1);
                            if !rule.spool_failing.swap(true, Ordering::Relaxed) {
                                tracing::warn!(
                                    rule = %rule.name,
                                    error = %err,
                                    "hook events dropped: they cannot be written into the spool \
                                     (counted in wharf_hook_events_dropped_total; logged again \
                                     when it takes events again)"
                                );
                            }
                        }
                    }
                }
            }
            Message::Close(written) => {
                let _ = written.send(());
                return;
            }
        }
    }
}

/// Rule `index`'s delivery task: the oldest spooled event, until taken, forever.
async fn deliver(rules: Arc<[Rule]>, index: usize) {
    let rule = &rules[index];
    let mut pause = rule.retry.first;
    loop {
        let Some(sequence) = rule.spool.oldest() else {
            rule.spool.wait_for_more().await;
            continue;
        };
        let path = rule.spool.path_of(sequence);
        let document = match tokio::fs::read(&path).await {
            Ok(document) => document,
            // Dropped to make room while we looked.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                rule.spool.remove(sequence).await;
                continue;
            }
            Err(err) => {
                tracing::warn!(rule = %rule.name, file = %path.display(), error = %err, "a spooled hook event could not be read; trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(rule.retry.max);
                continue;
            }
        };
        let event: HookEvent = match serde_json::from_slice(&document) {
            Ok(event) => event,
            Err(err) => {
                tracing::warn!(rule = %rule.name, file = %path.display(), error = %err, "a spooled hook event is not an event; dropped");
                rule.drop_events(1);
                rule.spool.remove(sequence).await;
                continue;
            }
        };
        match rule.delivery.deliver(&event, &document).await {
            Ok(()) => {
                rule.delivered.fetch_add(1, Ordering::Relaxed);
                rule.spool.remove(sequence).await;
                pause = rule.retry.first;
            }
            Err(err) => {
                rule.failed_attempts.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    rule = %rule.name,
                    event = event.event.as_str(),
                    id = %event.id,
                    error = %err,
                    retry_in = ?pause,
                    "hook delivery failed; will try again"
                );
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(rule.retry.max);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use wharf_access::{Actor, Operation, Outcome, Protocol};
    use wharf_vfs::VPath;

    use super::*;

    /// Bounds every wait of these tests.
    const LIMIT: Duration = Duration::from_secs(20);

    fn rule(name: &str, events: &[EventKind]) -> RuleConfig {
        RuleConfig {
            name: name.to_owned(),
            events: events.to_vec(),
            users: Vec::new(),
            paths: Vec::new(),
            http: None,
            command: None,
            retry: RetryConfig {
                first: Duration::from_millis(50),
                max: Duration::from_millis(200),
            },
        }
    }

    fn upload_of(sink: &dyn AuditSink, path: &str, bytes: u64, outcome: Outcome) {
        let actor = Actor {
            session: 7,
            user: "alice".to_owned(),
            protocol: Protocol::Sftp,
            peer: "127.0.0.1:40000".parse().expect("addr"),
            sink: None,
        };
        let path: VPath = path.parse().expect("path");
        sink.event(&AuditEvent {
            actor: &actor,
            op: Operation::Upload,
            path: Some(&path),
            to: None,
            bytes: Some(bytes),
            sha256: None,
            duration: Duration::from_millis(3),
            outcome,
            detail: None,
        });
    }

    /// Reads one HTTP request from `stream`: its head and its body (by Content-Length).
    async fn read_request(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> (String, Vec<u8>) {
        let mut received = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&received[..end]).into_owned();
                let length: usize = head
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().ok())?
                    })
                    .expect("a Content-Length");
                if received.len() >= end + 4 + length {
                    return (head, received[end + 4..end + 4 + length].to_vec());
                }
            }
            let read = stream.read(&mut buffer).await.expect("read");
            assert!(read > 0, "the request ended early");
            received.extend_from_slice(&buffer[..read]);
        }
    }

    async fn answer(listener: &tokio::net::TcpListener, status: &str) -> (String, Vec<u8>) {
        let (mut stream, _) = listener.accept().await.expect("accept");
        let request = read_request(&mut stream).await;
        let reply = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        stream.write_all(reply.as_bytes()).await.expect("reply");
        request
    }

    #[tokio::test]
    async fn a_published_upload_is_posted_signed_retried_until_taken_and_unspooled() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("secret"), "s3cret\n").expect("secret");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        let mut arrivals = rule("arrivals", &[EventKind::Upload]);
        arrivals.http = Some(HttpConfig {
            url: format!("http://{addr}/in"),
            secret_file: Some("secret".into()),
            ca_file: None,
            timeout: Duration::from_secs(5),
        });
        let config = HooksConfig {
            spool_dir: "spool".into(),
            max_spooled_events: 10,
            upload_sha256: false,
            rules: vec![arrivals],
        };
        let hooks = Hooks::start(&config, dir.path()).expect("start");
        let sink = hooks.sink();
        upload_of(sink.as_ref(), "/in/cut.bin", 9, Outcome::Aborted);
        sink.banned("192.0.2.1".parse().expect("ip"), Duration::from_secs(60), "login");
        upload_of(sink.as_ref(), "/in/a.bin", 5, Outcome::Ok);

        let (refused, _) = tokio::time::timeout(LIMIT, answer(&listener, "503 Busy"))
            .await
            .expect("a first attempt");
        let (head, body) = tokio::time::timeout(LIMIT, answer(&listener, "200 OK"))
            .await
            .expect("a second attempt");
        let event: HookEvent = serde_json::from_slice(&body).expect("a JSON event");
        assert_eq!(event.event, EventKind::Upload, "neither the cut upload nor the ban: {event:?}");
        assert_eq!(event.path.as_deref(), Some("/in/a.bin"));
        assert_eq!((event.size, event.user.as_deref()), (Some(5), Some("alice")));
        let signed = format!("x-wharf-signature: {}", signature(b"s3cret", &body));
        assert!(head.to_lowercase().contains(&signed), "{head}");
        assert!(head.to_lowercase().contains(&format!("x-wharf-event-id: {}", event.id)), "{head}");
        assert!(refused.starts_with("POST /in "), "{refused}");

        // Taken: the spool empties (the counters say so once the file is gone).
        let deadline = std::time::Instant::now() + LIMIT;
        while hooks.counters().snapshot()[0].delivered == 0 {
            assert!(std::time::Instant::now() < deadline, "never counted as delivered");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let counters = &hooks.counters().snapshot()[0];
        assert_eq!((counters.failed_attempts, counters.spooled, counters.dropped), (1, 0, 0));
        assert_eq!(std::fs::read_dir(dir.path().join("spool/arrivals")).expect("spool").count(), 0);
        hooks.close().await;
    }

    #[tokio::test]
    async fn a_command_gets_a_hostile_name_as_data_and_a_failure_is_retried() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out");
        let pwned = dir.path().join("pwned");
        let tries = dir.path().join("tries");
        // Fails the first time (no `tries` file yet), then writes the path it was given.
        let script =
            "if [ ! -e \"$2\" ]; then : > \"$2\"; exit 3; fi; printf '%s' \"$WHARF_PATH\" > \"$1\"";
        let mut scan = rule("scan", &[EventKind::Upload]);
        scan.command = Some(CommandConfig {
            program: "/bin/sh".into(),
            args: vec![
                "-c".to_owned(),
                script.to_owned(),
                "sh".to_owned(),
                out.display().to_string(),
                tries.display().to_string(),
            ],
            timeout: Duration::from_secs(10),
        });
        let config = HooksConfig {
            spool_dir: "spool".into(),
            max_spooled_events: 10,
            upload_sha256: false,
            rules: vec![scan],
        };
        let hooks = Hooks::start(&config, dir.path()).expect("start");
        // (Control characters, newlines included, never make it into a path: refused.)
        let hostile = format!("/a'b\"c $(touch {}) `id`; x", pwned.display());
        upload_of(hooks.sink().as_ref(), &hostile, 1, Outcome::Ok);
        let deadline = std::time::Instant::now() + LIMIT;
        while !out.exists() {
            assert!(std::time::Instant::now() < deadline, "the command never succeeded");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The file appears when the command opens it; wait for the delivery to be counted.
        while hooks.counters().snapshot()[0].delivered == 0 {
            assert!(std::time::Instant::now() < deadline, "never counted as delivered");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(std::fs::read_to_string(&out).expect("out"), hostile);
        assert!(!pwned.exists(), "the name was run as shell");
        assert_eq!(hooks.counters().snapshot()[0].failed_attempts, 1);
        hooks.close().await;
    }

    /// Warnings logged (their messages), by a subscriber set for one thread.
    #[derive(Clone, Default)]
    struct Warnings(Arc<std::sync::Mutex<Vec<String>>>);

    impl Warnings {
        fn containing(&self, needle: &str) -> usize {
            self.0.lock().expect("lock").iter().filter(|m| m.contains(needle)).count()
        }
    }

    struct LogMessage(String);

    impl tracing::field::Visit for LogMessage {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            if field.name() == "message" {
                self.0 = format!("{value:?}");
            }
        }
    }

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warnings {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            if *event.metadata().level() == tracing::Level::WARN {
                let mut message = LogMessage(String::new());
                event.record(&mut message);
                self.0.lock().expect("lock").push(message.0);
            }
        }
    }

    impl Warnings {
        /// Collects the warnings of the current thread (and of threads started with its
        /// dispatcher, as the spool thread is) while the guard lives.
        fn capture() -> (Warnings, tracing::subscriber::DefaultGuard) {
            use tracing_subscriber::layer::SubscriberExt as _;
            let warnings = Warnings::default();
            let subscriber = tracing_subscriber::registry().with(warnings.clone());
            (warnings, tracing::subscriber::set_default(subscriber))
        }
    }

    /// A rule that runs `/bin/true` on uploads (delivered at once when its task runs).
    fn true_rule(name: &str) -> RuleConfig {
        let mut rule = rule(name, &[EventKind::Upload]);
        rule.command = Some(CommandConfig {
            program: "/bin/true".into(),
            args: Vec::new(),
            timeout: Duration::from_secs(10),
        });
        rule
    }

    fn config_of(rules: Vec<RuleConfig>) -> HooksConfig {
        HooksConfig {
            spool_dir: "spool".into(),
            max_spooled_events: 10,
            upload_sha256: false,
            rules,
        }
    }

    /// Waits (at most [`LIMIT`]) until `done` holds of the first rule's counters.
    async fn wait_for(hooks: &Hooks, what: &str, done: impl Fn(&RuleCounters) -> bool) {
        let deadline = std::time::Instant::now() + LIMIT;
        loop {
            let counters = hooks.counters().snapshot().remove(0);
            if done(&counters) {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "never {what}: {counters:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[test]
    fn a_full_channel_drops_counts_and_logs_once_and_no_session_waits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config_of(vec![true_rule("arrivals")]);
        let rules = open_rules(&config, dir.path()).expect("rules");
        // No spool thread: nothing takes from this channel of 2 until the test does.
        let (sink, from_sessions) = HookSink::new(rules.clone(), 2, false);
        let sink = Arc::new(sink);
        let (offered, done) = mpsc::channel();
        let sessions = sink.clone();
        std::thread::spawn(move || {
            let (warnings, _guard) = Warnings::capture();
            for n in 0..5 {
                upload_of(sessions.as_ref(), &format!("/in/{n}.bin"), 1, Outcome::Ok);
            }
            let _ = offered.send(warnings);
        });
        // Had an offer waited for room, none would come: the spool thread is not there.
        let warnings = done.recv_timeout(LIMIT).expect("the offers returned without waiting");
        assert_eq!(rules[0].dropped.load(Ordering::Relaxed), 3, "2 queued, 3 dropped");
        assert_eq!(warnings.containing("hook events dropped"), 1, "logged once, not per event");
        let queued: Vec<HookEvent> = from_sessions
            .try_iter()
            .filter_map(|message| match message {
                Message::Event(document, _) => serde_json::from_slice(&document).ok(),
                Message::Close(_) => None,
            })
            .collect();
        let queued: Vec<_> = queued.iter().filter_map(|e| e.path.as_deref()).collect();
        assert_eq!(queued, ["/in/0.bin", "/in/1.bin"], "the first ones kept, in order");

        // Room again: taken, and a later flood is logged once more.
        let (warnings, _guard) = Warnings::capture();
        for n in 5..9 {
            upload_of(sink.as_ref(), &format!("/in/{n}.bin"), 1, Outcome::Ok);
        }
        assert_eq!(rules[0].dropped.load(Ordering::Relaxed), 5);
        assert_eq!(warnings.containing("hook events dropped"), 1);
        assert_eq!(from_sessions.try_iter().count(), 2);
    }

    #[tokio::test]
    async fn a_spool_that_cannot_be_written_drops_counts_logs_once_and_recovers() {
        let (warnings, _guard) = Warnings::capture();
        let dir = tempfile::tempdir().expect("tempdir");
        let hooks =
            Hooks::start(&config_of(vec![true_rule("arrivals")]), dir.path()).expect("start");
        // The spool folder becomes a file: no write under it succeeds, root's neither.
        let spool = dir.path().join("spool/arrivals");
        std::fs::remove_dir(&spool).expect("remove the spool folder");
        std::fs::write(&spool, b"in the way").expect("a file in its place");
        let sink = hooks.sink();
        let started = std::time::Instant::now();
        for n in 0..3 {
            upload_of(sink.as_ref(), &format!("/in/{n}.bin"), 1, Outcome::Ok);
        }
        assert!(started.elapsed() < Duration::from_secs(1), "handing events over never waits");
        wait_for(&hooks, "counted as dropped", |c| c.dropped == 3).await;
        assert_eq!(warnings.containing("cannot be written into the spool"), 1, "logged once");
        let counters = &hooks.counters().snapshot()[0];
        assert_eq!((counters.spooled, counters.delivered), (0, 0));

        // A spool that works again takes (and delivers) the next event.
        std::fs::remove_file(&spool).expect("remove the file");
        std::fs::create_dir(&spool).expect("the folder again");
        upload_of(sink.as_ref(), "/in/later.bin", 1, Outcome::Ok);
        wait_for(&hooks, "delivered", |c| c.delivered == 1).await;
        assert_eq!(hooks.counters().snapshot()[0].dropped, 3);
        hooks.close().await;
    }

    /// A certificate authority of its own, and a server certificate for 127.0.0.1 it signed.
    struct Authority {
        pem: String,
        server_chain: Vec<rustls::pki_types::CertificateDer<'static>>,
        server_key: rustls::pki_types::PrivateKeyDer<'static>,
    }

    impl Authority {
        fn new(name: &str) -> Authority {
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params.distinguished_name.push(rcgen::DnType::CommonName, name);
            let ca_key = rcgen::KeyPair::generate().expect("CA key");
            let ca = rcgen::CertifiedIssuer::self_signed(params, ca_key).expect("CA");
            let server_key = rcgen::KeyPair::generate().expect("server key");
            let server = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
                .expect("params")
                .signed_by(&server_key, &ca)
                .expect("server certificate");
            Authority {
                pem: ca.pem(),
                server_chain: vec![server.der().clone()],
                server_key: rustls::pki_types::PrivateKeyDer::try_from(server_key.serialize_der())
                    .expect("key"),
            }
        }

        fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let config = rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_no_client_auth()
                .with_single_cert(self.server_chain.clone(), self.server_key.clone_key())
                .expect("server config");
            tokio_rustls::TlsAcceptor::from(Arc::new(config))
        }
    }

    /// What an HTTPS receiver saw: requests (head, body) and refused handshakes.
    #[derive(Default)]
    struct Seen {
        requests: Vec<(String, Vec<u8>)>,
        refused_handshakes: usize,
    }

    /// An HTTPS receiver on loopback answering `200 OK`; returns its port and what it saw.
    async fn https_receiver(
        authority: &Authority,
    ) -> (u16, Arc<std::sync::Mutex<Seen>>, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let acceptor = authority.acceptor();
        let seen = Arc::new(std::sync::Mutex::new(Seen::default()));
        let record = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let handshake = tokio::time::timeout(LIMIT, acceptor.accept(stream)).await;
                let Ok(Ok(mut tls)) = handshake else {
                    record.lock().expect("lock").refused_handshakes += 1;
                    continue;
                };
                let request = tokio::time::timeout(LIMIT, read_request(&mut tls)).await;
                let Ok(request) = request else { continue };
                record.lock().expect("lock").requests.push(request);
                let reply = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
                let _ = tls.write_all(reply.as_bytes()).await;
                let _ = tls.shutdown().await;
            }
        });
        (port, seen, task)
    }

    #[tokio::test]
    async fn https_endpoints_are_trusted_through_their_ca_file_and_only_so() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("secret"), "s3cret\n").expect("secret");
        let ours = Authority::new("Pipeline CA");
        let theirs = Authority::new("Someone else's CA");
        std::fs::write(dir.path().join("pipeline-ca.pem"), &ours.pem).expect("CA file");
        let (trusted_port, trusted, trusted_task) = https_receiver(&ours).await;
        let (untrusted_port, untrusted, untrusted_task) = https_receiver(&theirs).await;
        let https_rule = |name: &str, port: u16| {
            let mut rule = rule(name, &[EventKind::Upload]);
            rule.http = Some(HttpConfig {
                url: format!("https://127.0.0.1:{port}/in"),
                secret_file: Some("secret".into()),
                ca_file: Some("pipeline-ca.pem".into()),
                timeout: Duration::from_secs(5),
            });
            rule
        };
        // The second receiver's certificate is signed by a CA the rule does not trust.
        let config = config_of(vec![
            https_rule("trusted", trusted_port),
            https_rule("untrusted", untrusted_port),
        ]);
        let hooks = Hooks::start(&config, dir.path()).expect("start");
        upload_of(hooks.sink().as_ref(), "/in/a.bin", 5, Outcome::Ok);

        let deadline = std::time::Instant::now() + LIMIT;
        loop {
            let counters = hooks.counters().snapshot();
            let refused = untrusted.lock().expect("lock").refused_handshakes;
            // Delivered over HTTPS to the one; refused (and tried again) by the other.
            if counters[0].delivered == 1 && counters[1].failed_attempts >= 2 && refused >= 2 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{counters:?}, {refused} refused");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let requests = std::mem::take(&mut trusted.lock().expect("lock").requests);
        assert_eq!(requests.len(), 1);
        let (head, body) = &requests[0];
        let event: HookEvent = serde_json::from_slice(body).expect("a JSON event");
        assert_eq!((event.event, event.path.as_deref()), (EventKind::Upload, Some("/in/a.bin")));
        let signed = format!("x-wharf-signature: {}", signature(b"s3cret", body));
        assert!(head.to_lowercase().contains(&signed), "{head}");
        // Not delivered to an endpoint it cannot trust: still spooled, never received.
        let counters = &hooks.counters().snapshot()[1];
        assert_eq!((counters.delivered, counters.spooled), (0, 1), "{counters:?}");
        assert!(untrusted.lock().expect("lock").requests.is_empty());
        hooks.close().await;
        trusted_task.abort();
        untrusted_task.abort();
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused_at_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("empty.pem"), "not a certificate\n").expect("write");
        let mut rule = rule("arrivals", &[EventKind::Upload]);
        rule.http = Some(HttpConfig {
            url: "https://127.0.0.1:9/in".to_owned(),
            secret_file: None,
            ca_file: Some("empty.pem".into()),
            timeout: Duration::from_secs(5),
        });
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let _entered = runtime.enter();
        let err = Hooks::start(&config_of(vec![rule]), dir.path()).expect_err("refused");
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
    }
}
