//! The `hooks:` section: where undelivered events wait, and the rules that say which events
//! go where.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::HookError;
use crate::event::EventKind;

/// The event hooks.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HooksConfig {
    /// Where undelivered events wait, one folder per rule; relative paths are under the data
    /// directory.
    #[serde(default = "default_spool_dir")]
    pub spool_dir: PathBuf,
    /// Undelivered events each rule keeps at most; when a new one would pass this, the oldest
    /// is dropped (and counted in the metrics).
    #[serde(default = "default_max_spooled_events")]
    pub max_spooled_events: usize,
    /// Whether whole-file uploads compute the SHA-256 of their content as it is written, for
    /// the `sha256` of their events (and of their audit log lines). Off by default: it costs
    /// CPU on every upload.
    #[serde(default)]
    pub upload_sha256: bool,
    /// The rules, each with its own spool and delivery.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
}

/// One rule: which events, and where they go.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// The rule's name: letters, digits, `-` and `_` (it names the rule's spool folder).
    pub name: String,
    /// The events the rule takes.
    pub events: Vec<EventKind>,
    /// Only events of these users; empty: of every user. Events without a user (bans) pass
    /// only an empty list.
    #[serde(default)]
    pub users: Vec<String>,
    /// Only events on virtual paths matching one of these globs (`*` stays within a folder,
    /// `**` crosses folders; a rename matches by either name); empty: every event. Events
    /// without a path (logins, bans) pass only an empty list.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Deliver as an HTTP POST.
    #[serde(default)]
    pub http: Option<HttpConfig>,
    /// Deliver by running a command.
    #[serde(default)]
    pub command: Option<CommandConfig>,
    /// The pauses between attempts to deliver an event.
    #[serde(default)]
    pub retry: RetryConfig,
}

/// An HTTP POST of the event's JSON document.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Where to (`http://` or `https://`).
    pub url: String,
    /// A file holding the HMAC-SHA256 key that signs each body (`X-Wharf-Signature`); a
    /// trailing newline is not part of the key. Relative paths are under the data directory.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// For an `https://` url: a PEM file of the certificate authorities the endpoint's
    /// certificate must chain to (a private CA), instead of the system's. Relative paths are
    /// under the data directory.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The most one attempt may take, connection included.
    #[serde(default = "default_http_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

/// A command run once per event, the event in its environment.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {
    /// The program, by absolute path (run directly, never through a shell).
    pub program: PathBuf,
    /// Its arguments, as written (nothing of the event is put into them).
    #[serde(default)]
    pub args: Vec<String>,
    /// The most one run may take; then it is killed and the event tried again later.
    #[serde(default = "default_command_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

/// Pauses between attempts: `first`, then doubling up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// The pause after the first failed attempt.
    #[serde(default = "default_retry_first", with = "humantime_serde")]
    pub first: Duration,
    /// The longest pause.
    #[serde(default = "default_retry_max", with = "humantime_serde")]
    pub max: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig { first: default_retry_first(), max: default_retry_max() }
    }
}

fn default_spool_dir() -> PathBuf {
    PathBuf::from("hooks")
}

fn default_max_spooled_events() -> usize {
    10_000
}

fn default_http_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_command_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_retry_first() -> Duration {
    Duration::from_secs(1)
}

fn default_retry_max() -> Duration {
    Duration::from_secs(60)
}

/// Which way a rule delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryKind {
    /// [`RuleConfig::http`].
    Http,
    /// [`RuleConfig::command`].
    Command,
}

impl HooksConfig {
    /// Checks everything that can be checked without the network or the spool: names,
    /// actions, globs, URLs, timeouts.
    pub fn validate(&self) -> Result<(), HookError> {
        if self.max_spooled_events == 0 {
            return Err(HookError::Config("hooks.max_spooled_events must be at least 1".into()));
        }
        let mut names = HashSet::new();
        for rule in &self.rules {
            rule.validate()?;
            if !names.insert(rule.name.as_str()) {
                return Err(rule.invalid("its name is used by another rule"));
            }
        }
        Ok(())
    }
}

impl RuleConfig {
    fn invalid(&self, why: &str) -> HookError {
        HookError::Config(format!("hook rule `{}`: {why}", self.name))
    }

