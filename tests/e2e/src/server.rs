//! The real Wharf server, started in-process the way the binary starts it
//! (`LoadedConfig::parse` + `wharf::Server::start`), over one temporary directory:
//!
//! ```text
//! <tmp>/                 data_dir
//!   share/               the storage root every protocol serves
//!     firmware/          shared, read-only for partners, what TFTP devices read
//!     uploads/           where TFTP devices may create files (never replace them)
//!     lab/               the TFTP lab's own folder (create and replace)
//!     partners/acme/     the home of partner `acme`
//!     partners/globex/   the home of partner `globex`
//!     quota/             the home of `tight`, limited to QUOTA_BYTES
//!     counted/           the home of `counted`, limited to COUNTED_FILES files
//!   host-keys/           the SSH host keys (outside the share)
//!   outside/sentinel.txt never to be read or changed by any client
//!   client/id_ed25519    the client key OpenSSH's `sftp` uses
//! ```

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use russh::keys::{Algorithm, PrivateKey};
use wharf::config::ConfigSource;
use wharf::observe::metrics::Metrics;
use wharf::{LoadedConfig, Server};
use wharf_testkit::{SENTINEL, Seaweed, TEST_PASSWORD};

use crate::clients::Protocol;

/// A user with every right over the whole share, which also sees the `lab` folder as
/// `/second-mount` (a rename between two mounts is `Unsupported`).
pub const RW: &str = "rw";
/// A user who may list and download the whole share, and nothing else.
pub const RO: &str = "ro";
/// A partner: its own home, plus `/firmware` read-only.
pub const ACME: &str = "acme";
/// Another partner, whose files `acme` must never reach.
pub const GLOBEX: &str = "globex";
/// A user whose home holds at most [`QUOTA_BYTES`].
pub const TIGHT: &str = "tight";
/// Bytes `tight`'s home may hold.
pub const QUOTA_BYTES: usize = 4096;
/// A user whose home holds at most [`COUNTED_FILES`] files.
pub const COUNTED: &str = "counted";
/// Files `counted`'s home may hold.
pub const COUNTED_FILES: usize = 4;
/// The TFTP identity of 127.0.0.0/8: reads `/firmware`, creates files in `/uploads`.
pub const DEVICES: &str = "devices";
/// The TFTP identity of 127.0.0.2 alone: reads `/uploads`, reads and replaces in `/lab`.
/// It lets a file uploaded over TFTP be read back over TFTP.
pub const LAB: &str = "lab";
/// The source address TFTP clients of [`DEVICES`] send from.
pub const DEVICES_SOURCE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
/// The source address TFTP clients of [`LAB`] send from.
pub const LAB_SOURCE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
/// Marks every file in globex's home: it must never appear in what `acme` receives.
pub const GLOBEX_MARK: &[u8] = b"GLOBEX-PRIVATE-CONTENT";
/// How long the server waits for a TFTP answer before retransmitting, and how often.
pub const TFTP_TIMEOUT: Duration = Duration::from_millis(500);
/// Retransmissions before the server abandons a TFTP transfer.
pub const TFTP_RETRIES: u32 = 4;

/// A running Wharf over a temporary directory; [`Wharf::stop`] shuts it down.
pub struct Wharf {
    tmp: tempfile::TempDir,
    /// The storage root every protocol serves.
    pub root: PathBuf,
    /// The directory beside the share that holds `sentinel.txt`.
    pub outside: PathBuf,
    /// The SSH host key directory (outside the share).
    pub host_keys: PathBuf,
    /// The client's private key (every user accepts it), in memory.
    pub key: Arc<PrivateKey>,
    /// The same key as an OpenSSH file (mode 0600), for the `sftp` command.
    pub key_file: PathBuf,
    server: Server,
    /// FTP control listener.
    pub ftp: SocketAddr,
    /// SFTP listener.
    pub sftp: SocketAddr,
    /// TFTP listener.
    pub tftp: SocketAddr,
    /// The implicit FTPS listener (explicit FTPS is `AUTH TLS` on [`Wharf::ftp`]).
    pub ftps: SocketAddr,
    /// A TLS client configuration trusting the server's generated certificate.
    pub tls: Arc<rustls::ClientConfig>,
    /// The object store the share lives in, when it is not the local [`Wharf::root`].
    bucket: Option<Arc<Seaweed>>,
}

