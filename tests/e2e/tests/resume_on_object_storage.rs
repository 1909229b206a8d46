//! Resumed uploads with the share in a bucket of a real S3-compatible server: an FTP upload
//! cut at 60 % (its data connection closed cleanly, so what arrived was published) and
//! resumed with `APPE` (curl `-C -`) or `REST` + `STOR` ends byte-exact, and the client sends
//! only the missing 40 %: the server starts the new object with a copy of the stored part
//! made inside the store (`UploadPartCopy`), not with the bytes again. OpenSSH's `reput` of
//! a 60 % object does the same over SFTP.

use wharf_e2e::clients::ftp::FtpControl;
use wharf_e2e::clients::real::{RealClients, assert_success};
use wharf_e2e::server::RW;
use wharf_e2e::{MIB, Wharf};
use wharf_testkit::{pattern, run_bounded};

const SIZE: usize = 10 * MIB;
/// Where the first upload is cut: 60 %, above the size copied inside the store.
const CUT: usize = SIZE * 6 / 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_cut_at_60_percent_resumes_without_resending() {
    let Some(clients) = RealClients::find() else { return };
    assert!(CUT as u64 >= wharf_vfs::object::COPY_MIN, "the stored part is copied in the store");
    let Some(wharf) = Wharf::start_on_bucket().await else { return };
    wharf.make_folder("exchange");
    let data = pattern(SIZE);
    let mut ftp = FtpControl::login_over(&wharf, RW, false).await;

    // curl -C - -T: SIZE, then APPE with the rest.
    let path = "exchange/curl-resumed.bin";
    ftp.store("STOR", format!("/{path}").as_bytes(), &data[..CUT]).await.expect("the cut upload");
    let local = wharf.base().join("client/whole.bin");
    std::fs::create_dir_all(local.parent().expect("parent")).expect("mkdir");
    std::fs::write(&local, &data).expect("local file");
    let mut curl = clients.curl(&RealClients::ftp_url(&wharf, RW, path));
    curl.args(["--continue-at", "-", "--upload-file"]).arg(&local);
    curl.args(["--write-out", "%{size_upload}"]);
    let output = run_bounded(&mut curl, std::time::Duration::from_secs(120));
    assert_success("curl -C - -T", &output);
    let sent: usize = String::from_utf8_lossy(&output.stdout).trim().parse().expect("size_upload");
    assert_eq!(sent, SIZE - CUT, "curl sent only the missing part");
    assert!(wharf.read(path) == data, "the resumed object is byte-exact");

    // REST + STOR.
    let path = "exchange/rest-resumed.bin";
    ftp.store("STOR", format!("/{path}").as_bytes(), &data[..CUT]).await.expect("the cut upload");
    let rest = ftp.cmd(format!("REST {CUT}")).await;
    assert_eq!(rest.code, 350, "{}", rest.text());
    ftp.store("STOR", format!("/{path}").as_bytes(), &data[CUT..]).await.expect("resumed");
    assert!(wharf.read(path) == data, "the resumed object is byte-exact");

    // Anywhere but the end of what is stored: refused, the object unchanged.
    let rest = ftp.cmd("REST 100").await;
    assert_eq!(rest.code, 350, "{}", rest.text());
    let refused = ftp.store("STOR", format!("/{path}").as_bytes(), b"x").await;
    assert_eq!(refused.expect_err("refused").code, 504);
    assert!(wharf.read(path) == data, "a refused resume changes nothing");

    // OpenSSH's `reput`: opens in place (no truncate, no append) and writes from the stored
    // size; the server continues the stored object.
    let path = "exchange/reput.bin";
    wharf.put(path, &data[..CUT]);
    let batch = wharf.base().join("client/reput.batch");
    std::fs::write(&batch, format!("reput {} /{path}\n", local.display())).expect("batch");
    let mut sftp = clients.openssh_sftp(&wharf, RW, &batch, &[]);
    let output = run_bounded(&mut sftp, std::time::Duration::from_secs(120));
    assert_success("sftp reput", &output);
    assert!(wharf.read(path) == data, "the object resumed over SFTP is byte-exact");
    assert_eq!(wharf.open_multipart_uploads(), 0);
    wharf.stop().await;
}
