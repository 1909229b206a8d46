//! External authentication with an in-process directory that counts what it is asked: the
//! cache, refusals, the stale rule, the in-flight cap, and who is never asked.
//!
//! Time is tokio's paused clock, moved on by the tests: nothing here waits for real time.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{PASSWORD, Share, share};
use wharf_access::{
    Authenticator, Credential, DefenderConfig, Directory, DirectoryAnswer, DirectoryCredential,
    DirectoryReply, DirectoryRequest, ExternalAuth, ExternalAuthSettings, LoginError, LoginRequest,
    Password, Protocol, UserConfig, Verdict,
};

const LOCAL_USERS: &str = r#"
users:
  - name: alice
    password: "$HASH"
    home: alice
"#;

/// The password the directory knows for `zoe`.
const ZOE_PASSWORD: &str = "directory secret";

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAHZ0AFG6WzsWrDOGvRDI5naX0mm26K89yVTTAvmvWC zoe@laptop";
const OTHER_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPVruEOdbESizEy7bVl5lNhc0EsAS/VkkYzGc2foSnmV mallory";

/// How the directory behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Knows `zoe` (password and [`KEY`]); refuses everything else.
    Up,
    /// Says it cannot answer.
    Down,
    /// Never answers.
    Hanging,
    /// Answers for `zoe` with a definition of another name.
    WrongName,
}

#[derive(Debug)]
struct CountingDirectory {
    asked: AtomicUsize,
    mode: Mutex<Mode>,
}

impl CountingDirectory {
    fn new() -> Arc<CountingDirectory> {
        Arc::new(CountingDirectory { asked: AtomicUsize::new(0), mode: Mutex::new(Mode::Up) })
    }

    fn asked(&self) -> usize {
        self.asked.load(Ordering::SeqCst)
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().expect("mode") = mode;
    }
}

fn zoe(name: &str) -> Box<UserConfig> {
    let yaml = format!("{{ name: {name}, home: zoe-home, authorized_keys: [\"{KEY}\"] }}");
    Box::new(serde_yaml::from_str(&yaml).expect("definition"))
}

impl Directory for CountingDirectory {
    fn ask(&self, request: DirectoryRequest) -> DirectoryReply {
        self.asked.fetch_add(1, Ordering::SeqCst);
        let mode = *self.mode.lock().expect("mode");
        Box::pin(async move {
            let known = request.user == "zoe"
                && match &request.credential {
                    DirectoryCredential::Password(password)
                    | DirectoryCredential::PublicKeyAndPassword { password, .. } => {
                        password.expose() == ZOE_PASSWORD.as_bytes()
                    }
                    // Whose key it is is for Wharf to see in the answer.
                    DirectoryCredential::PublicKey(_) => true,
                };
            match mode {
                Mode::Up if known => DirectoryAnswer::Accepted(zoe("zoe")),
                Mode::Up => DirectoryAnswer::Refused,
                Mode::Down => DirectoryAnswer::Unavailable("down for the test".to_owned()),
                Mode::Hanging => std::future::pending().await,
                Mode::WrongName => DirectoryAnswer::Accepted(zoe("mallory")),
            }
        })
    }
}

struct Fixture {
    share: Share,
    directory: Arc<CountingDirectory>,
}

impl Fixture {
    fn auth(&self) -> &Authenticator {
        &self.share.auth
    }
}

fn fixture(settings: ExternalAuthSettings) -> Fixture {
    let directory = CountingDirectory::new();
    let Share { tmp, root, auth } = share(LOCAL_USERS);
    let auth = auth.with_external_auth(ExternalAuth::new(directory.clone(), settings));
    Fixture { share: Share { tmp, root, auth }, directory }
}

fn peer(last: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, last], 40000))
}

fn login(user: &str, password: &str, from: SocketAddr) -> LoginRequest {
    LoginRequest {
        protocol: Protocol::Ftps,
        peer: from,
        user: user.to_owned(),
        credential: Credential::Password(Password::new(password)),
    }
}

fn key(text: &str) -> ssh_key::PublicKey {
    ssh_key::PublicKey::from_openssh(text).expect("key")
}

