//! `add-tags-and-query`: the back-end half of the Azure IoT Hub device-twins tutorial, on a
//! real service client ([`iothub_service`]).
//!
//! The default run prints the registry statistics (total, enabled, disabled) and the device
//! list, merges the tags `{"location":{"region":"US","plant":"Redmond43"}}` into the twin of
//! `--device-id` (default `myDeviceId`), then runs
//! `SELECT * FROM devices WHERE tags.location.plant = 'Redmond43'` and the same query
//! `AND properties.reported.connectivity.type = 'cellular'`, printing the matching device
//! IDs under "Devices in Redmond43:" and "Devices in Redmond43 using cellular network:".
//!
//! Flags: `--tags`/`--desired` (inline JSON or `@file`), `--etag`, `--query SQL`
//! (repeatable, replaces the two), `--top N`, `--page-size N`, `--wait DURATION` with
//! `--expect-device ID`, `--no-list`, `--no-update`, `-o text|json`, `--ca-file PEM`,
//! `-v`/`-vv`. Non-twin results (projections, `COUNT`, `GROUP BY`) print as a table.
//!
//! `-o json` writes one document with stable field names: `schemaVersion`, `hub`,
//! `statistics` {`totalDeviceCount`, `enabledDeviceCount`, `disabledDeviceCount`},
//! `devices` [{`deviceId`, `status`, `connectionState`, `lastActivityTime`}] or null,
//! `twinUpdate` {`deviceId`, `etag`, `version`, `tags`, `desiredVersion`} or null,
//! `queries` [{`heading`, `query`, `itemType`, `rowCount`, `deviceIds`, `rows`, `pages`,
//! `requests`}], `wait` {`expectDevice`, `attempts`, `elapsedMs`} or null. `--help` shows the
//! same list with explanations.
//!
//! Exit codes: 0 ok · 1 other failure (e.g. stale `--etag`, untrusted certificate) · 2 invalid
//! usage or input (connection string, JSON, query) · 3 authentication rejected · 4 device not
//! found · 5 hub unreachable, throttled beyond the retry budget, or `--wait` timed out.
//! Errors are one line on stderr and never contain the key.

mod cli;
mod config;
mod duration_arg;
mod error;
mod json_arg;
mod logging;
mod output;
mod run;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use iothub_service::ServiceClient;

use crate::cli::{Cli, OutputFormat};
use crate::config::Config;
use crate::error::AppError;
use crate::output::{JsonReporter, Reporter, TextReporter};

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.verbose);
    let _ = rustls::crypto::ring::default_provider().install_default();
    match execute(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let code = err.exit_code();
            if code != error::EXIT_OK {
                let _ = writeln!(
                    std::io::stderr(),
                    "add-tags-and-query: error: {}",
                    err.one_line()
                );
            }
            ExitCode::from(code)
        }
    }
}

fn execute(cli: Cli) -> Result<(), AppError> {
    let config = Config::from_cli(cli)?;
    let mut builder = ServiceClient::builder(config.connection.clone());
    if let Some(pem) = &config.ca_pem {
        builder = builder.extra_ca_pem(pem.clone());
    }
    let client = builder.build()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| AppError::Internal(format!("cannot start the async runtime: {e}")))?;
    let stdout = std::io::stdout().lock();
    let mut reporter: Box<dyn Reporter> = match config.output {
        OutputFormat::Text => Box::new(TextReporter::new(stdout)),
        OutputFormat::Json => Box::new(JsonReporter::new(stdout, client.host())),
    };
    runtime.block_on(run::run(&config, &client, reporter.as_mut()))
}
