//! The metrics endpoint answers Prometheus scrapes and lists bans.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use wharf::config::ConfigSource;
use wharf::observe::metrics::Metrics;
use wharf::{LoadedConfig, Server};

fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrape_and_bans() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(tmp.path().join("data")).expect("mkdir");
    std::fs::write(tmp.path().join("data/users.yaml"), "users: []\n").expect("users");
    let yaml = "data_dir: data\naccess: { users_file: users.yaml }\nmetrics: { listen: \"127.0.0.1:0\" }\n";
    let loaded = LoadedConfig::parse(yaml, ConfigSource::Embedded, tmp.path()).expect("config");
    let metrics = Arc::new(Metrics::default());
    let server = Server::start(loaded, metrics).await.expect("start");
    let addr = server.listener("metrics").expect("metrics endpoint bound");
    server
        .gateway()
        .defender()
        .reconfigure(wharf_access::DefenderConfig { threshold: 1, ..Default::default() });
    server
        .gateway()
        .defender()
        .report("198.51.100.7".parse().expect("ip"), wharf_access::Offense::BounceAttempt);

    let (metrics_page, bans_page, missing, huge) = tokio::task::spawn_blocking(move || {
        let huge = {
            let mut stream =
                TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
            stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
            let _ = stream.write_all(&vec![b'a'; 20_000]);
            let mut response = String::new();
            let _ = stream.read_to_string(&mut response);
            response
        };
        (get(addr, "/metrics"), get(addr, "/bans"), get(addr, "/nope"), huge)
    })
    .await
    .expect("client");
    assert!(metrics_page.starts_with("HTTP/1.1 200 OK"), "{metrics_page}");
    assert!(metrics_page.contains("# TYPE wharf_logins_total counter"));
    assert!(metrics_page.contains("wharf_bans_active 1"), "{metrics_page}");
    assert!(bans_page.contains("198.51.100.7"), "{bans_page}");
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    assert!(huge.starts_with("HTTP/1.1 431"), "{huge}");
    assert!(server.shutdown().await);
}

/// Whether `response` (what a client read until the end) is an HTTP answer.
fn answered(response: &[u8]) -> bool {
    response.starts_with(b"HTTP/1.1 ")
}

/// Sends a whole request on a new connection and reads until the server closes it: the
/// answer, or nothing for a connection closed at accept (its reset counts as nothing).
fn request(addr: std::net::SocketAddr) -> Vec<u8> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let _ = stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut response = Vec::new();
    match stream.read_to_end(&mut response) {
        Ok(_) => response,
        Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => response,
        Err(err) => panic!("reading the answer: {err}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_caps_are_closed_at_accept() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(tmp.path().join("data")).expect("mkdir");
    std::fs::write(tmp.path().join("data/users.yaml"), "users: []\n").expect("users");
    let yaml = "data_dir: data\naccess: { users_file: users.yaml }\n\
                metrics: { listen: \"127.0.0.1:0\", limits: { max_sessions_per_address: 2 } }\n";
    let loaded = LoadedConfig::parse(yaml, ConfigSource::Embedded, tmp.path()).expect("config");
    let server = Server::start(loaded, Arc::new(Metrics::default())).await.expect("start");
    let addr = server.listener("metrics").expect("metrics endpoint bound");
    tokio::task::spawn_blocking(move || {
        // Two idle connections (no request yet) hold the address's places; the server accepts
        // connections in the order they were made.
        let idle: Vec<_> = (0..2)
            .map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect"))
            .collect();
        let refused = request(addr);
        assert!(!answered(&refused), "a third connection is not answered: {refused:?}");
        // A place is free again once an idle connection has ended.
        drop(idle);
        let served = (0..100).any(|_| {
            let again = answered(&request(addr));
            if !again {
                std::thread::sleep(Duration::from_millis(50));
            }
            again
        });
        assert!(served, "answered again once the idle connections ended");
    })
    .await
    .expect("client");
    assert!(server.shutdown().await);
}
