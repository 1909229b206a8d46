//! Scenario 7: a cluster. Two Wharf nodes serve the bench's share behind HAProxy, their users,
//! bans and session places in a PostgreSQL the bench starts (`wharf_testkit::Postgres`), as
//! docs/OPERATIONS.md ("A cluster") sets one up; next to them one Wharf node serves the same
//! share alone, without database or balancer. The rows say what the cluster costs a client,
//! FTP and SFTP: the aggregate rate of the parallel downloads of scenario 3 (same clients,
//! same file, same count), logins included; the same downloads with every client logged in
//! before any starts (`gated.rs`), the transfers alone; and the time of one short session
//! (log in, download one small file, leave), a session at a time.
//!
//! Each row compares the cluster (the "Wharf" side) with the one node (the "peer" side): on
//! one machine both nodes share its CPUs with HAProxy and PostgreSQL, so the cluster cannot be
//! faster; the ratio is the overhead of the balancer's extra hop, the PROXY headers and the
//! database's session leases.
//!
//! Every process binds 127.0.0.1: the nodes' listeners and passive ports, HAProxy's
//! frontends, PostgreSQL. HAProxy connects to the nodes from 127.0.0.2, the one address the
//! nodes take PROXY headers from (`proxy_protocol.trusted`), because FTP data connections do
//! not go through the balancer: each node has a passive range of its own and the client
//! reaches it there directly, from 127.0.0.1, as the client the control connection's header
//! named. The control connections and the SFTP connections go through HAProxy, balanced
//! round-robin over the nodes.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_yaml::{Mapping, Value};
use wharf_testkit::{Haproxy, Postgres, free_port_range};

use super::gated::download_all_gated;
use super::parallel::download_all_metered;
use super::{Bench, RowRecorder, with_cpu_of_each};
use crate::cli::Protocol;
use crate::clients::{Transfer, curl_transfer, sftp, sftp_quote};
use crate::dataset::{Fingerprint, verify};
use crate::endpoint::{Endpoint, Endpoints, Side, Unavailable};
use crate::interrupt::{AlsoRemoved, also_remove_on_interrupt};
use crate::lineup::DEFAULT_CIPHER;
use crate::net::{LOOPBACK, free_tcp_port};
use crate::process::{Registered, RunningCommand, descendants, register, run_ok};
use crate::results::{ComparedPeer, Row, RowHead, Sample, Target, Unit};
use crate::stats::summarize;
use crate::wharf_config::{base_config, known_section};
use crate::wharf_server::{Ports, WharfServer, WharfSetup, data_dir, serve_config};

/// The target, for the transfers alone: the cluster moves at least 0.9 of what one node
/// moves, an overhead of at most 10 % per transfer. (The overhead per login is the session
/// rows'; the parallel rows with logins included show both together.)
const TARGET: Target = Target::RatioAtLeast(0.9);

/// Nodes in the cluster.
const NODES: usize = 2;

/// FTP passive ports of each node (of the one node alone too).
const PASSIVE_PORTS: u16 = 100;

/// Where HAProxy connects to the nodes from (see the module's comment).
const BALANCER_SOURCE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// Database connections each node keeps at most (Wharf's default).
const POOL_SIZE: u64 = 8;

/// Short sessions, one after the other, in one run of a session-time row.
const SHORT_SESSIONS: usize = 20;

/// The most one short session may take.
const SHORT_SESSION_LIMIT: Duration = Duration::from_secs(30);

/// The most `wharf users import` may take.
const IMPORT_LIMIT: Duration = Duration::from_secs(60);

/// The name of the "peer" side of every row.
const ONE_NODE: &str = "Wharf, one node";

/// What one row measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    /// The parallel downloads of scenario 3, logins included.
    Parallel,
    /// The same downloads with every client logged in first: the transfers alone (the row
    /// the target is for: the overhead per transfer).
    Transfer,
    /// Short sessions one after the other (the overhead per login).
    Session,
}

/// One row before it is measured.
#[derive(Debug, Clone, Copy)]
struct Plan {
    protocol: Protocol,
    load: Load,
}

