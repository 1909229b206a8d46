//! Hostile paths on every protocol: `../`, `..\`, `/etc/passwd`, `%2e%2e/`, NUL, a
//! 10,000-character path, the sentinel's absolute host path, and links inside the share that
//! point outside it. Each is refused or contained: nothing outside the share is ever sent
//! (the sentinel, `/etc/passwd`, the SSH host key) or changed.

use russh_sftp::protocol::{FileAttributes, OpenFlags};
use wharf_e2e::Wharf;
use wharf_e2e::clients::ftp::FtpControl;
use wharf_e2e::clients::sftp::SftpClient;
use wharf_e2e::clients::tftp::TftpClient;
use wharf_e2e::server::{DEVICES, LAB, RW};
use wharf_e2e::tree::{assert_nothing_from_outside, assert_outside_untouched, contains};
use wharf_testkit::tree_digest;

/// What the SSH host key file holds; it must never be sent either.
const PRIVATE_KEY_MARK: &[u8] = b"PRIVATE KEY";

/// Links inside the share that lead outside it, as an operator's mistake could leave them.
fn plant_links(wharf: &Wharf) {
    let link = |target: &std::path::Path, at: &str| {
        std::os::unix::fs::symlink(target, wharf.root.join(at)).expect("link");
    };
    std::fs::create_dir_all(wharf.root.join("exchange")).expect("exchange");
    link("../../outside/sentinel.txt".as_ref(), "exchange/escape-file");
    link(&wharf.outside.join("sentinel.txt"), "exchange/escape-absolute");
    link("../../outside".as_ref(), "exchange/escape-dir");
    link("../../host-keys".as_ref(), "exchange/escape-keys");
    link("/etc".as_ref(), "exchange/escape-etc");
    link("../../outside/sentinel.txt".as_ref(), "firmware/escape-file");
    link("../../outside".as_ref(), "firmware/escape-dir");
}

/// The hostile names, as the bytes a client sends.
fn hostile_paths(wharf: &Wharf) -> Vec<Vec<u8>> {
    let mut paths: Vec<Vec<u8>> = [
        "../outside/sentinel.txt",
        "../../outside/sentinel.txt",
        "../../../../../../../../outside/sentinel.txt",
        "/../outside/sentinel.txt",
        "..\\outside\\sentinel.txt",
        "..\\..\\outside\\sentinel.txt",
        "/etc/passwd",
        "../../../../../../../../etc/passwd",
        "%2e%2e/outside/sentinel.txt",
        "%2e%2e%2f%2e%2e%2foutside%2fsentinel.txt",
        "..%2f..%2foutside%2fsentinel.txt",
        "../host-keys/ssh_host_ed25519_key",
        "exchange/escape-file",
        "exchange/escape-absolute",
        "exchange/escape-dir/sentinel.txt",
        "exchange/escape-keys/ssh_host_ed25519_key",
        "exchange/escape-etc/passwd",
        "firmware/escape-file",
        "firmware/escape-dir/sentinel.txt",
        "firmware/../../outside/sentinel.txt",
    ]
    .iter()
    .map(|path| path.as_bytes().to_vec())
    .collect();
    paths.push(wharf.outside.join("sentinel.txt").display().to_string().into_bytes());
    paths.push(b"exchange/file.txt\0../../outside/sentinel.txt".to_vec());
    paths.push(b"../../outside/sentinel.txt\0".to_vec());
    paths
}

/// A path of 10,000 characters.
fn long_path() -> Vec<u8> {
    let mut path = b"../".repeat(1000);
    path.extend_from_slice(b"outside/sentinel.txt");
    path.resize(10_000, b'a');
    path
}

fn show(path: &[u8]) -> String {
    let text = String::from_utf8_lossy(path);
    if text.len() > 60 {
        format!("{}... ({} bytes)", &text[..60], path.len())
    } else {
        text.into_owned()
    }
}

fn assert_clean(what: &str, received: &[u8]) {
    assert_nothing_from_outside(what, received);
    assert!(!contains(received, PRIVATE_KEY_MARK), "{what}: a private key was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_paths_are_refused_or_contained_on_every_protocol() {
    let wharf = Wharf::start().await;
    wharf.put("exchange/file.txt", b"an ordinary file");
    plant_links(&wharf);
    refused_or_contained(wharf).await;
}

/// The same names with the whole share in a bucket (no links there: an object store has
/// none). Besides what the local run checks, every key left in the bucket must be a plain
/// path: no empty, `.` or `..` segment, no NUL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_paths_are_refused_or_contained_on_object_storage() {
    let Some(wharf) = Wharf::start_on_bucket().await else { return };
    wharf.make_folder("exchange");
    wharf.put("exchange/file.txt", b"an ordinary file");
    let keys = refused_or_contained(wharf).await;
    assert!(!keys.is_empty(), "the bucket was not listed");
    for key in keys {
        let segments: Vec<&str> = key.strip_suffix('/').unwrap_or(&key).split('/').collect();
        assert!(
            segments.iter().all(|s| !s.is_empty() && *s != "." && *s != ".." && !s.contains('\0')),
            "a key that is not a plain path: {key:?}"
        );
    }
}

