//! The SeaweedFS harness gives a real S3 server that listens on 127.0.0.1 only, refuses
//! requests that are not signed with its keys, has its bucket, and is gone after `stop`.

use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

use wharf_testkit::Seaweed;

#[test]
fn seaweed_serves_signed_s3_on_loopback_only_until_stopped() {
    let started = Instant::now();
    let Some(mut seaweed) = Seaweed::start() else { return };
    eprintln!("started in {:.1?}", started.elapsed());

    // Loopback only, and the S3 port is among what it listens on.
    let sockets = seaweed.listening_sockets();
    assert!(!sockets.is_empty(), "no listening socket found for the weed process tree");
    for address in &sockets {
        assert_eq!(
            address.ip(),
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            "{address} is not on 127.0.0.1; all: {sockets:?}"
        );
    }
    assert!(
        sockets.iter().any(|address| format!("http://{address}") == seaweed.endpoint),
        "{} not among {sockets:?}",
        seaweed.endpoint
    );

    // Identities are enforced: anonymous requests are refused...
    for path in ["/".to_owned(), format!("/{}", seaweed.bucket)] {
        let reply = seaweed.s3_request_unsigned("GET", &path);
        assert_eq!(reply.status, 403, "unsigned GET {path}: {}", reply.text());
        assert!(reply.text().contains("AccessDenied"), "unsigned GET {path}: {}", reply.text());
    }
    // ...and so is a request signed with a wrong secret, so the signature itself is checked.
    let secret = std::mem::replace(&mut seaweed.secret_key, "not-the-secret".to_owned());
    let reply = seaweed.s3_request("GET", "/", &[], b"");
    seaweed.secret_key = secret;
    assert_eq!(reply.status, 403, "wrong secret: {}", reply.text());

    // The bucket exists, seen through S3 and, apart from S3, in the filer.
    let reply = seaweed.s3_request("GET", "/", &[], b"");
    assert_eq!(reply.status, 200, "list buckets: {}", reply.text());
    assert!(reply.text().contains(&format!("<Name>{}</Name>", seaweed.bucket)), "{}", reply.text());
    assert!(seaweed.filer_list("/buckets").contains(&seaweed.bucket));
    let reply =
        seaweed.s3_request("GET", &format!("/{}", seaweed.bucket), &[("list-type", "2")], b"");
    assert_eq!(reply.status, 200, "list objects: {}", reply.text());
    assert!(!reply.text().contains("<Key>"), "the bucket is not empty: {}", reply.text());
    // A query parameter without a value is signed as S3 expects ("uploads=").
    let reply = seaweed.s3_request("GET", &format!("/{}", seaweed.bucket), &[("uploads", "")], b"");
    assert_eq!(reply.status, 200, "list multipart uploads: {}", reply.text());
    assert!(reply.text().contains("ListMultipartUploadsResult"), "{}", reply.text());

    // Another bucket takes objects, and a missing one does not spring into being on a write.
    let other = seaweed.create_bucket("wharf-other");
    assert!(seaweed.filer_list("/buckets").contains(&other));
    let content = wharf_testkit::pattern(100_000);
    let key = format!("/{other}/dir/a b.bin");
    assert_eq!(seaweed.s3_request("PUT", &key, &[], &content).status, 200);
    let reply = seaweed.s3_request("GET", &key, &[], b"");
    assert_eq!(reply.status, 200, "get: {}", reply.text());
    assert!(reply.body == content, "the object read back differs");
    let reply = seaweed.s3_request("PUT", "/wharf-missing/key", &[], b"x");
    assert_eq!(reply.status, 404, "write to a missing bucket: {}", reply.text());

    // Stopped, it no longer listens anywhere.
    seaweed.stop();
    assert!(seaweed.listening_sockets().is_empty());
    for address in &sockets {
        assert!(
            TcpStream::connect_timeout(address, Duration::from_secs(2)).is_err(),
            "{address} still accepts connections after stop"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(90), "took {:?}", started.elapsed());
}