/// The users, all inline in the configuration. `{hash}` is the password hash and `{key}` the
/// client's public key.
const USERS: &str = r#"
    - name: rw
      password: "{hash}"
      authorized_keys: ["{key}"]
      home: /
      mounts: { /second-mount: lab }
    - name: ro
      password: "{hash}"
      authorized_keys: ["{key}"]
      home: /
      permissions: { /: [read] }
    - name: acme
      password: "{hash}"
      authorized_keys: ["{key}"]
      home: partners/acme
      mounts: { /firmware: firmware }
      permissions: { /: ["*"], /firmware: [read] }
    - name: globex
      password: "{hash}"
      authorized_keys: ["{key}"]
      home: partners/globex
      mounts: { /firmware: firmware }
      permissions: { /: ["*"], /firmware: [read] }
    - name: tight
      password: "{hash}"
      authorized_keys: ["{key}"]
      home: quota
      quota: { bytes: {quota} }
    - name: counted
      password: "{hash}"
      authorized_keys: ["{key}"]
      home: counted
      quota: { files: {counted_files} }
    - name: devices
      passwordless: true
      protocols: [tftp]
      mounts: { /firmware: firmware, /uploads: uploads }
      permissions: { /firmware: [read], /uploads: [upload] }
    - name: lab
      passwordless: true
      protocols: [tftp]
      mounts: { /uploads: uploads, /lab: lab }
      permissions: { /uploads: [read], /lab: [read, upload, overwrite] }
"#;

/// The configuration: every protocol on loopback port 0 (FTPS: `AUTH TLS` on the FTP
/// listener and an implicit listener, with a certificate generated at start), session caps raised for the
/// concurrency test (loopback is one address), short failure delays.
const CONFIG: &str = r#"
data_dir: .
shutdown_grace: 2s
storage:
  root: share
access:
  login_failure_delay: 10ms
  max_concurrent_password_checks: 2
  users:
{users}
defender:
  allow: [127.0.0.0/8]
ftp:
  listen: ["127.0.0.1:0"]
  data_connect_timeout: 20s
  data_stall_timeout: 60s
  limits: { max_sessions: 1000, max_sessions_per_address: 400 }
ftps:
  implicit_listen: ["127.0.0.1:0"]
  generated_certificate_dir: ftps
sftp:
  listen: ["127.0.0.1:0"]
  host_key_dir: host-keys
  host_key_types: [ed25519]
  limits: { max_sessions: 500, max_sessions_per_address: 200 }
tftp:
  listen: ["127.0.0.1:0"]
  rules:
    - { network: 127.0.0.2/32, identity: lab }
    - { network: 127.0.0.0/8, identity: devices }
  timeout: {tftp_timeout}ms
  max_retries: {tftp_retries}
  max_transfers: 400
  max_transfers_per_address: 200
"#;

impl Wharf {
    /// Creates the directory tree and starts the server with every protocol.
    pub async fn start() -> Wharf {
        Wharf::start_with(CONFIG, None).await
    }

    /// [`Wharf::start`] with the whole share in a bucket of a SeaweedFS server of its own
    /// (`storage.buckets` at `/`), the same folders and files made there as objects; `None`
    /// when SeaweedFS is not installed outside CI (see [`Seaweed::start`]).
    pub async fn start_on_bucket() -> Option<Wharf> {
        let store = Seaweed::start()?;
        Some(Wharf::start_with(CONFIG, Some(Arc::new(store))).await)
    }