/// Sends every hostile name over every protocol and checks nothing from outside came back or
/// changed; returns the keys of the bucket at the end (none on a local share).
async fn refused_or_contained(wharf: Wharf) -> Vec<String> {
    let keys_before = tree_digest(&wharf.host_keys);
    let paths = hostile_paths(&wharf);

    // FTP, as the user with every right on the whole share.
    for tls in wharf.ftp_flavours() {
        let proto = if tls { "FTPS" } else { "FTP" };
        let mut ftp = FtpControl::login_over(&wharf, RW, tls).await;
        for path in &paths {
            let what = format!("{proto} {}", show(path));
            match ftp.retr(path).await {
                Ok(content) => {
                    assert!(!contains(path, b"escape"), "{what}: read through a link outside");
                    assert_clean(&what, &content)
                }
                Err(reply) => assert_clean(&what, reply.lines.join("\n").as_bytes()),
            }
            for verb in ["SIZE", "MDTM", "MLST", "STAT", "CWD"] {
                let reply = ftp.cmd([verb.as_bytes(), b" ", path].concat()).await;
                assert_clean(&format!("{what} {verb}"), reply.lines.join("\n").as_bytes());
            }
            for verb in ["LIST", "MLSD", "NLST"] {
                if let Ok(listing) = ftp.listing(verb, Some(path)).await {
                    assert!(!listing.contains("sentinel.txt"), "{what} {verb}: {listing}");
                    assert!(!listing.contains("ssh_host"), "{what} {verb}: {listing}");
                }
            }
            ftp.cmd("CWD /").await;
            let _ = ftp.store("STOR", path, b"overwritten over FTP").await;
            let _ = ftp.store("APPE", path, b"appended over FTP").await;
            let _ = ftp.cmd([b"DELE ".as_slice(), path].concat()).await;
            let from = ftp.cmd([b"RNFR ".as_slice(), path].concat()).await;
            if from.code == 350 {
                let _ = ftp.cmd("RNTO /exchange/renamed-away").await;
            }
            let _ = ftp.cmd([b"SITE CHMOD 777 ".as_slice(), path].concat()).await;
        }
        // Over 4 KiB a command line is refused as such (the third in a row closes the session).
        for verb in ["RETR", "STOR"] {
            let mut fresh = FtpControl::login_over(&wharf, RW, tls).await;
            let reply = fresh.cmd([verb.as_bytes(), b" ", &long_path()].concat()).await;
            assert_eq!(reply.code, 500, "{proto} {verb} with a 10,000-character path: {reply:?}");
            assert_clean(proto, reply.lines.join("\n").as_bytes());
        }
    }

    // SFTP. Strings carry any bytes but NUL-free UTF-8 is what paths are: lossy text is sent.
    let sftp = SftpClient::login_key(&wharf, RW).await;
    let mut sftp_paths: Vec<String> =
        paths.iter().map(|path| String::from_utf8_lossy(path).into_owned()).collect();
    sftp_paths.push(String::from_utf8_lossy(&long_path()).into_owned());
    let raw = &sftp.raw;
    let none = FileAttributes::empty;
    for path in &sftp_paths {
        let what = format!("SFTP {}", show(path.as_bytes()));
        match sftp.download(path).await {
            Ok(content) => {
                assert!(!path.contains("escape"), "{what}: read through a link outside");
                assert!(path.len() < 10_000, "{what}: a 10,000-character path was accepted");
                assert_clean(&what, &content)
            }
            Err(refusal) => assert_clean(&what, refusal.text().as_bytes()),
        }
        if let Ok(attrs) = raw.stat(path.as_str()).await {
            assert!(attrs.attrs.size != Some(wharf_testkit::SENTINEL.len() as u64), "{what}: stat");
        }
        if let Ok(handle) = raw.opendir(path.as_str()).await {
            let names = raw.readdir(handle.handle.as_str()).await;
            if let Ok(names) = names {
                for entry in names.files {
                    assert!(!entry.filename.contains("sentinel"), "{what}: {}", entry.filename);
                }
            }
            let _ = raw.close(handle.handle).await;
        }
        let write = OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE;
        if let Ok(handle) = raw.open(path.as_str(), write, none()).await {
            let _ = raw.write(handle.handle.as_str(), 0, b"overwritten over SFTP".to_vec()).await;
            let _ = raw.close(handle.handle).await;
        }
        let append = OpenFlags::WRITE | OpenFlags::APPEND;
        if let Ok(handle) = raw.open(path.as_str(), append, none()).await {
            let _ = raw.write(handle.handle.as_str(), 0, b"appended over SFTP".to_vec()).await;
            let _ = raw.close(handle.handle).await;
        }
        let chmod = FileAttributes { permissions: Some(0o777), ..none() };
        let _ = raw.setstat(path.as_str(), chmod).await;
        let _ = raw.remove(path.as_str()).await;
        let _ = raw.rename(path.as_str(), "/exchange/renamed-away-sftp").await;
    }

    // TFTP, from both identities, as read and write requests (NUL ends a name on the wire).
    let mut tftp_paths = paths.clone();
    tftp_paths.push(long_path());
    for identity in [DEVICES, LAB] {
        let tftp = TftpClient::new(wharf.tftp, Wharf::tftp_source(identity));
        for path in &tftp_paths {
            let what = format!("TFTP {identity} {}", show(path));
            for name in [path.clone(), [b"firmware/".as_slice(), path].concat()] {
                match tftp.download_name(&name).await {
                    Ok(received) => {
                        assert!(!contains(&name, b"escape"), "{what}: read through a link outside");
                        assert!(name.len() < 10_000, "{what}: a 10,000-byte name was accepted");
                        assert_clean(&what, &received.data)
                    }
                    Err(refusal) => assert_clean(&what, refusal.text().as_bytes()),
                }
            }
            for name in [path.clone(), [b"uploads/".as_slice(), path].concat()] {
                let _ = tftp.upload_name(&name, b"overwritten over TFTP").await;
            }
        }
    }

    assert_outside_untouched(&wharf);
    assert_eq!(tree_digest(&wharf.host_keys), keys_before, "the host keys changed");
    sftp.close().await;
    let keys = wharf.stored_keys();
    wharf.stop().await;
    keys
}
