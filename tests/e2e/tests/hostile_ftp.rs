//! Hostile and careless FTP clients against the whole server, in the clear and over TLS:
//! offsets past the largest file position are refused and leave nothing behind, and a
//! `QUIT` sent right after an upload's data connection closes gets the upload published.

use tokio::io::AsyncWriteExt as _;
use wharf_e2e::clients::ftp::FtpControl;
use wharf_e2e::server::RW;
use wharf_e2e::{MIB, Wharf, step};
use wharf_testkit::pattern;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_at_two_to_the_64_are_refused_and_the_next_retr_sends_the_whole_file() {
    let wharf = Wharf::start().await;
    let content = pattern(1000);
    wharf.put("exchange/thousand.bin", &content);
    for tls in wharf.ftp_flavours() {
        let mut ftp = FtpControl::login_over(&wharf, RW, tls).await;
        for line in ["RANG 0 18446744073709551615", "REST 18446744073709551615"] {
            let refused = ftp.cmd(line).await;
            assert_eq!(refused.code, 501, "{line} (tls: {tls}): {refused:?}");
            assert_eq!(refused.text(), "Offset beyond the largest file position.", "{line}");
            let whole = ftp.retr(b"/exchange/thousand.bin").await.expect("RETR after a refusal");
            assert!(whole == content, "{line} (tls: {tls}): RETR sent {} bytes", whole.len());
        }
    }
    wharf.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quit_right_after_the_data_connection_closes_publishes_the_upload() {
    let wharf = Wharf::start().await;
    let old = pattern(MIB);
    let new: Vec<u8> = pattern(3 * MIB + 7).into_iter().map(|byte| !byte).collect();
    for tls in wharf.ftp_flavours() {
        let relative = format!("exchange/quit-after-data-{tls}.bin");
        wharf.put(&relative, &old);
        let mut ftp = FtpControl::login_over(&wharf, RW, tls).await;
        let command = format!("STOR /{relative}");
        let mut data = ftp.start_transfer(command.as_bytes()).await.expect("150");
        step("data", data.write_all(&new)).await.expect("send");
        step("close data", data.shutdown()).await.expect("close data");
        drop(data);
        ftp.send(b"QUIT").await;
        assert_eq!(ftp.reply().await.code, 226, "the transfer's reply first (tls: {tls})");
        assert_eq!(ftp.reply().await.code, 221, "then the goodbye (tls: {tls})");
        assert!(wharf.read(&relative) == new, "the upload was not published (tls: {tls})");
    }
    wharf.stop().await;
}