    /// [`Wharf::start`] with `config` (placeholders as in [`CONFIG`]). Every protocol must
    /// have its listener: a suite that quietly ran without one would pass while testing less.
    async fn start_with(config: &str, bucket: Option<Arc<Seaweed>>) -> Wharf {
        let tmp = tempfile::tempdir().expect("temporary directory");
        let base = tmp.path().to_path_buf();
        let root = base.join("share");
        let config = match &bucket {
            Some(store) => with_bucket(config, store, &base),
            None => config.to_owned(),
        };
        let outside = base.join("outside");
        std::fs::create_dir_all(&outside).expect("outside folder");
        std::fs::write(outside.join("sentinel.txt"), SENTINEL).expect("sentinel");

        let key = PrivateKey::random(&mut russh::keys::key::safe_rng(), Algorithm::Ed25519)
            .expect("client key");
        let key_file = write_private_key(&base.join("client"), &key);
        let public = key.public_key().to_openssh().expect("public key line");
        // bcrypt at cost 4 keeps a hundred logins at once cheap; the login is the same code.
        let hash = bcrypt::hash(TEST_PASSWORD, 4).expect("bcrypt");
        let users = USERS
            .replace("{hash}", &hash)
            .replace("{key}", &public)
            .replace("{quota}", &QUOTA_BYTES.to_string())
            .replace("{counted_files}", &COUNTED_FILES.to_string());
        let text = config
            .replace("{users}", users.trim_end_matches('\n'))
            .replace("{tftp_timeout}", &TFTP_TIMEOUT.as_millis().to_string())
            .replace("{tftp_retries}", &TFTP_RETRIES.to_string());
        let loaded =
            LoadedConfig::parse(&text, ConfigSource::Embedded, &base).expect("configuration");
        let server =
            Server::start(loaded, Arc::new(Metrics::default())).await.expect("wharf starts");
        let address = |name: &str| {
            server.listener(name).unwrap_or_else(|| panic!("no {name} listener: {text}"))
        };
        let [ftp, ftps, sftp, tftp] = Protocol::ALL.map(|protocol| address(protocol.name()));
        for addr in [ftp, ftps, sftp, tftp] {
            assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
        }
        let tls = tls_client_config(&base.join("ftps/ftps-certificate.pem"));
        let wharf = Wharf {
            bucket,
            tls,
            root,
            outside,
            host_keys: base.join("host-keys"),
            key: Arc::new(key),
            key_file,
            server,
            ftp,
            sftp,
            tftp,
            ftps,
            tmp,
        };
        for dir in ["firmware", "uploads", "lab", "partners/acme", "partners/globex", "quota"] {
            wharf.make_folder(dir);
        }
        wharf.put("partners/globex/plans.txt", GLOBEX_MARK);
        wharf
    }

    /// The temporary directory everything lives in.
    pub fn base(&self) -> &Path {
        self.tmp.path()
    }

    /// Writes `content` at `relative` under the share (parents created), as an operator would.
    /// On a bucket, the object (its folders' markers are the caller's, see
    /// [`Wharf::make_folder`]); the returned local path then names nothing.
    pub fn put(&self, relative: &str, content: &[u8]) -> PathBuf {
        let path = self.root.join(relative);
        if let Some(store) = &self.bucket {
            let reply =
                store.s3_request("PUT", &format!("/{}/{relative}", store.bucket), &[], content);
            assert_eq!(reply.status, 200, "putting {relative}: {}", reply.text());
            return path;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("parent folders");
        }
        std::fs::write(&path, content).expect("write into the share");
        path
    }

    /// Every key in the bucket, sorted (empty on a local share).
    pub fn stored_keys(&self) -> Vec<String> {
        match &self.bucket {
            Some(store) => store.listed_keys(&[("list-type", "2")]),
            None => Vec::new(),
        }
    }

    /// Makes the folder `relative` of the share and its parents (on a bucket, their marker
    /// objects).
    pub fn make_folder(&self, relative: &str) {
        let Some(store) = &self.bucket else {
            std::fs::create_dir_all(self.root.join(relative)).expect("share folder");
            return;
        };
        let mut prefix = String::new();
        for part in relative.split('/') {
            prefix.push_str(part);
            prefix.push('/');
            let reply = store.s3_request("PUT", &format!("/{}/{prefix}", store.bucket), &[], b"");
            assert_eq!(reply.status, 200, "folder {prefix}: {}", reply.text());
        }
    }

