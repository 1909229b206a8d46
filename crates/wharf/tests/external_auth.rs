//! External authentication on the real binary: a small directory service on loopback knows
//! users the users file does not; FTP and SFTP logins of those users get the home it answers,
//! a wrong password is refused, and with the service stopped a login it has not answered
//! before gets the temporary refusal while a local user still logs in.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::http::StatusCode;
use axum::routing::post;
use common::{RawFtp, TrustingClient, serve, write, write_alice};
use russh::client;
use russh_sftp::client::SftpSession;
use serde_json::{Value, json};
use wharf_testkit::TEST_PASSWORD;

/// The longest any single wait of this test may take.
const WAIT: Duration = Duration::from_secs(20);

/// Users the directory knows: name, password, home.
const DIRECTORY: [(&str, &str, &str); 3] = [
    ("zoe", "zoe's directory password", "people/zoe"),
    ("yann", "yann's password", "people/yann"),
    ("xena", "xena's password", "people/xena"),
];

/// The directory service: answers each question from [`DIRECTORY`] and records it.
struct DirectoryService {
    addr: SocketAddr,
    questions: Arc<Mutex<Vec<Value>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

async fn answer(questions: Arc<Mutex<Vec<Value>>>, question: Value) -> (StatusCode, Json<Value>) {
    questions.lock().unwrap_or_else(|p| p.into_inner()).push(question.clone());
    let known = DIRECTORY
        .iter()
        .find(|(name, password, _)| question["user"] == *name && question["password"] == *password);
    match known {
        Some((name, _, home)) => (StatusCode::OK, Json(json!({ "name": name, "home": home }))),
        None => (StatusCode::FORBIDDEN, Json(json!({}))),
    }
}

impl DirectoryService {
    fn start() -> DirectoryService {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the directory");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("address");
        let questions = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let recorded = questions.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let app = axum::Router::new().route(
                    "/auth",
                    post(move |Json(question): Json<Value>| answer(recorded.clone(), question)),
                );
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .expect("serve");
            });
        });
        DirectoryService { addr, questions, stop: Some(stop), thread: Some(thread) }
    }

    fn url(&self) -> String {
        format!("http://{}/auth", self.addr)
    }

    fn questions(&self) -> Vec<Value> {
        self.questions.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Stops the service and waits (bounded) until its listener is closed.
    fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            for _ in 0..200 {
                if thread.is_finished() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            assert!(thread.is_finished(), "the directory service did not stop");
            thread.join().expect("the directory service ended cleanly");
        }
    }
}

impl Drop for DirectoryService {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Logs in over SFTP with a password and reads `path`; `None` if the login is refused.
fn sftp_read(addr: SocketAddr, user: &str, password: &str, path: &str) -> Option<Vec<u8>> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        tokio::time::timeout(WAIT, async {
            let config = Arc::new(client::Config::default());
            let mut ssh = client::connect(config, addr, TrustingClient).await.expect("connect");
            let auth = ssh.authenticate_password(user, password).await.expect("auth");
            if !auth.success() {
                return None;
            }
            let channel = ssh.channel_open_session().await.expect("channel");
            channel.request_subsystem(true, "sftp").await.expect("subsystem");
            let sftp = SftpSession::new(channel.into_stream()).await.expect("sftp");
            Some(sftp.read(path).await.expect("read"))
        })
        .await
        .expect("the SFTP client finished in time")
    })
}

#[test]
fn directory_users_log_in_over_ftp_and_sftp_and_a_stopped_service_refuses_for_a_while() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let mut directory = DirectoryService::start();
    write_alice(dir);
    for (name, _, home) in DIRECTORY {
        write(dir, &format!("data/share/{home}/hello.txt"), &format!("hello {name}"));
    }
    // A long cache, so that the answer kept for zoe is still fresh when the service stops.
    write(
        dir,
        "wharf.yaml",
        &format!(
            "data_dir: data\n\
             access: {{ users_file: users.yaml }}\n\
             external_auth: {{ url: \"{}\", timeout: 2s, cache_ttl: 10m }}\n\
             ftp: {{ listen: [\"127.0.0.1:0\"] }}\n\
             sftp: {{ listen: [\"127.0.0.1:0\"] }}\n",
            directory.url()
        ),
    );
    let server = serve(dir, &dir.join("wharf.yaml"));
    assert!(
        server.banner.contains("other names: checked by http://127.0.0.1"),
        "{}",
        server.banner
    );
    let (ftp, sftp) = (server.listener("FTP"), server.listener("SFTP"));
    let (zoe, zoe_password, _) = DIRECTORY[0];
    let (yann, yann_password, _) = DIRECTORY[1];
    let (xena, xena_password, _) = DIRECTORY[2];

    // FTP: the home is the one the service answered.
    let (mut control, reply) = RawFtp::login(ftp, zoe, zoe_password);
    assert!(reply.starts_with("230"), "{reply}");
    let size = control.send("SIZE hello.txt");
    assert_eq!(size.trim_end(), format!("213 {}", format!("hello {zoe}").len()));
    let question = &directory.questions()[0];
    assert_eq!(question["user"], zoe);
    assert_eq!(question["protocol"], "ftp");
    assert_eq!(question["address"], "127.0.0.1");
    assert!(question.get("public_key").is_none(), "{question}");

    // SFTP, another directory user.
    let read = sftp_read(sftp, yann, yann_password, "hello.txt");
    assert_eq!(read.as_deref(), Some(format!("hello {yann}").as_bytes()));
    assert!(directory.questions().iter().any(|q| q["user"] == yann && q["protocol"] == "sftp"));

    // A wrong password is refused by the service.
    let (_, reply) = RawFtp::login(ftp, zoe, "not it");
    assert!(reply.starts_with("530"), "{reply}");
    assert_eq!(sftp_read(sftp, yann, "not it either", "hello.txt"), None);

    directory.stop();
    let asked = directory.questions().len();
    // A login the service never answered: temporary refusal.
    let (_, reply) = RawFtp::login(ftp, xena, xena_password);
    assert!(reply.starts_with("421"), "{reply}");
    assert!(reply.contains("authentication service is unavailable"), "{reply}");
    assert_eq!(sftp_read(sftp, zoe, "never asked before", "hello.txt"), None);
    // The answers kept for a name, password and address are still fresh, whatever the
    // protocol that asked.
    let (_, reply) = RawFtp::login(ftp, zoe, zoe_password);
    assert!(reply.starts_with("230"), "{reply}");
    let (_, reply) = RawFtp::login(ftp, yann, yann_password);
    assert!(reply.starts_with("230"), "{reply}");
    // A local user does not need the service.
    let (_, reply) = RawFtp::login(ftp, "alice", TEST_PASSWORD);
    assert!(reply.starts_with("230"), "{reply}");
    assert_eq!(directory.questions().len(), asked, "the stopped service heard nothing");
    server.wait_for_log("authentication service unavailable", WAIT);

    let status = server.stop();
    assert!(status.success(), "{status:?}");
}
