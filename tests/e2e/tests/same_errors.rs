//! The same errors everywhere: each front-end maps every `ErrorKind` to its own reply exactly
//! as `docs/ERRORS.md` documents it, in its table and on the wire.

use russh_sftp::protocol::{FileAttributes, OpenFlags};
use wharf_e2e::Wharf;
use wharf_e2e::clients::Refusal;
use wharf_e2e::clients::ftp::FtpControl;
use wharf_e2e::clients::sftp::{SftpClient, refusal as sftp_refusal};
use wharf_e2e::clients::tftp::TftpClient;
use wharf_e2e::errors_doc::{SFTP_STATUS_NAMES, assert_refused_as, error_table, parse_error_table};
use wharf_e2e::server::{DEVICES, QUOTA_BYTES, RO, RW, TIGHT};
use wharf_vfs::ErrorKind;

#[test]
fn the_documented_table_has_one_row_per_error_kind() {
    let table = error_table();
    let kinds: Vec<ErrorKind> = table.iter().map(|row| row.kind).collect();
    assert_eq!(kinds, ErrorKind::ALL, "docs/ERRORS.md lists every ErrorKind once, in order");
    for row in &table {
        let name = SFTP_STATUS_NAMES.get(row.sftp_status as usize);
        assert_eq!(name, Some(&row.sftp_name.as_str()), "{:?}: SFTP code and name agree", row.kind);
    }
}

#[test]
fn every_front_end_maps_every_error_kind_as_documented() {
    for row in error_table() {
        let kind = row.kind;
        let (code, text) = wharf_ftp::errors::reply_for_kind(kind);
        assert_eq!((code, text), (row.ftp_code, row.ftp_text.as_str()), "FTP reply of {kind:?}");
        let status = wharf_sftp::status_for(kind) as u32;
        assert_eq!(status, row.sftp_status, "SFTP status of {kind:?}");
        let (code, message) = wharf_tftp::errors::for_kind(kind);
        assert_eq!(
            (code.wire(), message),
            (row.tftp_code, row.tftp_message.as_str()),
            "TFTP error of {kind:?}"
        );
    }
}

#[test]
fn a_changed_row_is_noticed() {
    // The parser reads what the page says: a different code in the page is a different row,
    // which the mapping test above would then refuse.
    let page = std::fs::read_to_string(wharf_e2e::errors_doc::ERRORS_DOC).expect("page");
    let changed = page.replace(
        "| `NotFound` | 550 No such file or directory |",
        "| `NotFound` | 450 No such file or directory |",
    );
    assert_ne!(page, changed, "the NotFound row is where the test expects it");
    let row = parse_error_table(&changed).into_iter().find(|r| r.kind == ErrorKind::NotFound);
    assert_eq!(row.expect("row").ftp_code, 450);
    assert_ne!(wharf_ftp::errors::reply_for_kind(ErrorKind::NotFound).0, 450);
}

