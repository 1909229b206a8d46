//! The configuration Wharf runs under in the bench.
//!
//! The front-ends land one by one, each with its own section (`ftp:`, `ftps:`, `sftp:`,
//! `tftp:`) documented in `config/wharf.example.yaml`. Each section is tried in a few forms,
//! the first that `wharf check` accepts wins:
//! 1. the minimal section the bench knows for the front-end as it was when the bench was
//!    written (loopback listener on port 0, limits raised, TFTP rule for loopback);
//! 2. the example's section made safe and fit for a benchmark: every socket address becomes
//!    127.0.0.1:0, networks become loopback, user names become the bench's users, session
//!    and transfer limits are raised above what the scenarios open at once;
//! 3. a bare loopback listener, then an empty section.
//!
//! A section the binary rejects in every form (no such key yet) leaves that protocol "not
//! served". `--wharf-sections FILE` replaces all of this for the sections it holds.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use serde_yaml::{Mapping, Value};

use crate::credentials::Credentials;

/// The section names of the protocol front-ends.
pub const PROTOCOL_SECTIONS: [&str; 4] = ["ftp", "ftps", "sftp", "tftp"];

/// Sessions at once, in total and from one address (`wharf_access::SessionLimits`): above
/// the 1,000 idle sessions and 50 parallel downloads the bench opens (and Wharf's own
/// default total).
const SESSION_LIMIT: u64 = 2_000;

/// TFTP transfers at once, in total and from one address: above the 50 parallel downloads.
/// Not higher: Wharf warns at start when the open-file limit cannot hold every session and
/// transfer its caps allow (docs/SECURITY.md), and caps far above what the bench opens would
/// make that warning name load the bench never puts on it.
const TRANSFER_LIMIT: u64 = 200;

/// Every limit key the bench raises, with its value.
const LIMITS: [(&str, u64); 4] = [
    ("max_sessions", SESSION_LIMIT),
    ("max_sessions_per_address", SESSION_LIMIT),
    ("max_transfers", TRANSFER_LIMIT),
    ("max_transfers_per_address", TRANSFER_LIMIT),
];

/// The value the bench gives a limit key, if `key` is one.
fn raised_limit(key: &str) -> Option<u64> {
    LIMITS.iter().find(|(name, _)| *name == key).map(|(_, limit)| *limit)
}

/// The identity TFTP clients on loopback are mapped onto (as in Wharf's embedded default).
pub const TFTP_IDENTITY: &str = "tftp";

/// Everything but the protocol sections: storage on the share, the bench's users, quiet logs.
pub fn base_config(data_dir: &Path, share: &Path, credentials: &Credentials) -> Mapping {
    let text = format!(
        "data_dir: {data_dir:?}\n\
         shutdown_grace: 1s\n\
         storage:\n  root: {share:?}\n  fsync_on_commit: false\n\
         access:\n\
         \x20 login_failure_delay: 1s\n\
         \x20 users:\n\
         \x20   - name: {user}\n\
         \x20     password: {hash:?}\n\
         \x20     authorized_keys: [{key:?}]\n\
         \x20     home: /\n\
         \x20     protocols: [ftp, sftp]\n\
         \x20     permissions: {{ /: [\"*\"] }}\n\
         \x20   - name: {TFTP_IDENTITY}\n\
         \x20     passwordless: true\n\
         \x20     home: /\n\
         \x20     protocols: [tftp]\n\
         \x20     permissions: {{ /: [\"*\"] }}\n\
         log:\n  level: warn\n",
        data_dir = data_dir.display().to_string(),
        share = share.display().to_string(),
        user = credentials.wharf_user,
        hash = credentials.wharf_password_hash,
        key = credentials.ssh_public_key,
    );
    match serde_yaml::from_str::<Value>(&text) {
        Ok(Value::Mapping(mapping)) => mapping,
        _ => Mapping::new(),
    }
}

/// What the example's users are called, and which of them are TFTP identities.
#[derive(Debug, Default)]
struct ExampleUsers {
    tftp_identities: BTreeSet<String>,
    others: BTreeSet<String>,
}

