//! How `serve` and `simnet` log: lines for people (`--log-format text`, the default) or one
//! JSON object per line for log shippers (`--log-format json`), both on stdout and filtered
//! by `RUST_LOG`.

use clap::{Args, ValueEnum};
use tracing_subscriber::EnvFilter;

/// Without `RUST_LOG`: the gateway's own news, requests that failed, and no SQL chatter.
const DEFAULT_FILTER: &str = "info,sqlx=warn,tower_http=info";

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message` and the event's
    /// fields, with the spans it happened in (`span`, `spans`).
    Json,
}

#[derive(Args)]
pub struct LogArgs {
    /// Log format: `text` (for people) or `json` (one object per line, for log shippers).
    #[arg(long, env = "BZAPPER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Installs the process's subscriber.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| DEFAULT_FILTER.into());
    let fmt = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => fmt.init(),
        // Flattened: `message` and the fields at the top level, where shippers look for them.
        LogFormat::Json => fmt.json().flatten_event(true).init(),
    }
}

/// A line for the operator (where the gateway listens, where its token is): printed as it is
/// next to text logs; a log event among JSON ones, so stdout stays one object per line.
pub fn announce(format: LogFormat, text: &str) {
    match format {
        LogFormat::Text => println!("{text}"),
        LogFormat::Json => tracing::info!(target: "bzapper", "{text}"),
    }
}