#[tokio::test(start_paused = true)]
async fn an_accepted_answer_is_kept_for_its_time() {
    let fx = fixture(ExternalAuthSettings::default());
    let session = fx.auth().login(login("zoe", ZOE_PASSWORD, peer(1))).await.expect("zoe");
    assert_eq!(session.user_name(), "zoe");
    assert!(fx.share.root.join("zoe-home").is_dir(), "the home the directory gave, in the share");
    fx.auth().login(login("zoe", ZOE_PASSWORD, peer(1))).await.expect("again");
    assert_eq!(fx.directory.asked(), 1, "the second login used the kept answer");

    tokio::time::advance(Duration::from_secs(31)).await;
    fx.auth().login(login("zoe", ZOE_PASSWORD, peer(1))).await.expect("after the ttl");
    assert_eq!(fx.directory.asked(), 2, "an expired answer is asked again");
}

#[tokio::test(start_paused = true)]
async fn refusals_are_not_kept_and_another_credential_or_address_is_asked() {
    let fx = fixture(ExternalAuthSettings::default());
    for _ in 0..2 {
        let refused = fx.auth().login(login("zoe", "guess", peer(1))).await;
        assert!(matches!(refused, Err(LoginError::Denied)), "{refused:?}");
    }
    assert_eq!(fx.directory.asked(), 2, "each refusal was asked");

    fx.auth().login(login("zoe", ZOE_PASSWORD, peer(1))).await.expect("right password");
    assert_eq!(fx.directory.asked(), 3);
    let refused = fx.auth().login(login("zoe", "other", peer(1))).await;
    assert!(matches!(refused, Err(LoginError::Denied)), "a kept answer is not another password's");
    assert_eq!(fx.directory.asked(), 4);
    fx.auth().login(login("zoe", ZOE_PASSWORD, peer(2))).await.expect("another address");
    assert_eq!(fx.directory.asked(), 5, "the address is part of the key");
}

#[tokio::test(start_paused = true)]
async fn down_refuses_with_a_temporary_error_not_counted_against_the_client() {
    let fx = fixture(ExternalAuthSettings::default());
    fx.auth().defender().reconfigure(DefenderConfig { threshold: 6, ..DefenderConfig::default() });
    fx.directory.set(Mode::Down);
    for _ in 0..3 {
        let err = fx.auth().login(login("zoe", ZOE_PASSWORD, peer(1))).await.expect_err("down");
        assert!(matches!(err, LoginError::AuthServiceUnavailable), "{err:?}");
        assert!(err.to_string().contains("try again later"), "{err}");
    }
    assert!(fx.auth().defender().verdict(peer(1).ip()).is_allowed(), "not the client's fault");

    fx.directory.set(Mode::Up);
    for _ in 0..3 {
        assert!(fx.auth().login(login("zoe", "guess", peer(1))).await.is_err());
    }
    assert!(
        matches!(fx.auth().defender().verdict(peer(1).ip()), Verdict::Banned { .. }),
        "refused logins are reported as failed logins"
    );
}

#[tokio::test(start_paused = true)]
async fn a_kept_answer_serves_while_down_only_within_serve_stale_for() {
    let settings =
        ExternalAuthSettings { serve_stale_for: Duration::from_secs(60), ..Default::default() };
    let fx = fixture(settings);
    fx.auth().login(login("zoe", ZOE_PASSWORD, peer(1))).await.expect("zoe");
    fx.directory.set(Mode::Down);
    tokio::time::advance(Duration::from_secs(45)).await;
    fx.auth().login(login("zoe", ZOE_PASSWORD, peer(1))).await.expect("stale, within the window");
    assert_eq!(fx.directory.asked(), 2, "the service was asked first");
    let other = fx.auth().login(login("zoe", "guess", peer(1))).await;
    assert!(
        matches!(other, Err(LoginError::AuthServiceUnavailable)),
        "no kept answer for another password: {other:?}"
    );
    tokio::time::advance(Duration::from_secs(50)).await;
    let late = fx.auth().login(login("zoe", ZOE_PASSWORD, peer(1))).await;
    assert!(matches!(late, Err(LoginError::AuthServiceUnavailable)), "{late:?}");

    // Off by default: an expired answer is not used at all.
    let fx = fixture(ExternalAuthSettings::default());
    fx.auth().login(login("zoe", ZOE_PASSWORD, peer(1))).await.expect("zoe");
    fx.directory.set(Mode::Down);
    tokio::time::advance(Duration::from_secs(31)).await;
    let down = fx.auth().login(login("zoe", ZOE_PASSWORD, peer(1))).await;
    assert!(matches!(down, Err(LoginError::AuthServiceUnavailable)), "{down:?}");
}

