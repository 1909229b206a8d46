//! The configuration Wharf runs under in the bench.
//!
//! The front-ends land one by one, each with its own section (`ftp:`, `ftps:`, `sftp:`,
//! `tftp:`) documented in `config/wharf.example.yaml`. The bench does not hard-code their
//! keys: it takes each section from the example and makes it safe and fit for a benchmark
//! (every socket address becomes 127.0.0.1:0, networks become loopback, user names become the
//! bench's users, session limits are raised above the idle-memory scenario's), then asks
//! `wharf check` whether the binary accepts it. A section the binary rejects (no such key yet)
//! leaves that protocol "not served". `--wharf-sections FILE` replaces derived sections.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use serde_yaml::{Mapping, Value};

use crate::credentials::Credentials;

/// The section names of the protocol front-ends.
pub const PROTOCOL_SECTIONS: [&str; 4] = ["ftp", "ftps", "sftp", "tftp"];

/// Session limit keys (`wharf_access::SessionLimits`) and the value the bench sets them to.
const LIMIT_KEYS: [&str; 2] = ["max_sessions", "max_sessions_per_address"];
const SESSION_LIMIT: u64 = 10_000;

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
                    Some(name) if LIMIT_KEYS.contains(&name) => {
                        *item = Value::from(SESSION_LIMIT);
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
            key.as_str().is_some_and(|k| LIMIT_KEYS.contains(&k)) || has_limit_key(item)
        }),
        Value::Sequence(items) => items.iter().any(has_limit_key),
        _ => false,
    }
}

fn raised_limits() -> Mapping {
    let mut limits = Mapping::new();
    for key in LIMIT_KEYS {
        limits.insert(Value::from(key), Value::from(SESSION_LIMIT));
    }
    limits
}

/// Candidate sections for one protocol, best first: the derived section with its session
/// limits raised (where the example shows no limit keys, both plausible placements are
/// tried), then as derived, then an empty section (the front-end's defaults).
pub fn candidates(example: Option<&Mapping>, section: &str, bench_user: &str) -> Vec<Value> {
    let mut derived = Value::Mapping(Mapping::new());
    if let Some(example) = example {
        let users = example_users(example);
        if let Some(found) = example.get(section) {
            derived = found.clone();
            rewrite(&mut derived, &users, bench_user);
        }
    }
    let mut list = Vec::new();
    if !has_limit_key(&derived) {
        if let Value::Mapping(mapping) = &derived {
            let mut nested = mapping.clone();
            nested.insert(Value::from("limits"), Value::Mapping(raised_limits()));
            list.push(Value::Mapping(nested));
            let mut flat = mapping.clone();
            flat.extend(raised_limits());
            list.push(Value::Mapping(flat));
        }
    }
    list.push(derived);
    let empty = Value::Mapping(Mapping::new());
    if !list.contains(&empty) {
        list.push(empty);
    }
    list
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
        let list = candidates(Some(&example()), "ftp", "bench");
        assert_eq!(list.len(), 2, "limits present: derived, then empty: {list:?}");
        let ftp = &list[0];
        let listen = ftp.get("listen").and_then(Value::as_sequence).expect("listen");
        assert_eq!(listen, &vec![Value::from("127.0.0.1:0")]);
        assert_eq!(ftp.get("passive_address").and_then(Value::as_str), Some("127.0.0.1"));
        let limits = ftp.get("limits").expect("limits");
        assert_eq!(limits.get("max_sessions_per_address"), Some(&Value::from(SESSION_LIMIT)));
    }

    #[test]
    fn tftp_rules_map_loopback_onto_the_bench_identity() {
        let list = candidates(Some(&example()), "tftp", "bench");
        // No limit keys in the example: nested limits, flat limits, then as derived.
        let rule = &list[2]["rules"][0];
        assert_eq!(rule["network"], Value::from("127.0.0.0/8"));
        assert_eq!(rule["identity"], Value::from(TFTP_IDENTITY));
        assert_eq!(list[0]["limits"]["max_sessions"], Value::from(SESSION_LIMIT));
        assert_eq!(list[1]["max_sessions_per_address"], Value::from(SESSION_LIMIT));
    }

    #[test]
    fn a_section_missing_from_the_example_is_tried_empty() {
        let list = candidates(Some(&example()), "sftp", "bench");
        assert_eq!(list.last(), Some(&Value::Mapping(Mapping::new())));
    }
}