    /// The content of `relative` under the share.
    pub fn read(&self, relative: &str) -> Vec<u8> {
        if let Some(store) = &self.bucket {
            let reply = store.s3_request("GET", &format!("/{}/{relative}", store.bucket), &[], b"");
            assert_eq!(reply.status, 200, "reading {relative} from the bucket: {}", reply.text());
            return reply.body;
        }
        std::fs::read(self.root.join(relative))
            .unwrap_or_else(|err| panic!("reading {relative} from the share: {err}"))
    }

    /// Multipart uploads left open in the bucket (0 on a local share): what an unfinished
    /// upload must not leave behind.
    pub fn open_multipart_uploads(&self) -> usize {
        self.bucket.as_ref().map_or(0, |store| store.open_multipart_uploads().len())
    }

    /// Whether the share is a bucket.
    pub fn on_bucket(&self) -> bool {
        self.bucket.is_some()
    }

    /// The names of the files directly in the share's folder `relative`, sorted (temporary
    /// upload files and, on a bucket, folder markers left out).
    pub fn file_names(&self, relative: &str) -> Vec<String> {
        let mut names: Vec<String> = match &self.bucket {
            Some(store) => {
                let prefix = format!("{}/", relative.trim_end_matches('/'));
                store
                    .listed_keys(&[("list-type", "2"), ("prefix", &prefix), ("delimiter", "/")])
                    .into_iter()
                    .filter_map(|key| key.strip_prefix(&prefix).map(str::to_owned))
                    .filter(|name| !name.is_empty())
                    .collect()
            }
            None => std::fs::read_dir(self.root.join(relative))
                .expect("share folder")
                .filter_map(|entry| entry.ok())
                .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_file()))
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|name| !crate::tree::is_temporary_name(name))
                .collect(),
        };
        names.sort();
        names
    }

    /// On a bucket, a digest of every key (folder markers included) and its content; `None`
    /// on a local share.
    pub fn bucket_digest(&self) -> Option<String> {
        use std::fmt::Write as _;
        let store = self.bucket.as_ref()?;
        let keys = store.listed_keys(&[("list-type", "2")]);
        let mut digest = String::new();
        for key in keys {
            let content = self.read(&key);
            // The test trees are small: the content itself is its digest.
            let _ =
                write!(digest, "{key}:{}:{};", content.len(), String::from_utf8_lossy(&content));
        }
        Some(digest)
    }

    /// Waits until an upload is under way in the store, and panics after `limit`: on a local
    /// share, a temporary upload file of at least `bytes`; on a bucket, an open multipart
    /// upload (one exists once a first part has been sent).
    pub async fn wait_for_upload_in_progress(&self, bytes: u64, limit: Duration) {
        if self.bucket.is_none() {
            crate::tree::wait_for_upload_in_progress(&self.root, bytes, limit).await;
            return;
        }
        let started = std::time::Instant::now();
        while self.open_multipart_uploads() == 0 {
            assert!(started.elapsed() < limit, "no multipart upload under way after {limit:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until no unfinished upload is left in the store (no temporary upload file, no
    /// open multipart upload), and panics after `limit`.
    pub async fn wait_for_no_unfinished_upload(&self, limit: Duration) {
        crate::tree::wait_for_no_temporary_files(&self.root, limit).await;
        let started = std::time::Instant::now();
        loop {
            let open = self.open_multipart_uploads();
            if open == 0 {
                return;
            }
            if started.elapsed() >= limit {
                let keys = self.bucket.as_ref().map(|store| store.open_multipart_uploads());
                panic!("{open} multipart uploads still open after {limit:?}: {keys:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The TFTP source address of a TFTP identity ([`DEVICES`] or [`LAB`]).
    pub fn tftp_source(identity: &str) -> IpAddr {
        match identity {
            DEVICES => DEVICES_SOURCE,
            LAB => LAB_SOURCE,
            other => panic!("{other} is not a TFTP identity"),
        }
    }

    /// Shuts the server down (stop accepting, let transfers end, close the rest) within a
    /// bounded time.
    pub async fn stop(self) {
        let Wharf { server, tmp, .. } = self;
        let clean =
            crate::within(Duration::from_secs(30), "server shutdown", server.shutdown()).await;
        if !clean {
            eprintln!("note: some sessions were still open when the grace period ended");
        }
        drop(tmp);
    }
}

/// `config` with the whole share in `store`'s bucket, its keys in a file under `base`.
fn with_bucket(config: &str, store: &Seaweed, base: &Path) -> String {
    let keys = base.join("s3-keys.yaml");
    std::fs::write(
        &keys,
        format!("access_key_id: {}\nsecret_access_key: {}\n", store.access_key, store.secret_key),
    )
    .expect("key file");
    let section = format!(
        "storage:\n  root: share\n  buckets:\n    /:\n      endpoint: {}\n      region: {}\n      bucket: {}\n      credentials_file: {}\n",
        store.endpoint,
        store.region,
        store.bucket,
        keys.display()
    );
    let local = "storage:\n  root: share\n";
    assert!(config.contains(local), "the storage section moved: {config}");
    config.replace(local, &section)
}

/// The name the FTPS certificate is checked against (the generated one names `localhost`,
/// `127.0.0.1` and `::1`).
pub const TLS_SERVER_NAME: &str = "localhost";

/// The PEM file of the generated FTPS certificate, for real clients (`--cacert`).
pub fn ftps_certificate(wharf: &Wharf) -> PathBuf {
    wharf.base().join("ftps/ftps-certificate.pem")
}

/// A TLS client configuration trusting the certificates in `pem`. Its session cache lets
/// data connections resume the control connection's TLS session, as the server requires.
///
/// TLS 1.2: rustls resumes each TLS 1.3 ticket once, and Wharf hands out no TLS 1.3 tickets
/// on upload data connections (docs/protocols/ftps.md), so a session that uploads file after
/// file, as the matrix does, would run out of tickets; TLS 1.2 renews the ticket inside every
/// handshake. TLS 1.3 data connections are covered by `crates/wharf-ftps/tests` and by the
/// real clients here.
fn tls_client_config(pem: &Path) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(pem).expect("FTPS certificate file") {
        roots.add(certificate.expect("certificate")).expect("trusted certificate");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

fn write_private_key(dir: &Path, key: &PrivateKey) -> PathBuf {
    std::fs::create_dir_all(dir).expect("client key folder");
    let path = dir.join("id_ed25519");
    let text = key.to_openssh(russh::keys::ssh_key::LineEnding::LF).expect("encode key");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .expect("client key file");
    std::io::Write::write_all(&mut file, text.as_bytes()).expect("write client key");
    path
}

impl Wharf {
    /// A TLS client configuration for one FTPS control connection and its data connections:
    /// its own session cache, so that data connections resume this control connection's
    /// session and not another's (the server refuses those).
    pub fn tls_for_one_session(&self) -> Arc<rustls::ClientConfig> {
        let mut config = rustls::ClientConfig::clone(&self.tls);
        config.resumption = rustls::client::Resumption::in_memory_sessions(8);
        Arc::new(config)
    }

    /// The FTP flavours a test runs its FTP part over (`true`: over TLS): in the clear, and
    /// over TLS, which the server always serves (see [`Wharf::start`]).
    pub fn ftp_flavours(&self) -> [bool; 2] {
        [false, true]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without an FTPS listener the suite refuses to start, rather than quietly dropping the
    /// FTPS cases of every test.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[should_panic(expected = "no FTPS listener")]
    async fn a_server_without_ftps_is_refused() {
        let ftps =
            "ftps:\n  implicit_listen: [\"127.0.0.1:0\"]\n  generated_certificate_dir: ftps\n";
        assert!(CONFIG.contains(ftps), "the FTPS section moved: {CONFIG}");
        let _never = Wharf::start_with(&CONFIG.replace(ftps, ""), None).await;
    }
}
