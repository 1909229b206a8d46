//! The same rules on every protocol: the read-only user is refused every write; a partner
//! cannot see or reach another partner's files by any path; TFTP devices read only
//! `/firmware` and write only new files into `/uploads`. Each refusal is the documented reply
//! for its error kind (`docs/ERRORS.md`) and leaves the tree's digest unchanged.

use wharf_e2e::Wharf;
use wharf_e2e::clients::Refusal;
use wharf_e2e::clients::ftp::{FtpControl, Reply, parse_mlsd};
use wharf_e2e::clients::sftp::{SftpClient, refusal as sftp_refusal};
use wharf_e2e::clients::tftp::TftpClient;
use wharf_e2e::errors_doc::assert_refused_as;
use wharf_e2e::server::{ACME, DEVICES, GLOBEX, GLOBEX_MARK, LAB, RO, RW};
use wharf_e2e::tree::{assert_outside_untouched, contains, share_digest};
use wharf_testkit::tree_digest;
use wharf_vfs::ErrorKind;

use russh_sftp::protocol::{FileAttributes, OpenFlags};

/// Files the read-only user tries to change.
fn seed_read_only_area(wharf: &Wharf) {
    wharf.put("area/keep.txt", b"keep me as I am");
    wharf.put("area/dir/inner.txt", b"inner");
    wharf.make_folder("area/empty");
}

/// Every FTP command that writes, each answered with its refusal.
async fn ftp_writes(ftp: &mut FtpControl) -> Vec<(&'static str, Reply)> {
    let mut refused = Vec::new();
    let refusal = |result: Result<Reply, Reply>| match result {
        Ok(reply) => panic!("a write was accepted: {reply:?}"),
        Err(reply) => reply,
    };
    refused.push(("STOR new", refusal(ftp.store("STOR", b"/area/new.txt", b"new").await)));
    refused.push(("STOR over", refusal(ftp.store("STOR", b"/area/keep.txt", b"changed").await)));
    refused.push(("APPE", refusal(ftp.store("APPE", b"/area/keep.txt", b" more").await)));
    refused.push(("STOU", refusal(ftp.store("STOU", b"/area/unique.txt", b"unique").await)));
    let rest = ftp.cmd("REST 4").await;
    assert_eq!(rest.code, 350, "REST: {rest:?}");
    refused.push(("REST+STOR", refusal(ftp.store("STOR", b"/area/keep.txt", b"XX").await)));
    refused.push(("DELE", ftp.cmd("DELE /area/keep.txt").await));
    let rnfr = ftp.cmd("RNFR /area/keep.txt").await;
    let rename = if rnfr.code == 350 { ftp.cmd("RNTO /area/moved.txt").await } else { rnfr };
    refused.push(("RNFR/RNTO", rename));
    refused.push(("MKD", ftp.cmd("MKD /area/newdir").await));
    refused.push(("RMD", ftp.cmd("RMD /area/empty").await));
    refused.push(("SITE CHMOD", ftp.cmd("SITE CHMOD 600 /area/keep.txt").await));
    refused.push(("MFMT", ftp.cmd("MFMT 20200101000000 /area/keep.txt").await));
    refused
}

/// Every SFTP request that writes, each answered with its refusal.
async fn sftp_writes(sftp: &SftpClient) -> Vec<(String, Refusal)> {
    let raw = &sftp.raw;
    let mut refused = Vec::new();
    let mut expect_refusal = |what: String, result: Result<(), Refusal>| match result {
        Ok(()) => panic!("{what} was accepted"),
        Err(refusal) => refused.push((what, refusal)),
    };
    let write_opens = [
        ("create+truncate", OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE),
        ("create+exclusive", OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::EXCLUDE),
        ("append", OpenFlags::WRITE | OpenFlags::APPEND),
        ("create+append", OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::APPEND),
        ("write in place", OpenFlags::WRITE),
        ("read+write", OpenFlags::READ | OpenFlags::WRITE),
    ];
    for (name, flags) in write_opens {
        // Without CREATE a missing file is simply not found: only the existing one counts.
        let paths: &[&str] = if flags.contains(OpenFlags::CREATE) {
            &["/area/keep.txt", "/area/new.txt"]
        } else {
            &["/area/keep.txt"]
        };
        for &path in paths {
            let opened = raw.open(path, flags, FileAttributes::empty()).await;
            expect_refusal(format!("open {name} {path}"), opened.map(drop).map_err(sftp_refusal));
        }
    }
    let none = FileAttributes::empty;
    let chmod = FileAttributes { permissions: Some(0o600), ..none() };
    let touch = FileAttributes { atime: Some(1), mtime: Some(1), ..none() };
    let results = [
        ("remove", raw.remove("/area/keep.txt").await.map(drop)),
        ("rename", raw.rename("/area/keep.txt", "/area/moved.txt").await.map(drop)),
        ("mkdir", raw.mkdir("/area/newdir", none()).await.map(drop)),
        ("rmdir", raw.rmdir("/area/empty").await.map(drop)),
        ("setstat mode", raw.setstat("/area/keep.txt", chmod).await.map(drop)),
        ("setstat times", raw.setstat("/area/keep.txt", touch).await.map(drop)),
    ];
    for (what, result) in results {
        expect_refusal(what.to_owned(), result.map_err(sftp_refusal));
    }
    let posix = sftp.posix_rename("/area/keep.txt", "/area/dir/inner.txt").await;
    expect_refusal("posix-rename".to_owned(), posix);
    refused
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_only_user_is_refused_every_write_on_every_protocol() {
    read_only_user_refused_everything(Wharf::start().await).await;
}

/// The same with the whole share in a bucket of a real S3-compatible server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_only_user_is_refused_every_write_on_object_storage() {
    let Some(wharf) = Wharf::start_on_bucket().await else { return };
    read_only_user_refused_everything(wharf).await;
}

