//! The `add-tags-and-query` binary: parses arguments, sets up logging and a runtime, and hands
//! over to the library (see the crate docs in `lib.rs`).

use std::process::ExitCode;

use add_tags_and_query::{logging, Cli};
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("add-tags-and-query: error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(add_tags_and_query::run(
        cli,
        std::io::stdout().lock(),
        &mut std::io::stderr(),
    ));
    ExitCode::from(code)
}
