//! Logins: one answer for every wrong credential, account policy, key methods, identities.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{PASSWORD, p, peer, share, share_with_delay};
use wharf_access::{
    Credential, ErrorKind, LoginError, LoginRequest, Password, Protocol, WriteMode,
};

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAHZ0AFG6WzsWrDOGvRDI5naX0mm26K89yVTTAvmvWC alice@laptop";
const OTHER_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPVruEOdbESizEy7bVl5lNhc0EsAS/VkkYzGc2foSnmV mallory";

const USERS: &str = r#"
users:
  - name: alice
    password: "$HASH"
    home: alice
    authorized_keys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAHZ0AFG6WzsWrDOGvRDI5naX0mm26K89yVTTAvmvWC alice@laptop"]
  - name: bob
    password: "$HASH"
    home: bob
    disabled: true
  - name: carol
    password: "$HASH"
    home: carol
    protocols: [sftp]
    networks: [10.0.0.0/8]
  - name: dave
    password: "$HASH"
    home: dave
    require_tls: true
  - name: erin
    password: "$HASH"
    home: erin
    authorized_keys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAHZ0AFG6WzsWrDOGvRDI5naX0mm26K89yVTTAvmvWC erin"]
    ssh_auth: [publickey+password]
  - name: anonymous
    passwordless: true
    home: pub
    protocols: [ftp]
  - name: tftp-devices
    passwordless: true
    mounts: { /firmware: firmware }
    protocols: [tftp]
    permissions: { /firmware: [read] }
"#;

fn key(text: &str) -> ssh_key::PublicKey {
    ssh_key::PublicKey::from_openssh(text).expect("key")
}

fn request(user: &str, protocol: Protocol, credential: Credential) -> LoginRequest {
    LoginRequest { protocol, peer: peer(), user: user.to_owned(), credential }
}

fn password(pw: &str) -> Credential {
    Credential::Password(Password::new(pw))
}

#[tokio::test]
async fn unknown_user_and_wrong_password_look_the_same() {
    let delay = Duration::from_millis(300);
    let fx = share_with_delay(USERS, delay);
    let mut timings = Vec::new();
    for (user, pw) in
        [("alice", "wrong"), ("nobody", "wrong"), ("nobody", PASSWORD), ("bob", PASSWORD)]
    {
        let started = Instant::now();
        let err = fx.auth.login(request(user, Protocol::Ftps, password(pw))).await.expect_err(user);
        timings.push(started.elapsed());
        assert!(matches!(err, LoginError::Denied), "{user}: {err:?}");
        assert_eq!(err.to_string(), "login incorrect");
    }
    for t in &timings {
        assert!(*t >= delay, "every failure waits the failure delay: {timings:?}");
    }
    fx.auth
        .login(request("alice", Protocol::Ftps, password(PASSWORD)))
        .await
        .expect("right password");
}

#[tokio::test]
async fn account_policy() {
    let fx = share(USERS);
    let denied = |r: Result<_, LoginError>| matches!(r, Err(LoginError::Denied));
    // carol: SFTP only, from 10/8 only.
    assert!(denied(fx.auth.login(request("carol", Protocol::Ftp, password(PASSWORD))).await));
    assert!(denied(fx.auth.login(request("carol", Protocol::Sftp, password(PASSWORD))).await));
    let from_lan = LoginRequest {
        peer: "10.1.2.3:5000".parse().expect("addr"),
        ..request("carol", Protocol::Sftp, password(PASSWORD))
    };
    fx.auth.login(from_lan).await.expect("allowed network");
    // dave: FTP only under TLS.
    assert!(matches!(
        fx.auth.login(request("dave", Protocol::Ftp, password(PASSWORD))).await,
        Err(LoginError::TlsRequired)
    ));
    assert!(fx.auth.tls_requirement("dave").control);
    assert!(!fx.auth.tls_requirement("nobody").control);
    fx.auth.login(request("dave", Protocol::Ftps, password(PASSWORD))).await.expect("over TLS");
    fx.auth
        .login(request("dave", Protocol::Sftp, password(PASSWORD)))
        .await
        .expect("SFTP is encrypted");
}