async fn read_only_user_refused_everything(wharf: Wharf) {
    seed_read_only_area(&wharf);
    wharf.put("firmware/boot.bin", b"firmware image");
    let before = share_digest(&wharf);

    for tls in wharf.ftp_flavours() {
        let mut ftp = FtpControl::login_over(&wharf, RO, tls).await;
        let proto = if tls { "FTPS" } else { "FTP" };
        for (what, reply) in ftp_writes(&mut ftp).await {
            assert_refused_as(
                &reply.refusal(),
                ErrorKind::PermissionDenied,
                &format!("{proto} {what}"),
            );
        }
        // Reading is still allowed.
        assert_eq!(ftp.retr(b"/area/keep.txt").await.expect("RETR"), b"keep me as I am");
    }

    let sftp = SftpClient::login_key(&wharf, RO).await;
    for (what, refusal) in sftp_writes(&sftp).await {
        assert_refused_as(&refusal, ErrorKind::PermissionDenied, &format!("SFTP {what}"));
    }
    let read = sftp.sftp.read("/area/keep.txt").await.expect("SFTP read");
    assert_eq!(read, b"keep me as I am");

    // TFTP has no users: its devices are read-only on /firmware, and refused the same way.
    let tftp = TftpClient::new(wharf.tftp, Wharf::tftp_source(DEVICES));
    for path in ["/firmware/boot.bin", "/firmware/new.bin"] {
        let refusal = tftp.upload(path, b"replaced").await.expect_err("TFTP write");
        assert_refused_as(&refusal, ErrorKind::PermissionDenied, &format!("TFTP WRQ {path}"));
    }
    assert_eq!(share_digest(&wharf), before, "a refused write changed the tree");
    sftp.close().await;
    wharf.stop().await;
}

/// Ways `acme` might name globex's file `plans.txt`.
const INTO_GLOBEX: [&str; 10] = [
    "/partners/globex/plans.txt",
    "../globex/plans.txt",
    "../../partners/globex/plans.txt",
    "/../globex/plans.txt",
    "..\\globex\\plans.txt",
    "%2e%2e/globex/plans.txt",
    "/firmware/../../globex/plans.txt",
    "/firmware/../partners/globex/plans.txt",
    "link-to-globex/plans.txt",
    "link-to-plans",
];

/// The names in an FTP listing (`MLSD`, `LIST` as `ls -l`, `NLST` as paths).
fn listed_names(verb: &str, listing: &str) -> Vec<String> {
    match verb {
        "MLSD" => parse_mlsd(listing).into_iter().map(|entry| entry.name).collect(),
        "LIST" => listing
            .lines()
            .map(|line| line.split_whitespace().skip(8).collect::<Vec<_>>().join(" "))
            .collect(),
        _ => {
            listing.lines().map(|line| line.rsplit('/').next().unwrap_or(line).to_owned()).collect()
        }
    }
}