fn example_users(example: &Mapping) -> ExampleUsers {
    let mut found = ExampleUsers::default();
    let users = example
        .get("access")
        .and_then(|access| access.get("users"))
        .and_then(Value::as_sequence)
        .cloned()
        .unwrap_or_default();
    for user in users {
        let Some(name) = user.get("name").and_then(Value::as_str) else { continue };
        let tftp = user
            .get("protocols")
            .and_then(Value::as_sequence)
            .is_some_and(|list| list.iter().any(|p| p.as_str() == Some("tftp")));
        if tftp {
            found.tftp_identities.insert(name.to_owned());
        } else {
            found.others.insert(name.to_owned());
        }
    }
    found
}

/// A network written as `address/prefix`.
fn is_network(text: &str) -> Option<IpAddr> {
    let (addr, prefix) = text.split_once('/')?;
    prefix.parse::<u8>().ok()?;
    addr.parse().ok()
}

/// Rewrites one scalar of an example section for the bench.
fn rewrite_string(text: &str, users: &ExampleUsers, bench_user: &str) -> String {
    if text.parse::<SocketAddr>().is_ok() {
        return "127.0.0.1:0".to_owned();
    }
    if let Some(ip) = is_network(text) {
        return if ip.is_ipv4() { "127.0.0.0/8".to_owned() } else { "::1/128".to_owned() };
    }
    if text.parse::<IpAddr>().is_ok() {
        return "127.0.0.1".to_owned();
    }
    if users.tftp_identities.contains(text) {
        return TFTP_IDENTITY.to_owned();
    }
    if users.others.contains(text) {
        return bench_user.to_owned();
    }
    text.to_owned()
}

