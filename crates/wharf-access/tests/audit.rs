//! Audit events: one per operation, with byte counts for transfers, never a password.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::{PASSWORD, p, peer, share};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use wharf_access::{AUDIT_TARGET, Credential, LoginRequest, Password, Protocol, WriteMode};

type Events = Arc<Mutex<Vec<BTreeMap<String, String>>>>;

/// Held by each test of this file for its whole run. `tracing` caches, per callsite, whether
/// any subscriber wants its events; a test that emits audit events with no subscriber while
/// another test installs its capturing one (`set_default`) can race that cache and leave the
/// capture without the event. One test at a time, the cache is rebuilt whenever a capture
/// starts, so every event reaches it.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Capture(Events);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}").trim_matches('"').to_owned());
    }
}

impl Capture {
    /// Captures this thread's audit events while the guard lives.
    fn start() -> (Events, tracing::subscriber::DefaultGuard) {
        let events: Events = Arc::default();
        let subscriber = tracing_subscriber::registry().with(Capture(events.clone()));
        (events, tracing::subscriber::set_default(subscriber))
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() == AUDIT_TARGET {
            let mut fields = BTreeMap::new();
            event.record(&mut Fields(&mut fields));
            self.0.lock().expect("lock").push(fields);
        }
    }
}

#[tokio::test]
async fn transfers_and_logins_are_audited() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let (events, _guard) = Capture::start();

    let fx = share("users:\n  - name: alice\n    password: \"$HASH\"\n    home: alice\n");
    let bad = LoginRequest {
        protocol: Protocol::Ftp,
        peer: peer(),
        user: "alice".into(),
        credential: Credential::Password(Password::new("hunter2-not-it")),
    };
    assert!(fx.auth.login(bad).await.is_err());
    let session = fx.login("alice", Protocol::Sftp).await;

    let mut up = session.open_write(&p("/data.bin"), WriteMode::Replace).await.expect("open");
    up.write(Bytes::from(vec![7u8; 70_000])).await.expect("write");
    up.commit().await.expect("commit");

    let down = session.open_read(&p("/data.bin")).await.expect("open");
    let mut stream = down.stream(0);
    let mut total = 0;
    while let Some(chunk) = stream.next_chunk().await.expect("chunk") {
        // What a front-end does once the client's socket took the chunk: only that counts.
        stream.add_sent(chunk.len() as u64);
        total += chunk.len();
    }
    stream.finish();
    assert_eq!(total, 70_000);

    let mut aborted = session.open_write(&p("/half.bin"), WriteMode::Replace).await.expect("open");
    aborted.write(Bytes::from_static(b"12345")).await.expect("write");
    drop(aborted);
    drop(session);

    let events = events.lock().expect("lock").clone();
    let ops: Vec<(&str, &str)> =
        events.iter().map(|e| (e["op"].as_str(), e["outcome"].as_str())).collect();
    assert_eq!(
        ops,
        vec![
            ("login", "denied"),
            ("login", "ok"),
            ("upload", "ok"),
            ("download", "ok"),
            ("upload", "aborted"),
            ("logout", "ok"),
        ]
    );
    let upload = &events[2];
    assert_eq!(upload["bytes"], "70000");
    assert_eq!(upload["path"], "/data.bin");
    assert_eq!(upload["user"], "alice");
    assert_eq!(upload["protocol"], "sftp");
    assert_eq!(events[3]["bytes"], "70000");
    assert_eq!(events[4]["bytes"], "5");
    for event in &events {
        let line = format!("{event:?}");
        assert!(!line.contains(PASSWORD) && !line.contains("hunter2-not-it"), "{line}");
    }
}

/// An audit sink that keeps `(op, outcome, sha256)` of each event, and asks for upload
/// digests or not.
#[derive(Debug, Default)]
struct Digests {
    wanted: bool,
    seen: Mutex<Vec<(String, String, Option<String>)>>,
}

impl wharf_access::AuditSink for Digests {
    fn event(&self, event: &wharf_access::AuditEvent<'_>) {
        let seen = (
            event.op.as_str().to_owned(),
            event.outcome.as_str().to_owned(),
            event.sha256.map(str::to_owned),
        );
        self.seen.lock().expect("lock").push(seen);
    }

    fn banned(&self, _: std::net::IpAddr, _: std::time::Duration, _: &str) {}

    fn upload_sha256(&self) -> bool {
        self.wanted
    }
}