impl Plan {
    fn id(self) -> String {
        let load = match self.load {
            Load::Parallel => "parallel",
            Load::Transfer => "transfer",
            Load::Session => "session",
        };
        format!("cluster.{}.{load}", self.protocol.name().to_lowercase())
    }

    fn client(self) -> &'static str {
        match (self.protocol, self.load) {
            (protocol, Load::Transfer) => super::gated::client_of(protocol),
            (Protocol::Sftp, _) => "sftp",
            _ => "curl",
        }
    }

    fn head(self, bench: &Bench<'_>) -> RowHead {
        let protocol = self.protocol.name();
        let client = self.client();
        let (title, unit, target) = match self.load {
            Load::Parallel => {
                let count = bench.sizes.parallel_count;
                let mib = bench.scratch.parallel.print.size / (1024 * 1024);
                let title = format!(
                    "{protocol} {count} parallel downloads of {mib} MiB ({client}), logins \
                     included, cluster vs one node"
                );
                (title, Unit::MegabytesPerSecond, None)
            }
            Load::Transfer => {
                let count = bench.sizes.parallel_count;
                let mib = bench.scratch.parallel.print.size / (1024 * 1024);
                let title = format!(
                    "{protocol} {count} parallel downloads of {mib} MiB ({client}), the \
                     transfers alone (all logged in first), cluster vs one node"
                );
                (title, Unit::MegabytesPerSecond, Some(TARGET))
            }
            Load::Session => {
                let kib = bench.sizes.small_size / 1024;
                let title = format!(
                    "{protocol} session time: connect, log in, {kib} KiB down, quit; \
                     {SHORT_SESSIONS} in a row ({client}), cluster vs one node"
                );
                (title, Unit::Milliseconds, None)
            }
        };
        RowHead { id: self.id(), protocol: "Cluster", title, unit, target }
    }
}

/// The rows of the selected protocols among FTP and SFTP.
fn plans(protocols: &[Protocol]) -> Vec<Plan> {
    let mut plans = Vec::new();
    for protocol in served(protocols) {
        for load in [Load::Parallel, Load::Transfer, Load::Session] {
            plans.push(Plan { protocol, load });
        }
    }
    plans
}

/// The protocols of this scenario among those selected.
fn served(protocols: &[Protocol]) -> Vec<Protocol> {
    [Protocol::Ftp, Protocol::Sftp].into_iter().filter(|p| protocols.contains(p)).collect()
}

/// All rows of scenario 7 for `protocols` (FTP and SFTP only).
pub fn run(bench: &Bench<'_>, setup: &WharfSetup, protocols: &[Protocol]) -> Vec<Row> {
    let plans = plans(protocols);
    if plans.is_empty() {
        return Vec::new();
    }
    let stage = match Stage::set_up(bench, setup, &served(protocols)) {
        Ok(stage) => stage,
        Err(why) => return unavailable_rows(bench, &plans, &why),
    };
    let peer = ComparedPeer { side: Side::Peer, name: ONE_NODE.to_owned() };
    let mut rows = Vec::new();
    for plan in &plans {
        let mut recorder = RowRecorder::new(plan.head(bench), vec![peer.clone()], bench.runs);
        for side in [Side::Peer, Side::Wharf] {
            if let Err(why) = stage.deployment(side).endpoints.get(plan.protocol) {
                recorder.unavailable(side, why.clone());
            }
        }
        recorder.measure_runs(|side, run| stage.measure(*plan, side, run));
        rows.extend(recorder.finish());
    }
    rows
}

/// Every row, both sides unavailable for `why`.
fn unavailable_rows(bench: &Bench<'_>, plans: &[Plan], why: &Unavailable) -> Vec<Row> {
    let peer = ComparedPeer { side: Side::Peer, name: ONE_NODE.to_owned() };
    plans
        .iter()
        .flat_map(|plan| {
            let mut recorder = RowRecorder::new(plan.head(bench), vec![peer.clone()], bench.runs);
            recorder.unavailable(Side::Peer, why.clone());
            recorder.unavailable(Side::Wharf, why.clone());
            recorder.finish()
        })
        .collect()
}

