//! `.ci/run` must set `CI=true` itself: run outside a CI service (which would set it), it
//! would otherwise skip every test whose client is missing and still report success.

use std::path::Path;

/// The lines of `.ci/run` that are commands, without comments and blank lines.
fn ci_script_commands() -> Vec<String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.ci/run");
    let text = std::fs::read_to_string(&script)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", script.display()));
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn ci_script_sets_ci_before_running_any_test() {
    let commands = ci_script_commands();
    let exported = commands.iter().position(|line| line == "export CI=true");
    let first_test = commands.iter().position(|line| line.starts_with("cargo test"));
    let first_test = first_test.expect("`.ci/run` runs `cargo test`");
    match exported {
        Some(at) => assert!(at < first_test, "`export CI=true` comes after `cargo test`"),
        None => panic!("`.ci/run` does not `export CI=true`: {commands:#?}"),
    }
}
