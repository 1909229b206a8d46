//! The deployment files in `deploy/` are valid: the systemd unit verifies, and the shipped
//! configurations pass `wharf check`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{WHARF, wharf};
use wharf_testkit::{require_tool, run_bounded};

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy").join(file)
}

#[test]
fn systemd_unit_verifies() {
    let Some(analyze) = require_tool("systemd-analyze") else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    // The unit names the installed binary; verify it against the one just built.
    let unit = std::fs::read_to_string(deploy("wharf.service")).expect("unit");
    assert!(unit.contains("CapabilityBoundingSet=CAP_NET_BIND_SERVICE"));
    assert!(unit.contains("ProtectSystem=strict") && unit.contains("NoNewPrivileges=yes"));
    let path = tmp.path().join("wharf.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/wharf", WHARF)).expect("write unit");
    let out = run_bounded(Command::new(analyze).arg("verify").arg(&path), Duration::from_secs(60));
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn shipped_configurations_check() {
    for file in ["wharf.yaml", "docker/wharf.yaml"] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let text = std::fs::read_to_string(deploy(file)).expect("config");
        let data = tmp.path().join("state");
        std::fs::create_dir_all(&data).expect("mkdir");
        std::fs::write(data.join("users.yaml"), "users: []\n").expect("users");
        let config = tmp.path().join("wharf.yaml");
        std::fs::write(&config, text.replace("/var/lib/wharf", &data.to_string_lossy()))
            .expect("write");
        let mut command = wharf(tmp.path());
        command.arg("check").arg("--config").arg(&config);
        let out = run_bounded(&mut command, Duration::from_secs(30));
        assert!(out.status.success(), "{file}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn the_cluster_files_hold_together() {
    let cluster = deploy("cluster");
    let tmp = tempfile::tempdir().expect("tempdir");
    // The secrets make-secrets would make, as far as `wharf check` reads them.
    let secrets = tmp.path().join("secrets");
    std::fs::create_dir_all(&secrets).expect("mkdir");
    std::fs::write(secrets.join("db-password"), "not-a-real-password\n").expect("password");
    std::fs::write(secrets.join("s3-keys.yaml"), "access_key_id: a\nsecret_access_key: b\n")
        .expect("keys");
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let generated = wharf_ftps::CertificateSource::SelfSigned { dir: tmp.path().join("ftps") };
    generated.load(&provider).expect("a certificate");
    for (from, to) in [
        ("ftps-certificate.pem", "ftps-certificate.pem"),
        ("ftps-private-key.pem", "ftps-private-key.pem"),
    ] {
        std::fs::rename(tmp.path().join("ftps").join(from), secrets.join(to)).expect("move");
    }
    for node in ["node1.yaml", "node2.yaml"] {
        let text = std::fs::read_to_string(cluster.join(node)).expect("node config");
        let state = tmp.path().join(node).with_extension("state");
        std::fs::create_dir_all(&state).expect("mkdir");
        let text = text
            .replace("/var/lib/wharf", &state.to_string_lossy())
            .replace("/run/secrets", &secrets.to_string_lossy());
        let config = tmp.path().join(node);
        std::fs::write(&config, text).expect("write");
        let mut command = wharf(tmp.path());
        command.arg("check").arg("--config").arg(&config);
        let out = run_bounded(&mut command, Duration::from_secs(30));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{node}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("in the shared database wharf@172.28.0.20:5432/wharf"), "{stdout}");
        assert!(stdout.contains("PROXY headers from load balancers: 172.28.0.10/32"), "{stdout}");
    }

    // HAProxy accepts its file; the nodes' names become loopback addresses first, so that the
    // check resolves nothing.
    if let Some(haproxy) = require_tool("haproxy") {
        let text = std::fs::read_to_string(cluster.join("haproxy.cfg")).expect("haproxy.cfg");
        let text = text.replace("wharf1", "127.0.0.11").replace("wharf2", "127.0.0.12");
        let config = tmp.path().join("haproxy.cfg");
        std::fs::write(&config, text).expect("write");
        let out = run_bounded(
            Command::new(haproxy).arg("-c").arg("-f").arg(&config),
            Duration::from_secs(30),
        );
        assert!(out.status.success(), "haproxy -c: {}", String::from_utf8_lossy(&out.stderr));
    }

    // The compose file: the five services, and every file it mounts is shipped.
    let compose: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(cluster.join("compose.yaml")).expect("compose"),
    )
    .expect("compose.yaml is YAML");
    let services = compose["services"].as_mapping().expect("services");
    for name in ["wharf1", "wharf2", "haproxy", "postgres", "s3"] {
        assert!(services.contains_key(name), "service {name}");
    }
    for shipped in ["node1.yaml", "node2.yaml", "haproxy.cfg", "make-secrets"] {
        assert!(cluster.join(shipped).is_file(), "{shipped} is shipped");
        let mounted = format!("./{shipped}");
        assert!(
            shipped == "make-secrets"
                || std::fs::read_to_string(cluster.join("compose.yaml"))
                    .expect("compose")
                    .contains(&mounted),
            "compose.yaml mounts {shipped}"
        );
    }
}