/// Folders `acme` might list to see globex's files.
const GLOBEX_FOLDERS: [&str; 6] =
    ["/", "..", "../..", "/partners", "/partners/globex", "link-to-globex"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_cannot_see_or_reach_another_partners_files() {
    let wharf = Wharf::start().await;
    wharf.put("partners/acme/own.txt", b"acme's own file");
    wharf.put("firmware/boot.bin", b"firmware image");
    // Links inside acme's home, as an operator's mistake or a restored backup might leave.
    let acme_home = wharf.root.join("partners/acme");
    std::os::unix::fs::symlink("../globex", acme_home.join("link-to-globex")).expect("link");
    std::os::unix::fs::symlink("../globex/plans.txt", acme_home.join("link-to-plans"))
        .expect("link");
    let globex_home = wharf.root.join("partners/globex");
    let globex_before = tree_digest(&globex_home);

    // FTP.
    for tls in wharf.ftp_flavours() {
        let mut ftp = FtpControl::login_over(&wharf, ACME, tls).await;
        let proto = if tls { "FTPS" } else { "FTP" };
        for path in INTO_GLOBEX {
            let bytes = path.as_bytes();
            let refused = ftp.retr(bytes).await.expect_err(path);
            assert!(!contains(refused.lines.join("\n").as_bytes(), GLOBEX_MARK), "{path}");
            // Deleting a link inside acme's home removes the link (checked below), not its target.
            let commands: &[&str] = if path.starts_with("link") {
                &["SIZE", "MDTM", "MLST", "CWD"]
            } else {
                &["SIZE", "MDTM", "MLST", "CWD", "DELE", "RMD"]
            };
            for command in commands {
                let reply = ftp.cmd(format!("{command} {path}")).await;
                assert!(reply.code >= 500, "{proto} {command} {path}: {reply:?}");
            }
            // Refused, or contained in acme's own home: globex's digest is checked at the end.
            let _ = ftp.store("STOR", &[bytes, b".new"].concat(), b"dropped in").await;
        }
        for dir in GLOBEX_FOLDERS {
            for verb in ["MLSD", "LIST", "NLST"] {
                if let Ok(listing) = ftp.listing(verb, Some(dir.as_bytes())).await {
                    let names = listed_names(verb, &listing);
                    assert!(
                        !names.iter().any(
                            |name| ["plans.txt", "globex", "partners"].contains(&name.as_str())
                        ),
                        "{proto} {verb} {dir}: {listing}"
                    );
                }
            }
        }
        assert_eq!(ftp.retr(b"/firmware/boot.bin").await.expect("firmware"), b"firmware image");
        let refused = ftp.store("STOR", b"/firmware/boot.bin", b"replaced").await.expect_err("ro");
        assert_refused_as(
            &refused.refusal(),
            ErrorKind::PermissionDenied,
            &format!("{proto} STOR /firmware"),
        );
    }

    // SFTP.
    let sftp = SftpClient::login_key(&wharf, ACME).await;
    for path in INTO_GLOBEX {
        let read = sftp.sftp.read(path).await;
        assert!(read.is_err(), "SFTP read {path}: {read:?}");
        let stat = sftp.raw.stat(path).await;
        assert!(stat.is_err(), "SFTP stat {path}: {stat:?}");
        let lstat = sftp.raw.lstat(path).await;
        assert!(lstat.is_err() || path.starts_with("link"), "SFTP lstat {path}: {lstat:?}");
        // Removing or renaming a link inside acme's home acts on the link (checked below).
        if !path.starts_with("link") {
            assert!(sftp.raw.remove(path).await.is_err(), "SFTP remove {path}");
            let moved = sftp.raw.rename(path, "/stolen.txt").await;
            assert!(moved.is_err(), "SFTP rename {path}: {moved:?}");
        }
        let flags = OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE;
        let opened = sftp.raw.open(format!("{path}.new"), flags, FileAttributes::empty()).await;
        if let Ok(handle) = opened {
            sftp.raw.close(handle.handle).await.expect("close");
        }
    }
    for up in ["..", "../..", "/..", "link-to-globex/../.."] {
        let real = sftp.sftp.canonicalize(up).await.expect("realpath");
        assert_eq!(real, "/", "realpath {up} stays at acme's root");
    }
    for dir in GLOBEX_FOLDERS {
        if let Ok(names) = sftp.names(dir).await {
            assert!(
                !names.iter().any(|n| n == "plans.txt" || n == "globex"),
                "SFTP {dir}: {names:?}"
            );
        }
    }
    assert_eq!(sftp.sftp.read("/firmware/boot.bin").await.expect("firmware"), b"firmware image");

    // TFTP identities are not partners, and do not reach partners either.
    for identity in [DEVICES, LAB] {
        let tftp = TftpClient::new(wharf.tftp, Wharf::tftp_source(identity));
        for path in [
            "/partners/globex/plans.txt",
            "partners/globex/plans.txt",
            "../partners/globex/plans.txt",
            "/firmware/../partners/globex/plans.txt",
        ] {
            let refusal = tftp.download(path).await.expect_err(path);
            assert!(!contains(refusal.text().as_bytes(), GLOBEX_MARK));
            assert_refused_as(
                &refusal,
                ErrorKind::NotFound,
                &format!("TFTP {identity} RRQ {path}"),
            );
            tftp.upload(path, b"dropped in").await.expect_err(path);
        }
    }

    // Removing the links removes only the links.
    let removed = FtpControl::login(wharf.ftp, ACME).await.cmd("DELE link-to-plans").await;
    assert_eq!(removed.code, 250, "{removed:?}");
    sftp.raw.remove("link-to-globex").await.expect("remove the folder link");
    assert!(
        !acme_home.join("link-to-plans").exists() && !acme_home.join("link-to-globex").exists()
    );

    // globex itself still sees its file; nothing of it changed.
    let globex = SftpClient::login_key(&wharf, GLOBEX).await;
    assert_eq!(globex.sftp.read("/plans.txt").await.expect("own file"), GLOBEX_MARK);
    assert_eq!(tree_digest(&globex_home), globex_before, "globex's home changed");
    assert_outside_untouched(&wharf);
    let rw = SftpClient::login_key(&wharf, RW).await;
    assert_eq!(rw.sftp.read("/partners/globex/plans.txt").await.expect("rw reads"), GLOBEX_MARK);
    for client in [sftp, globex, rw] {
        client.close().await;
    }
    wharf.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tftp_devices_read_only_firmware_and_only_create_in_uploads() {
    let wharf = Wharf::start().await;
    wharf.put("firmware/boot.bin", b"firmware image");
    wharf.put("firmware/sub/dir.bin", b"nested firmware");
    wharf.put("uploads/existing.cfg", b"uploaded before");
    wharf.put("lab/notes.txt", b"lab notes");
    wharf.put("exchange/file.txt", b"exchanged");
    wharf.put("top.txt", b"at the root of the share");
    let devices = TftpClient::new(wharf.tftp, Wharf::tftp_source(DEVICES));

    for (path, content) in
        [("/firmware/boot.bin", "firmware image"), ("firmware/sub/dir.bin", "nested firmware")]
    {
        let received = devices.download(path).await.unwrap_or_else(|e| panic!("{path}: {e:?}"));
        assert_eq!(received.data, content.as_bytes(), "{path}");
    }
    let before = share_digest(&wharf);
    // Reads outside /firmware: invisible, or visible but not readable.
    for path in
        ["/lab/notes.txt", "/exchange/file.txt", "/top.txt", "top.txt", "/firmware/../top.txt"]
    {
        let refusal = devices.download(path).await.expect_err(path);
        assert_refused_as(&refusal, ErrorKind::NotFound, &format!("RRQ {path}"));
    }
    let refusal = devices.download("/uploads/existing.cfg").await.expect_err("uploads");
    assert_refused_as(&refusal, ErrorKind::PermissionDenied, "RRQ /uploads/existing.cfg");
    // Writes outside /uploads, and over an existing upload.
    for path in ["/firmware/boot.bin", "/firmware/new.bin"] {
        let refusal = devices.upload(path, b"x").await.expect_err(path);
        assert_refused_as(&refusal, ErrorKind::PermissionDenied, &format!("WRQ {path}"));
    }
    for path in ["/lab/new.txt", "/exchange/new.txt"] {
        let refusal = devices.upload(path, b"x").await.expect_err(path);
        assert_refused_as(&refusal, ErrorKind::NotFound, &format!("WRQ {path}"));
    }
    let refusal = devices.upload("/top-new.txt", b"x").await.expect_err("root");
    assert!(matches!(refusal, Refusal::Tftp { code: 1 | 2, .. }), "WRQ /top-new.txt: {refusal:?}");
    let refusal = devices.upload("/uploads/existing.cfg", b"replaced").await.expect_err("exists");
    assert_refused_as(&refusal, ErrorKind::AlreadyExists, "WRQ over /uploads/existing.cfg");
    assert_eq!(share_digest(&wharf), before, "a refused TFTP request changed the tree");

    // A new file in /uploads is created, and then not replaced.
    devices.upload("/uploads/new.cfg", b"first").await.expect("create in /uploads");
    assert_eq!(wharf.read("uploads/new.cfg"), b"first");
    let refusal = devices.upload("/uploads/new.cfg", b"second").await.expect_err("no overwrite");
    assert_refused_as(&refusal, ErrorKind::AlreadyExists, "WRQ twice");
    assert_eq!(wharf.read("uploads/new.cfg"), b"first");
    assert_outside_untouched(&wharf);
    wharf.stop().await;
}