/// What the server answers on the wire for each error kind a client can provoke, on each
/// protocol that can provoke it. `NoSpace` and `Io` need a failing disk: the table test above
/// covers them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replies_on_the_wire_are_the_documented_ones() {
    let wharf = Wharf::start().await;
    wharf.put("exchange/file.txt", b"a file");
    wharf.put("exchange/full/inside.txt", b"not empty");
    std::fs::create_dir_all(wharf.root.join("exchange/folder")).expect("folder");
    wharf.put("firmware/boot.bin", b"image");
    wharf.put("firmware/sub/inner.bin", b"inner");
    wharf.put("uploads/taken.cfg", b"taken");
    let big = vec![7u8; QUOTA_BYTES * 2];

    // FTP.
    for tls in wharf.ftp_flavours() {
        let proto = if tls { "FTPS" } else { "FTP" };
        let mut ftp = FtpControl::login_over(&wharf, RW, tls).await;
        let mut ftp_ro = FtpControl::login_over(&wharf, RO, tls).await;
        let mut ftp_tight = FtpControl::login_over(&wharf, TIGHT, tls).await;
        let cases: Vec<(ErrorKind, &str, Refusal)> = vec![
            (
                ErrorKind::NotFound,
                "RETR missing",
                ftp.retr(b"/exchange/missing").await.expect_err("").refusal(),
            ),
            (
                ErrorKind::PermissionDenied,
                "STOR read-only",
                ftp_ro.store("STOR", b"/exchange/x", b"x").await.expect_err("").refusal(),
            ),
            (
                ErrorKind::AlreadyExists,
                "MKD existing",
                ftp.cmd("MKD /exchange/folder").await.refusal(),
            ),
            (
                ErrorKind::NotADirectory,
                "CWD file",
                ftp.cmd("CWD /exchange/file.txt").await.refusal(),
            ),
            (
                ErrorKind::NotADirectory,
                "RETR under a file",
                ftp.retr(b"/exchange/file.txt/x").await.expect_err("").refusal(),
            ),
            (
                ErrorKind::IsADirectory,
                "RETR folder",
                ftp.retr(b"/exchange/folder").await.expect_err("").refusal(),
            ),
            (
                ErrorKind::DirectoryNotEmpty,
                "RMD full",
                ftp.cmd("RMD /exchange/full").await.refusal(),
            ),
            (
                ErrorKind::QuotaExceeded,
                "STOR over quota",
                ftp_tight.store("STOR", b"/big.bin", &big).await.expect_err("").refusal(),
            ),
            (
                ErrorKind::InvalidPath,
                "RETR control byte",
                ftp.retr(b"/exchange/a\x01b").await.expect_err("").refusal(),
            ),
            (ErrorKind::Unsupported, "rename across mounts", {
                let from = ftp.cmd("RNFR /exchange/file.txt").await;
                assert_eq!(from.code, 350, "{from:?}");
                ftp.cmd("RNTO /second-mount/file.txt").await.refusal()
            }),
        ];
        for (kind, what, refusal) in &cases {
            assert_refused_as(refusal, *kind, &format!("{proto} {what}"));
        }
    }

    // SFTP.
    let sftp = SftpClient::login_key(&wharf, RW).await;
    let ro = SftpClient::login_key(&wharf, RO).await;
    let tight = SftpClient::login_key(&wharf, TIGHT).await;
    let raw = &sftp.raw;
    let none = FileAttributes::empty;
    let exclusive = OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::EXCLUDE;
    let over_quota = async {
        let flags = OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE;
        let handle = tight.raw.open("/big.bin", flags, none()).await.map_err(sftp_refusal)?.handle;
        tight.raw.write(handle.as_str(), 0, big.clone()).await.map_err(sftp_refusal)?;
        tight.raw.close(handle).await.map_err(sftp_refusal).map(drop)
    };
    let cases: Vec<(ErrorKind, &str, Result<(), Refusal>)> = vec![
        (
            ErrorKind::NotFound,
            "open missing",
            raw.open("/exchange/missing", OpenFlags::READ, none())
                .await
                .map(drop)
                .map_err(sftp_refusal),
        ),
        (
            ErrorKind::PermissionDenied,
            "remove read-only",
            ro.raw.remove("/exchange/file.txt").await.map(drop).map_err(sftp_refusal),
        ),
        (
            ErrorKind::AlreadyExists,
            "mkdir existing",
            raw.mkdir("/exchange/folder", none()).await.map(drop).map_err(sftp_refusal),
        ),
        (
            ErrorKind::AlreadyExists,
            "exclusive create",
            raw.open("/exchange/file.txt", exclusive, none()).await.map(drop).map_err(sftp_refusal),
        ),
        (
            ErrorKind::NotADirectory,
            "stat under a file",
            raw.stat("/exchange/file.txt/x").await.map(drop).map_err(sftp_refusal),
        ),
        (
            ErrorKind::IsADirectory,
            "open folder",
            raw.open("/exchange/folder", OpenFlags::READ, none())
                .await
                .map(drop)
                .map_err(sftp_refusal),
        ),
        (
            ErrorKind::DirectoryNotEmpty,
            "rmdir full",
            raw.rmdir("/exchange/full").await.map(drop).map_err(sftp_refusal),
        ),
        (ErrorKind::QuotaExceeded, "write over quota", over_quota.await),
        (
            ErrorKind::InvalidPath,
            "control byte",
            raw.stat("/exchange/a\u{1}b").await.map(drop).map_err(sftp_refusal),
        ),
        (
            ErrorKind::Unsupported,
            "rename across mounts",
            raw.rename("/exchange/file.txt", "/second-mount/file.txt")
                .await
                .map(drop)
                .map_err(sftp_refusal),
        ),
    ];
    for (kind, what, result) in &cases {
        let refusal = result.as_ref().expect_err(what);
        assert_refused_as(refusal, *kind, &format!("SFTP {what}"));
    }

    // TFTP (no folders to make or remove, no quota for devices, no renames).
    let tftp = TftpClient::new(wharf.tftp, Wharf::tftp_source(DEVICES));
    let cases: Vec<(ErrorKind, &str, Refusal)> = vec![
        (
            ErrorKind::NotFound,
            "RRQ missing",
            tftp.download("/firmware/missing").await.expect_err(""),
        ),
        (
            ErrorKind::PermissionDenied,
            "WRQ read-only",
            tftp.upload("/firmware/new.bin", b"x").await.expect_err(""),
        ),
        (
            ErrorKind::AlreadyExists,
            "WRQ existing",
            tftp.upload("/uploads/taken.cfg", b"x").await.expect_err(""),
        ),
        (
            ErrorKind::NotADirectory,
            "RRQ under a file",
            tftp.download("/firmware/boot.bin/x").await.expect_err(""),
        ),
        (
            ErrorKind::IsADirectory,
            "RRQ folder",
            tftp.download("/firmware/sub").await.expect_err(""),
        ),
        (
            ErrorKind::InvalidPath,
            "RRQ control byte",
            tftp.download("/firmware/a\u{1}b").await.expect_err(""),
        ),
    ];
    for (kind, what, refusal) in &cases {
        assert_refused_as(refusal, *kind, &format!("TFTP {what}"));
    }

    for client in [sftp, ro, tight] {
        client.close().await;
    }
    wharf.stop().await;
}
