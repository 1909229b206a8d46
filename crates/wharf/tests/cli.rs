//! The `wharf` binary as a newcomer meets it: `serve` with no arguments, `check`,
//! `hash-password`.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{greeting, listener, start, wharf};
use wharf_testkit::run_bounded;

#[test]
fn serve_without_arguments_creates_demo_account_once_and_stops_on_ctrl_c() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = start({
        let mut command = wharf(tmp.path());
        command.arg("serve");
        command
    });
    let banner = server.banner.clone();
    assert!(banner.contains("user: demo"), "{banner}");
    let password = banner
        .lines()
        .find_map(|l| l.split("password: ").nth(1))
        .map(str::trim)
        .expect("password shown")
        .to_owned();
    assert_eq!(password.len(), 20);
    let users =
        std::fs::read_to_string(tmp.path().join("wharf-data/users.yaml")).expect("users file");
    assert!(!users.contains(&password), "the password is stored only as a hash");
    assert!(tmp.path().join("wharf-data/share").is_dir());
    let ftp = greeting(listener(&banner, "FTP")).expect("FTP greets");
    assert!(ftp.starts_with("220"), "{ftp}");
    let ssh = greeting(listener(&banner, "SFTP")).expect("SSH greets");
    assert!(ssh.starts_with("SSH-2.0-"), "{ssh}");
    listener(&banner, "FTPS");
    assert!(banner.contains("FTPS certificate SHA-256: "), "{banner}");
    assert!(banner.contains("SSH host key: ED25519 SHA256:"), "{banner}");
    listener(&banner, "TFTP");
    assert!(server.stop().success(), "clean exit on SIGINT");

    // A second start reuses what the first created and shows no password.
    let server = start({
        let mut command = wharf(tmp.path());
        command.arg("serve");
        command
    });
    let banner = server.banner.clone();
    assert!(!banner.contains(&password) && !banner.contains("password:"), "{banner}");
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("wharf-data/users.yaml")).expect("users"),
        users
    );
    assert!(server.stop().success());
}

#[test]
fn check_names_a_misspelled_key_and_its_line() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = tmp.path().join("wharf.yaml");
    std::fs::write(&config, "data_dir: d\nstorage:\n  root: share\n  fsync_on_comit: true\n")
        .expect("write");
    let out = run_bounded(
        wharf(tmp.path()).arg("check").arg("--config").arg(&config),
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("fsync_on_comit") && stderr.contains("line 4"), "{stderr}");
}

#[test]
fn check_accepts_the_example_and_rejects_a_bad_user() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/wharf.example.yaml");
    let config = tmp.path().join("wharf.yaml");
    std::fs::copy(&example, &config).expect("copy example");
    std::fs::create_dir_all(tmp.path().join("wharf-data")).expect("mkdir");
    std::fs::write(tmp.path().join("wharf-data/users.yaml"), "users: []\n").expect("users file");
    let out = run_bounded(
        wharf(tmp.path()).arg("check").arg("--config").arg(&config),
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("acme") && stdout.contains("devices"), "{stdout}");

    std::fs::write(
        tmp.path().join("wharf-data/users.yaml"),
        "users:\n  - name: x\n    home: h\n    pasword: y\n",
    )
    .expect("users file");
    let out = run_bounded(
        wharf(tmp.path()).arg("check").arg("--config").arg(&config),
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("pasword") && stderr.contains("users.yaml"), "{stderr}");
}

#[test]
fn check_rejects_what_the_front_ends_would_refuse_at_start() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(tmp.path().join("wharf-data")).expect("mkdir");
    std::fs::write(
        tmp.path().join("wharf-data/users.yaml"),
        "users:\n  - { name: alice, passwordless: true, home: a, protocols: [ftp] }\n",
    )
    .expect("users file");
    let cases = [
        ("ftps: { certificate_chain: chain.pem }", "private_key"),
        ("ftps: { certificate_chain: chain.pem, private_key: key.pem }", "chain.pem"),
        ("tftp: { remap: [{ pattern: \"(\", replace: x }] }", "remap rule #1"),
        ("tftp: { rules: [{ network: 10.0.0.0/8, identity: nobody }] }", "nobody"),
        (
            "tftp: { rules: [{ network: 10.0.0.0/8, identity: alice }] }",
            "`tftp` in its `protocols`",
        ),
        ("tftp: { max_block_size: 4 }", "max_block_size"),
    ];
    for (section, named) in cases {
        let config = tmp.path().join("wharf.yaml");
        let text = format!("access: {{ users_file: users.yaml }}\n{section}\n");
        std::fs::write(&config, text).expect("config");
        let out = run_bounded(
            wharf(tmp.path()).arg("check").arg("--config").arg(&config),
            Duration::from_secs(30),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{section}: accepted");
        assert!(stderr.contains(named), "{section}: the error names {named}: {stderr}");
    }
}

#[test]
fn hash_password_reads_stdin() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut child = wharf(tmp.path())
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"s3cret pass\n").expect("write");
    }
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).expect("utf8");
    let stored = wharf_access::StoredHash::parse(hash.trim()).expect("argon2id hash");
    assert!(stored.verify(&wharf_access::Password::new("s3cret pass")));
    assert!(!stored.verify(&wharf_access::Password::new("s3cret pass\n")));
}

#[test]
fn check_warns_a_node_behind_a_load_balancer_that_would_make_its_own_identity() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(tmp.path().join("data")).expect("mkdir");
    std::fs::write(tmp.path().join("data/users.yaml"), "users: []\n").expect("users file");
    let config = tmp.path().join("wharf.yaml");
    let write_config = |trusted: &str| {
        std::fs::write(
            &config,
            format!(
                "data_dir: data\naccess: {{ users_file: users.yaml }}\n\
                 proxy_protocol: {{ trusted: [{trusted}] }}\n\
                 ftp: {{ listen: [\"127.0.0.1:0\"] }}\nftps: {{ implicit_listen: [] }}\n\
                 sftp: {{ listen: [\"127.0.0.1:0\"], host_key_types: [ed25519] }}\n"
            ),
        )
        .expect("config");
    };
    let check = || {
        let out = run_bounded(
            wharf(tmp.path()).arg("check").arg("--config").arg(&config),
            Duration::from_secs(30),
        );
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };

    write_config("10.0.0.5/32");
    let stdout = check();
    assert!(stdout.contains("PROXY headers from load balancers: 10.0.0.5/32"), "{stdout}");
    assert!(stdout.contains("ssh_host_ed25519_key does not exist"), "{stdout}");
    assert!(stdout.contains("ftps-certificate.pem does not exist"), "{stdout}");

    // With the shared key and certificate in place, nothing to warn about.
    for file in ["host-keys/ssh_host_ed25519_key", "ftps/ftps-certificate.pem"] {
        let path = tmp.path().join("data").join(file);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, "placed by the operator").expect("identity file");
    }
    let stdout = check();
    assert!(!stdout.contains("does not exist"), "{stdout}");

    // A single node (no balancer) generating its own is what it should do.
    std::fs::remove_dir_all(tmp.path().join("data/host-keys")).expect("rm");
    write_config("");
    assert!(!check().contains("does not exist"), "a single node is not warned");
}
