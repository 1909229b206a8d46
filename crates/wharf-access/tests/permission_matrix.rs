//! Every operation, allowed with exactly the permission it needs and refused without it,
//! with the tree unchanged by a refusal.

mod common;

use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use common::{Share, p, share};
use wharf_access::{ErrorKind, Permissions, Protocol, Session, WriteMode};

/// One operation of the matrix: what it needs, and how to run it.
struct Case {
    name: &'static str,
    needs: Permissions,
}

const CASES: &[Case] = &[
    Case { name: "list", needs: Permissions::LIST },
    Case { name: "download", needs: Permissions::DOWNLOAD },
    Case { name: "upload-new", needs: Permissions::UPLOAD },
    Case { name: "overwrite", needs: Permissions::OVERWRITE },
    Case { name: "append", needs: Permissions::APPEND },
    Case { name: "resume", needs: Permissions::APPEND },
    Case { name: "delete", needs: Permissions::DELETE },
    Case { name: "rename-file", needs: Permissions::RENAME.union(Permissions::UPLOAD) },
    Case { name: "rename-over", needs: Permissions::RENAME.union(Permissions::OVERWRITE) },
    Case { name: "rename-dir", needs: Permissions::RENAME.union(Permissions::MKDIR) },
    Case { name: "mkdir", needs: Permissions::MKDIR },
    Case { name: "rmdir", needs: Permissions::RMDIR },
    Case { name: "set-times", needs: Permissions::SETATTR },
    Case { name: "set-mode", needs: Permissions::SETATTR },
];

async fn run(case: &str, s: &Session) -> Result<(), ErrorKind> {
    let k = |e: wharf_access::Error| e.kind();
    match case {
        "list" => s.list(&p("/work")).await.map(drop).map_err(k),
        "download" => {
            let d = s.open_read(&p("/work/existing.txt")).await.map_err(k)?;
            d.read_at(0, 100).await.map(drop).map_err(k)
        }
        "upload-new" | "overwrite" | "append" | "resume" => {
            let (path, mode) = match case {
                "upload-new" => ("/work/new.txt", WriteMode::Replace),
                "overwrite" => ("/work/existing.txt", WriteMode::Replace),
                "append" => ("/work/existing.txt", WriteMode::Append),
                _ => ("/work/existing.txt", WriteMode::At(3)),
            };
            let mut u = s.open_write(&p(path), mode).await.map_err(k)?;
            u.write(Bytes::from_static(b"written")).await.map_err(k)?;
            u.commit().await.map(drop).map_err(k)
        }
        "delete" => s.remove_file(&p("/work/existing.txt")).await.map_err(k),
        "rename-file" => s.rename(&p("/work/existing.txt"), &p("/work/moved.txt")).await.map_err(k),
        "rename-over" => s.rename(&p("/work/existing.txt"), &p("/work/other.txt")).await.map_err(k),
        "rename-dir" => s.rename(&p("/work/sub"), &p("/work/sub2")).await.map_err(k),
        "mkdir" => s.make_dir(&p("/work/newdir")).await.map_err(k),
        "rmdir" => s.remove_dir(&p("/work/sub")).await.map_err(k),
        "set-times" => s
            .set_times(&p("/work/existing.txt"), UNIX_EPOCH + Duration::from_secs(1_000_000), None)
            .await
            .map_err(k),
        "set-mode" => s.set_mode(&p("/work/existing.txt"), 0o600).await.map_err(k),
        other => panic!("unknown case {other}"),
    }
}

fn fixture(perms: Permissions) -> Share {
    let names: Vec<&str> =
        Permissions::NAMES.iter().filter(|(_, f)| perms.contains(*f)).map(|(n, _)| *n).collect();
    let rule = format!("[{}]", names.join(", "));
    // `/` stays listable so that permissions at /work are the only variable.
    let yaml = format!(
        "users:\n  - name: u\n    password: \"$HASH\"\n    home: u\n    permissions:\n      /: [list]\n      /work: {rule}\n"
    );
    let fx = share(&yaml);
    let work = fx.root.join("u/work");
    std::fs::create_dir_all(work.join("sub")).expect("mkdir");
    std::fs::write(work.join("existing.txt"), b"original").expect("write");
    std::fs::write(work.join("other.txt"), b"other").expect("write");
    fx
}

