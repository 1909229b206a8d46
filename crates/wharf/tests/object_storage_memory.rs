//! A 1 GiB upload and download over FTP and SFTP with the whole share in a bucket of a real
//! S3-compatible server (SeaweedFS on loopback), on the real binary with real clients (curl):
//! byte-exact, and the server's resident memory stays within a stated bound above idle,
//! because an upload streams into a multipart upload of bounded parts and a download streams
//! from a ranged `GET` (nothing is spooled, nothing holds the object).

mod common;

use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Running, start, wharf, write, write_alice};
use sha2::{Digest as _, Sha256};
use wharf_testkit::{ChildGuard, Seaweed, TEST_PASSWORD, require_tool, resident_bytes};

const MIB: u64 = 1024 * 1024;

/// The file moved each way.
const SIZE: u64 = 1024 * MIB;

/// The most the server's resident memory may grow above idle while one transfer runs: one
/// upload's parts (`wharf_vfs::object::UPLOAD_MEMORY`, 28 MiB) and the transfer's own buffers,
/// with room for the allocator keeping what it freed. A server that held the object would
/// grow by a gibibyte.
const BOUND: u64 = 128 * MIB;

/// The most the server's resident memory may stay above idle once every transfer is over:
/// what the transfers used goes back to the system instead of piling up transfer after
/// transfer (it grew by about 20 MiB a gibibyte uploaded while glibc's mmap threshold rose).
const LEFT_AFTER: u64 = 32 * MIB;

/// Time one transfer may take (debug build, two CPUs shared with the store and the client).
const TRANSFER_LIMIT: Duration = Duration::from_secs(600);

/// How often the server's resident memory is sampled during a transfer.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);

/// Samples `pid`'s resident memory until `done`, keeping the highest.
fn sample_peak(
    pid: u32,
    done: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !done.load(Ordering::Acquire) {
            peak.fetch_max(resident_bytes(pid), Ordering::AcqRel);
            std::thread::sleep(SAMPLE_EVERY);
        }
    })
}

/// The bytes of the test file at `offset`: a counter pattern, cheap to make and to check.
fn fill(buffer: &mut [u8], offset: u64) {
    for (index, byte) in buffer.iter_mut().enumerate() {
        let at = offset + index as u64;
        *byte = (at ^ (at >> 11) ^ (at >> 23)) as u8;
    }
}

/// Writes the 1 GiB file and returns its SHA-256.
fn write_source(path: &Path) -> Vec<u8> {
    use std::io::Write as _;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).expect("source"));
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; MIB as usize];
    for index in 0..SIZE / MIB {
        fill(&mut buffer, index * MIB);
        hasher.update(&buffer);
        file.write_all(&buffer).expect("write source");
    }
    file.flush().expect("flush source");
    hasher.finalize().to_vec()
}

