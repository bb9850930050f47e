//! The `add-tags-and-query` binary: parses arguments, sets up logging, TLS and a runtime, and
//! hands over to the library (see the crate docs in `lib.rs`).

use std::process::ExitCode;

use add_tags_and_query::Cli;
use clap::Parser;
use iothub_cli::exit;

fn main() -> ExitCode {
    let cli = Cli::parse();
    iothub_cli::init_logging(cli.verbose);
    iothub_cli::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("add-tags-and-query: error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::OTHER);
        }
    };
    let code = runtime.block_on(add_tags_and_query::run(
        cli,
        std::io::stdout().lock(),
        &mut std::io::stderr(),
    ));
    ExitCode::from(code)
}
