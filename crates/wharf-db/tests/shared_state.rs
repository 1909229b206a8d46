//! The shared state against a real PostgreSQL started by the test (loopback, temporary
//! directory): migrations under concurrency, users imported and read back, and changes and
//! outages seen by the watcher.

use std::time::Duration;

use tokio::sync::mpsc;
use wharf_access::Ban;
use wharf_db::{Database, DatabaseConfig, DbError, Reachability};
use wharf_testkit::Postgres;

/// How long any one expected event may take to arrive.
const EVENT_LIMIT: Duration = Duration::from_secs(20);

fn config(server: &Postgres) -> DatabaseConfig {
    serde_yaml::from_str(&format!("url: {}\npool_size: 2\n", server.url())).expect("section")
}

const TWO_USERS: &str = "users:\n  - { name: alice, home: alice, passwordless: true }\n  - { name: bob, home: bob, passwordless: true }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_migrate_once() {
    let Some(server) = Postgres::start() else { return };
    let config = config(&server);
    let (a, b, c) = tokio::join!(
        Database::connect(&config),
        Database::connect(&config),
        Database::connect(&config)
    );
    for database in [a, b, c] {
        database.expect("every node starts");
    }
    let versions = server.psql("SELECT count(*), count(DISTINCT version) FROM wharf_schema");
    let known = wharf_db::SCHEMA_VERSION;
    assert_eq!(versions.trim(), format!("{known}|{known}"), "each migration applied once");
    // And again later: nothing left to apply, nothing applied twice.
    Database::connect(&config).await.expect("restart");
    assert_eq!(server.psql("SELECT count(*) FROM wharf_schema").trim(), known.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_imported_whole_or_not_at_all() {
    let Some(server) = Postgres::start() else { return };
    let database = Database::connect(&config(&server)).await.expect("connect");
    let report = database.import_users(TWO_USERS).await.expect("import");
    assert_eq!((report.added, report.updated), (2, 0));
    let changed = "users:\n  - { name: bob, home: elsewhere, passwordless: true }\n  - { name: carol, home: carol, passwordless: true }\n";
    let report = database.import_users(changed).await.expect("import");
    assert_eq!((report.added, report.updated), (1, 1));
    let users = database.list_users().await.expect("list");
    let names: Vec<&str> = users.iter().map(|user| user.name.as_str()).collect();
    assert_eq!(names, ["alice", "bob", "carol"]);
    let bob = &users[1].config;
    assert_eq!(bob.home.as_ref().map(ToString::to_string).as_deref(), Some("/elsewhere"));
    let loaded = database.load_users().await.expect("load");
    assert_eq!(loaded.len(), 3);

    // One bad user: nothing of the file is stored.
    let bad = "users:\n  - { name: dave, home: dave, passwordless: true }\n  - { name: eve, password: not-a-hash }\n";
    let err = database.import_users(bad).await.expect_err("refused");
    assert!(err.to_string().contains("eve"), "{err}");
    assert_eq!(database.list_users().await.expect("list").len(), 3);

    // A row made wrong by hand is named when the users are loaded.
    server.psql("UPDATE wharf_users SET definition = '{\"name\": \"carol\", \"hmoe\": 1}' WHERE name = 'carol'");
    match database.load_users().await {
        Err(DbError::BadUser { name, .. }) => assert_eq!(name, "carol"),
        other => panic!("expected a bad user, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_sees_changes_and_outages() {
    let Some(mut server) = Postgres::start() else { return };
    let database = Database::connect(&config(&server)).await.expect("connect");
    let (events, mut seen) = mpsc::unbounded_channel();
    let watcher = tokio::spawn(database.watcher().run(events));
    let mut next = async || {
        tokio::time::timeout(EVENT_LIMIT, seen.recv())
            .await
            .expect("an event in time")
            .expect("running")
    };
    assert_eq!(next().await, Reachability::Reachable);

    // A change by any writer (here another connection's import) is told.
    let other = Database::connect(&config(&server)).await.expect("second node");
    other.import_users(TWO_USERS).await.expect("import");
    assert_eq!(next().await, Reachability::UsersChanged);
    server.psql("DELETE FROM wharf_users WHERE name = 'bob'");
    assert_eq!(next().await, Reachability::UsersChanged);

    // A ban recorded by a node is told, and read back; the later end of two is kept.
    let address = "192.0.2.7".parse().expect("address");
    let later = Ban { address, until_unix: now_unix() + 600, score: 15 };
    other.record_ban(&later).await.expect("ban");
    assert_eq!(next().await, Reachability::BansChanged);
    other.record_ban(&Ban { until_unix: now_unix() + 60, ..later.clone() }).await.expect("ban");
    assert_eq!(next().await, Reachability::BansChanged);
    assert_eq!(database.active_bans().await.expect("bans"), [later]);

    // The database goes away: told once; it comes back: told, and listening again.
    tokio::task::block_in_place(|| server.stop());
    assert!(matches!(next().await, Reachability::Unreachable(_)));
    tokio::task::block_in_place(|| server.start_again());
    assert_eq!(next().await, Reachability::Reachable);
    server.psql("DELETE FROM wharf_users WHERE name = 'alice'");
    assert_eq!(next().await, Reachability::UsersChanged);
    watcher.abort();
}

fn now_unix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_ledgers_are_shared_between_nodes() {
    use std::sync::Arc;
    use wharf_access::{
        ByteSize, Error, LedgerVersion, QuotaAccount, QuotaConfig, SharedLedgers, WriteMode,
    };
    use wharf_db::{ClusterQuotas, SessionLeases};

    const MIB: u64 = 1024 * 1024;
    let Some(server) = Postgres::start() else { return };
    let database = Database::connect(&config(&server)).await.expect("connect");
    let node = |database: Database| async move {
        let leases = SessionLeases::register(&database).await.expect("register");
        ClusterQuotas::new(&leases)
    };
    let (a, b) = (node(database.clone()).await, node(database.clone()).await);
    let limits = QuotaConfig { bytes: Some(ByteSize(20 * MIB)), files: Some(3) };
    let on_a =
        QuotaAccount::shared(Arc::new(a.clone()), "carol", limits, (0, 0), LedgerVersion(None))
            .await
            .expect("first measurement");
    let since = b.version("carol").await.expect("version");
    assert_eq!(since, LedgerVersion(Some(0)));
    let on_b = QuotaAccount::shared(Arc::new(b.clone()), "carol", limits, (0, 0), since)
        .await
        .expect("second measurement");
    let holds = || {
        server
            .psql("SELECT coalesce(sum(bytes), 0), coalesce(sum(files), 0) FROM wharf_quota_holds")
    };

    // Three places: the third goes to one node, and the next is refused on the other.
    let mut first = on_a.open_upload(WriteMode::Replace, None).await.expect("open on A");
    let mut second = on_b.open_upload(WriteMode::Replace, None).await.expect("open on B");
    let third = on_b.open_upload(WriteMode::Replace, None).await.expect("the last place");
    let refused = on_a.open_upload(WriteMode::Replace, None).await.expect_err("no place");
    assert!(matches!(refused, Error::QuotaExceeded));
    drop(third);
    b.flush().await.expect("B's settlement");

    // A reserves ahead of its writes; B gets exactly what is left, and no byte more.
    first.before_write(MIB).await.expect("1 MiB");
    assert_eq!(holds().trim(), format!("{}|2", 2 * MIB), "twice what A needs, and two places");
    second.before_write(18 * MIB).await.expect("what A does not hold");
    let refused = second.before_write(18 * MIB + 1).await.expect_err("over the limit");
    assert!(matches!(refused, Error::QuotaExceeded));
    first.before_write(2 * MIB).await.expect("within what A holds, without asking");
    assert!(matches!(first.before_write(2 * MIB + 1).await, Err(Error::QuotaExceeded)));

    // Published: the usage is what was written, and nothing stays held once settled.
    for (mut charge, size) in [(first, 2 * MIB), (second, 18 * MIB)] {
        let check = charge.publish_check().expect("a whole-file upload");
        check(None, size).await.expect("covered");
        charge.committed(None, size);
    }
    a.flush().await.expect("A's settlements");
    assert_eq!(on_b.used().await.expect("usage"), (20 * MIB, 2));
    assert_eq!(holds().trim(), "0|0");

    // A measurement begun before a settlement reached the ledger is not recorded over it.
    let since = a.version("carol").await.expect("version");
    on_b.removed(Some(MIB));
    b.flush().await.expect("B's settlement");
    on_a.remeasured(limits, (20 * MIB, 2), since).await.expect("stale measurement");
    assert_eq!(on_a.used().await.expect("usage"), (19 * MIB, 1), "the settlement stands");
}