#[tokio::test]
async fn public_keys_and_second_factor() {
    let fx = share(USERS);
    assert!(fx.auth.accepts_key("alice", &key(KEY)));
    assert!(!fx.auth.accepts_key("alice", &key(OTHER_KEY)));
    assert!(!fx.auth.accepts_key("nobody", &key(KEY)));
    fx.auth
        .login(request("alice", Protocol::Sftp, Credential::PublicKey(key(KEY))))
        .await
        .expect("key");
    assert!(matches!(
        fx.auth
            .login(request("alice", Protocol::Sftp, Credential::PublicKey(key(OTHER_KEY))))
            .await,
        Err(LoginError::Denied)
    ));
    // erin needs key AND password.
    assert!(matches!(
        fx.auth.login(request("erin", Protocol::Sftp, Credential::PublicKey(key(KEY)))).await,
        Err(LoginError::NeedsPassword)
    ));
    assert!(matches!(
        fx.auth.login(request("erin", Protocol::Sftp, password(PASSWORD))).await,
        Err(LoginError::Denied)
    ));
    let both =
        Credential::PublicKeyAndPassword { key: key(KEY), password: Password::new(PASSWORD) };
    fx.auth.login(request("erin", Protocol::Sftp, both)).await.expect("both factors");
    let wrong = Credential::PublicKeyAndPassword { key: key(KEY), password: Password::new("nope") };
    assert!(matches!(
        fx.auth.login(request("erin", Protocol::Sftp, wrong)).await,
        Err(LoginError::Denied)
    ));
}

#[tokio::test]
async fn passwordless_identities() {
    let fx = share(USERS);
    std::fs::create_dir_all(fx.root.join("pub")).expect("mkdir");
    std::fs::write(fx.root.join("pub/readme.txt"), b"hello").expect("write");
    let anon = fx
        .auth
        .login(request("anonymous", Protocol::Ftp, Credential::Anonymous))
        .await
        .expect("anon");
    anon.open_read(&p("/readme.txt")).await.expect("anonymous can read");
    assert_eq!(
        anon.open_write(&p("/upload.txt"), WriteMode::Replace).await.err().map(|e| e.kind()),
        Some(ErrorKind::PermissionDenied),
        "anonymous sessions are read-only whatever the rules say"
    );
    // Passwordless identities cannot be reached with a password or another protocol.
    assert!(fx.auth.login(request("anonymous", Protocol::Ftp, password(""))).await.is_err());
    assert!(
        fx.auth
            .login(request("anonymous", Protocol::Tftp, Credential::SourceNetwork))
            .await
            .is_err()
    );
    assert!(fx.auth.login(request("alice", Protocol::Ftp, Credential::Anonymous)).await.is_err());
    let tftp = fx
        .auth
        .login(request("tftp-devices", Protocol::Tftp, Credential::SourceNetwork))
        .await
        .expect("tftp identity");
    assert_eq!(
        tftp.open_write(&p("/firmware/x.bin"), WriteMode::CreateNew).await.err().map(|e| e.kind()),
        Some(ErrorKind::PermissionDenied)
    );
    assert_eq!(
        tftp.stat(&p("/etc/passwd")).await.err().map(|e| e.kind()),
        Some(ErrorKind::NotFound)
    );
}

#[tokio::test]
async fn homes_are_created_and_confining() {
    let fx = share(USERS);
    std::fs::create_dir_all(fx.root.join("bob")).expect("mkdir");
    std::fs::write(fx.root.join("bob/private.txt"), b"bob's").expect("write");
    let alice =
        fx.auth.login(request("alice", Protocol::Sftp, password(PASSWORD))).await.expect("login");
    assert!(fx.root.join("alice").is_dir(), "home created at first login");
    for hostile in ["../bob/private.txt", "/../bob/private.txt", "..\\bob\\private.txt"] {
        let path =
            wharf_access::VPath::resolve(&wharf_access::VPath::root(), hostile).expect("path");
        assert_eq!(
            alice.open_read(&path).await.err().map(|e| e.kind()),
            Some(ErrorKind::NotFound),
            "{hostile}"
        );
    }
    let mut up = alice.open_write(&p("/../../escape.txt"), WriteMode::Replace).await.expect("open");
    up.write(Bytes::from_static(b"contained")).await.expect("write");
    up.commit().await.expect("commit");
    assert!(fx.root.join("alice/escape.txt").is_file());
    assert!(!fx.root.join("escape.txt").exists());
}

