//! Who a TFTP client is: its source network, mapped by ordered rules onto an identity (a
//! passwordless user of the shared layer). TFTP has no login, so this table is the whole of
//! authentication; what the identity may then do is its own mounts and permissions.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;
use wharf_access::user::canonical_ip;

/// One rule: clients from `network` act as `identity`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessRule {
    /// Source network in CIDR form, such as `10.20.0.0/16` or `2001:db8::/32`. IPv4 clients
    /// reaching an IPv6 socket (`::ffff:10.20.0.5`) match IPv4 networks.
    pub network: IpNet,
    /// The user (from the users file, `passwordless: true`, `protocols: [tftp]`) these
    /// clients act as.
    pub identity: String,
}

/// The rules in order; the first whose network holds the client decides.
#[derive(Debug, Clone, Default)]
pub struct AccessRules {
    rules: Vec<AccessRule>,
}

impl AccessRules {
    /// The rules, in the order they are tried.
    pub fn new(rules: Vec<AccessRule>) -> Self {
        AccessRules { rules }
    }

    /// The identity of a client at `addr`, or `None` when no rule holds it.
    pub fn identity_for(&self, addr: IpAddr) -> Option<&str> {
        let addr = canonical_ip(addr);
        self.rules
            .iter()
            .find(|rule| rule.network.contains(&addr))
            .map(|rule| rule.identity.as_str())
    }

    /// The rules, in order.
    pub fn iter(&self) -> impl Iterator<Item = &AccessRule> {
        self.rules.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(network: &str, identity: &str) -> AccessRule {
        AccessRule { network: network.parse().expect("cidr"), identity: identity.to_owned() }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn first_match_wins() {
        let rules = AccessRules::new(vec![
            rule("10.20.0.0/16", "firmware-readers"),
            rule("10.20.5.0/24", "never-reached"),
            rule("10.0.0.0/8", "config-writers"),
            rule("2001:db8::/32", "v6-devices"),
        ]);
        assert_eq!(rules.identity_for(ip("10.20.5.9")), Some("firmware-readers"));
        assert_eq!(rules.identity_for(ip("10.30.0.1")), Some("config-writers"));
        assert_eq!(rules.identity_for(ip("2001:db8::7")), Some("v6-devices"));
        assert_eq!(rules.identity_for(ip("192.168.1.1")), None);
        assert_eq!(rules.identity_for(ip("2001:db9::1")), None);
    }

    #[test]
    fn ipv4_mapped_addresses_match_ipv4_rules() {
        let rules = AccessRules::new(vec![rule("10.20.0.0/16", "devices")]);
        assert_eq!(rules.identity_for(ip("::ffff:10.20.1.2")), Some("devices"));
        assert_eq!(rules.identity_for(ip("::ffff:10.21.1.2")), None);
    }

    #[test]
    fn no_rules_admit_no_one() {
        assert_eq!(AccessRules::default().identity_for(ip("127.0.0.1")), None);
    }

    #[test]
    fn rules_deserialize_and_refuse_unknown_keys() {
        let parsed: Vec<AccessRule> =
            serde_yaml::from_str("- { network: 10.0.0.0/8, identity: devices }").expect("yaml");
        assert_eq!(parsed, vec![rule("10.0.0.0/8", "devices")]);
        let bad = serde_yaml::from_str::<Vec<AccessRule>>(
            "- { network: 10.0.0.0/8, identity: devices, user: x }",
        );
        assert!(bad.is_err());
        let bad_cidr =
            serde_yaml::from_str::<Vec<AccessRule>>("- { network: 10.0.0.0/33, identity: d }");
        assert!(bad_cidr.is_err());
    }
}