    /// Which way the rule delivers (exactly one must be configured).
    pub fn delivery(&self) -> Result<DeliveryKind, HookError> {
        match (&self.http, &self.command) {
            (Some(_), None) => Ok(DeliveryKind::Http),
            (None, Some(_)) => Ok(DeliveryKind::Command),
            (None, None) => Err(self.invalid("give it `http` or `command`")),
            (Some(_), Some(_)) => Err(self.invalid("give it `http` or `command`, not both")),
        }
    }

    fn validate(&self) -> Result<(), HookError> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !name_ok {
            return Err(HookError::Config(format!(
                "hook rule name {:?}: use 1 to 64 letters, digits, `-` or `_`",
                self.name
            )));
        }
        if self.events.is_empty() {
            return Err(self.invalid("list the `events` it takes"));
        }
        crate::rules::path_globs(&self.paths).map_err(|err| self.invalid(&err))?;
        if self.retry.first.is_zero() || self.retry.max < self.retry.first {
            return Err(
                self.invalid("retry: `first` must be above zero and `max` at least `first`")
            );
        }
        match self.delivery()? {
            DeliveryKind::Http => {
                let http = self.http.as_ref().ok_or_else(|| self.invalid("no `http`"))?;
                let url = reqwest::Url::parse(&http.url)
                    .map_err(|err| self.invalid(&format!("url {:?}: {err}", http.url)))?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(self.invalid("the url must be http:// or https://"));
                }
                if http.ca_file.is_some() && url.scheme() != "https" {
                    return Err(self.invalid("http.ca_file needs an https:// url"));
                }
                if http.timeout.is_zero() {
                    return Err(self.invalid("http.timeout must be above zero"));
                }
            }
            DeliveryKind::Command => {
                let command = self.command.as_ref().ok_or_else(|| self.invalid("no `command`"))?;
                if !command.program.is_absolute() {
                    return Err(self.invalid("command.program must be an absolute path"));
                }
                if command.timeout.is_zero() {
                    return Err(self.invalid("command.timeout must be above zero"));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> HooksConfig {
        serde_yaml::from_str(yaml).expect("parses")
    }

    #[test]
    fn a_rule_with_defaults_is_valid() {
        let config = parse(
            "rules:\n  - name: arrivals\n    events: [upload]\n    http: { url: \"http://127.0.0.1:9/in\" }\n",
        );
        config.validate().expect("valid");
        assert_eq!(config.spool_dir, PathBuf::from("hooks"));
        assert_eq!(config.rules[0].retry, RetryConfig::default());
        assert_eq!(config.rules[0].http.as_ref().map(|h| h.timeout), Some(Duration::from_secs(10)));
    }

    #[test]
    fn mistakes_are_named() {
        for (yaml, expected) in [
            ("rules: [{ name: a, events: [upload] }]", "give it `http` or `command`"),
            (
                "rules: [{ name: a, events: [upload], http: { url: \"http://x/\" }, command: { program: /bin/true } }]",
                "not both",
            ),
            (
                "rules: [{ name: \"a b\", events: [upload], http: { url: \"http://x/\" } }]",
                "letters",
            ),
            ("rules: [{ name: a, events: [], http: { url: \"http://x/\" } }]", "events"),
            ("rules: [{ name: a, events: [upload], http: { url: \"ftp://x/\" } }]", "http://"),
            ("rules: [{ name: a, events: [upload], command: { program: true } }]", "absolute"),
            (
                "rules: [{ name: a, events: [upload], paths: [\"/a/[\"], http: { url: \"http://x/\" } }]",
                "glob",
            ),
            (
                "rules: [{ name: a, events: [upload], http: { url: \"http://x/\" } }, { name: a, events: [mkdir], http: { url: \"http://x/\" } }]",
                "used by another rule",
            ),
            (
                "rules: [{ name: a, events: [upload], http: { url: \"http://x/\" }, retry: { first: 2s, max: 1s } }]",
                "retry",
            ),
            ("max_spooled_events: 0", "at least 1"),
            (
                "rules: [{ name: a, events: [upload], http: { url: \"http://x/\", ca_file: ca.pem } }]",
                "https://",
            ),
        ] {
            let err = parse(yaml).validate().expect_err(yaml).to_string();
            assert!(err.contains(expected), "{yaml}: {err}");
        }
    }

    #[test]
    fn unknown_events_and_fields_are_refused_when_parsed() {
        assert!(
            serde_yaml::from_str::<HooksConfig>("rules: [{ name: a, events: [uplaod] }]").is_err()
        );
        assert!(serde_yaml::from_str::<HooksConfig>("spool: x").is_err());
    }
}