/// One of the two set-ups as the clients see it.
struct Deployment {
    /// Where the clients connect, per protocol.
    endpoints: Endpoints,
    /// The process trees whose CPU a run counts, each with its name for the log.
    roots: Vec<(&'static str, u32)>,
}

/// The one node alone.
struct OneNode {
    node: WharfServer,
    deployment: Deployment,
}

/// The cluster. Its parts stop in the order of the fields: HAProxy, the nodes (which give
/// their session places back to the database as they stop), PostgreSQL. HAProxy and
/// PostgreSQL are registered with the bench's interrupt handler, which stops them and
/// removes their directories on Ctrl-C (their harness does both on drop).
struct Cluster {
    _registered: Vec<Registered>,
    _directories: Vec<AlsoRemoved>,
    _haproxy: Haproxy,
    nodes: Vec<WharfServer>,
    _postgres: Postgres,
    deployment: Deployment,
}

/// Both set-ups, running side by side for the whole scenario.
struct Stage<'a> {
    bench: &'a Bench<'a>,
    one: OneNode,
    cluster: Cluster,
}

impl<'a> Stage<'a> {
    /// Starts the one node, then PostgreSQL, the cluster's nodes and HAProxy; checks every
    /// protocol of both with one short session (two through HAProxy: one per node), then
    /// runs one untimed round of parallel short sessions on each, so that the database
    /// pools have grown before anything is measured.
    fn set_up(
        bench: &'a Bench<'a>,
        setup: &WharfSetup,
        protocols: &[Protocol],
    ) -> Result<Stage<'a>, Unavailable> {
        if crate::prereq::on_path("haproxy").is_none() {
            return Err(Unavailable::NotInstalled(
                "HAProxy: apt-get install --no-install-recommends haproxy".to_owned(),
            ));
        }
        if !crate::prereq::postgresql_installed() {
            return Err(Unavailable::NotInstalled(
                "PostgreSQL: apt-get install --no-install-recommends postgresql".to_owned(),
            ));
        }
        let dir = bench.scratch.server_dir("cluster").map_err(broken)?;
        // One block of free ports below the kernel's ephemeral range: a passive range for the
        // one node, then one for each node of the cluster.
        let count = PASSIVE_PORTS * (NODES as u16 + 1);
        let first_passive =
            caught("finding free passive ports", || free_port_range(&[LOOPBACK], count))?;
        eprintln!("  starting one node alone");
        let one = OneNode::start(bench, setup, &dir.join("one-node"), first_passive, protocols)
            .map_err(broken)?;
        let cluster = Cluster::start(bench, setup, &dir, first_passive + PASSIVE_PORTS, protocols)?;
        let mut stage = Stage { bench, one, cluster };
        stage.probe(protocols);
        Ok(stage)
    }

    /// The set-up of `side`: the cluster on Wharf's side, the one node on the peer's.
    fn deployment(&self, side: Side) -> &Deployment {
        match side {
            Side::Wharf => &self.cluster.deployment,
            Side::Peer | Side::Unftp => &self.one.deployment,
        }
    }

    /// Checks each endpoint with short sessions, then warms it up; an endpoint that fails
    /// is unavailable for the rows.
    fn probe(&mut self, protocols: &[Protocol]) {
        let bench = self.bench;
        for side in [Side::Peer, Side::Wharf] {
            // Round-robin over the nodes: as many sessions as nodes reach each node once.
            let probes = if side == Side::Wharf { NODES } else { 1 };
            for protocol in protocols {
                let deployment = match side {
                    Side::Wharf => &mut self.cluster.deployment,
                    _ => &mut self.one.deployment,
                };
                let slot = deployment.endpoints.get_mut(*protocol);
                let Ok(endpoint) = &*slot else { continue };
                let tag = format!("cluster-probe-{}-{}", side.name(), protocol.name());
                let checked = (0..probes)
                    .try_for_each(|index| {
                        short_session(bench, *protocol, endpoint, &format!("{tag}-{index}"))
                            .map(drop)
                    })
                    .and_then(|()| warm_up(bench, *protocol, endpoint, &tag));
                if let Err(err) = checked {
                    *slot = Err(Unavailable::Broken(format!("first sessions failed: {err:#}")));
                }
            }
        }
    }

    /// One run of `plan` on `side`.
    fn measure(&self, plan: Plan, side: Side, run: usize) -> anyhow::Result<Sample> {
        let deployment = self.deployment(side);
        let endpoint = deployment
            .endpoints
            .get(plan.protocol)
            .as_ref()
            .map_err(|why| anyhow::anyhow!("{why}"))?;
        let tag = format!("{}-{}-{run}", plan.id().replace('.', "-"), side.name());
        let roots: Vec<u32> = deployment.roots.iter().map(|(_, pid)| *pid).collect();
        let measured = match plan.load {
            Load::Parallel => {
                download_all_metered(self.bench, plan.protocol, endpoint, &tag, &roots)
            }
            Load::Transfer => download_all_gated(self.bench, plan.protocol, endpoint, &tag, &roots),
            Load::Session => self.sessions(plan.protocol, endpoint, &tag, &roots),
        };
        let (sample, each_cpu) = self.explain(side, measured)?;
        let split: Vec<String> = deployment
            .roots
            .iter()
            .zip(&each_cpu)
            .map(|((name, _), seconds)| format!("{name} {seconds:.2} s"))
            .collect();
        eprintln!("    {} ({}): CPU {}", plan.id(), side_name(side), split.join(", "));
        Ok(sample)
    }

    /// [`SHORT_SESSIONS`] short sessions one after the other: the median of their times, in
    /// milliseconds, with the CPU of each of `roots` over all of them.
    fn sessions(
        &self,
        protocol: Protocol,
        endpoint: &Endpoint,
        tag: &str,
        roots: &[u32],
    ) -> anyhow::Result<(Sample, Vec<f64>)> {
        let clients = || -> anyhow::Result<Vec<f64>> {
            (0..SHORT_SESSIONS)
                .map(|index| {
                    let time =
                        short_session(self.bench, protocol, endpoint, &format!("{tag}-{index}"))?;
                    Ok(time.as_secs_f64() * 1e3)
                })
                .collect()
        };
        let (times, each_cpu) = with_cpu_of_each(roots, clients)?;
        let summary = summarize(&times).context("no session")?;
        eprintln!(
            "    {tag}: {} sessions, {:.1} ms median ({:.1}–{:.1} ms)",
            summary.runs, summary.median, summary.min, summary.max
        );
        let sample = Sample { value: summary.median, server_cpu: Some(each_cpu.iter().sum()) };
        Ok((sample, each_cpu))
    }

    /// A failed measurement, with the reason when a Wharf of `side` has stopped.
    fn explain<T>(&self, side: Side, outcome: anyhow::Result<T>) -> anyhow::Result<T> {
        let nodes: Vec<&WharfServer> = match side {
            Side::Wharf => self.cluster.nodes.iter().collect(),
            _ => vec![&self.one.node],
        };
        outcome.map_err(|err| match nodes.iter().find_map(|node| node.diagnosis()) {
            Some(diagnosis) => err.context(diagnosis),
            None => err,
        })
    }
}

