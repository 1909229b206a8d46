//! Which events a rule takes: by kind, user and path glob.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::config::RuleConfig;
use crate::event::{EventKind, HookEvent};

/// Compiles path globs: `*` and `?` stay within one folder, `**` crosses folders. `None` for
/// no globs (every path).
pub(crate) fn path_globs(globs: &[String]) -> Result<Option<GlobSet>, String> {
    if globs.is_empty() {
        return Ok(None);
    }
    let mut set = GlobSetBuilder::new();
    for glob in globs {
        let compiled = GlobBuilder::new(glob)
            .literal_separator(true)
            .build()
            .map_err(|err| format!("path glob {glob:?}: {err}"))?;
        set.add(compiled);
    }
    set.build().map(Some).map_err(|err| format!("path globs: {err}"))
}

/// A rule's filter.
#[derive(Debug)]
pub(crate) struct Filter {
    events: Vec<EventKind>,
    users: Vec<String>,
    paths: Option<GlobSet>,
}

impl Filter {
    /// The filter of `rule` (validated: its globs compile).
    pub(crate) fn of(rule: &RuleConfig) -> Result<Filter, String> {
        Ok(Filter {
            events: rule.events.clone(),
            users: rule.users.clone(),
            paths: path_globs(&rule.paths)?,
        })
    }

    /// Whether the rule takes `event`.
    pub(crate) fn takes(&self, event: &HookEvent) -> bool {
        if !self.events.contains(&event.event) {
            return false;
        }
        if !self.users.is_empty() {
            let Some(user) = &event.user else { return false };
            if !self.users.iter().any(|u| u == user) {
                return false;
            }
        }
        match &self.paths {
            None => true,
            Some(globs) => [&event.path, &event.to]
                .into_iter()
                .flatten()
                .any(|path| globs.is_match(path.as_str())),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn rule(events: &[EventKind], users: &[&str], paths: &[&str]) -> Filter {
        let config: RuleConfig =
            serde_yaml::from_str("{ name: r, events: [upload] }").expect("yaml");
        let config = RuleConfig {
            events: events.to_vec(),
            users: users.iter().map(|u| (*u).to_owned()).collect(),
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
            ..config
        };
        Filter::of(&config).expect("compiles")
    }

    fn upload(user: &str, path: &str) -> HookEvent {
        let mut event = HookEvent::ban("127.0.0.1".parse().expect("ip"), Duration::ZERO, "-");
        event.event = EventKind::Upload;
        event.user = Some(user.to_owned());
        event.path = Some(path.to_owned());
        event
    }

    #[test]
    fn filters_by_kind_user_and_glob() {
        let arrivals = rule(&[EventKind::Upload], &["acme"], &["/incoming/*.csv"]);
        assert!(arrivals.takes(&upload("acme", "/incoming/a.csv")));
        assert!(
            !arrivals.takes(&upload("acme", "/incoming/deeper/a.csv")),
            "* stays in its folder"
        );
        assert!(!arrivals.takes(&upload("globex", "/incoming/a.csv")));
        let mut mkdir = upload("acme", "/incoming/a.csv");
        mkdir.event = EventKind::Mkdir;
        assert!(!arrivals.takes(&mkdir));

        let deep = rule(&[EventKind::Upload, EventKind::Rename], &[], &["/incoming/**"]);
        assert!(deep.takes(&upload("anyone", "/incoming/deeper/a.csv")));
        let mut rename = upload("anyone", "/tmp/x");
        rename.event = EventKind::Rename;
        rename.to = Some("/incoming/x".to_owned());
        assert!(deep.takes(&rename), "a rename matches by its new name too");
    }

    #[test]
    fn events_without_user_or_path_pass_only_open_filters() {
        let ban = HookEvent::ban("127.0.0.1".parse().expect("ip"), Duration::ZERO, "-");
        assert!(rule(&[EventKind::Ban], &[], &[]).takes(&ban));
        assert!(!rule(&[EventKind::Ban], &["acme"], &[]).takes(&ban));
        assert!(!rule(&[EventKind::Ban], &[], &["/**"]).takes(&ban));
    }
}
