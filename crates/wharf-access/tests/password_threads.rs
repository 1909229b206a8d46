//! A login flood queues on a fixed set of verifier threads instead of starting new ones.
//! Alone in its test binary, so the threads it counts are its own.

mod common;

use common::{PASSWORD, peer, share};
use wharf_access::{Credential, LoginRequest, Password, Protocol};

/// Threads of this process whose name says they verify passwords.
fn verifier_threads() -> usize {
    let tasks = std::fs::read_dir("/proc/self/task").expect("/proc/self/task");
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("wharf-password"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_runs_on_the_configured_threads_and_every_login_is_answered() {
    let share = share("users:\n  - { name: alice, password: \"$HASH\", home: alice }\n");
    // The default: two checks at once. A thread takes its name as it starts, just after the
    // checker has spawned it.
    let started = std::time::Instant::now();
    while verifier_threads() < 2 && started.elapsed() < std::time::Duration::from_secs(5) {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(verifier_threads(), 2);
    let auth = &share.auth;
    let logins = (0..16).map(|attempt| {
        let password = if attempt % 2 == 0 { PASSWORD } else { "wrong" };
        auth.login(LoginRequest {
            protocol: Protocol::Sftp,
            peer: peer(),
            user: "alice".to_owned(),
            credential: Credential::Password(Password::new(password)),
        })
    });
    let flood = futures_util::future::join_all(logins);
    let sampler = async {
        let mut most = 0;
        for _ in 0..20 {
            most = most.max(verifier_threads());
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        most
    };
    let (results, most) = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        tokio::join!(flood, sampler)
    })
    .await
    .expect("sixteen logins answered in time");
    assert_eq!(most, 2, "no thread beyond the two verifiers during the flood");
    for (attempt, result) in results.into_iter().enumerate() {
        assert_eq!(result.is_ok(), attempt % 2 == 0, "login {attempt}");
    }
}
