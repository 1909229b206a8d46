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

struct Capture(Events);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}").trim_matches('"').to_owned());
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
    let events: Events = Arc::default();
    let subscriber = tracing_subscriber::registry().with(Capture(events.clone()));
    let _guard = tracing::subscriber::set_default(subscriber);

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
