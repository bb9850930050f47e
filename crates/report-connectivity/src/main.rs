//! The `report-connectivity` binary: parses arguments, sets up logging, TLS and a runtime, and
//! hands over to the library (see the crate docs in `lib.rs`).

use std::process::ExitCode;

use clap::Parser;
use iothub_cli::exit;
use report_connectivity::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    iothub_cli::init_logging(cli.verbose);
    iothub_cli::install_crypto_provider();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("report-connectivity: error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::OTHER);
        }
    };
    ExitCode::from(runtime.block_on(report_connectivity::run(cli)))
}