/// A side's name for the log.
fn side_name(side: Side) -> &'static str {
    match side {
        Side::Wharf => "cluster",
        _ => "one node",
    }
}

impl OneNode {
    /// One node on the bench's share: the nodes' configuration without database, balancer
    /// or shared host key, its users in the configuration as in the other scenarios.
    fn start(
        bench: &Bench<'_>,
        setup: &WharfSetup,
        dir: &Path,
        first_passive: u16,
        protocols: &[Protocol],
    ) -> anyhow::Result<OneNode> {
        std::fs::create_dir_all(dir)?;
        let config = node_config(bench, setup, dir, first_passive, None, protocols)?;
        let node = serve_config(setup, dir, &config, Ports::Configured)?;
        let endpoints = endpoints(bench, protocols, node.pid(), |protocol| {
            node.listener(protocol).ok_or_else(|| no_listener(protocol))
        });
        let deployment = Deployment { endpoints, roots: vec![("wharf", node.pid())] };
        Ok(OneNode { node, deployment })
    }
}

/// What a node of the cluster shares with the others.
struct Shared<'a> {
    /// The database's URL.
    database_url: &'a str,
    /// The SSH host keys, made by the first node and loaded by the others.
    host_key_dir: &'a Path,
}

impl Cluster {
    /// Starts PostgreSQL, imports the bench's users into it, starts the nodes one after the
    /// other (the first makes the shared host key) and HAProxy in front of them.
    fn start(
        bench: &Bench<'_>,
        setup: &WharfSetup,
        dir: &Path,
        first_passive: u16,
        protocols: &[Protocol],
    ) -> Result<Cluster, Unavailable> {
        eprintln!("  starting PostgreSQL");
        let postgres = caught("PostgreSQL did not start", Postgres::start)?.ok_or_else(|| {
            Unavailable::NotInstalled(
                "PostgreSQL: apt-get install --no-install-recommends postgresql".to_owned(),
            )
        })?;
        let postmaster = postmaster_pid(&postgres).map_err(broken)?;
        let mut registered = vec![register(postmaster)];
        let mut directories = vec![also_remove_on_interrupt(postgres.socket_dir().to_owned())];

        let url = postgres.url();
        let host_key_dir = dir.join("host-keys");
        let shared = Shared { database_url: &url, host_key_dir: &host_key_dir };
        let node_dirs: Vec<PathBuf> = (0..NODES).map(|i| dir.join(format!("node-{i}"))).collect();
        let mut configs = Vec::new();
        for (index, node_dir) in node_dirs.iter().enumerate() {
            std::fs::create_dir_all(node_dir).map_err(|e| broken(e.into()))?;
            let passive = first_passive + PASSIVE_PORTS * index as u16;
            let config = node_config(bench, setup, node_dir, passive, Some(&shared), protocols);
            configs.push(config.map_err(broken)?);
        }
        import_users(bench, setup, dir, &configs[0]).map_err(broken)?;

        eprintln!("  starting {NODES} nodes");
        let mut nodes = Vec::new();
        for (node_dir, config) in node_dirs.iter().zip(&configs) {
            let node = serve_config(setup, node_dir, config, Ports::Configured).map_err(broken)?;
            if !node.banner.contains("shared database") {
                return Err(Unavailable::Broken(format!(
                    "a node does not take its users from the database; its banner: {}",
                    node.banner.trim()
                )));
            }
            nodes.push(node);
        }

        eprintln!("  starting HAProxy");
        let mut frontends = Vec::new();
        for protocol in protocols {
            let port = free_tcp_port().map_err(broken)?;
            frontends.push((*protocol, SocketAddr::from((LOOPBACK, port))));
        }
        let sections = haproxy_sections(&nodes, &frontends).map_err(broken)?;
        let haproxy =
            caught("HAProxy did not start", || Haproxy::start(&sections))?.ok_or_else(|| {
                Unavailable::NotInstalled(
                    "HAProxy: apt-get install --no-install-recommends haproxy".to_owned(),
                )
            })?;
        let haproxy_pid = child_named("haproxy").ok_or_else(|| {
            Unavailable::Broken("HAProxy runs, but not as a child of the bench".to_owned())
        })?;
        registered.push(register(haproxy_pid));
        // HAProxy runs in its harness's directory.
        if let Ok(haproxy_dir) = std::fs::read_link(format!("/proc/{haproxy_pid}/cwd")) {
            directories.push(also_remove_on_interrupt(haproxy_dir));
        }

        let node_pid = nodes.first().map(WharfServer::pid).unwrap_or_default();
        let endpoints = endpoints(bench, protocols, node_pid, |protocol| {
            frontends
                .iter()
                .find(|(p, _)| *p == protocol)
                .map(|(_, addr)| *addr)
                .ok_or_else(|| no_listener(protocol))
        });
        let mut roots: Vec<(&'static str, u32)> = Vec::new();
        for (index, node) in nodes.iter().enumerate() {
            roots.push((if index == 0 { "node 1" } else { "node 2" }, node.pid()));
        }
        roots.push(("HAProxy", haproxy_pid));
        roots.push(("PostgreSQL", postmaster));
        Ok(Cluster {
            _registered: registered,
            _directories: directories,
            _haproxy: haproxy,
            nodes,
            _postgres: postgres,
            deployment: Deployment { endpoints, roots },
        })
    }
}

/// A node's configuration: the bench's base (the share, the bench's users, quiet logs) with
/// the FTP and SFTP sections of `protocols` as the other scenarios run them (or as
/// `--wharf-sections` gives them), and an FTP passive range of its own from `first_passive`.
/// A node of a cluster (`shared`) takes its users from the database instead, PROXY headers
/// from the balancer, and the shared host key.
fn node_config(
    bench: &Bench<'_>,
    setup: &WharfSetup,
    dir: &Path,
    first_passive: u16,
    shared: Option<&Shared<'_>>,
    protocols: &[Protocol],
) -> anyhow::Result<Mapping> {
    let mut config = base_config(&data_dir(dir), &bench.scratch.share, bench.credentials);
    for protocol in protocols {
        let name = protocol.name().to_lowercase();
        let section = setup
            .replacements
            .get(name.as_str())
            .cloned()
            .or_else(|| known_section(&name))
            .with_context(|| format!("no `{name}:` section for a node"))?;
        let Value::Mapping(mut section) = section else {
            bail!("the `{name}:` section is not a mapping");
        };
        match protocol {
            Protocol::Ftp => {
                let last = first_passive + PASSIVE_PORTS - 1;
                section.insert("passive_ports".into(), format!("{first_passive}-{last}").into());
            }
            Protocol::Sftp => {
                if let Some(shared) = shared {
                    let keys = shared.host_key_dir.display().to_string();
                    section.insert("host_key_dir".into(), keys.into());
                }
            }
            Protocol::Ftps | Protocol::Tftp => {}
        }
        config.insert(name.into(), Value::Mapping(section));
    }
    if let Some(shared) = shared {
        // With a database, the users are there (and `access` users are not read).
        if let Some(Value::Mapping(access)) = config.get_mut("access") {
            access.remove("users");
        }
        let mut database = Mapping::new();
        database.insert("url".into(), shared.database_url.into());
        database.insert("pool_size".into(), POOL_SIZE.into());
        config.insert("database".into(), Value::Mapping(database));
        let mut proxy = Mapping::new();
        let trusted = Value::Sequence(vec![format!("{BALANCER_SOURCE}/32").into()]);
        proxy.insert("trusted".into(), trusted);
        config.insert("proxy_protocol".into(), Value::Mapping(proxy));
    }
    Ok(config)
}

/// Puts the bench's users (those the other scenarios' Wharf has in its configuration) into
/// the database with `wharf users import`, through the configuration of the first node.
fn import_users(
    bench: &Bench<'_>,
    setup: &WharfSetup,
    dir: &Path,
    config: &Mapping,
) -> anyhow::Result<()> {
    let base = base_config(&data_dir(dir), &bench.scratch.share, bench.credentials);
    let users = base
        .get("access")
        .and_then(|access| access.get("users"))
        .cloned()
        .context("the bench's configuration has no users")?;
    let mut file = Mapping::new();
    file.insert("users".into(), users);
    let users_path = dir.join("users.yaml");
    std::fs::write(&users_path, serde_yaml::to_string(&file)?)
        .with_context(|| format!("writing {}", users_path.display()))?;
    let config_path = dir.join("import.yaml");
    std::fs::write(&config_path, serde_yaml::to_string(config)?)
        .with_context(|| format!("writing {}", config_path.display()))?;
    let mut command = Command::new(&setup.binary);
    command
        .arg("users")
        .arg("--config")
        .arg(&config_path)
        .arg("import")
        .arg(&users_path)
        .env_remove("RUST_LOG");
    let done = run_ok(&mut command, "wharf users import", IMPORT_LIMIT)?;
    eprintln!("  {}", done.stdout.trim());
    Ok(())
}

/// HAProxy's frontends: each protocol's on its address of `frontends`, balanced round-robin
/// over the nodes, every connection to a node with a PROXY v2 header and from
/// [`BALANCER_SOURCE`]. The nodes' answers are spliced (`option splice-response`: the kernel
/// moves them, not HAProxy's buffers), which takes about a quarter off HAProxy's CPU on the
/// SFTP downloads.
fn haproxy_sections(
    nodes: &[WharfServer],
    frontends: &[(Protocol, SocketAddr)],
) -> anyhow::Result<String> {
    let mut text = String::new();
    for (protocol, bind) in frontends {
        let name = protocol.name().to_lowercase();
        text.push_str(&format!(
            "frontend cluster_{name}\n    bind {bind}\n    option splice-response\n\
             default_backend cluster_{name}_nodes\n\
             backend cluster_{name}_nodes\n    balance roundrobin\n    option splice-response\n"
        ));
        for (index, node) in nodes.iter().enumerate() {
            let addr = node.listener(*protocol).with_context(|| {
                format!("node {} has no {} listener", index + 1, protocol.name())
            })?;
            text.push_str(&format!(
                "    server node{index} {addr} send-proxy-v2 source {BALANCER_SOURCE}\n"
            ));
        }
    }
    Ok(text)
}

/// The clients' endpoints of `protocols`, each at the address `addr` gives for it.
fn endpoints(
    bench: &Bench<'_>,
    protocols: &[Protocol],
    server_pid: u32,
    addr: impl Fn(Protocol) -> Result<SocketAddr, Unavailable>,
) -> Endpoints {
    let credentials = bench.credentials;
    let mut endpoints = Endpoints::none(Unavailable::NotServed("not selected".to_owned()));
    for protocol in protocols {
        *endpoints.get_mut(*protocol) = addr(*protocol).map(|addr| Endpoint {
            addr,
            user: credentials.wharf_user.clone(),
            password: credentials.wharf_password.clone(),
            key: Some(credentials.ssh_key.clone()),
            curl_home: None,
            server_pid,
        });
    }
    endpoints
}

/// Why a protocol has no endpoint: its node did not list it.
fn no_listener(protocol: Protocol) -> Unavailable {
    Unavailable::NotServed(format!("no {} listener in wharf's banner", protocol.name()))
}

/// The small file the short sessions download, and its fingerprint.
fn short_session_file(bench: &Bench<'_>) -> anyhow::Result<(String, Fingerprint)> {
    let small = &bench.scratch.small;
    let (name, print) = small.files.first().context("the data set has no small file")?;
    Ok((format!("{}/{name}", small.name), *print))
}

/// A short session being run: its client, and the files it writes.
struct ShortSession {
    running: RunningCommand,
    label: String,
    local: PathBuf,
    batch: PathBuf,
    print: Fingerprint,
}

/// Starts one short session on `endpoint`: the protocol's client of scenario 3 (curl for
/// FTP, OpenSSH sftp for SFTP) logs in, downloads the first small file and leaves.
fn start_short_session(
    bench: &Bench<'_>,
    protocol: Protocol,
    endpoint: &Endpoint,
    tag: &str,
) -> anyhow::Result<ShortSession> {
    let (remote, print) = short_session_file(bench)?;
    let local = bench.scratch.download_path(tag);
    let batch = local.with_extension("batch");
    let label = format!("{} session {tag}", protocol.name());
    let mut command = match protocol {
        Protocol::Sftp => {
            let get = format!("get {remote} {}", sftp_quote(&local));
            sftp(endpoint, DEFAULT_CIPHER, &batch, &[get])?
        }
        _ => curl_transfer(protocol, endpoint, &Transfer::Get { remote, local: local.clone() })?,
    };
    let running = RunningCommand::start(&mut command, &label)?;
    Ok(ShortSession { running, label, local, batch, print })
}

impl ShortSession {
    /// Waits for the client; returns its time from start to exit once the copy is checked.
    fn finish(self) -> anyhow::Result<Duration> {
        let outcome = self
            .running
            .finish(SHORT_SESSION_LIMIT)
            .and_then(|done| done.ok(&self.label))
            .and_then(|done| verify(&self.local, self.print).map(|()| done.elapsed));
        let _ = std::fs::remove_file(&self.local);
        let _ = std::fs::remove_file(&self.batch);
        outcome
    }
}

/// One short session, start to end (see [`start_short_session`]).
fn short_session(
    bench: &Bench<'_>,
    protocol: Protocol,
    endpoint: &Endpoint,
    tag: &str,
) -> anyhow::Result<Duration> {
    start_short_session(bench, protocol, endpoint, tag)?.finish()
}

/// As many short sessions at once as scenario 3 has downloads, untimed.
fn warm_up(
    bench: &Bench<'_>,
    protocol: Protocol,
    endpoint: &Endpoint,
    tag: &str,
) -> anyhow::Result<()> {
    let mut running = Vec::new();
    for index in 0..bench.sizes.parallel_count {
        running.push(start_short_session(
            bench,
            protocol,
            endpoint,
            &format!("{tag}-warm-{index}"),
        ));
    }
    // Every client started is waited for, whatever happened to the others.
    let mut outcome = Ok(());
    for session in running {
        let finished = session.and_then(ShortSession::finish).map(drop);
        if outcome.is_ok() {
            outcome = finished.context("warming up");
        }
    }
    outcome
}

/// The pid of PostgreSQL's postmaster: the first line of the lock file of its socket.
fn postmaster_pid(postgres: &Postgres) -> anyhow::Result<u32> {
    let lock = postgres.socket_dir().join(format!(".s.PGSQL.{}.lock", postgres.port));
    let text =
        std::fs::read_to_string(&lock).with_context(|| format!("reading {}", lock.display()))?;
    let pid = text.lines().next().and_then(|line| line.trim().parse().ok());
    let pid: u32 = pid.with_context(|| format!("no pid in {}", lock.display()))?;
    anyhow::ensure!(crate::process::is_running(pid), "PostgreSQL ({pid}) is not running");
    Ok(pid)
}

/// The child process of the bench whose command name is `name`.
fn child_named(name: &str) -> Option<u32> {
    let me = std::process::id();
    descendants(me).into_iter().find(|pid| {
        crate::process::parent_of(*pid) == Some(me)
            && std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == name)
    })
}

