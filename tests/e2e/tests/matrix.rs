//! The cross-protocol matrix on a local share (`wharf_e2e::matrix`).

use wharf_e2e::Wharf;
use wharf_e2e::matrix::run_matrix;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_protocol_reads_what_every_protocol_wrote() {
    run_matrix(Wharf::start().await).await;
}