/// Runs curl (`args`) to its end within [`TRANSFER_LIMIT`] while sampling the server's memory;
/// returns the SHA-256 and length of what curl wrote to its standard output, and the peak.
fn transfer(server_pid: u32, what: &str, args: &[String]) -> (Vec<u8>, u64, u64) {
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = sample_peak(server_pid, done.clone(), peak.clone());
    let started = Instant::now();
    let mut child = ChildGuard(
        Command::new(require_tool("curl").expect("curl"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("curl"),
    );
    let mut stdout = child.0.stdout.take().expect("stdout");
    let (hash_tx, hash_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; MIB as usize];
        let mut total = 0u64;
        while let Ok(read) = stdout.read(&mut buffer) {
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
            total += read as u64;
        }
        let _ = hash_tx.send((hasher.finalize().to_vec(), total));
    });
    let (digest, length) = hash_rx
        .recv_timeout(TRANSFER_LIMIT)
        .unwrap_or_else(|_| panic!("{what}: not finished within {TRANSFER_LIMIT:?}"));
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("curl status") {
            break status;
        }
        assert!(started.elapsed() < TRANSFER_LIMIT, "{what}: curl did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    done.store(true, Ordering::Release);
    sampler.join().expect("sampler");
    let mut stderr = String::new();
    if let Some(mut pipe) = child.0.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    assert!(status.success(), "{what}: curl failed ({status}): {stderr}");
    eprintln!(
        "{what}: {:.1?}, server peak {} MiB",
        started.elapsed(),
        peak.load(Ordering::Acquire) / MIB
    );
    (digest, length, peak.load(Ordering::Acquire))
}

/// A server whose whole share is `store`'s bucket, with FTP and SFTP on loopback and user
/// alice (home `alice`, a prefix of the bucket).
fn serve_on_bucket(dir: &Path, store: &Seaweed) -> Running {
    write_alice(dir);
    write(
        dir,
        "data/s3-keys.yaml",
        &format!("access_key_id: {}\nsecret_access_key: {}\n", store.access_key, store.secret_key),
    );
    let config = write(
        dir,
        "wharf.yaml",
        &format!(
            "data_dir: data\n\
             storage:\n  buckets:\n    /:\n      endpoint: {}\n      region: {}\n      \
             bucket: {}\n      credentials_file: s3-keys.yaml\n\
             access: {{ users_file: users.yaml, login_failure_delay: 10ms }}\n\
             ftp: {{ listen: [\"127.0.0.1:0\"] }}\n\
             ftps: {{ implicit_listen: [] }}\n\
             sftp: {{ listen: [\"127.0.0.1:0\"], host_key_dir: keys }}\n",
            store.endpoint, store.region, store.bucket
        ),
    );
    let mut command = wharf(dir);
    // The allocator as users run it: its per-thread arenas are what kept an upload's parts
    // resident before the server fixed its mmap threshold (wharf::allocator).
    command.env_remove("MALLOC_ARENA_MAX").arg("serve").arg("--config").arg(config);
    start(command)
}

#[test]
fn a_gibibyte_each_way_over_ftp_and_sftp_in_bounded_memory() {
    let Some(_) = require_tool("curl") else { return };
    let Some(store) = Seaweed::start() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let server = serve_on_bucket(tmp.path(), &store);
    let pid = server.process.0.id();
    let source = tmp.path().join("source.bin");
    let expected = write_source(&source);
    let user = format!("alice:{TEST_PASSWORD}");
    let ftp = server.listener("FTP");
    let sftp = server.listener("SFTP");
    let idle = resident_bytes(pid);
    eprintln!("server idle: {} MiB resident", idle / MIB);
    let cases = [
        ("FTP", format!("ftp://{ftp}/big-ftp.bin")),
        ("SFTP", format!("sftp://{}:{}/big-sftp.bin", sftp.ip(), sftp.port())),
    ];
    for (protocol, url) in cases {
        let common = |extra: &[&str]| -> Vec<String> {
            let mut args: Vec<String> =
                ["--silent", "--show-error", "--fail", "--insecure", "--user", user.as_str()]
                    .into_iter()
                    .map(str::to_owned)
                    .collect();
            args.extend(extra.iter().map(|s| (*s).to_owned()));
            args.push(url.clone());
            args
        };
        let upload = common(&["--upload-file", source.to_str().expect("utf-8 path")]);
        let (_, _, up_peak) = transfer(pid, &format!("{protocol} upload"), &upload);
        let (digest, length, down_peak) =
            transfer(pid, &format!("{protocol} download"), &common(&[]));
        assert_eq!(length, SIZE, "{protocol}: downloaded length");
        assert!(digest == expected, "{protocol}: downloaded bytes differ from the upload");
        for (direction, peak) in [("upload", up_peak), ("download", down_peak)] {
            let growth = peak.saturating_sub(idle);
            assert!(
                growth <= BOUND,
                "{protocol} {direction}: resident memory grew {} MiB above idle (bound {} MiB)",
                growth / MIB,
                BOUND / MIB
            );
        }
    }
    let after = resident_bytes(pid).saturating_sub(idle);
    eprintln!("server after the transfers: {} MiB above idle", after / MIB);
    assert!(
        after <= LEFT_AFTER,
        "resident memory stayed {} MiB above idle after the transfers (bound {} MiB)",
        after / MIB,
        LEFT_AFTER / MIB
    );
    server.stop();
}
