//! The `report-connectivity` binary: parses arguments, sets up logging and a runtime, and hands
//! over to the library (see the crate docs in `lib.rs`).

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use report_connectivity::Cli;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("report-connectivity: error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    ExitCode::from(runtime.block_on(report_connectivity::run(cli)))
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
