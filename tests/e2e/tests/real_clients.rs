//! The real clients against each other through one server: lftp, curl (FTP and SFTP),
//! OpenSSH's sftp and tftp-hpa's tftp upload and download each other's files byte-exact and
//! list them; they are refused the same writes for the read-only user and never get
//! anything from outside the share. Under `CI=true` a missing client fails the test.

use std::path::{Path, PathBuf};

use wharf_e2e::Wharf;
use wharf_e2e::clients::real::{RealClients, assert_success, output_text, run};
use wharf_e2e::server::{RO, RW};
use wharf_e2e::tree::{assert_nothing_from_outside, assert_outside_untouched, share_digest};
use wharf_testkit::pattern;

const SIZES: [usize; 4] = [0, 1, 512, 1024 * 1024 + 7];

fn content(salt: u8, size: usize) -> Vec<u8> {
    pattern(size).into_iter().map(|byte| byte ^ salt).collect()
}

struct Local(PathBuf);

impl Local {
    fn file(&self, name: &str, content: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, content).expect("local file");
        path
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn batch(&self, lines: &[String]) -> PathBuf {
        self.file("batch.txt", lines.join("\n").as_bytes())
    }
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_clients_read_what_other_real_clients_wrote() {
    let Some(clients) = RealClients::find() else { return };
    let wharf = Wharf::start().await;
    std::fs::create_dir_all(wharf.root.join("exchange")).expect("exchange");
    let local = Local(wharf.base().join("client"));
    for size in SIZES {
        // lftp (FTP) writes into /firmware: tftp-hpa, curl over SFTP and OpenSSH read it.
        let data = content(1, size);
        let name = format!("lftp-{size}.bin");
        let source = local.file(&name, &data);
        let put = format!("put {} -o /firmware/{name}; cls -l /firmware/", source.display());
        let out = run(clients.lftp(&wharf, RW, &put)).await;
        assert_success("lftp put", &out);
        assert!(output_text(&out).contains(&name), "lftp lists {name}: {}", output_text(&out));

        let got = local.path("tftp-got.bin");
        let get = ["get", &format!("firmware/{name}"), &got.display().to_string()];
        let out = run(clients.tftp(&wharf, &get)).await;
        assert!(read(&got) == data, "tftp-hpa reads lftp's {size} B: {}", output_text(&out));

        let got = local.path("curl-got.bin");
        let mut curl =
            clients.curl(&RealClients::sftp_url(&wharf, RW, &format!("/firmware/{name}")));
        curl.arg("-o").arg(&got);
        assert_success("curl sftp get", &run(curl).await);
        assert!(read(&got) == data, "curl (SFTP) reads lftp's {size} B");

        let got = local.path("openssh-got.bin");
        let batch = local
            .batch(&[format!("get /firmware/{name} {}", got.display()), "ls -l /firmware".into()]);
        let out = run(clients.openssh_sftp(&wharf, RW, &batch, &[])).await;
        assert_success("sftp get", &out);
        assert!(read(&got) == data, "OpenSSH reads lftp's {size} B");
        assert!(output_text(&out).contains(&name), "sftp lists {name}");

        // OpenSSH's sftp writes: curl over FTP and lftp read it.
        let data = content(2, size);
        let name = format!("openssh-{size}.bin");
        let source = local.file(&name, &data);
        let batch = local.batch(&[format!("put {} /exchange/{name}", source.display())]);
        assert_success("sftp put", &run(clients.openssh_sftp(&wharf, RW, &batch, &[])).await);
        let got = local.path("curl-got.bin");
        let mut curl = clients.curl(&RealClients::ftp_url(&wharf, RW, &format!("exchange/{name}")));
        curl.arg("-o").arg(&got);
        assert_success("curl ftp get", &run(curl).await);
        assert!(read(&got) == data, "curl (FTP) reads OpenSSH's {size} B");
        let got = local.path("lftp-got.bin");
        let get = format!("get /exchange/{name} -o {}", got.display());
        assert_success("lftp get", &run(clients.lftp(&wharf, RW, &get)).await);
        assert!(read(&got) == data, "lftp reads OpenSSH's {size} B");

        // tftp-hpa writes into /uploads: curl over FTP and OpenSSH read it.
        let data = content(3, size);
        let name = format!("hpa-{size}.bin");
        let source = local.file(&name, &data);
        let put = ["put", &source.display().to_string(), &format!("uploads/{name}")];
        let out = run(clients.tftp(&wharf, &put)).await;
        assert!(!output_text(&out).contains("rror"), "tftp put: {}", output_text(&out));
        let got = local.path("curl-got.bin");
        let mut curl = clients.curl(&RealClients::ftp_url(&wharf, RW, &format!("uploads/{name}")));
        curl.arg("-o").arg(&got);
        assert_success("curl ftp get", &run(curl).await);
        assert!(read(&got) == data, "curl (FTP) reads tftp-hpa's {size} B");
        let got = local.path("openssh-got.bin");
        let batch = local.batch(&[format!("get /uploads/{name} {}", got.display())]);
        assert_success("sftp get", &run(clients.openssh_sftp(&wharf, RW, &batch, &[])).await);
        assert!(read(&got) == data, "OpenSSH reads tftp-hpa's {size} B");

        // curl writes over SFTP: lftp reads it.
        let data = content(4, size);
        let name = format!("curl-{size}.bin");
        let source = local.file(&name, &data);
        let mut curl =
            clients.curl(&RealClients::sftp_url(&wharf, RW, &format!("/exchange/{name}")));
        curl.arg("-T").arg(&source);
        assert_success("curl sftp put", &run(curl).await);
        let got = local.path("lftp-got.bin");
        let get = format!("get /exchange/{name} -o {}", got.display());
        assert_success("lftp get", &run(clients.lftp(&wharf, RW, &get)).await);
        assert!(read(&got) == data, "lftp reads curl's (SFTP) {size} B");
    }
    wharf.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_clients_get_the_same_refusals() {
    let Some(clients) = RealClients::find() else { return };
    let wharf = Wharf::start().await;
    wharf.put("area/keep.txt", b"keep me");
    std::fs::create_dir_all(wharf.root.join("area/empty")).expect("empty");
    wharf.put("firmware/boot.bin", b"image");
    let local = Local(wharf.base().join("client"));
    let source = local.file("upload.txt", b"should never land");
    let before = share_digest(&wharf);

    // The read-only user: each lftp command alone, since lftp stops at the first failure.
    for command in [
        format!("put {} -o /area/new.txt", source.display()),
        format!("put {} -o /area/keep.txt", source.display()),
        "rm /area/keep.txt".to_owned(),
        "mkdir /area/newdir".to_owned(),
        "rmdir /area/empty".to_owned(),
        "mv /area/keep.txt /area/moved.txt".to_owned(),
        "chmod 600 /area/keep.txt".to_owned(),
    ] {
        let out = run(clients.lftp(&wharf, RO, &command)).await;
        assert!(!out.status.success(), "lftp as ro: `{command}` succeeded");
    }
    for command in [
        format!("put {} /area/new.txt", source.display()),
        format!("put {} /area/keep.txt", source.display()),
        "rm /area/keep.txt".to_owned(),
        "mkdir /area/newdir".to_owned(),
        "rmdir /area/empty".to_owned(),
        "rename /area/keep.txt /area/moved.txt".to_owned(),
        "chmod 600 /area/keep.txt".to_owned(),
    ] {
        let batch = local.batch(std::slice::from_ref(&command));
        let out = run(clients.openssh_sftp(&wharf, RO, &batch, &[])).await;
        assert!(!out.status.success(), "sftp as ro: `{command}` succeeded");
    }
    let mut curl = clients.curl(&RealClients::ftp_url(&wharf, RO, "area/keep.txt"));
    curl.arg("-T").arg(&source);
    assert!(!run(curl).await.status.success(), "curl upload as ro succeeded");
    let out =
        run(clients.tftp(&wharf, &["put", &source.display().to_string(), "firmware/boot.bin"]))
            .await;
    assert!(
        output_text(&out).contains("rror"),
        "tftp-hpa put into /firmware: {}",
        output_text(&out)
    );
    assert_eq!(share_digest(&wharf), before, "a refused write changed the tree");

    // Paths out of the share.
    let got = local.path("got.bin");
    for path in [
        "../../outside/sentinel.txt",
        "..%2f..%2foutside%2fsentinel.txt",
        "%2e%2e/%2e%2e/outside/sentinel.txt",
    ] {
        let mut curl = clients.curl(&RealClients::ftp_url(&wharf, RW, path));
        curl.arg("--path-as-is").arg("-o").arg(&got);
        let out = run(curl).await;
        assert_nothing_from_outside(&format!("curl ftp {path}"), output_text(&out).as_bytes());
        if got.exists() {
            assert_nothing_from_outside("curl ftp", &read(&got));
        }
        let mut curl = clients.curl(&RealClients::sftp_url(&wharf, RW, path));
        curl.arg("--path-as-is").arg("-o").arg(&got);
        let out = run(curl).await;
        assert_nothing_from_outside(&format!("curl sftp {path}"), output_text(&out).as_bytes());
        if got.exists() {
            assert_nothing_from_outside("curl sftp", &read(&got));
        }
    }
    for path in ["../../outside/sentinel.txt", "/etc/passwd"] {
        let batch = local.batch(&[format!("get {path} {}", got.display())]);
        let out = run(clients.openssh_sftp(&wharf, RW, &batch, &[])).await;
        assert!(!out.status.success(), "sftp get {path} succeeded");
        let out = run(clients.tftp(&wharf, &["get", path, &got.display().to_string()])).await;
        assert!(output_text(&out).contains("rror"), "tftp-hpa get {path}: {}", output_text(&out));
        if got.exists() {
            assert_nothing_from_outside("tftp-hpa", &read(&got));
        }
    }
    assert_outside_untouched(&wharf);
    wharf.stop().await;
}
