//! The certificate end to end: clear start-up errors, the self-signed certificate generated
//! once and reused, its fingerprint, and a reload that changes what new connections get while
//! running sessions go on.

mod common;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{Control, TestServer, bounded, read_all, tls_connect};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use wharf_ftps::{CertificateSource, FtpsError, FtpsServer};
use wharf_testkit::TestShare;

fn bind(
    share: &TestShare,
    tweak: impl FnOnce(&mut wharf_ftps::FtpsConfig),
) -> Result<FtpsServer, FtpsError> {
    let mut ftps = common::test_ftps_config(share.tmp.path().join("tls"));
    tweak(&mut ftps);
    FtpsServer::bind(ftps, common::test_ftp_config(), share.gateway.clone())
}

/// Generates a self-signed pair in `dir` and returns (certificate, key) paths.
fn generated_pair(dir: &Path) -> (PathBuf, PathBuf) {
    let source = CertificateSource::SelfSigned { dir: dir.to_owned() };
    source.load(&rustls::crypto::aws_lc_rs::default_provider()).expect("generate");
    (dir.join("ftps-certificate.pem"), dir.join("ftps-private-key.pem"))
}

/// The fingerprint of the first certificate in `pem`, computed here as `openssl x509
/// -fingerprint -sha256` shows it.
fn fingerprint_of_file(pem: &Path) -> String {
    let certificate = CertificateDer::from_pem_file(pem).expect("certificate");
    fingerprint_of(&certificate)
}

fn fingerprint_of(certificate: &CertificateDer<'_>) -> String {
    let digest = Sha256::digest(certificate.as_ref());
    digest.iter().map(|byte| format!("{byte:02X}")).collect::<Vec<_>>().join(":")
}

#[test]
fn start_up_errors_name_the_file() {
    let share = TestShare::new(common::USERS);
    let (chain, key) = generated_pair(&share.tmp.path().join("good"));
    let missing = share.tmp.path().join("no-such-dir/fullchain.pem");

    let err = bind(&share, |ftps| {
        ftps.certificate_chain = Some(missing.clone());
        ftps.private_key = Some(key.clone());
    })
    .expect_err("missing certificate")
    .to_string();
    assert!(err.contains(&missing.display().to_string()), "{err}");
    assert!(err.contains("certificate chain") && err.contains("No such file"), "{err}");

    let err = bind(&share, |ftps| {
        ftps.certificate_chain = Some(chain.clone());
        ftps.private_key = Some(missing.clone());
    })
    .expect_err("missing key")
    .to_string();
    assert!(err.contains(&missing.display().to_string()) && err.contains("private key"), "{err}");

    let (_, other_key) = generated_pair(&share.tmp.path().join("other"));
    let err = bind(&share, |ftps| {
        ftps.certificate_chain = Some(chain.clone());
        ftps.private_key = Some(other_key.clone());
    })
    .expect_err("mismatched key")
    .to_string();
    assert!(err.contains("does not belong"), "{err}");
    assert!(err.contains(&other_key.display().to_string()), "{err}");

    let err = bind(&share, |ftps| ftps.certificate_chain = Some(chain.clone()))
        .expect_err("chain without key")
        .to_string();
    assert!(err.contains("ftps.private_key"), "{err}");

    // An address already taken is named too.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let addr = taken.local_addr().expect("addr");
    let err = bind(&share, |ftps| ftps.implicit_listen = vec![addr])
        .expect_err("address in use")
        .to_string();
    assert!(err.contains(&addr.to_string()) && err.contains("implicit FTPS"), "{err}");
}

#[test]
fn the_self_signed_certificate_is_generated_once_and_reused() {
    let share = TestShare::new(common::USERS);
    let dir = share.tmp.path().join("tls");
    let first = bind(&share, |_| {}).expect("first start");
    let certificate = std::fs::read(dir.join("ftps-certificate.pem")).expect("certificate");
    let key = std::fs::read(dir.join("ftps-private-key.pem")).expect("key");
    let mode =
        std::fs::metadata(dir.join("ftps-private-key.pem")).expect("key").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the generated key is private");
    let fingerprint = first.fingerprint().to_string();
    assert_eq!(fingerprint, fingerprint_of_file(&dir.join("ftps-certificate.pem")));
    assert_eq!(fingerprint.len(), 95, "{fingerprint}");
    drop(first);

    let second = bind(&share, |_| {}).expect("second start");
    assert_eq!(second.fingerprint().to_string(), fingerprint, "the same certificate is served");
    assert_eq!(std::fs::read(dir.join("ftps-certificate.pem")).expect("certificate"), certificate);
    assert_eq!(std::fs::read(dir.join("ftps-private-key.pem")).expect("key"), key);
    // A reload re-reads it; it never makes a new one.
    assert_eq!(second.reload().expect("reload").to_string(), fingerprint);
    assert_eq!(std::fs::read(dir.join("ftps-certificate.pem")).expect("certificate"), certificate);
}