#[tokio::test]
async fn each_operation_needs_exactly_its_permissions() {
    for case in CASES {
        // Allowed with just what it needs.
        let fx = fixture(case.needs);
        let session = fx.login("u", Protocol::Sftp).await;
        assert_eq!(run(case.name, &session).await, Ok(()), "{} with {}", case.name, case.needs);

        // Refused without each needed permission, even with every other one, and nothing
        // changes.
        for missing in
            Permissions::NAMES.iter().map(|(_, f)| *f).filter(|f| case.needs.contains(*f))
        {
            let fx = fixture(Permissions::all().difference(missing));
            let session = fx.login("u", Protocol::Sftp).await;
            let before = fx.snapshot();
            let result = run(case.name, &session).await;
            assert_eq!(
                result,
                Err(ErrorKind::PermissionDenied),
                "{} without {missing} must be refused",
                case.name
            );
            assert_eq!(fx.snapshot(), before, "{} without {missing} changed the tree", case.name);
        }
    }
}

#[tokio::test]
async fn paths_without_any_permission_are_invisible() {
    let fx = share(
        "users:\n  - name: u\n    password: \"$HASH\"\n    home: u\n    permissions:\n      /: ['*']\n      /private: []\n      /drop: [upload]\n      /deep/inside: [read]\n",
    );
    for dir in ["u/private", "u/drop", "u/deep/inside", "u/deep/hidden"] {
        std::fs::create_dir_all(fx.root.join(dir)).expect("mkdir");
    }
    std::fs::write(fx.root.join("u/private/secret.txt"), b"s").expect("write");
    let s = fx.login("u", Protocol::Ftp).await;

    let mut listing = s.list(&p("/")).await.expect("list /");
    let mut names = Vec::new();
    loop {
        let batch = listing.next_batch(10).await.expect("batch");
        if batch.is_empty() {
            break;
        }
        names.extend(batch.into_iter().map(|e| e.name));
    }
    names.sort();
    assert_eq!(names, vec!["deep", "drop"], "private is not listed");
    assert_eq!(s.stat(&p("/private")).await.err().map(|e| e.kind()), Some(ErrorKind::NotFound));
    assert_eq!(
        s.open_read(&p("/private/secret.txt")).await.err().map(|e| e.kind()),
        Some(ErrorKind::NotFound)
    );
    // Upload-only drop box: can upload, cannot list or download.
    assert_eq!(
        s.list(&p("/drop")).await.err().map(|e| e.kind()),
        Some(ErrorKind::PermissionDenied)
    );
    let mut u = s.open_write(&p("/drop/in.txt"), WriteMode::Replace).await.expect("upload");
    u.write(Bytes::from_static(b"x")).await.expect("write");
    u.commit().await.expect("commit");
    assert_eq!(
        s.open_read(&p("/drop/in.txt")).await.err().map(|e| e.kind()),
        Some(ErrorKind::PermissionDenied)
    );
}

#[tokio::test]
async fn passing_through_shows_only_the_way_to_granted_rules() {
    let fx = share(
        "users:\n  - name: t\n    password: \"$HASH\"\n    home: t\n    permissions:\n      /firmware: [read]\n",
    );
    std::fs::create_dir_all(fx.root.join("t/firmware")).expect("mkdir");
    std::fs::create_dir_all(fx.root.join("t/configs")).expect("mkdir");
    std::fs::write(fx.root.join("t/top.txt"), b"t").expect("write");
    let s = fx.login("t", Protocol::Ftp).await;
    let mut listing = s.list(&p("/")).await.expect("root can be passed through");
    let batch = listing.next_batch(10).await.expect("batch");
    let names: Vec<_> = batch.into_iter().map(|e| e.name).collect();
    assert_eq!(names, vec!["firmware"]);
    assert_eq!(
        s.open_read(&p("/top.txt")).await.err().map(|e| e.kind()),
        Some(ErrorKind::NotFound)
    );
}

/// A user who may both create and replace, outside any quota, opens a whole-file upload
/// without the name being looked up first; a directory under that name is still refused
/// (at open or at the commit) and the tree stays as it was.
#[tokio::test]
async fn a_whole_file_upload_onto_a_directory_is_refused_with_every_right() {
    let fx = fixture(Permissions::all());
    let session = fx.login("u", Protocol::Sftp).await;
    let before = fx.snapshot();
    let outcome = async {
        let mut upload = session.open_write(&p("/work/sub"), WriteMode::Replace).await?;
        upload.write(Bytes::from_static(b"written")).await?;
        upload.commit().await.map(drop)
    }
    .await;
    assert_eq!(outcome.map_err(|e| e.kind()), Err(ErrorKind::IsADirectory));
    assert_eq!(fx.snapshot(), before, "the directory and the tree are unchanged");
}
