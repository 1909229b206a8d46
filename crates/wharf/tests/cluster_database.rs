//! Two nodes sharing their users through a real PostgreSQL the test starts (loopback,
//! temporary directory): users imported with `wharf users import` log in on both nodes, a
//! user added later reaches both within a second, and when the database goes away the nodes
//! refuse new logins with a temporary error while open sessions go on, then take logins again
//! by themselves when it is back.

mod common;

use std::io::{BufRead as _, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{
    RawFtp, Running, closes_unanswered, connect_from, finish, serve, users_file, wharf, write,
};
use wharf_testkit::{Postgres, TEST_PASSWORD, run_bounded};

/// The most a node may take to apply a change made in the database (issue 16's bar).
const PROPAGATION: Duration = Duration::from_secs(1);

/// How long a node may take to notice the database going or coming back (its watcher pings
/// a quiet connection every 5 s and retries every second).
const NOTICE: Duration = Duration::from_secs(20);

/// A node's configuration: one failed login bans (threshold 2, 2 points a failure).
fn node_config(dir: &Path, index: usize, database: &Postgres) -> std::path::PathBuf {
    scored_node_config(dir, index, database, 2)
}

/// A node's configuration where an address is banned at `threshold` (2 points a failed login).
fn scored_node_config(
    dir: &Path,
    index: usize,
    database: &Postgres,
    threshold: u32,
) -> std::path::PathBuf {
    let base = dir.display();
    write(
        dir,
        &format!("node-{index}.yaml"),
        &format!(
            "data_dir: {base}/node-{index}\nshutdown_grace: 2s\nstorage: {{ root: {base}/share }}\n\
             access: {{ login_failure_delay: 10ms }}\n\
             defender: {{ threshold: {threshold}, scores: {{ login_failed: 2 }} }}\n\
             database: {{ url: \"{}\", pool_size: 2 }}\n\
             ftp: {{ listen: [\"127.0.0.1:0\"] }}\n",
            database.url()
        ),
    )
}

/// `wharf users <args>` with `config`; returns what it printed, panics unless it succeeds.
fn wharf_users(dir: &Path, config: &Path, args: &[&str]) -> String {
    let mut command = wharf(dir);
    command.arg("users").arg("--config").arg(config).args(args);
    let out = run_bounded(&mut command, Duration::from_secs(60));
    assert!(out.status.success(), "wharf users {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Two nodes serving `users` (users-file list entries, `$HASH` standing for the hash of
/// [`TEST_PASSWORD`]), imported into the database before they start.
fn nodes_with_users(dir: &Path, database: &Postgres, users: &str) -> Vec<Running> {
    let configs: Vec<_> = (0..2).map(|index| node_config(dir, index, database)).collect();
    let hash =
        wharf_access::hash_password(&wharf_access::Password::new(TEST_PASSWORD)).expect("hash");
    let file = write(dir, "imported.yaml", &format!("users:\n{}", users.replace("$HASH", &hash)));
    wharf_users(dir, &configs[0], &["import", file.to_str().expect("path")]);
    configs.iter().map(|config| serve(dir, config)).collect()
}

#[test]
fn users_follow_the_database_on_every_node() {
    let Some(mut database) = Postgres::start() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("share")).expect("share");
    let configs: Vec<_> = (0..2).map(|index| node_config(dir, index, &database)).collect();

    // Users go in before any node runs; the command applies the schema itself.
    let first = users_file(dir, "first.yaml", &["alice"]);
    let imported = wharf_users(dir, &configs[0], &["import", first.to_str().expect("path")]);
    assert!(imported.contains("1 users added, 0 replaced"), "{imported}");
    let listed = wharf_users(dir, &configs[1], &["list"]);
    assert!(listed.contains("alice") && listed.starts_with("1 users"), "{listed}");

    let nodes: Vec<Running> = configs.iter().map(|config| serve(dir, config)).collect();
    for node in &nodes {
        assert!(node.banner.contains("users: the shared database (1 defined)"), "{}", node.banner);
        // The watcher's first reading, once it listens.
        node.wait_for_log("users reloaded from the database", NOTICE);
        node.wait_for_log("bans reloaded from the database", NOTICE);
        let (_, reply) = RawFtp::login(node.listener("FTP"), "alice", TEST_PASSWORD);
        assert!(reply.starts_with("230"), "{reply}");
    }

    // A user added while the nodes run reaches both at once.
    let second = users_file(dir, "second.yaml", &["bob"]);
    wharf_users(dir, &configs[0], &["import", second.to_str().expect("path")]);
    let imported_at = Instant::now();
    for node in &nodes {
        node.wait_for_log("users reloaded from the database", NOTICE);
    }
    let took = imported_at.elapsed();
    assert!(took <= PROPAGATION, "both nodes had the new user after {took:?}");
    for node in &nodes {
        let (_, reply) = RawFtp::login(node.listener("FTP"), "bob", TEST_PASSWORD);
        assert!(reply.starts_with("230"), "{reply}");
    }

    // A ban earned on one node holds on the other within a second (the address is one of
    // the test's own, so the rest of the test is not banned).
    let guesser = Ipv4Addr::new(127, 0, 0, 9);
    let mut control = RawFtp::connect_from(guesser, nodes[0].listener("FTP"));
    assert!(control.send("USER alice").starts_with("331"));
    let reply = control.send("PASS wrong");
    assert!(reply.starts_with("530"), "{reply}");
    let banned_at = Instant::now();
    nodes[1].wait_for_log("bans reloaded from the database", NOTICE);
    let took = banned_at.elapsed();
    assert!(took <= PROPAGATION, "the other node had the ban after {took:?}");
    for node in &nodes {
        let mut stream = connect_from(guesser, node.listener("FTP"));
        stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
        assert!(closes_unanswered(&mut stream), "the banned address is refused on every node");
    }
    let (_, reply) = RawFtp::login(nodes[1].listener("FTP"), "alice", TEST_PASSWORD);
    assert!(reply.starts_with("230"), "other addresses are not banned: {reply}");

    // The database goes away under load: a download in progress and an open session go on,
    // new logins get a temporary refusal.
    let (mut open_session, reply) = RawFtp::login(nodes[0].listener("FTP"), "alice", TEST_PASSWORD);
    assert!(reply.starts_with("230"), "{reply}");
    let content = wharf_testkit::pattern(4 * 1024 * 1024);
    std::fs::write(dir.join("share/big.bin"), &content).expect("a file to download");
    let copy = dir.join("big.copy");
    let download = std::process::Command::new(
        wharf_testkit::require_tool("curl").expect("curl (CI installs it)"),
    )
    .args(["-sS", "--max-time", "120", "--limit-rate", "512K", "-o"])
    .arg(&copy)
    .arg(format!("ftp://alice:{TEST_PASSWORD}@{}/big.bin", nodes[1].listener("FTP")))
    .stdin(std::process::Stdio::null())
    .spawn()
    .expect("curl");
    // The positive signal that it is under way: bytes have arrived.
    let started = Instant::now();
    while std::fs::metadata(&copy).map_or(0, |meta| meta.len()) < 64 * 1024 {
        assert!(started.elapsed() < NOTICE, "the download did not get going");
        std::thread::sleep(Duration::from_millis(20));
    }
    database.stop();
    for node in &nodes {
        node.wait_for_log("the database cannot be reached", NOTICE);
        let (_, reply) = RawFtp::login(node.listener("FTP"), "alice", TEST_PASSWORD);
        assert!(reply.starts_with("421") && reply.contains("Try again later"), "{reply}");
    }
    let reply = open_session.send("PWD");
    assert!(reply.starts_with("257"), "the open session goes on: {reply}");

    // It comes back: each node takes logins again by itself, and the download that ran
    // through the outage is whole.
    database.start_again();
    for node in &nodes {
        node.wait_for_log("the database is reachable again; logins resume", NOTICE);
        let (_, reply) = RawFtp::login(node.listener("FTP"), "bob", TEST_PASSWORD);
        assert!(reply.starts_with("230"), "{reply}");
    }
    assert_eq!(finish(download, Duration::from_secs(120)), 0, "the download through the outage");
    assert!(std::fs::read(&copy).expect("copy") == content, "the download is whole");
    for node in nodes {
        assert!(node.stop().success(), "a node did not stop cleanly");
    }
}

#[test]
fn the_database_is_reached_over_tls_against_the_configured_authority() {
    let Some(mut database) = Postgres::start() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    // Certificates for localhost and 127.0.0.1, made the way FTPS makes its own.
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    for name in ["server", "stranger"] {
        let source = wharf_ftps::CertificateSource::SelfSigned { dir: dir.join(name) };
        source.load(&provider).expect("certificate");
    }
    let url = database.url();
    let config = |ca: &str| {
        write(
            dir,
            &format!("tls-{ca}.yaml"),
            &format!(
                "data_dir: {base}/node\nstorage: {{ root: {base}/share }}\n\
                 database: {{ url: \"{url}\", tls: {{ ca_file: {base}/{ca}/ftps-certificate.pem }} }}\n\
                 ftp: {{ listen: [\"127.0.0.1:0\"] }}\n",
                base = dir.display(),
            ),
        )
    };
    let server_dir = dir.join("server");
    std::fs::create_dir_all(dir.join("share")).expect("share");
    let trusted = config("server");
    // TLS configured, a server that offers none is refused, never spoken to in the clear.
    let mut in_the_clear = wharf(dir);
    in_the_clear.arg("users").arg("--config").arg(&trusted);
    let out = run_bounded(&mut in_the_clear, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("TLS"), "{stderr}");
    database.enable_tls(
        &server_dir.join("ftps-certificate.pem"),
        &server_dir.join("ftps-private-key.pem"),
    );
    let users = users_file(dir, "users.yaml", &["alice"]);
    let mut import = wharf(dir);
    import.arg("users").arg("--config").arg(&trusted).arg("import").arg(&users);
    let out = run_bounded(&mut import, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "import over TLS: {}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        database.log()
    );
    let imported = String::from_utf8_lossy(&out.stdout);
    assert!(imported.contains("(TLS)"), "{imported}");

    // A node's connections are encrypted.
    let node = serve(dir, &trusted);
    node.wait_for_log("users reloaded from the database", NOTICE);
    let encrypted = database.psql(
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.application_name = 'wharf' AND s.ssl",
    );
    assert!(encrypted.trim().parse::<u32>().expect("count") >= 1, "{encrypted}");
    let unencrypted = database.psql(
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.application_name = 'wharf' AND NOT s.ssl",
    );
    assert_eq!(unencrypted.trim(), "0");
    assert!(node.stop().success());

    // A server whose certificate the configured authority did not sign is refused.
    let stranger = config("stranger");
    let mut command = wharf(dir);
    command.arg("users").arg("--config").arg(&stranger);
    let out = run_bounded(&mut command, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("certificate"), "{stderr}");
}

#[test]
fn session_caps_hold_across_nodes_and_a_dead_nodes_places_come_back() {
    let Some(database) = Postgres::start() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("share")).expect("share");
    let base = dir.display();
    let mut nodes: Vec<Running> = (0..2)
        .map(|index| {
            let config = write(
                dir,
                &format!("capped-{index}.yaml"),
                &format!(
                    "data_dir: {base}/capped-{index}\nstorage: {{ root: {base}/share }}\n\
                     database: {{ url: \"{}\", pool_size: 2 }}\n\
                     ftp:\n  listen: [\"127.0.0.1:0\"]\n  limits: {{ max_sessions: 3, max_sessions_per_address: 2 }}\n",
                    database.url()
                ),
            );
            serve(dir, &config)
        })
        .collect();
    let client = Ipv4Addr::new(127, 0, 0, 7);
    let greeting_from = |client: Ipv4Addr, node: &Running| {
        let stream = connect_from(client, node.listener("FTP"));
        stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut line = String::new();
        reader.read_line(&mut line).expect("greeting or refusal");
        (stream, line)
    };
    let greeting = |node: &Running| greeting_from(client, node);
    // Waits (bounded) until `node` greets `client`: the positive signal that a place came
    // back. Each attempt that is refused is answered at once, so the loop does not spin.
    let greeted_in_time = |node: &Running, limit: Duration| {
        let started = Instant::now();
        loop {
            let (stream, line) = greeting(node);
            if line.starts_with("220") {
                return stream;
            }
            assert!(line.starts_with("421"), "{line}");
            assert!(started.elapsed() < limit, "no place came back within {limit:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };

    // Two places, one on each node: the third is refused on either.
    let (first, line) = greeting(&nodes[0]);
    assert!(line.starts_with("220"), "{line}");
    let (_second, line) = greeting(&nodes[1]);
    assert!(line.starts_with("220"), "{line}");
    for node in &nodes {
        let (_, line) = greeting(node);
        assert!(
            line.starts_with("421") && line.contains("too many sessions from your address"),
            "{line}"
        );
    }

    // A session that ends gives its place back to the whole cluster.
    drop(first);
    let _third = greeted_in_time(&nodes[1], NOTICE);

    // The total cap (3) holds across the cluster too: a second address gets the last place,
    // then nothing on either node.
    let other = Ipv4Addr::new(127, 0, 0, 8);
    let (_other_first, line) = greeting_from(other, &nodes[0]);
    assert!(line.starts_with("220"), "{line}");
    for node in &nodes {
        let (_, line) = greeting_from(other, node);
        assert!(line.starts_with("421") && line.contains("too many sessions; try again"), "{line}");
    }

    // Node 1 dies holding both of the first address's places: they come back once its heart
    // has stopped for wharf_db::NODE_TIMEOUT (three places in all again, with the other
    // address's).
    nodes[1].process.0.kill().expect("kill");
    let _ = nodes[1].process.0.wait();
    let limit = wharf_db::NODE_TIMEOUT + NOTICE;
    let _fourth = greeted_in_time(&nodes[0], limit);
    let (_fifth, line) = greeting(&nodes[0]);
    assert!(line.starts_with("220"), "both places came back: {line}");
    let survivor = nodes.remove(0);
    assert!(survivor.stop().success());
}

#[test]
fn a_files_quota_holds_across_nodes() {
    let Some(curl) = wharf_testkit::require_tool("curl") else { return };
    let Some(database) = Postgres::start() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let home = dir.join("share/carol");
    std::fs::create_dir_all(&home).expect("home");
    std::fs::write(home.join("before.bin"), b"there first").expect("a file already there");
    let configs: Vec<_> = (0..2).map(|index| node_config(dir, index, &database)).collect();
    let hash =
        wharf_access::hash_password(&wharf_access::Password::new(TEST_PASSWORD)).expect("hash");
    let users = write(
        dir,
        "carol.yaml",
        &format!(
            "users:\n  - {{ name: carol, password: \"{hash}\", home: /carol, quota: {{ files: 5 }} }}\n"
        ),
    );
    wharf_users(dir, &configs[0], &["import", users.to_str().expect("path")]);
    let nodes: Vec<Running> = configs.iter().map(|config| serve(dir, config)).collect();
    let payload = dir.join("payload.bin");
    std::fs::write(&payload, wharf_testkit::pattern(256 * 1024)).expect("payload");
    let upload = |node: &Running, name: &str| {
        let addr = node.listener("FTP");
        std::process::Command::new(&curl)
            .args(["-sS", "--max-time", "60", "-u", &format!("carol:{TEST_PASSWORD}"), "-T"])
            .arg(&payload)
            .arg(format!("ftp://{addr}/{name}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("curl")
    };

    // Each node measures the home at its first login of the user. A measurement that sees a
    // file whose upload's settlement has not reached the ledger yet counts it twice (until
    // the next measurement: a refusal too many, never one too few), so the figures below are
    // exact only with the measurements made before the uploads.
    for node in &nodes {
        let (_, reply) = RawFtp::login(node.listener("FTP"), "carol", TEST_PASSWORD);
        assert!(reply.starts_with("230"), "{reply}");
    }

    // Twelve new files at once, six through each node, under a quota of five files of which
    // one is taken: exactly four are published, whichever node each went through.
    let uploads: Vec<_> =
        (0..12).map(|index| upload(&nodes[index % 2], &format!("new-{index}.bin"))).collect();
    let codes: Vec<i32> =
        uploads.into_iter().map(|child| finish(child, Duration::from_secs(90))).collect();
    assert_eq!(codes.iter().filter(|code| **code == 0).count(), 4, "exit codes: {codes:?}");
    // curl's "upload failed": the server refused the STOR (552, over the quota).
    assert!(codes.iter().all(|code| [0, 25].contains(code)), "exit codes: {codes:?}");
    let files = std::fs::read_dir(&home).expect("home").count();
    assert_eq!(files, 5, "files in the home");

    // The cluster's ledger agrees once the nodes' settlements are written (each node writes
    // its own as they come; waited for, bounded).
    let ledger = || {
        database.psql(
            "SELECT u.used_files, coalesce(sum(h.files), 0) FROM wharf_quota_usage u \
             LEFT JOIN wharf_quota_holds h ON h.user_name = u.user_name \
             WHERE u.user_name = 'carol' GROUP BY u.used_files",
        )
    };
    let settled = Instant::now();
    while ledger().trim() != "5|0" {
        assert!(settled.elapsed() < NOTICE, "ledger still {:?}", ledger());
        std::thread::sleep(Duration::from_millis(50));
    }

    // A file deleted through one node frees its place for an upload through the other.
    let mut delete = std::process::Command::new(&curl);
    delete
        .args(["-sS", "--max-time", "30", "-u", &format!("carol:{TEST_PASSWORD}")])
        .args(["-Q", "DELE before.bin"])
        .arg(format!("ftp://{}/", nodes[1].listener("FTP")));
    assert!(run_bounded(&mut delete, Duration::from_secs(60)).status.success());
    let deleted = Instant::now();
    loop {
        if finish(upload(&nodes[0], "after-delete.bin"), Duration::from_secs(90)) == 0 {
            break;
        }
        assert!(deleted.elapsed() < PROPAGATION, "the freed place did not reach the other node");
    }
    assert!(home.join("after-delete.bin").exists());
    assert_eq!(std::fs::read_dir(&home).expect("home").count(), 5);
    for node in nodes {
        assert!(node.stop().success());
    }
}

#[test]
fn offenses_on_every_node_add_up_to_one_score() {
    let Some(database) = Postgres::start() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("share")).expect("share");
    // Two failed logins ban: one on each node is enough, though neither node saw two.
    let configs: Vec<_> =
        (0..2).map(|index| scored_node_config(dir, index, &database, 4)).collect();
    let users = users_file(dir, "users.yaml", &["alice"]);
    wharf_users(dir, &configs[0], &["import", users.to_str().expect("path")]);
    let nodes: Vec<Running> = configs.iter().map(|config| serve(dir, config)).collect();
    for node in &nodes {
        node.wait_for_log("bans reloaded from the database", NOTICE);
    }
    let guesser = Ipv4Addr::new(127, 0, 0, 11);
    let fail_on = |node: &Running| {
        let mut control = RawFtp::connect_from(guesser, node.listener("FTP"));
        assert!(control.send("USER alice").starts_with("331"));
        let reply = control.send("PASS wrong");
        assert!(reply.starts_with("530"), "{reply}");
    };
    fail_on(&nodes[0]);
    // The first failure is scored in the database before the second is made (its write is
    // the positive signal), so that the second is the one that crosses the threshold.
    let scored = Instant::now();
    while database.psql("SELECT score FROM wharf_scores WHERE address = '127.0.0.11'").trim() != "2"
    {
        assert!(scored.elapsed() < NOTICE, "the first failure never reached the database");
        std::thread::sleep(Duration::from_millis(20));
    }
    fail_on(&nodes[1]);
    let failed_at = Instant::now();
    nodes[1].wait_for_log("address banned on every node: its offenses across the cluster", NOTICE);
    for node in &nodes {
        node.wait_for_log("bans reloaded from the database", NOTICE);
    }
    let took = failed_at.elapsed();
    assert!(took <= PROPAGATION, "both nodes had the ban after {took:?}");
    for node in &nodes {
        let mut stream = connect_from(guesser, node.listener("FTP"));
        stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
        assert!(closes_unanswered(&mut stream), "the address is refused on every node");
    }
    for node in nodes {
        assert!(node.stop().success());
    }
}

#[test]
fn a_users_session_cap_holds_across_nodes() {
    let Some(database) = Postgres::start() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("share/dave")).expect("home");
    let nodes = nodes_with_users(
        dir,
        &database,
        "  - { name: dave, password: \"$HASH\", home: /dave, max_sessions: 2 }\n  \
         - { name: erin, password: \"$HASH\", home: /dave }\n",
    );

    // One session on each node: the user's two places; a third is refused on either.
    let (first, reply) = RawFtp::login(nodes[0].listener("FTP"), "dave", TEST_PASSWORD);
    assert!(reply.starts_with("230"), "{reply}");
    let (_second, reply) = RawFtp::login(nodes[1].listener("FTP"), "dave", TEST_PASSWORD);
    assert!(reply.starts_with("230"), "{reply}");
    for node in &nodes {
        let (_, reply) = RawFtp::login(node.listener("FTP"), "dave", TEST_PASSWORD);
        assert!(reply.starts_with("421") && reply.contains("Too many sessions"), "{reply}");
    }
    let (_, reply) = RawFtp::login(nodes[0].listener("FTP"), "erin", TEST_PASSWORD);
    assert!(reply.starts_with("230"), "another user is not counted: {reply}");

    // A session that ends gives its place back on the other node too (its lease is removed
    // as it ends; waited for, bounded).
    drop(first);
    let ended = Instant::now();
    loop {
        let (_, reply) = RawFtp::login(nodes[1].listener("FTP"), "dave", TEST_PASSWORD);
        if reply.starts_with("230") {
            break;
        }
        assert!(reply.starts_with("421"), "{reply}");
        assert!(ended.elapsed() < NOTICE, "the place did not come back");
        std::thread::sleep(Duration::from_millis(50));
    }
    for node in nodes {
        assert!(node.stop().success());
    }
}

#[test]
fn a_node_that_shuts_down_leaves_nothing_counted_behind() {
    let Some(database) = Postgres::start() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("share/dave")).expect("home");
    let mut nodes = nodes_with_users(
        dir,
        &database,
        "  - { name: dave, password: \"$HASH\", home: /dave, max_sessions: 1, quota: { files: 10 } }\n",
    );
    let counted = || {
        database.psql(
            "SELECT (SELECT count(*) FROM wharf_nodes), (SELECT count(*) FROM wharf_leases), \
             (SELECT count(*) FROM wharf_user_leases), \
             (SELECT coalesce(sum(files), 0) FROM wharf_quota_holds)",
        )
    };
    // A session on node 0 holds a listener place and the user's only place.
    let (_session, reply) = RawFtp::login(nodes[0].listener("FTP"), "dave", TEST_PASSWORD);
    assert!(reply.starts_with("230"), "{reply}");
    assert_eq!(counted().trim(), "2|1|1|0");

    // Node 0 is told to stop while the session is open: it closes it after its grace, leaves
    // the cluster, and nothing of it counts any more (without waiting for its heart to stop).
    let leaving = nodes.remove(0);
    leaving.signal(rustix::process::Signal::TERM);
    assert!(leaving.wait_exit(NOTICE).success());
    assert_eq!(counted().trim(), "1|0|0|0");
    let (_, reply) = RawFtp::login(nodes[0].listener("FTP"), "dave", TEST_PASSWORD);
    assert!(reply.starts_with("230"), "the user's place is free at once: {reply}");
    for node in nodes {
        assert!(node.stop().success());
    }
}

/// `method` of the admin API at `addr` with `token` and `body`; returns the status.
fn api(addr: SocketAddr, token: &str, method: &str, path: &str, body: &str) -> u16 {
    let mut command = std::process::Command::new("curl");
    command
        .args(["--silent", "--show-error", "--max-time", "20", "--output", "/dev/null"])
        .args(["--write-out", "%{http_code}", "-X", method])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["-H", "Content-Type: application/json", "--data", body])
        .arg(format!("http://{addr}{path}"));
    let out = run_bounded(&mut command, Duration::from_secs(30));
    assert!(out.status.success(), "{method} {path}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().parse().expect("a status")
}

#[test]
fn a_user_made_through_one_nodes_api_logs_in_on_every_node() {
    let Some(database) = Postgres::start() else { return };
    if wharf_testkit::require_tool("curl").is_none() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("share")).expect("share");
    // The disabled user's refused login must not ban the address the API is called from.
    let configs: Vec<_> =
        (0..2).map(|index| scored_node_config(dir, index, &database, 100)).collect();
    let with_api = std::fs::read_to_string(&configs[0]).expect("config")
        + "admin: { listen: \"127.0.0.1:0\" }\n";
    std::fs::write(&configs[0], with_api).expect("config");
    let mut create = wharf(dir);
    create
        .args(["token", "create", "--name", "ops", "--scope", "admin", "--config"])
        .arg(&configs[0]);
    let out = run_bounded(&mut create, Duration::from_secs(30));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();

    let nodes: Vec<Running> = configs.iter().map(|config| serve(dir, config)).collect();
    for node in &nodes {
        node.wait_for_log("users reloaded from the database", NOTICE);
    }
    let admin = nodes[0].listener("admin");
    let hash =
        wharf_access::hash_password(&wharf_access::Password::new(TEST_PASSWORD)).expect("hash");
    let carol = format!("{{\"home\":\"carol\",\"password\":\"{hash}\"}}");
    assert_eq!(api(admin, &token, "PUT", "/api/v1/users/carol", &carol), 201);
    for node in &nodes {
        node.wait_for_log("users reloaded from the database", NOTICE);
        let (_, reply) = RawFtp::login(node.listener("FTP"), "carol", TEST_PASSWORD);
        assert!(reply.starts_with("230"), "{reply}");
    }

    // Disabled through node 0 with its sessions ended: carol's session on node 1 ends too.
    let (mut open_elsewhere, reply) =
        RawFtp::login(nodes[1].listener("FTP"), "carol", TEST_PASSWORD);
    assert!(reply.starts_with("230"), "{reply}");
    let disable = "/api/v1/users/carol?kill_sessions=true";
    assert_eq!(api(admin, &token, "PATCH", disable, "{\"disabled\":true}"), 200);
    // (The change is told before the order to end the sessions, and handled in that order.)
    nodes[1].wait_for_log("users reloaded from the database", NOTICE);
    nodes[1].wait_for_log("sessions ended by an operator on the cluster", NOTICE);
    let reply = open_elsewhere.next_reply();
    assert!(reply.starts_with("421") && reply.contains("administrator"), "{reply}");
    let (_, reply) = RawFtp::login(nodes[1].listener("FTP"), "carol", TEST_PASSWORD);
    assert!(reply.starts_with("530"), "disabled on the other node too: {reply}");
    assert_eq!(api(admin, &token, "DELETE", "/api/v1/users/carol", ""), 204);
    let listed = wharf_users(dir, &configs[1], &["list"]);
    assert!(!listed.contains("carol"), "{listed}");

    // A ban made through node 0 holds on node 1; lifted through node 0, it is lifted there.
    let banned = Ipv4Addr::new(127, 0, 0, 12);
    let ban = "{\"address\":\"127.0.0.12\",\"duration_secs\":600}";
    assert_eq!(api(admin, &token, "POST", "/api/v1/bans", ban), 201);
    nodes[1].wait_for_log("bans reloaded from the database", NOTICE);
    let mut refused = connect_from(banned, nodes[1].listener("FTP"));
    refused.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    assert!(closes_unanswered(&mut refused), "banned on the other node");
    assert_eq!(api(admin, &token, "DELETE", "/api/v1/bans/127.0.0.12", ""), 204);
    nodes[1].wait_for_log("ban lifted by an operator on the cluster", NOTICE);
    RawFtp::connect_from(banned, nodes[1].listener("FTP"));
    assert_eq!(api(admin, &token, "DELETE", "/api/v1/bans/127.0.0.12", ""), 404, "lifted");
    drop(database);
}
