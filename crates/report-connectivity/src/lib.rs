//! `report-connectivity`: the device half of the device-twins tutorial on [`iothub_device`].
//!
//! A thin binary over this library: parse arguments (`cli`), validate them into a `Config`
//! (`config`), run the device (`run`), print events (`output`) and map failures to the exit
//! codes of DESIGN.md (`error`). [`run`] is the whole tool minus argument parsing and logging
//! set-up, so the tutorial example can run it in-process.

pub mod cli;
mod config;
mod duration;
mod error;
mod output;
mod run;

pub use crate::cli::Cli;

/// Runs the tool for a parsed command line: events go to stdout, a failure's message (and
/// hint) to stderr. Returns the process exit code.
pub async fn run(cli: Cli) -> u8 {
    // Workspace rule: one crypto provider, installed before any TLS configuration is built.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let result = match config::Config::from_cli(cli) {
        Ok(config) => run::run(config).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("report-connectivity: error: {e}");
            if let Some(hint) = e.hint() {
                eprintln!("hint: {hint}");
            }
            e.exit_code()
        }
    }
}