/// A client that trusts both certificates, to see which one the server presents.
fn trusting_both(a: &Path, b: &Path) -> Arc<rustls::ClientConfig> {
    let bundle = a.with_file_name("both.pem");
    let text = [std::fs::read(a).expect("a"), std::fs::read(b).expect("b")].concat();
    std::fs::write(&bundle, text).expect("bundle");
    common::client_config_trusting(&bundle)
}

fn presented(control: &Control<TlsStream<TcpStream>>) -> String {
    let chain = control.tls().peer_certificates().expect("server certificate");
    fingerprint_of(&chain[0])
}

/// `RETR` over a protected data connection of `control`.
async fn protected_download(
    control: &mut Control<TlsStream<TcpStream>>,
    config: &Arc<rustls::ClientConfig>,
    host: SocketAddr,
    name: &str,
) -> Vec<u8> {
    let data_addr = control.epsv(host.ip()).await;
    let tcp = bounded("connect", TcpStream::connect(data_addr)).await.expect("data");
    control.expect(&format!("RETR {name}"), 150).await;
    let data = bounded("handshake", tls_connect(config, tcp)).await.expect("data TLS");
    let bytes = bounded("read", read_all(data)).await.expect("read");
    assert_eq!(control.reply().await.expect("226").code, 226);
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_serves_the_new_certificate_to_new_connections_only() {
    common::whole_test(async {
        let scratch = tempfile::tempdir().expect("tempdir");
        let (old_chain, old_key) = generated_pair(&scratch.path().join("old"));
        let (new_chain, new_key) = generated_pair(&scratch.path().join("new"));
        let live = scratch.path().join("live");
        std::fs::create_dir(&live).expect("live dir");
        let (chain, key) = (live.join("fullchain.pem"), live.join("privkey.pem"));
        let install = |from_chain: &Path, from_key: &Path| {
            std::fs::copy(from_chain, &chain).expect("install chain");
            std::fs::copy(from_key, &key).expect("install key");
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        };
        install(&old_chain, &old_key);
        let server = TestServer::start_with(
            |ftps| {
                ftps.certificate_chain = Some(chain.clone());
                ftps.private_key = Some(key.clone());
            },
            |_| {},
        )
        .await;
        server.share.put("alice/f.txt", b"still here");
        let (old, new) = (fingerprint_of_file(&old_chain), fingerprint_of_file(&new_chain));
        assert_eq!(server.tls.fingerprint().to_string(), old);
        // One client configuration (session cache) per control connection, as FTPS clients
        // keep the control connection's session for its data connections.
        let config = trusting_both(&old_chain, &new_chain);
        let mut before = server.control().await.auth_tls(&config).await;
        before.login("alice").await;
        before.expect("PBSZ 0", 200).await;
        before.expect("PROT P", 200).await;
        assert_eq!(presented(&before), old);

        // A broken file is refused and changes nothing.
        std::fs::write(&chain, "garbage").expect("break");
        let err = server.tls.reload().expect_err("broken chain").to_string();
        assert!(err.contains(&chain.display().to_string()), "{err}");
        assert_eq!(server.tls.fingerprint().to_string(), old);

        install(&new_chain, &new_key);
        assert_eq!(server.tls.reload().expect("reload").to_string(), new);
        assert_eq!(server.tls.fingerprint().to_string(), new);

        let config_after = trusting_both(&old_chain, &new_chain);
        let mut after = Control::implicit(server.implicit, &config_after).await;
        assert_eq!(presented(&after), new, "implicit: new connections get the new certificate");
        after.login("alice").await;
        let explicit =
            server.control().await.auth_tls(&trusting_both(&old_chain, &new_chain)).await;
        assert_eq!(presented(&explicit), new, "explicit: new connections get the new certificate");

        // The session opened before the reload goes on, its data connections resuming its
        // own TLS session.
        let bytes = protected_download(&mut before, &config, server.ftp, "f.txt").await;
        assert_eq!(bytes, b"still here");
        let bytes = protected_download(&mut after, &config_after, server.implicit, "f.txt").await;
        assert_eq!(bytes, b"still here");
        before.expect("NOOP", 200).await;
    })
    .await
}
