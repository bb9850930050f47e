//! `report-connectivity`: the device half of the device-twins tutorial on [`iothub_device`].
//!
//! A thin binary: parse arguments (`cli`), validate them into a `Config` (`config`), run the
//! device (`run`), print events (`output`) and map failures to the exit codes of DESIGN.md
//! (`error`).

mod cli;
mod config;
mod duration;
mod error;
mod output;
mod run;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::error::AppError;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_logging(cli.verbose);
    // Workspace rule: one crypto provider, installed before any TLS configuration is built.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let result = config::Config::from_cli(cli).and_then(|config| {
        let runtime = tokio::runtime::Runtime::new()
            .map_err(|e| AppError::Other(format!("cannot start the async runtime: {e}")))?;
        runtime.block_on(run::run(config))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            if let Some(hint) = e.hint() {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(e.exit_code())
        }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "warn,iothub_device=info,report_connectivity=info",
        _ => "info,iothub_device=debug,report_connectivity=debug,rumqttc=debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}