#[tokio::test(start_paused = true)]
async fn asks_in_flight_are_capped_and_the_wait_counts_against_the_timeout() {
    let settings = ExternalAuthSettings {
        max_in_flight: 2,
        timeout: Duration::from_secs(1),
        ..Default::default()
    };
    let fx = Arc::new(fixture(settings));
    fx.directory.set(Mode::Hanging);
    let logins: Vec<_> = (0..3)
        .map(|i| {
            let fx = fx.clone();
            tokio::spawn(async move {
                fx.auth().login(login("zoe", &format!("try {i}"), peer(1))).await.map(|_| ())
            })
        })
        .collect();
    for login in logins {
        let result = login.await.expect("task");
        assert!(matches!(result, Err(LoginError::AuthServiceUnavailable)), "{result:?}");
    }
    assert_eq!(fx.directory.asked(), 2, "the third login never got a place to ask");
}

#[tokio::test(start_paused = true)]
async fn a_barred_address_and_a_local_name_never_ask() {
    let fx = fixture(ExternalAuthSettings::default());
    fx.directory.set(Mode::Down);
    fx.auth().login(login("alice", PASSWORD, peer(1))).await.expect("local, service down");
    let wrong = fx.auth().login(login("alice", "guess", peer(1))).await;
    assert!(matches!(wrong, Err(LoginError::Denied)), "{wrong:?}");
    assert!(!fx.auth().offer_key("alice", &key(KEY), peer(1)).await);
    assert_eq!(fx.directory.asked(), 0, "local names are never asked");

    fx.directory.set(Mode::Up);
    fx.auth().defender().reconfigure(DefenderConfig {
        deny: vec!["127.0.0.9/32".parse().expect("net")],
        ..DefenderConfig::default()
    });
    let barred = fx.auth().login(login("zoe", ZOE_PASSWORD, peer(9))).await;
    assert!(matches!(barred, Err(LoginError::Denied)), "{barred:?}");
    assert!(!fx.auth().offer_key("zoe", &key(KEY), peer(9)).await);
    assert_eq!(fx.directory.asked(), 0, "a barred address causes no request");
}

#[tokio::test(start_paused = true)]
async fn a_key_must_be_listed_in_the_answer_and_the_offer_is_kept_for_the_login() {
    let fx = fixture(ExternalAuthSettings::default());
    assert!(fx.auth().offer_key("zoe", &key(KEY), peer(1)).await);
    let request = LoginRequest {
        protocol: Protocol::Sftp,
        peer: peer(1),
        user: "zoe".to_owned(),
        credential: Credential::PublicKey(key(KEY)),
    };
    fx.auth().login(request.clone()).await.expect("the key the answer lists");
    assert_eq!(fx.directory.asked(), 1, "the signed login used the offer's answer");

    assert!(!fx.auth().offer_key("zoe", &key(OTHER_KEY), peer(1)).await);
    let other = LoginRequest { credential: Credential::PublicKey(key(OTHER_KEY)), ..request };
    let refused = fx.auth().login(other).await;
    assert!(matches!(refused, Err(LoginError::Denied)), "{refused:?}");
}

#[tokio::test(start_paused = true)]
async fn an_answer_for_another_name_is_malformed() {
    let fx = fixture(ExternalAuthSettings::default());
    fx.directory.set(Mode::WrongName);
    let err = fx.auth().login(login("zoe", ZOE_PASSWORD, peer(1))).await.expect_err("malformed");
    assert!(matches!(err, LoginError::AuthServiceUnavailable), "{err:?}");
    assert_eq!(fx.auth().max_mounts(), 8, "what an answer may define counts for the budget");
}