#[tokio::test]
async fn reload_replaces_users_without_touching_sessions() {
    let fx = share(USERS);
    let alice =
        fx.auth.login(request("alice", Protocol::Sftp, password(PASSWORD))).await.expect("login");
    fx.auth.replace_users(wharf_access::UserDb::default());
    assert!(fx.auth.login(request("alice", Protocol::Sftp, password(PASSWORD))).await.is_err());
    alice.stat(&p("/")).await.expect("the open session keeps working");
}

#[tokio::test]
async fn a_mistyped_password_is_forgiven_once_the_user_gets_in() {
    let fx = share(USERS);
    fx.auth.defender().reconfigure(wharf_access::DefenderConfig {
        threshold: 6,
        ..wharf_access::DefenderConfig::default()
    });
    // Behind one address, alice mistypes her password twice per visit, then gets it right:
    // without forgiveness the second visit would reach the threshold.
    for _ in 0..5 {
        for _ in 0..2 {
            assert!(
                fx.auth.login(request("alice", Protocol::Sftp, password("typo"))).await.is_err()
            );
        }
        fx.auth.login(request("alice", Protocol::Ftp, password(PASSWORD))).await.expect("login");
    }
    assert!(fx.auth.defender().verdict(peer().ip()).is_allowed());
    // Guesses at a name that never gets in are not forgiven by alice's success.
    for _ in 0..2 {
        assert!(fx.auth.login(request("nobody", Protocol::Sftp, password("guess"))).await.is_err());
    }
    fx.auth.login(request("alice", Protocol::Ftp, password(PASSWORD))).await.expect("login");
    assert!(fx.auth.login(request("nobody", Protocol::Sftp, password("guess"))).await.is_err());
    assert!(matches!(
        fx.auth.defender().verdict(peer().ip()),
        wharf_access::Verdict::Banned { .. }
    ));
}

#[tokio::test]
async fn failed_logins_feed_the_defender() {
    let fx = share(USERS);
    fx.auth.defender().reconfigure(wharf_access::DefenderConfig {
        threshold: 6,
        ..wharf_access::DefenderConfig::default()
    });
    for _ in 0..3 {
        assert!(fx.auth.login(request("alice", Protocol::Sftp, password("guess"))).await.is_err());
    }
    assert!(matches!(
        fx.auth.defender().verdict(peer().ip()),
        wharf_access::Verdict::Banned { .. }
    ));
    // Once banned, even the right password is refused from that address.
    assert!(matches!(
        fx.auth.login(request("alice", Protocol::Ftps, password(PASSWORD))).await,
        Err(LoginError::Denied)
    ));
    let elsewhere = LoginRequest {
        peer: "127.0.0.2:4000".parse().expect("addr"),
        ..request("alice", Protocol::Ftps, password(PASSWORD))
    };
    fx.auth.login(elsewhere).await.expect("another address is not banned");
}

#[tokio::test]
async fn paused_logins_are_refused_for_everyone_until_resumed() {
    let fx = share(USERS);
    let session = fx.login("alice", Protocol::Sftp).await;
    fx.auth.pause_logins(true);
    for (user, protocol, credential) in [
        ("alice", Protocol::Ftps, password(PASSWORD)),
        ("anonymous", Protocol::Ftp, Credential::Anonymous),
        ("tftp-devices", Protocol::Tftp, Credential::SourceNetwork),
    ] {
        let err = fx.auth.login(request(user, protocol, credential)).await.expect_err(user);
        assert!(matches!(err, LoginError::Paused), "{user}: {err:?}");
        assert!(err.to_string().contains("try again later"), "{err}");
    }
    // The session opened before goes on.
    session.list(&p("/")).await.expect("an open session keeps working");
    fx.auth.pause_logins(false);
    fx.auth.login(request("alice", Protocol::Ftps, password(PASSWORD))).await.expect("resumed");
}
