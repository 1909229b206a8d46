//! Two Wharf nodes behind a real HAProxy that speaks the PROXY protocol (v2) to them, as
//! docs/OPERATIONS.md ("A cluster") configures it: the control ports balanced
//! round-robin over the nodes, each node's passive ports forwarded to that node alone, one
//! share, one host key and one certificate for both.
//!
//! Addresses, all loopback: clients connect from `CLIENT`, HAProxy listens on 127.0.0.1 and
//! reaches the nodes from `BALANCER` (the one address the nodes trust for PROXY headers),
//! the nodes listen on `NODES`. So the PROXY header is the only way a node can learn
//! `CLIENT`, and a direct connection from 127.0.0.1 is an untrusted one.

mod common;

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Running, closes_unanswered, connect_from, users_file, write};
use wharf_testkit::{Haproxy, TEST_PASSWORD, free_port_range, pattern, require_tool, run_bounded};

/// Where clients connect from.
const CLIENT: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
/// Where HAProxy connects to the nodes from.
const BALANCER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 5);
/// Where the nodes listen.
const NODES: [Ipv4Addr; 2] = [Ipv4Addr::new(127, 0, 0, 11), Ipv4Addr::new(127, 0, 0, 12)];
/// Passive ports per node.
const PASSIVE_PORTS: u16 = 8;

/// The nodes, the balancer, and where clients reach them.
struct Cluster {
    tmp: tempfile::TempDir,
    nodes: Vec<Running>,
    haproxy: Haproxy,
    /// HAProxy's FTP frontend.
    ftp: SocketAddr,
    /// HAProxy's SFTP frontend.
    sftp: SocketAddr,
}

impl Cluster {
    /// Starts both nodes (one after the other: the first generates the shared host key and
    /// certificate, the second loads them) and HAProxy in front of them; `None` when HAProxy
    /// or curl is missing outside CI.
    fn start() -> Option<Cluster> {
        require_tool("curl")?;
        let tmp = tempfile::tempdir().expect("tempdir");
        let base = tmp.path();
        users_file(base, "users.yaml", &["alice"]);
        std::fs::create_dir_all(base.join("share")).expect("share");
        let mut nodes = Vec::new();
        let mut passive_firsts = Vec::new();
        for (index, ip) in NODES.iter().enumerate() {
            // Free on the node's address (where it listens) and on HAProxy's (where the
            // same ports are forwarded from).
            let first = free_port_range(&[*ip, Ipv4Addr::LOCALHOST], PASSIVE_PORTS);
            let config =
                write(base, &format!("node-{index}.yaml"), &node_config(base, index, *ip, first));
            // Not `common::serve`: its ephemeral-ports switch would also free the passive
            // ports from their range; the listeners here are on port 0 already.
            let mut command = Command::new(common::WHARF);
            command
                .current_dir(base)
                .env_remove("RUST_LOG")
                .arg("serve")
                .arg("--config")
                .arg(&config);
            nodes.push(common::start(command));
            passive_firsts.push(first);
        }
        let ftp =
            SocketAddr::from((Ipv4Addr::LOCALHOST, free_port_range(&[Ipv4Addr::LOCALHOST], 1)));
        let sftp =
            SocketAddr::from((Ipv4Addr::LOCALHOST, free_port_range(&[Ipv4Addr::LOCALHOST], 1)));
        let haproxy = Haproxy::start(&haproxy_sections(&nodes, &passive_firsts, ftp, sftp))?;
        Some(Cluster { tmp, nodes, haproxy, ftp, sftp })
    }

    /// A file for curl to upload.
    fn local(&self, name: &str, content: &[u8]) -> PathBuf {
        let path = self.tmp.path().join("client").join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, content).expect("local file");
        path
    }

    /// Stops the nodes and returns the upload events of each node's audit log.
    fn stop(self) -> Vec<Vec<serde_json::Value>> {
        let Cluster { tmp, nodes, mut haproxy, .. } = self;
        haproxy.stop();
        for node in nodes {
            assert!(node.stop().success(), "a node did not stop cleanly");
        }
        (0..NODES.len())
            .map(|index| {
                let path = tmp.path().join(format!("node-{index}/audit.jsonl"));
                let audit = std::fs::read_to_string(&path).unwrap_or_default();
                audit
                    .lines()
                    .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
                    .filter(|event: &serde_json::Value| event["op"] == "upload")
                    .collect()
            })
            .collect()
    }
}

