//! `report-connectivity`: the device half of the device-twins tutorial on [`iothub_device`].
//!
//! A thin binary over this library: parse arguments (`cli`), validate them into a `Config`
//! (`config`), run the device (`run`), answer direct methods with the canned answers
//! (`methods`), print events (`output`) and map failures to the shared exit codes of
//! [`iothub_cli::exit`] (`error`). [`run`] is the whole tool minus argument
//! parsing, logging set-up and the crypto provider install, so the tutorial example can run it
//! in-process.

pub mod cli;
mod config;
pub mod device;
mod error;
mod fleet;
mod methods;
pub mod metrics;
mod output;
mod run;
pub mod telemetry;

pub use crate::cli::Cli;

/// Runs the tool for a parsed command line: events go to stdout, a failure's message (and
/// hint) to stderr. Returns the process exit code.
pub async fn run(cli: Cli) -> u8 {
    if cli.fleet.is_some() {
        return fleet::run(cli).await;
    }
    let result = match config::Config::from_cli(cli) {
        Ok(config) => run::run(config).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => iothub_cli::exit::OK,
        Err(e) => report_error(&e),
    }
}

/// Prints a failure's message (and hint) to stderr; returns its exit code.
fn report_error(e: &error::AppError) -> u8 {
    eprintln!("report-connectivity: error: {e}");
    if let Some(hint) = e.hint() {
        eprintln!("hint: {hint}");
    }
    e.exit_code()
}
