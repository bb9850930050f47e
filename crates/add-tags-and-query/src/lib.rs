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

pub mod cli;
mod config;
mod error;
mod output;
mod run;

use std::io::Write;

use iothub_cli::exit;
use iothub_service::ServiceClient;

pub use crate::cli::Cli;
use crate::cli::OutputFormat;
use crate::config::Config;
use crate::error::AppError;
use crate::output::{JsonReporter, Reporter, TextReporter};

/// Runs the tool for a parsed command line, writing its results to `out` and a failure's
/// one-line message to `err`. Returns the process exit code (see the crate docs).
///
/// This is the whole binary minus argument parsing, logging set-up and the crypto provider
/// install, so the workspace's tutorial example (`examples/tutorial.rs`) can run it in-process
/// on its own runtime.
pub async fn run(cli: Cli, out: impl Write, err: &mut dyn Write) -> u8 {
    match execute(cli, out).await {
        Ok(()) => exit::OK,
        Err(failure) => {
            let code = failure.exit_code();
            if code != exit::OK {
                let _ = writeln!(err, "add-tags-and-query: error: {}", failure.one_line());
            }
            code
        }
    }
}

async fn execute(cli: Cli, out: impl Write) -> Result<(), AppError> {
    let config = Config::from_cli(cli)?;
    let mut builder = ServiceClient::builder(config.connection.clone());
    if let Some(pem) = &config.ca_pem {
        builder = builder.extra_ca_pem(pem.clone());
    }
    let client = builder.build()?;
    let mut reporter: Box<dyn Reporter + '_> = match config.output {
        OutputFormat::Text => Box::new(TextReporter::new(out)),
        OutputFormat::Json => Box::new(JsonReporter::new(out, client.host())),
    };
    run::run(&config, &client, reporter.as_mut()).await
}