fn rewrite(value: &mut Value, users: &ExampleUsers, bench_user: &str) {
    match value {
        Value::String(text) => *text = rewrite_string(text, users, bench_user),
        Value::Sequence(items) => {
            for item in items.iter_mut() {
                rewrite(item, users, bench_user);
            }
            // Two example addresses (IPv4 and IPv6) both became 127.0.0.1:0; one will do.
            let mut seen = Vec::new();
            items.retain(|item| {
                let keep = !seen.contains(item);
                seen.push(item.clone());
                keep
            });
        }
        Value::Mapping(mapping) => {
            for (key, item) in mapping.iter_mut() {
                match key.as_str() {
                    Some(name) if let Some(limit) = raised_limit(name) => {
                        *item = Value::from(limit);
                    }
                    Some("enabled") => *item = Value::Bool(true),
                    _ => rewrite(item, users, bench_user),
                }
            }
        }
        Value::Tagged(tagged) => rewrite(&mut tagged.value, users, bench_user),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

fn has_limit_key(value: &Value) -> bool {
    match value {
        Value::Mapping(mapping) => mapping.iter().any(|(key, item)| {
            key.as_str().and_then(raised_limit).is_some() || has_limit_key(item)
        }),
        Value::Sequence(items) => items.iter().any(has_limit_key),
        _ => false,
    }
}

fn raised_limits() -> Mapping {
    let mut limits = Mapping::new();
    for (key, limit) in LIMITS {
        limits.insert(Value::from(key), Value::from(limit));
    }
    limits
}

/// The section as the front-ends define it at the time of writing (see the module comment).
pub fn known_section(section: &str) -> Option<Value> {
    let limits = format!(
        "limits: {{ max_sessions: {SESSION_LIMIT}, max_sessions_per_address: {SESSION_LIMIT} }}"
    );
    let text = match section {
        "ftp" | "sftp" => format!("listen: [\"127.0.0.1:0\"]\n{limits}\n"),
        // AUTH TLS on the `ftp` listener with a generated certificate; no implicit listener.
        "ftps" => "implicit_listen: []\n".to_owned(),
        "tftp" => format!(
            "listen: [\"127.0.0.1:0\"]\n\
             rules: [{{ network: 127.0.0.0/8, identity: {TFTP_IDENTITY} }}]\n\
             max_transfers: {TRANSFER_LIMIT}\n\
             max_transfers_per_address: {TRANSFER_LIMIT}\n"
        ),
        _ => return None,
    };
    serde_yaml::from_str(&text).ok()
}

/// The example's section made fit for the bench (an empty mapping when it has none).
fn derived_section(example: Option<&Mapping>, section: &str, bench_user: &str) -> Value {
    let mut derived = Value::Mapping(Mapping::new());
    if let Some(example) = example {
        let users = example_users(example);
        if let Some(found) = example.get(section) {
            derived = found.clone();
            rewrite(&mut derived, &users, bench_user);
        }
    }
    derived
}

/// Candidate sections for one protocol, best first: the known section; the derived section
/// with its session limits raised (where the example shows no limit keys, both plausible
/// placements are tried), then as derived; a bare loopback listener; an empty section.
pub fn candidates(example: Option<&Mapping>, section: &str, bench_user: &str) -> Vec<Value> {
    let derived = derived_section(example, section, bench_user);
    let mut list: Vec<Value> = known_section(section).into_iter().collect();
    if !has_limit_key(&derived)
        && let Value::Mapping(mapping) = &derived
    {
        let mut nested = mapping.clone();
        nested.insert(Value::from("limits"), Value::Mapping(raised_limits()));
        list.push(Value::Mapping(nested));
        let mut flat = mapping.clone();
        flat.extend(raised_limits());
        list.push(Value::Mapping(flat));
    }
    if derived.as_mapping().is_some_and(|m| !m.is_empty()) {
        list.push(derived);
    }
    let bare: Value = serde_yaml::from_str("listen: [\"127.0.0.1:0\"]").unwrap_or_default();
    for fallback in [bare, Value::Mapping(Mapping::new())] {
        if !list.contains(&fallback) {
            list.push(fallback);
        }
    }
    list
}

/// An `ftps:` section that presents the bench's certificate, the one vsftpd presents too
/// (unless the section names a certificate of its own): with Wharf's generated one, the two
/// sides could differ in key type, and so in what each TLS handshake costs.
pub fn with_bench_certificate(section: Value, credentials: &Credentials) -> Value {
    let Value::Mapping(mut mapping) = section else { return section };
    if !mapping.contains_key("certificate_chain") && !mapping.contains_key("private_key") {
        let path = |p: &Path| Value::from(p.display().to_string());
        mapping.insert(Value::from("certificate_chain"), path(&credentials.tls_cert));
        mapping.insert(Value::from("private_key"), path(&credentials.tls_key));
    }
    Value::Mapping(mapping)
}

/// Loads a YAML mapping (the example configuration or the user's replacement sections).
pub fn load_mapping(path: &Path) -> anyhow::Result<Mapping> {
    let text = std::fs::read_to_string(path)?;
    match serde_yaml::from_str::<Value>(&text)? {
        Value::Mapping(mapping) => Ok(mapping),
        _ => anyhow::bail!("{} is not a YAML mapping", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "
access:
  users:
    - name: acme
      protocols: [ftp, sftp]
    - name: devices
      passwordless: true
      protocols: [tftp]
ftp:
  listen: [\"0.0.0.0:21\", \"[::]:21\"]
  passive_address: 203.0.113.7
  limits: { max_sessions: 100, max_sessions_per_address: 10 }
tftp:
  listen: [\"0.0.0.0:69\"]
  rules:
    - { network: 10.0.0.0/8, identity: devices }
";

    fn example() -> Mapping {
        match serde_yaml::from_str(EXAMPLE).expect("yaml") {
            Value::Mapping(m) => m,
            _ => panic!("mapping"),
        }
    }

    #[test]
    fn derived_sections_bind_loopback_and_raise_limits() {
        let ftp = derived_section(Some(&example()), "ftp", "bench");
        let listen = ftp.get("listen").and_then(Value::as_sequence).expect("listen");
        assert_eq!(listen, &vec![Value::from("127.0.0.1:0")]);
        assert_eq!(ftp.get("passive_address").and_then(Value::as_str), Some("127.0.0.1"));
        let limits = ftp.get("limits").expect("limits");
        assert_eq!(limits.get("max_sessions_per_address"), Some(&Value::from(SESSION_LIMIT)));
    }

    #[test]
    fn tftp_rules_map_loopback_onto_the_bench_identity() {
        let tftp = derived_section(Some(&example()), "tftp", "bench");
        let rule = &tftp["rules"][0];
        assert_eq!(rule["network"], Value::from("127.0.0.0/8"));
        assert_eq!(rule["identity"], Value::from(TFTP_IDENTITY));
    }

    #[test]
    fn candidates_go_from_known_to_derived_to_empty() {
        let list = candidates(Some(&example()), "tftp", "bench");
        assert_eq!(list.first(), known_section("tftp").as_ref());
        assert_eq!(list[0]["max_transfers_per_address"], Value::from(TRANSFER_LIMIT));
        // No limit keys in the example's tftp section: nested, then flat, then as derived.
        assert_eq!(list[1]["limits"]["max_sessions"], Value::from(SESSION_LIMIT));
        assert_eq!(list[2]["max_sessions_per_address"], Value::from(SESSION_LIMIT));
        assert_eq!(list[3], derived_section(Some(&example()), "tftp", "bench"));
        assert_eq!(list.last(), Some(&Value::Mapping(Mapping::new())));
    }

    #[test]
    fn a_section_unknown_to_the_bench_and_the_example_is_tried_bare() {
        let list = candidates(Some(&example()), "webdav", "bench");
        assert_eq!(list[list.len() - 2]["listen"][0], Value::from("127.0.0.1:0"));
        assert_eq!(list.last(), Some(&Value::Mapping(Mapping::new())));
    }

    fn credentials() -> Credentials {
        Credentials {
            ssh_key: "/s/client_ed25519".into(),
            ssh_public_key: "ssh-ed25519 AAAA bench".into(),
            unix_user: "bench".into(),
            wharf_user: "bench".into(),
            wharf_password: "pw".into(),
            wharf_password_hash: "$6$salt$hash".into(),
            tls_cert: "/s/ftps-cert.pem".into(),
            tls_key: "/s/ftps-key.pem".into(),
        }
    }

    #[test]
    fn ftps_sections_present_the_certificate_vsftpd_presents() {
        for candidate in candidates(Some(&example()), "ftps", "bench") {
            let section = with_bench_certificate(candidate, &credentials());
            assert_eq!(section["certificate_chain"], Value::from("/s/ftps-cert.pem"));
            assert_eq!(section["private_key"], Value::from("/s/ftps-key.pem"));
        }
        // A section given with its own certificate keeps it.
        let given: Value =
            serde_yaml::from_str("certificate_chain: /c.pem\nprivate_key: /k.pem").expect("yaml");
        assert_eq!(with_bench_certificate(given.clone(), &credentials()), given);
    }

    /// Wharf sets aside every TFTP transfer its cap allows at start (4 descriptors each, one
    /// more per mount) out of the open-file limit its FTP and SFTP sessions are admitted
    /// against (docs/SECURITY.md). Where the hard limit is 20,000 and cannot be raised (a
    /// container), the reserve must leave room for the bench's 1,000 idle FTP sessions (8
    /// descriptors each at worst) with half the limit to spare for SFTP; at 10,000
    /// transfers the reserve alone was 50,000 and no session was admitted.
    #[test]
    fn the_tftp_reserve_leaves_room_for_the_sessions_the_bench_opens() {
        let tftp = known_section("tftp").expect("tftp");
        let cap = tftp["max_transfers"].as_u64().expect("max_transfers");
        let reserve = 64 + cap * 5;
        let idle_ftp = 1_000 * 8;
        assert!(reserve + idle_ftp <= 20_000 / 2, "reserve {reserve} + FTP {idle_ftp}");
        assert!(cap >= 50, "the 50 parallel TFTP downloads fit under the cap");
    }
}
