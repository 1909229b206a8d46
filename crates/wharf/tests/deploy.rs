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
