//! Logging to stderr. Quiet by default (a failure is the one error line; retries are
//! summarised in it), `-v` shows steps and retries, `-vv` requests; `RUST_LOG` overrides.
//! Nothing logged carries a secret: the service client never logs headers, and the
//! connection string argument is redacted in `Debug`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the subscriber. Safe to call once per process.
pub fn init(verbosity: u8) {
    let default = match verbosity {
        0 => "error",
        1 => "add_tags_and_query=info,iothub_service=info",
        2 => "add_tags_and_query=debug,iothub_service=debug",
        _ => "add_tags_and_query=trace,iothub_service=trace,reqwest=debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Ignore "already set": only possible if something else installed one first.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
