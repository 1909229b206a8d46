//! The cross-protocol matrix (`wharf_e2e::matrix`) with the whole share in a bucket of a
//! real S3-compatible server (SeaweedFS on loopback). A test binary of its own: cargo runs
//! test binaries one after another, so it never shares the CPUs with the local matrix.

use wharf_e2e::Wharf;
use wharf_e2e::matrix::run_matrix;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_protocol_reads_what_every_protocol_wrote_on_object_storage() {
    let Some(wharf) = Wharf::start_on_bucket().await else { return };
    run_matrix(wharf).await;
}
