//! Real TFTP clients against the real binary, in the ways that used to stall: tftp-hpa
//! fetching several files in one run (every request from the same client port; each file
//! after the first waited for the client's 5-second retransmission), and atftp asking for
//! 64 KiB blocks with a window of 16 (every window overran the client's receive buffer and
//! ended in a 1-second timeout). Each run must take a small part of what those waits add up
//! to; the crate's own tests (`crates/wharf-tftp/tests/one_port_many_files.rs`,
//! `large_windows.rs`) cover the same on the front-end alone.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Running, serve, write, write_alice_and_devices};
use wharf_testkit::{pattern, require_tool, run_bounded};

/// Files fetched by one tftp-hpa run.
const FILES: usize = 20;

/// Bytes of the file atftp fetches with large blocks.
const IMAGE_SIZE: usize = 8 << 20;

/// What the tftp-hpa run may take: one retransmission wait alone is 5 s, and before, most
/// files of such a run waited one.
const LIST_LIMIT: Duration = Duration::from_secs(4);

/// What one atftp download may take: a lost window costs the server's 1 s timeout, and
/// before, every window of the 128 was lost.
const WINDOWED_LIMIT: Duration = Duration::from_secs(3);

/// How long a client may run before the test gives up on it (far above the limits: a
/// failure then reports how long the run took).
const CLIENT_BOUND: Duration = Duration::from_secs(120);

/// The binary serving TFTP on loopback, loopback clients mapped to `devices`, whose home
/// holds `boot0.bin`..`boot19.bin` and `image.bin`.
fn start(tmp: &Path) -> Running {
    write_alice_and_devices(tmp);
    let home = tmp.join("data/share/devices");
    for index in 0..FILES {
        std::fs::write(home.join(format!("boot{index}.bin")), pattern(100 + index * 97))
            .expect("file");
    }
    std::fs::write(home.join("image.bin"), pattern(IMAGE_SIZE)).expect("image");
    let config = write(
        tmp,
        "wharf.yaml",
        "data_dir: data\n\
         access: { users_file: users.yaml }\n\
         ftp: { listen: [] }\n\
         ftps: { implicit_listen: [] }\n\
         tftp:\n  listen: [\"127.0.0.1:0\"]\n  \
         rules: [{ network: 127.0.0.0/8, identity: devices }]\n",
    );
    serve(tmp, &config)
}

#[test]
fn tftp_hpa_fetches_many_files_in_one_run_without_waiting() {
    let Some(tftp) = require_tool("tftp") else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = start(tmp.path());
    let port = server.listener("TFTP").port().to_string();
    let local = tmp.path().join("fetched");
    std::fs::create_dir_all(&local).expect("mkdir");
    let names: Vec<String> = (0..FILES).map(|index| format!("boot{index}.bin")).collect();
    let mut command = Command::new(tftp);
    // tftp-hpa saves each file of a multi-file `get` under its own name.
    command.current_dir(&local).args(["-m", "octet", "127.0.0.1", &port, "-c", "get"]);
    command.args(&names);
    let started = Instant::now();
    let output = run_bounded(&mut command, CLIENT_BOUND);
    let took = started.elapsed();
    let said = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    for (index, name) in names.iter().enumerate() {
        let got = std::fs::read(local.join(name)).unwrap_or_default();
        assert!(got == pattern(100 + index * 97), "{name} differs; tftp said: {said}");
    }
    assert!(took < LIST_LIMIT, "{FILES} files took {took:?}, more than {LIST_LIMIT:?}: {said}");
    server.stop();
}

#[test]
fn atftp_with_64k_blocks_and_a_window_of_16_keeps_its_speed() {
    let Some(atftp) = require_tool("atftp") else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = start(tmp.path());
    let port = server.listener("TFTP").port().to_string();
    let expected = pattern(IMAGE_SIZE);
    for round in 0..2 {
        let target = tmp.path().join(format!("image-{round}.bin"));
        let mut command = Command::new(&atftp);
        command.args(["--option", "blksize 65464", "--option", "windowsize 16"]);
        command.args(["-g", "-r", "image.bin", "-l"]).arg(&target);
        command.args(["127.0.0.1", &port]);
        let started = Instant::now();
        let output = run_bounded(&mut command, CLIENT_BOUND);
        let took = started.elapsed();
        let said = String::from_utf8_lossy(&output.stderr).into_owned();
        let got = std::fs::read(&target).unwrap_or_default();
        assert!(got == expected, "round {round}: the image differs; atftp said: {said}");
        assert!(took < WINDOWED_LIMIT, "round {round}: 8 MiB took {took:?}: {said}");
    }
    server.stop();
}