/// One node: its own data directory, listeners and passive ports; the share, users file,
/// host key and certificate shared with the other node; PROXY headers trusted from
/// `BALANCER` only; passive replies announcing HAProxy's address.
fn node_config(base: &Path, index: usize, ip: Ipv4Addr, passive_first: u16) -> String {
    let base = base.display();
    let last = passive_first + PASSIVE_PORTS - 1;
    format!(
        "data_dir: {base}/node-{index}\n\
         shutdown_grace: 2s\n\
         storage: {{ root: {base}/share }}\n\
         access: {{ users_file: {base}/users.yaml, login_failure_delay: 10ms }}\n\
         log: {{ audit_file: {base}/node-{index}/audit.jsonl }}\n\
         proxy_protocol: {{ trusted: [{BALANCER}/32] }}\n\
         ftp:\n  listen: [\"{ip}:0\"]\n  passive_ports: {passive_first}-{last}\n  passive_address: 127.0.0.1\n\
         ftps: {{ implicit_listen: [], explicit: {{ control: optional, data: optional }}, generated_certificate_dir: {base}/ftps }}\n\
         sftp: {{ listen: [\"{ip}:0\"], host_key_dir: {base}/host-keys, host_key_types: [ed25519] }}\n"
    )
}

/// HAProxy's frontends: FTP and SFTP balanced round-robin over the nodes, and each node's
/// passive range forwarded to that node, every backend connection with a PROXY v2 header and
/// from `BALANCER`.
fn haproxy_sections(
    nodes: &[Running],
    passive_firsts: &[u16],
    ftp: SocketAddr,
    sftp: SocketAddr,
) -> String {
    let server = |name: String, addr: String| {
        format!("    server {name} {addr} send-proxy-v2 source {BALANCER}\n")
    };
    let mut text = String::new();
    for (protocol, bind) in [("FTP", ftp), ("SFTP", sftp)] {
        let name = protocol.to_lowercase();
        text.push_str(&format!(
            "frontend {name}\n    bind {bind}\n    default_backend {name}_nodes\n\
             backend {name}_nodes\n    balance roundrobin\n"
        ));
        for (index, node) in nodes.iter().enumerate() {
            text.push_str(&server(format!("node{index}"), node.listener(protocol).to_string()));
        }
    }
    for (index, (ip, first)) in NODES.iter().zip(passive_firsts).enumerate() {
        let last = first + PASSIVE_PORTS - 1;
        text.push_str(&format!(
            "frontend passive{index}\n    bind 127.0.0.1:{first}-{last}\n    default_backend passive{index}\n\
             backend passive{index}\n"
        ));
        // No port: the connection goes to the port it came in on.
        text.push_str(&server(format!("node{index}"), ip.to_string()));
    }
    text
}

/// curl from `CLIENT`, bounded.
fn curl() -> Command {
    let mut command = Command::new("curl");
    command.args(["-sS", "--max-time", "60", "--interface", &CLIENT.to_string()]);
    command
}

impl Cluster {
    /// Runs `command`; panics with its output and HAProxy's unless it succeeds.
    fn run(&self, mut command: Command) {
        let out = run_bounded(&mut command, Duration::from_secs(90));
        assert!(
            out.status.success(),
            "{command:?} failed: {}\n{}\nHAProxy:\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout),
            self.haproxy.log_tail()
        );
    }
}