/// A set-up step that failed.
fn broken(err: anyhow::Error) -> Unavailable {
    Unavailable::Broken(format!("{err:#}"))
}

/// Runs `step`, a harness of the tests that panics when it fails; the panic becomes a
/// failed set-up saying `what`.
fn caught<T>(what: &str, step: impl FnOnce() -> T) -> Result<T, Unavailable> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(step)).map_err(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|text| (*text).to_owned()))
            .unwrap_or_default();
        let first = message.lines().next().unwrap_or_default();
        Unavailable::Broken(format!("{what}: {first}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_ftp_and_sftp_only() {
        let ids: Vec<String> = plans(&Protocol::ALL).into_iter().map(Plan::id).collect();
        assert_eq!(
            ids,
            [
                "cluster.ftp.parallel",
                "cluster.ftp.transfer",
                "cluster.ftp.session",
                "cluster.sftp.parallel",
                "cluster.sftp.transfer",
                "cluster.sftp.session"
            ]
        );
        assert!(plans(&[Protocol::Ftps, Protocol::Tftp]).is_empty());
    }

    #[test]
    fn a_panicking_step_is_a_failed_set_up() {
        let why = caught("starting", || -> u32 { panic!("port taken\nmore") }).expect_err("panic");
        assert_eq!(why, Unavailable::Broken("starting: port taken".to_owned()));
        assert_eq!(caught("starting", || 7), Ok(7));
    }
}
