//! A real PostgreSQL server on loopback, for tests of the shared state of a cluster.
//!
//! `initdb` into a temporary directory (trust authentication: only this machine's loopback
//! and a socket in that directory reach it), then `postgres` on a free port of 127.0.0.1 with
//! its Unix socket in the same directory. PostgreSQL refuses to run as root: when the tests
//! do, the server runs as the `postgres` user (which Debian's package creates) and the
//! directory is handed to it. The server is stopped (`pg_ctl stop -m fast`) on drop; it can
//! be stopped and started again on the same data and port, for "the database goes away".

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{find_executable, in_ci, run_bounded, unavailable};

/// How long `pg_ctl` may take to start or stop the server.
const PG_CTL_LIMIT: Duration = Duration::from_secs(60);

/// The database and user the tests connect as.
pub const POSTGRES_DATABASE: &str = "wharf";

/// A running PostgreSQL server, stopped on drop.
pub struct Postgres {
    /// Where its binaries are.
    bin: PathBuf,
    /// The data directory.
    data: PathBuf,
    /// The port on 127.0.0.1.
    pub port: u16,
    /// The user the server runs as, when the tests run as root.
    run_as: Option<(u32, u32)>,
    running: bool,
    dir: tempfile::TempDir,
}

impl Postgres {
    /// Starts a fresh server with an empty database [`POSTGRES_DATABASE`] owned by the user of
    /// the same name; `None` when PostgreSQL is not installed outside CI.
    pub fn start() -> Option<Postgres> {
        let Some(bin) = postgres_bin() else {
            unavailable(
                "PostgreSQL is not installed (Debian package `postgresql`, as .ci/run installs)",
                in_ci(),
            );
            return None;
        };
        let dir = tempfile::Builder::new().prefix("wharf-postgres-").tempdir().expect("tempdir");
        let run_as =
            if rustix::process::geteuid().is_root() { Some(postgres_user()) } else { None };
        if let Some((uid, gid)) = run_as {
            chown(dir.path(), uid, gid);
        }
        let data = dir.path().join("data");
        let port = {
            let probe = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("free port");
            probe.local_addr().expect("address").port()
        };
        let mut server = Postgres { bin, data, port, run_as, running: false, dir };
        let mut initdb = server.command("initdb");
        initdb.arg("-D").arg(&server.data).args([
            "-A",
            "trust",
            "-U",
            POSTGRES_DATABASE,
            "-E",
            "UTF8",
            "--no-sync",
        ]);
        server.run(initdb, "initdb");
        server.start_again();
        let mut createdb = server.command("createdb");
        createdb
            .args(["-h", "127.0.0.1", "-p", &server.port.to_string(), "-U", POSTGRES_DATABASE])
            .arg(POSTGRES_DATABASE);
        server.run(createdb, "createdb");
        Some(server)
    }

    /// The connection URL (TCP on 127.0.0.1, no password: trust authentication).
    pub fn url(&self) -> String {
        format!("postgres://{POSTGRES_DATABASE}@127.0.0.1:{}/{POSTGRES_DATABASE}", self.port)
    }

    /// The directory holding the server's Unix socket (`.s.PGSQL.<port>`).
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts the server (again) on its data and port; returns when it accepts connections.
    pub fn start_again(&mut self) {
        let mut pg_ctl = self.command("pg_ctl");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
            self.port,
            self.dir.path().display()
        );
        pg_ctl
            .arg("-D")
            .arg(&self.data)
            .arg("-o")
            .arg(options)
            .arg("-l")
            .arg(self.dir.path().join("server.log"))
            .args(["-w", "-t", "50", "start"]);
        self.run(pg_ctl, "pg_ctl start");
        self.running = true;
    }

    /// Stops the server now (`-m fast`: sessions are cut); returns when it is down.
    pub fn stop(&mut self) {
        if !self.running {
            return;
        }
        let mut pg_ctl = self.command("pg_ctl");
        pg_ctl.arg("-D").arg(&self.data).args(["-m", "fast", "-w", "-t", "50", "stop"]);
        self.run(pg_ctl, "pg_ctl stop");
        self.running = false;
    }

    /// Turns TLS on with the certificate chain `certificate` and key `key` (PEM files,
    /// copied into the data directory for the server's user), and restarts the server.
    /// Connections in the clear are still accepted (`psql` here uses them).
    pub fn enable_tls(&mut self, certificate: &Path, key: &Path) {
        use std::os::unix::fs::PermissionsExt as _;
        for (from, name) in [(certificate, "server.crt"), (key, "server.key")] {
            let to = self.data.join(name);
            std::fs::copy(from, &to).expect("copy for the server");
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).expect("mode");
            if let Some((uid, gid)) = self.run_as {
                chown(&to, uid, gid);
            }
        }
        let conf = self.data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).expect("postgresql.conf");
        text.push_str("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        std::fs::write(&conf, text).expect("postgresql.conf");
        self.stop();
        self.start_again();
    }

    /// Runs `sql` through `psql`, returns what it printed (unaligned, tuples only).
    pub fn psql(&self, sql: &str) -> String {
        let mut psql = self.command("psql");
        psql.args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", POSTGRES_DATABASE])
            .args(["-d", POSTGRES_DATABASE, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql]);
        self.run(psql, "psql")
    }

    /// The server's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin.join(program));
        command.current_dir(self.dir.path()).stdin(Stdio::null()).env_remove("PGPASSWORD");
        for name in ["PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGDATA", "PGSERVICE"] {
            command.env_remove(name);
        }
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::process::CommandExt::uid(&mut command, uid);
            std::os::unix::process::CommandExt::gid(&mut command, gid);
            // Its home (where psql looks for ~/.psqlrc) is the test's directory.
            command.env("HOME", self.dir.path());
        }
        command
    }

    fn run(&self, mut command: Command, what: &str) -> String {
        let out = run_bounded(&mut command, PG_CTL_LIMIT);
        assert!(
            out.status.success(),
            "{what} failed: {}\n{}\nserver log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.running {
            let mut pg_ctl = self.command("pg_ctl");
            pg_ctl.arg("-D").arg(&self.data).args(["-m", "immediate", "-w", "-t", "30", "stop"]);
            let _ = run_bounded(&mut pg_ctl, PG_CTL_LIMIT);
        }
    }
}

/// The directory of PostgreSQL's server binaries: `initdb` on `PATH`, else the newest of
/// Debian's `/usr/lib/postgresql/<version>/bin`.
fn postgres_bin() -> Option<PathBuf> {
    if let Some(initdb) = find_executable("initdb") {
        let resolved = std::fs::canonicalize(&initdb).unwrap_or(initdb);
        return resolved.parent().map(Path::to_path_buf);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// The uid and gid of the `postgres` user, from `/etc/passwd`.
fn postgres_user() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("/etc/passwd");
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&"postgres") && fields.len() > 3)
                .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
                .flatten()
        })
        .expect("running as root, PostgreSQL needs the `postgres` user (Debian's package makes it)")
}

fn chown(path: &Path, uid: u32, gid: u32) {
    let (uid, gid) = (rustix::process::Uid::from_raw(uid), rustix::process::Gid::from_raw(gid));
    rustix::fs::chown(path, Some(uid), Some(gid)).expect("hand the directory to postgres");
}