#[test]
fn ftp_ftps_and_sftp_through_the_balancer_reach_both_nodes_as_the_real_client() {
    let Some(cluster) = Cluster::start() else { return };
    let url = |scheme: &str, addr: SocketAddr, path: &str| {
        format!("{scheme}://alice:{TEST_PASSWORD}@{addr}{path}")
    };
    // Round-robin: of two sessions in a row, one lands on each node. Each uploads through
    // the balancer (passive data through the node's own forwarded range), then the file is
    // read back in the next session, on the other node.
    let mut uploaded = Vec::new();
    for (round, tls) in [(0, false), (1, false), (2, true), (3, true)] {
        let name = format!("/file-{round}.bin");
        let content = pattern(100_000 + round);
        let local = cluster.local(&name[1..], &content);
        let mut upload = curl();
        if tls {
            // Explicit FTPS; the data connections must resume the control's TLS session
            // (required by default), which only the same node can do.
            upload.args(["--ssl-reqd", "-k"]);
        }
        upload.arg("-T").arg(&local).arg(url("ftp", cluster.ftp, &name));
        cluster.run(upload);
        uploaded.push((name, content));
    }
    for (name, content) in &uploaded {
        let copy = cluster.tmp.path().join("client/copy.bin");
        let mut download = curl();
        download.args(["--ssl-reqd", "-k", "-o"]).arg(&copy).arg(url("ftp", cluster.ftp, name));
        cluster.run(download);
        assert!(std::fs::read(&copy).expect("copy") == *content, "{name} read back whole");
    }
    // SFTP, twice (once per node), with the password.
    for round in 0..2 {
        let name = format!("/sftp-{round}.bin");
        let local = cluster.local(&name[1..], &pattern(50_000 + round));
        let mut upload = curl();
        upload.args(["-k", "-T"]).arg(&local).arg(url("sftp", cluster.sftp, &name));
        cluster.run(upload);
    }
    let share = cluster.tmp.path().join("share");
    assert!(std::fs::read(share.join("sftp-1.bin")).expect("stored") == pattern(50_001));

    let uploads = cluster.stop();
    for (index, events) in uploads.iter().enumerate() {
        // Each node: two FTP(S) uploads and one SFTP upload, all from the real client.
        assert_eq!(events.len(), 3, "node {index}: {events:?}");
        for event in events {
            let peer = event["peer"].as_str().expect("peer");
            assert!(
                peer.starts_with(&format!("{CLIENT}:")),
                "node {index} saw {peer}, not the client"
            );
            assert_eq!(event["outcome"], "ok", "{event}");
        }
    }
}

#[test]
fn both_nodes_show_one_host_key() {
    let Some(cluster) = Cluster::start() else { return };
    let Some(keyscan) = require_tool("ssh-keyscan") else { return };
    // Two scans in a row through the balancer: one per node.
    let scan = || {
        let mut command = Command::new(&keyscan);
        command
            .args(["-T", "10", "-t", "ed25519", "-p"])
            .arg(cluster.sftp.port().to_string())
            .arg("127.0.0.1");
        let out = run_bounded(&mut command, Duration::from_secs(30));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let key = text.lines().find(|line| line.contains("ssh-ed25519")).map(str::to_owned);
        key.unwrap_or_else(|| panic!("no host key scanned: {text}"))
    };
    assert_eq!(scan(), scan(), "the two nodes show the same host key");
    cluster.stop();
}

#[test]
fn a_proxy_header_from_anyone_but_the_balancer_is_refused() {
    let Some(cluster) = Cluster::start() else { return };
    let node = &cluster.nodes[0];
    let limit = Some(Duration::from_secs(10));

    // FTP, straight to the node from 127.0.0.1: the header is refused with 421.
    let mut ftp = TcpStream::connect(node.listener("FTP")).expect("connect");
    ftp.set_read_timeout(limit).expect("timeout");
    let greeting = read_some(&mut ftp);
    assert!(greeting.starts_with("220"), "{greeting}");
    ftp.write_all(b"PROXY TCP4 192.0.2.1 127.0.0.11 5000 21\r\n").expect("send");
    let reply = read_some(&mut ftp);
    assert!(reply.starts_with("421"), "{reply}");
    assert!(closes_unanswered(&mut ftp), "the connection is closed");

    // SFTP: a version 2 header, then a client's identification: the connection is closed.
    let mut ssh = TcpStream::connect(node.listener("SFTP")).expect("connect");
    ssh.set_read_timeout(limit).expect("timeout");
    let mut header = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    header.extend_from_slice(&[192, 0, 2, 1, 127, 0, 0, 11, 0x13, 0x88, 0, 22]);
    ssh.write_all(&header).expect("send");
    ssh.write_all(b"SSH-2.0-test\r\n").expect("send");
    assert!(reads_to_end(&mut ssh), "the SSH connection is closed");

    // From the balancer's address, a connection without a header is closed unanswered.
    let mut from_balancer = connect_from(BALANCER, node.listener("FTP"));
    from_balancer.set_read_timeout(limit).expect("timeout");
    from_balancer.write_all(b"USER alice\r\n").expect("send");
    assert!(closes_unanswered(&mut from_balancer), "no greeting, closed");
    cluster.stop();
}

/// What one read returns, as text ("" at the end of the stream).
fn read_some(stream: &mut TcpStream) -> String {
    let mut buf = [0; 512];
    let n = stream.read(&mut buf).expect("read");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Whether the stream ends (within its read timeout), whatever comes before the end.
fn reads_to_end(stream: &mut TcpStream) -> bool {
    let mut sink = Vec::new();
    match stream.read_to_end(&mut sink) {
        Ok(_) => true,
        Err(err) => err.kind() == std::io::ErrorKind::ConnectionReset,
    }
}
