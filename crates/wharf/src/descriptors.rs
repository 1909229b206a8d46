//! Descriptors as a budget: at start the binary raises its open-file limit to the hard limit;
//! what the process needs for itself is set aside (the reserve), and the rest is what
//! admission lets sessions hold, each its worst case (`docs/SECURITY.md`, "Admission and
//! descriptors"). A configuration whose caps the limit cannot all hold at their worst is
//! warned about at start and by `wharf check`; it still runs, and refuses sessions as "too
//! many" once the budget is spent.

use std::fmt::Write as _;

use wharf_access::UserDb;

use crate::config::WharfConfig;

/// Descriptors the process holds for itself whatever the configuration: standard input,
/// output and error, the runtime's (epoll, eventfd, the signal pipe), the storage root, the
/// audit and transfer logs, and what a reload or the periodic save of the bans opens for a
/// moment. A server serving every protocol holds 19 of them with its listeners; the rest is
/// margin for what libraries open.
pub const PROCESS_RESERVE: usize = 64;

/// The open-file limit (`RLIMIT_NOFILE`); `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFileLimit {
    /// The limit the process runs under.
    pub soft: Option<u64>,
    /// The most it may be raised to.
    pub hard: Option<u64>,
}

impl OpenFileLimit {
    /// The process's limit now.
    pub fn current() -> OpenFileLimit {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        OpenFileLimit { soft: limit.current, hard: limit.maximum }
    }
}

/// Raises the soft open-file limit to the hard one (sessions hold sockets and files; the usual
/// soft limit of 1024 would cap a busy server far below what it can serve), logs what the
/// process got, and returns it.
pub fn raise_open_file_limit() -> OpenFileLimit {
    use rustix::process::{Resource, Rlimit, setrlimit};
    let before = OpenFileLimit::current();
    if before.soft != before.hard {
        let raised = Rlimit { current: before.hard, maximum: before.hard };
        if let Err(err) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(error = %err, "could not raise the open-file limit");
        }
    }
    let now = OpenFileLimit::current();
    tracing::info!(
        soft = %show(now.soft),
        hard = %show(now.hard),
        was = %show(before.soft),
        "open-file limit"
    );
    now
}

fn show(limit: Option<u64>) -> String {
    limit.map_or_else(|| "unlimited".to_owned(), |n| n.to_string())
}

/// What one listener's sessions may hold at worst.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerBudget {
    /// The listener (or the listeners sharing its caps), as named in the banner.
    pub name: &'static str,
    /// Its cap on sessions in total.
    pub max_sessions: usize,
    /// Its cap on sessions from one address.
    pub max_per_address: usize,
    /// Descriptors one session holds at most, mounts included.
    pub per_session: usize,
}

impl ListenerBudget {
    /// Descriptors all its sessions hold at most.
    pub fn worst_case(&self) -> usize {
        self.max_sessions.saturating_mul(self.per_session)
    }
}

/// Where a configuration's descriptors go at worst.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescriptorPlan {
    /// Set aside for what is not an admitted session: [`PROCESS_RESERVE`] and the listeners.
    pub reserve: usize,
    /// The listeners admission budgets.
    pub listeners: Vec<ListenerBudget>,
}

impl DescriptorPlan {
    /// The plan of `config` with `users` (each mount of a logged-in session holds a
    /// descriptor, so the user with the most mounts counts, or what an external
    /// authentication answer may define).
    pub fn of(config: &WharfConfig, users: &UserDb) -> DescriptorPlan {
        let external = config.external_auth.as_ref().map_or(0, |e| e.max_mounts);
        let mounts = users.max_mounts().max(external);
        let mut listeners = Vec::new();
        let mut sockets = 0usize;
        let ftp = config.ftp.clone().unwrap_or_default();
        let ftp_listeners = if config.ftp.is_some() { ftp.listen.len() } else { 0 };
        let implicit = config.ftps.as_ref().map_or(0, |ftps| ftps.implicit_listen.len());
        if ftp_listeners + implicit > 0 {
            sockets += ftp_listeners + implicit;
            // Implicit FTPS shares the FTP listeners' caps, except when those do not offer TLS
            // (`ftps.explicit.control: off`): then it has caps of its own, the same numbers.
            let separate =
                config.ftps.as_ref().is_some_and(|ftps| ftps.explicit_policy().is_none())
                    && ftp_listeners > 0
                    && implicit > 0;
            let services = if separate { 2 } else { 1 };
            listeners.push(ListenerBudget {
                name: "FTP",
                max_sessions: ftp.limits.max_sessions.saturating_mul(services),
                max_per_address: ftp.limits.max_sessions_per_address.saturating_mul(services),
                per_session: wharf_ftp::DESCRIPTORS_PER_SESSION.saturating_add(mounts),
            });
        }
        if let Some(sftp) = config.sftp.as_ref().filter(|sftp| !sftp.listen.is_empty()) {
            sockets += sftp.listen.len();
            listeners.push(ListenerBudget {
                name: "SFTP",
                max_sessions: sftp.limits.max_sessions,
                max_per_address: sftp.limits.max_sessions_per_address,
                per_session: sftp.descriptors_per_connection().saturating_add(mounts),
            });
        }
        let http = [
            ("metrics", config.metrics.as_ref().map(|metrics| metrics.limits)),
            ("admin", config.admin.as_ref().map(|admin| admin.limits)),
        ];
        for (name, limits) in http.into_iter().filter_map(|(name, l)| Some((name, l?))) {
            sockets += 1;
            listeners.push(ListenerBudget {
                name,
                max_sessions: limits.max_sessions,
                max_per_address: limits.max_sessions_per_address,
                per_session: crate::http_listener::DESCRIPTORS_PER_CONNECTION,
            });
        }
        if let Some(section) = config.tftp.as_ref().filter(|tftp| !tftp.listen.is_empty()) {
            sockets += section.listen.len();
            // TFTP transfers are admitted against the same budget, each taking its worst
            // case when its request is admitted (`wharf-tftp`'s admission).
            listeners.push(ListenerBudget {
                name: "TFTP",
                max_sessions: section.max_transfers,
                max_per_address: section.max_transfers_per_address,
                per_session: wharf_tftp::DESCRIPTORS_PER_TRANSFER.saturating_add(mounts),
            });
        }
        let reserve = PROCESS_RESERVE.saturating_add(sockets);
        DescriptorPlan { reserve, listeners }
    }

