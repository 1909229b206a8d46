//! Log output through tracing-subscriber: readable lines by default, JSON lines on request,
//! to stderr (stdout carries only the start-up banner); plus the observers that write the
//! audit and transfer logs and count metrics, each layer with its own filter.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::LogFormat;
use crate::observe::Observers;

/// Installs the global subscriber. `RUST_LOG` wins over `level`; the default is `info`.
pub fn init(format: LogFormat, level: Option<&str>, observers: Observers) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(from_env) if !from_env.is_empty() => EnvFilter::try_new(from_env)?,
        _ => EnvFilter::try_new(level.unwrap_or("info"))?,
    };
    let console = match format {
        LogFormat::Human => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(console)
        .with(observers.with_filter(Observers::filter()))
        .try_init()
        .map_err(|err| anyhow::anyhow!("installing the log subscriber: {err}"))
}
