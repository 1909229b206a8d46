//! The SSH side end to end: authentication, refusals, host keys, algorithms, limits and
//! shutdown, with a Rust client (russh) and raw sockets.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Server, UserKey, bounded, connect, login_password, sftp, try_key, user_key};
use russh::client::{AuthResult, KeyboardInteractiveAuthResponse};
use russh::keys::HashAlg;
use russh::{ChannelMsg, MethodKind};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use wharf_sftp::{HostKeyType, SftpConfig, SftpServer};
use wharf_testkit::{TEST_PASSWORD, TestShare};

fn users(alice: &UserKey, twofactor: &UserKey) -> String {
    format!(
        r#"
users:
  - name: alice
    password: "$HASH"
    authorized_keys: ["{}"]
    home: alice
  - name: twofactor
    password: "$HASH"
    authorized_keys: ["{}"]
    home: tf
    ssh_auth: [publickey+password]
  - name: keyonly
    password: "$HASH"
    authorized_keys: ["{}"]
    home: ko
    ssh_auth: [publickey]
"#,
        alice.public_line, twofactor.public_line, alice.public_line
    )
}

fn simple_users() -> String {
    users(&user_key(), &user_key())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_and_unknown_user_look_alike() {
    bounded(async {
        let server = Server::start(&simple_users()).await;
        let mut answers = Vec::new();
        for user in ["alice", "nobody"] {
            let mut ssh = connect(server.addr).await;
            let started = Instant::now();
            let result = ssh.authenticate_password(user, "wrong password").await.expect("auth");
            assert!(started.elapsed() >= Duration::from_millis(10), "failure delay skipped");
            assert!(!result.success());
            answers.push(format!("{result:?}"));
            // A key nobody has is refused alike too.
            let result = try_key(&mut ssh, user, &user_key()).await;
            answers.push(format!("{result:?}"));
        }
        assert_eq!(answers[0], answers[2], "password: known and unknown user differ");
        assert_eq!(answers[1], answers[3], "key: known and unknown user differ");
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_and_the_per_user_choice() {
    bounded(async {
        let alice = user_key();
        let second = user_key();
        let server = Server::start(&users(&alice, &second)).await;

        // Public key.
        let mut ssh = connect(server.addr).await;
        assert!(try_key(&mut ssh, "alice", &alice).await.success());
        sftp(&ssh).await.canonicalize(".").await.expect("usable session");

        // Keyboard-interactive: one hidden password prompt.
        let mut ssh = connect(server.addr).await;
        let prompt =
            ssh.authenticate_keyboard_interactive_start("alice", None).await.expect("start");
        let KeyboardInteractiveAuthResponse::InfoRequest { prompts, .. } = prompt else {
            panic!("expected a prompt, got {prompt:?}")
        };
        assert_eq!(prompts.len(), 1);
        assert!(!prompts[0].echo, "the password must not be echoed");
        let answer = ssh
            .authenticate_keyboard_interactive_respond(vec![TEST_PASSWORD.to_owned()])
            .await
            .expect("respond");
        assert!(matches!(answer, KeyboardInteractiveAuthResponse::Success), "{answer:?}");

        // Key only: the password is refused even when right.
        let mut ssh = connect(server.addr).await;
        let result = ssh.authenticate_password("keyonly", TEST_PASSWORD).await.expect("auth");
        assert!(!result.success());
        assert!(try_key(&mut ssh, "keyonly", &alice).await.success());

        // Key and password: the key alone is a partial success, then the password completes.
        let mut ssh = connect(server.addr).await;
        let result = ssh.authenticate_password("twofactor", TEST_PASSWORD).await.expect("auth");
        assert!(!result.success(), "password alone must not do");
        match try_key(&mut ssh, "twofactor", &second).await {
            AuthResult::Failure { partial_success: true, remaining_methods } => {
                assert!(remaining_methods.contains(&MethodKind::Password));
                assert!(!remaining_methods.contains(&MethodKind::PublicKey));
            }
            other => panic!("expected partial success, got {other:?}"),
        }
        let result = ssh.authenticate_password("twofactor", "wrong").await.expect("auth");
        assert!(!result.success(), "a wrong second factor");
        let mut ssh = connect(server.addr).await;
        assert!(!try_key(&mut ssh, "twofactor", &second).await.success());
        let result = ssh.authenticate_password("twofactor", TEST_PASSWORD).await.expect("auth");
        assert!(result.success(), "key then password: {result:?}");
        sftp(&ssh).await.canonicalize(".").await.expect("usable session");
        server.stop().await;
    })
    .await;
}

/// Collects what the server sends on a channel until it closes it.
async fn channel_outcome(channel: &mut russh::Channel<russh::client::Msg>) -> (bool, String) {
    let mut failed = false;
    let mut stderr = Vec::new();
    while let Some(message) = channel.wait().await {
        match message {
            ChannelMsg::Failure => failed = true,
            ChannelMsg::ExtendedData { data, ext: 1 } => stderr.extend_from_slice(&data),
            ChannelMsg::Close => break,
            _ => {}
        }
    }
    (failed, String::from_utf8_lossy(&stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shells_commands_and_forwarding_are_refused() {
    bounded(async {
        let server = Server::start(&simple_users()).await;
        let ssh = login_password(server.addr, "alice").await;

        let mut channel = ssh.channel_open_session().await.expect("channel");
        channel.exec(true, "cat /etc/passwd").await.expect("send");
        let (failed, message) = channel_outcome(&mut channel).await;
        assert!(failed, "exec was not refused");
        assert!(message.contains("SFTP only"), "{message:?}");

        let mut channel = ssh.channel_open_session().await.expect("channel");
        channel.request_shell(true).await.expect("send");
        let (failed, message) = channel_outcome(&mut channel).await;
        assert!(failed && message.contains("SFTP only"), "shell: {failed} {message:?}");

        let mut channel = ssh.channel_open_session().await.expect("channel");
        channel.request_subsystem(true, "netconf").await.expect("send");
        let (failed, _) = channel_outcome(&mut channel).await;
        assert!(failed, "another subsystem was accepted");

        let mut channel = ssh.channel_open_session().await.expect("channel");
        channel.request_pty(true, "xterm", 80, 24, 0, 0, &[]).await.expect("send");
        match channel.wait().await {
            Some(ChannelMsg::Failure) => {}
            other => panic!("pty: expected a failure, got {other:?}"),
        }

        let port = server.addr.port().into();
        assert!(
            ssh.channel_open_direct_tcpip("127.0.0.1", port, "127.0.0.1", 40000).await.is_err(),
            "local forwarding was accepted"
        );
        assert!(ssh.tcpip_forward("127.0.0.1", 0).await.is_err(), "remote forwarding accepted");
        // SFTP still works on the same connection.
        sftp(&ssh).await.canonicalize(".").await.expect("sftp after refusals");
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_keys_are_stable_across_restarts() {
    bounded(async {
        let share = TestShare::new("users: []");
        let dir = share.tmp.path().join("keys");
        let config = SftpConfig {
            listen: vec!["127.0.0.1:0".parse().expect("addr")],
            host_key_dir: dir.clone(),
            host_key_types: vec![HostKeyType::Ed25519, HostKeyType::EcdsaP256],
            ..SftpConfig::default()
        };
        let first = SftpServer::bind(config.clone(), share.gateway.clone()).await.expect("bind");
        let fingerprints = first.host_key_fingerprints().to_vec();
        let addr = first.local_addrs()[0];
        let serving = tokio::spawn(first.run());

        // The key a client sees is the one whose fingerprint is printed.
        let client = common::Client::default();
        let seen = client.host_key.clone();
        let ssh = russh::client::connect(Arc::new(Default::default()), addr, client)
            .await
            .expect("connect");
        let key = seen.lock().expect("lock").clone().expect("host key seen");
        let fingerprint = format!("ED25519 {}", key.fingerprint(HashAlg::Sha256));
        assert_eq!(fingerprints[0], fingerprint);
        drop(ssh);
        share.gateway.shutdown.shut_down(Duration::from_secs(1)).await;
        serving.await.expect("stopped");

        let second = SftpServer::bind(config, share.gateway.clone()).await.expect("rebind");
        assert_eq!(second.host_key_fingerprints(), fingerprints.as_slice());
        use std::os::unix::fs::PermissionsExt as _;
        for kind in [HostKeyType::Ed25519, HostKeyType::EcdsaP256] {
            let mode = std::fs::metadata(dir.join(kind.file_name())).expect("key").permissions();
            assert_eq!(mode.mode() & 0o777, 0o600, "{kind:?}");
        }
    })
    .await;
}

/// Reads one SSH binary packet in the clear (before keys are exchanged).
async fn read_clear_packet(stream: &mut TcpStream) -> Vec<u8> {
    let len = stream.read_u32().await.expect("packet length") as usize;
    let mut packet = vec![0; len];
    stream.read_exact(&mut packet).await.expect("packet");
    let padding = packet[0] as usize;
    packet[1..len - padding].to_vec()
}

fn name_lists(kexinit: &[u8]) -> Vec<Vec<String>> {
    assert_eq!(kexinit[0], 20, "not a KEXINIT");
    let mut rest = &kexinit[17..];
    let mut lists = Vec::new();
    for _ in 0..10 {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let text = String::from_utf8(rest[4..4 + len].to_vec()).expect("utf-8");
        lists.push(text.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect());
        rest = &rest[4 + len..];
    }
    lists
}

/// Connects, sends an identification and returns the server's identification line and the
/// name-lists of its KEXINIT.
async fn server_kexinit(addr: std::net::SocketAddr) -> (Vec<u8>, Vec<Vec<String>>) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(b"SSH-2.0-probe\r\n").await.expect("ident");
    let mut ident = Vec::new();
    while !ident.ends_with(b"\r\n") {
        ident.push(stream.read_u8().await.expect("ident byte"));
    }
    let lists = name_lists(&read_clear_packet(&mut stream).await);
    (ident, lists)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_modern_algorithms_and_strict_kex_are_offered() {
    bounded(async {
        let server = Server::start(&simple_users()).await;
        let (ident, lists) = server_kexinit(server.addr).await;
        assert_eq!(ident, b"SSH-2.0-Wharf\r\n");
        let (kex, host_keys, ciphers, macs) = (&lists[0], &lists[1], &lists[2], &lists[4]);
        assert!(kex.contains(&"kex-strict-s-v00@openssh.com".to_owned()), "{kex:?}");
        assert!(kex.contains(&"curve25519-sha256".to_owned()), "{kex:?}");
        assert_eq!(host_keys, &["ssh-ed25519", "ecdsa-sha2-nistp256"]);
        assert!(ciphers.contains(&"aes128-gcm@openssh.com".to_owned()), "{ciphers:?}");
        assert!(ciphers.contains(&"aes128-ctr".to_owned()), "libssh2 1.10 needs CTR");
        for name in kex.iter().chain(host_keys).chain(ciphers).chain(macs) {
            assert!(!name.contains("sha1") && !name.contains("cbc"), "{name}");
        }
        assert_eq!(lists[6], ["none"], "compression");
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_or_guessing_clients_are_cut_off() {
    bounded(async {
        let server = Server::start_with(&simple_users(), |config| {
            config.auth_timeout = Duration::from_secs(1);
            config.max_auth_attempts = 2;
        })
        .await;
        // Never authenticating: closed after the authentication timeout.
        let mut stream = TcpStream::connect(server.addr).await.expect("connect");
        stream.write_all(b"SSH-2.0-probe\r\n").await.expect("ident");
        let started = Instant::now();
        let mut sink = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut sink))
            .await
            .expect("the server kept an unauthenticated connection open")
            .ok();
        assert!(started.elapsed() < Duration::from_secs(5), "closed late: {:?}", started.elapsed());

        // Guessing: the connection ends after the allowed number of failures.
        let mut ssh = connect(server.addr).await;
        for _ in 0..2 {
            let result = ssh.authenticate_password("alice", "guess").await.expect("auth");
            assert!(!result.success());
        }
        let third = ssh.authenticate_password("alice", TEST_PASSWORD).await;
        assert!(
            !matches!(third, Ok(AuthResult::Success)),
            "a third attempt was allowed: {third:?}"
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_capped_per_address() {
    bounded(async {
        let server = Server::start_with(&simple_users(), |config| {
            config.limits.max_sessions_per_address = 1;
        })
        .await;
        let first = login_password(server.addr, "alice").await;
        let mut stream = TcpStream::connect(server.addr).await.expect("connect");
        let mut refusal = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut refusal))
            .await
            .expect("refused promptly")
            .ok();
        assert!(String::from_utf8_lossy(&refusal).contains("Too many"), "{refusal:?}");
        drop(first);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_descriptor_budget_refuses_below_the_caps_with_the_message() {
    bounded(async {
        let server = Server::start(&simple_users()).await;
        let gateway = &server.share.gateway;
        // One connection's worst case (its socket, every channel's handles, the mounts of the
        // user with the most), and not two: far below the caps (50 per address).
        let worst = SftpConfig::default().descriptors_per_connection()
            + gateway.authenticator.users().max_mounts();
        gateway.descriptors.set_capacity(worst + worst - 1);
        let first = login_password(server.addr, "alice").await;
        assert_eq!(gateway.descriptors.held(), worst);
        let mut stream = TcpStream::connect(server.addr).await.expect("connect");
        let mut refusal = Vec::new();
        tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut refusal))
            .await
            .expect("closed at once")
            .ok();
        assert_eq!(
            String::from_utf8_lossy(&refusal),
            "Too many SFTP sessions; try again later\r\n",
            "the message and nothing else: no identification, no key exchange"
        );
        assert_eq!(gateway.descriptors.held(), worst, "the refused one took nothing");
        drop(first);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_closes_idle_sessions_and_lets_uploads_finish() {
    bounded(async {
        let server = Server::start(&simple_users()).await;
        let idle = login_password(server.addr, "alice").await;
        let idle_sftp = sftp(&idle).await;
        let busy = login_password(server.addr, "alice").await;
        let busy_sftp = sftp(&busy).await;
        let mut upload = busy_sftp.create("late.bin").await.expect("create");
        upload.write_all(b"first half ").await.expect("write");
        upload.flush().await.expect("flush");

        let shutdown = server.share.gateway.shutdown.clone();
        let stopping =
            tokio::spawn(async move { shutdown.shut_down(Duration::from_secs(20)).await });
        // The idle session is closed.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if idle_sftp.canonicalize(".").await.is_err() {
                break;
            }
            assert!(Instant::now() < deadline, "the idle session stayed open while draining");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // No new connections: the listener is closed.
        assert!(TcpStream::connect(server.addr).await.is_err(), "accepted while draining");
        // The upload in progress completes and is published.
        upload.write_all(b"second half").await.expect("write while draining");
        upload.shutdown().await.expect("close while draining");
        assert_eq!(
            std::fs::read(server.share.root.join("alice/late.bin")).expect("published"),
            b"first half second half"
        );
        assert!(stopping.await.expect("task"), "shutdown did not finish within its grace");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_host_keys_sign_with_sha2_only() {
    bounded(async {
        let server = Server::start_with(&simple_users(), |config| {
            config.host_key_types = vec![HostKeyType::Rsa];
        })
        .await;
        assert!(server.fingerprints[0].starts_with("RSA SHA256:"), "{:?}", server.fingerprints);
        let (_, lists) = server_kexinit(server.addr).await;
        assert_eq!(lists[1], ["rsa-sha2-512", "rsa-sha2-256"], "no ssh-rsa (SHA-1)");
        // A client completes the key exchange with the RSA key and logs in.
        let ssh = login_password(server.addr, "alice").await;
        sftp(&ssh).await.canonicalize(".").await.expect("session");
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_errors_name_the_address() {
    bounded(async {
        let server = Server::start(&simple_users()).await;
        let share = TestShare::new("users: []");
        let config = SftpConfig {
            listen: vec![server.addr],
            host_key_dir: share.tmp.path().join("keys"),
            ..SftpConfig::default()
        };
        let err = SftpServer::bind(config, share.gateway.clone()).await.expect_err("in use");
        assert!(err.to_string().contains(&server.addr.to_string()), "{err}");
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed_and_open_handles_are_capped() {
    bounded(async {
        let server = Server::start_with(&simple_users(), |config| {
            config.idle_timeout = Duration::from_secs(1);
            config.max_open_handles = 2;
        })
        .await;
        server.share.put("alice/a.txt", b"a");
        let handle = login_password(server.addr, "alice").await;
        let session = sftp(&handle).await;
        // Handles beyond the cap are refused; closing one makes room again.
        let first = session.open("/a.txt").await.expect("first handle");
        let second = session.open("/a.txt").await.expect("second handle");
        assert!(session.open("/a.txt").await.is_err(), "a third handle was granted");
        drop(first);
        drop(second);
        let mut reopened = None;
        for _ in 0..50 {
            if let Ok(file) = session.open("/a.txt").await {
                reopened = Some(file);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(reopened.is_some(), "closing handles makes room again");
        drop(reopened);
        // Then nothing moves: the server closes the connection after the idle timeout.
        let started = Instant::now();
        while !handle.is_closed() {
            assert!(started.elapsed() < Duration::from_secs(10), "an idle connection stayed open");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(started.elapsed() >= Duration::from_millis(500), "closed before going idle");
        server.stop().await;
    })
    .await;
}
