//! Log output through tracing-subscriber: readable lines by default, JSON lines on request.
//! Logs go to stderr; stdout carries only the start-up banner.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber. `RUST_LOG` wins over `level`; the default is `info`.
pub fn init(format: LogFormat, level: Option<&str>) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(from_env) if !from_env.is_empty() => EnvFilter::try_new(from_env)?,
        _ => EnvFilter::try_new(level.unwrap_or("info"))?,
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
    };
    installed.map_err(|err| anyhow::anyhow!("installing the log subscriber: {err}"))
}