impl Digests {
    /// The digests of the uploads seen, with their outcomes.
    fn uploads(&self) -> Vec<(String, Option<String>)> {
        let seen = self.seen.lock().expect("lock");
        seen.iter()
            .filter(|(op, _, _)| op == "upload")
            .map(|(_, outcome, sha256)| (outcome.clone(), sha256.clone()))
            .collect()
    }
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// A share whose sessions report to `sink`.
fn share_reporting_to(sink: Arc<Digests>) -> common::Share {
    let fx = share("users:\n  - name: alice\n    password: \"$HASH\"\n    home: alice\n");
    common::Share { auth: fx.auth.with_audit_sink(sink), ..fx }
}

#[tokio::test]
async fn a_whole_file_written_in_order_from_0_has_its_sha256_and_nothing_else_does() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let sink = Arc::new(Digests { wanted: true, ..Digests::default() });
    let fx = share_reporting_to(sink.clone());
    let session = fx.login("alice", Protocol::Sftp).await;
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let ok = |data: &[u8]| ("ok".to_owned(), Some(sha256_hex(data)));
    let none = ("ok".to_owned(), None);

    // FTP's and TFTP's way: sequential writes.
    let mut up = session.open_write(&p("/seq.bin"), WriteMode::Replace).await.expect("open");
    for piece in data.chunks(65_536) {
        up.write(Bytes::copy_from_slice(piece)).await.expect("write");
    }
    up.commit().await.expect("commit");
    // SFTP's way: positional writes, in order from 0 (an exclusive create too).
    let mut up = session.open_write(&p("/pos.bin"), WriteMode::CreateNew).await.expect("open");
    for (n, piece) in data.chunks(32_768).enumerate() {
        up.write_at(n as u64 * 32_768, Bytes::copy_from_slice(piece)).await.expect("write");
    }
    up.commit().await.expect("commit");
    // An empty file is a whole file too.
    let up = session.open_write(&p("/empty.bin"), WriteMode::Replace).await.expect("open");
    up.commit().await.expect("commit");
    assert_eq!(sink.uploads(), [ok(&data), ok(&data), ok(b"")]);

    // A gap (the hole reads as zeros, never hashed), writes out of order, an overlap.
    for (name, writes) in [
        ("/gap.bin", [(0u64, 0..10usize), (20, 20..30)]),
        ("/backwards.bin", [(10, 10..20), (0, 0..10)]),
        ("/overlap.bin", [(0, 0..20), (10, 10..30)]),
    ] {
        let mut up = session.open_write(&p(name), WriteMode::Replace).await.expect("open");
        for (offset, range) in writes {
            up.write_at(offset, Bytes::copy_from_slice(&data[range])).await.expect("write");
        }
        up.commit().await.expect("commit");
    }
    // In place: a resume at an offset, an append, a write into the start of a file kept.
    let mut up = session.open_write(&p("/seq.bin"), WriteMode::At(300_000)).await.expect("open");
    up.write(Bytes::from_static(b"more")).await.expect("write");
    up.commit().await.expect("commit");
    let mut up = session.open_write(&p("/seq.bin"), WriteMode::Append).await.expect("open");
    up.write(Bytes::from_static(b"more")).await.expect("write");
    up.commit().await.expect("commit");
    let mut up = session.open_write(&p("/pos.bin"), WriteMode::At(0)).await.expect("open");
    up.write_at(0, Bytes::from_static(b"head")).await.expect("write");
    up.commit().await.expect("commit");
    // Not published: no digest even though every byte so far was in order.
    let mut up = session.open_write(&p("/cut.bin"), WriteMode::Replace).await.expect("open");
    up.write(Bytes::from_static(b"half")).await.expect("write");
    drop(up);
    drop(session);

    let uploads = sink.uploads();
    assert_eq!(
        uploads[3..9],
        [none.clone(), none.clone(), none.clone(), none.clone(), none.clone(), none]
    );
    assert_eq!(uploads[9], ("aborted".to_owned(), None));
    assert_eq!(uploads.len(), 10);
}

#[tokio::test]
async fn no_sha256_is_computed_unless_the_sink_asks_for_it() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let (events, _guard) = Capture::start();
    for wanted in [false, true] {
        let sink = Arc::new(Digests { wanted, ..Digests::default() });
        let fx = share_reporting_to(sink.clone());
        let session = fx.login("alice", Protocol::Ftp).await;
        let mut up = session.open_write(&p("/a.bin"), WriteMode::Replace).await.expect("open");
        up.write(Bytes::from_static(b"hello")).await.expect("write");
        up.commit().await.expect("commit");
        let expected = wanted.then(|| sha256_hex(b"hello"));
        assert_eq!(sink.uploads(), [("ok".to_owned(), expected.clone())], "wanted: {wanted}");
        // The audit log's event carries the same field.
        let logged = events.lock().expect("lock").clone();
        let upload = logged.iter().rev().find(|e| e["op"] == "upload").expect("audited");
        assert_eq!(upload.get("sha256").cloned(), expected, "wanted: {wanted}");
    }
}