    /// Descriptors sessions may hold under the open-file limit `limit`; `None` (unlimited)
    /// leaves sessions unbudgeted.
    pub fn capacity(&self, limit: Option<u64>) -> usize {
        match limit {
            Some(limit) => {
                usize::try_from(limit).unwrap_or(usize::MAX).saturating_sub(self.reserve)
            }
            None => usize::MAX,
        }
    }

    /// Descriptors the process may hold at worst: the reserve and every listener's sessions
    /// at their caps.
    pub fn worst_case(&self) -> usize {
        self.listeners.iter().fold(self.reserve, |sum, l| sum.saturating_add(l.worst_case()))
    }

    /// A warning when the open-file limit `limit` cannot hold every configured session at its
    /// worst case; `None` when it can.
    pub fn shortfall(&self, limit: Option<u64>) -> Option<String> {
        let limit = limit?;
        let worst = self.worst_case();
        if u64::try_from(worst).is_ok_and(|worst| worst <= limit) {
            return None;
        }
        let capacity = self.capacity(Some(limit));
        let mut text = format!(
            "the open-file limit ({limit}) cannot hold every configured session at its worst \
             case ({worst} descriptors: {} reserved",
            self.reserve
        );
        for l in &self.listeners {
            let _ = write!(text, ", {} {} x {}", l.name, l.max_sessions, l.per_session);
        }
        text.push_str("); sessions past the budget are refused as \"too many sessions\"");
        for l in &self.listeners {
            let fit = capacity / l.per_session.max(1);
            if fit < l.max_sessions {
                let _ = write!(text, "; {} alone fits {fit} of {}", l.name, l.max_sessions);
            }
        }
        text.push_str(". Raise the hard limit (LimitNOFILE) or lower the caps.");
        Some(text)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{ConfigSource, LoadedConfig};

    fn plan(yaml: &str, users: &str) -> DescriptorPlan {
        let loaded =
            LoadedConfig::parse(yaml, ConfigSource::Embedded, Path::new("/x")).expect("config");
        let file: wharf_access::UsersFile = serde_yaml::from_str(users).expect("users");
        let users = UserDb::from_configs(file.users).expect("users");
        DescriptorPlan::of(&loaded.config, &users)
    }

    const CONFIG: &str = "ftp: { listen: [\"127.0.0.1:0\"], limits: { max_sessions: 10, max_sessions_per_address: 2 } }\n\
         ftps: { implicit_listen: [\"127.0.0.1:0\"] }\n\
         sftp: { listen: [\"127.0.0.1:0\"], max_open_handles: 8, limits: { max_sessions: 5, max_sessions_per_address: 1 } }\n\
         tftp: { listen: [\"127.0.0.1:0\"], max_transfers: 4 }\n\
         metrics: { listen: \"127.0.0.1:0\" }\n";

    const USERS: &str = "users:\n  - { name: a, passwordless: true, home: a, mounts: { /b: b } }\n";

    #[test]
    fn the_plan_counts_each_listener_and_the_reserve_from_the_configuration() {
        let plan = plan(CONFIG, USERS);
        let mounts = 2;
        let names: Vec<_> = plan.listeners.iter().map(|l| l.name).collect();
        assert_eq!(names, ["FTP", "SFTP", "metrics", "TFTP"]);
        let ftp = &plan.listeners[0];
        assert_eq!((ftp.max_sessions, ftp.max_per_address), (10, 2), "implicit FTPS shares");
        assert_eq!(ftp.per_session, wharf_ftp::DESCRIPTORS_PER_SESSION + mounts);
        assert_eq!(
            plan.listeners[1].per_session,
            1 + 4 * 2 + 16 + mounts,
            "handles beyond 16 pay later"
        );
        assert_eq!(plan.listeners[2].per_session, 1, "scrapes hold no mounts");
        let listening_sockets = 5;
        let tftp = &plan.listeners[3];
        assert_eq!(tftp.max_sessions, 4);
        assert_eq!(tftp.per_session, wharf_tftp::DESCRIPTORS_PER_TRANSFER + mounts);
        assert_eq!(plan.reserve, PROCESS_RESERVE + listening_sockets, "no transfer set aside");
        assert_eq!(plan.capacity(Some(10_000)), 10_000 - plan.reserve);
        assert_eq!(plan.capacity(None), usize::MAX);
    }

    #[test]
    fn a_limit_that_cannot_hold_the_caps_is_warned_about() {
        let plan = plan(CONFIG, USERS);
        let worst = plan.worst_case() as u64;
        assert_eq!(plan.shortfall(Some(worst)), None);
        assert_eq!(plan.shortfall(None), None);
        let warning = plan.shortfall(Some(worst - 1)).expect("one short");
        assert!(warning.contains(&format!("({})", worst - 1)), "{warning}");
        assert!(warning.contains("SFTP 5 x"), "{warning}");
        let room = 2 * plan.listeners[1].per_session;
        let tight = plan.shortfall(Some((plan.reserve + room) as u64)).expect("tight");
        assert!(tight.contains("SFTP alone fits 2 of 5"), "{tight}");
    }
}
