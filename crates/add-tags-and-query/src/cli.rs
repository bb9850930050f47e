//! Command-line arguments (clap derive). Parsing only validates; reading files, parsing the
//! connection string and JSON happen in [`crate::config`].
//!
//! Conventions shared with the other binaries (README "CLI reference"): `short` only for
//! `-c`, `-o` and `-v`; upper-case value names; every flag's doc comment is its `--help` text.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser, ValueEnum};
use iothub_cli::parse_duration;
/// The connection string's type; re-exported so callers need not name `iothub-cli`.
pub use iothub_cli::Secret;

/// The shape of `-o json`, shown in `--help`. Keep in sync with `output/json.rs` (a test
/// parses the real output against these names).
pub const JSON_SCHEMA_HELP: &str = "\
JSON OUTPUT (-o json): one document on stdout, written when the run completes; nothing is
written to stdout on failure. Field names are stable; new fields may be added.
  schemaVersion          1
  hub                    host[:port] of the hub
  statistics             {totalDeviceCount, enabledDeviceCount, disabledDeviceCount}
  devices                [{deviceId, status, connectionState, lastActivityTime}] or null (--no-list)
  twinUpdate             {deviceId, etag, version, tags, desiredVersion} or null (--no-update)
  queries                one entry per query, in order:
    heading              e.g. \"Devices in Redmond43\"
    query                the query text
    itemType             \"Twin\" (whole twins) or \"Raw\" (projections, aggregates), as the hub said
    rowCount             rows returned (after --top)
    deviceIds            deviceId of every row that has one, in order
    rows                 the rows themselves for non-Twin results, null for Twin results
    pages                result pages received
    requests             HTTP requests sent for this query, including retries
  wait                   {expectDevice, attempts, elapsedMs} with --wait, else null

EXIT CODES: 0 ok · 1 other failure (e.g. stale --etag) · 2 invalid usage or input (connection
string, JSON, query) · 3 authentication rejected · 4 device not found · 5 hub unreachable,
throttled or --wait timed out";

/// The back-end half of the Azure IoT Hub device-twins tutorial: prints registry statistics
/// and the device list, tags a device with its location, then runs twin queries.
///
/// The default run reproduces the tutorial: it patches the tags
/// {"location":{"region":"US","plant":"Redmond43"}} onto --device-id and runs
/// "SELECT * FROM devices WHERE tags.location.plant = 'Redmond43'" and the same query
/// "AND properties.reported.connectivity.type = 'cellular'".
#[derive(Debug, Parser)]
#[command(name = "add-tags-and-query", version, after_long_help = JSON_SCHEMA_HELP)]
pub struct Cli {
    /// Service connection string of a shared access policy (e.g. iothubowner).
    #[arg(
        short = 'c',
        long,
        env = "IOTHUB_CONNECTION_STRING",
        hide_env_values = true,
        value_name = "CONNECTION_STRING"
    )]
    pub connection_string: Secret,

    /// Device whose twin gets the tags (and desired properties).
    #[arg(long, value_name = "ID", default_value = "myDeviceId")]
    pub device_id: String,

    /// Tags to merge into the twin, inline JSON or @file [default: the tutorial's location tags].
    #[arg(long, value_name = "JSON|@FILE")]
    pub tags: Option<String>,

    /// Desired properties to merge into the twin in the same PATCH, inline JSON or @file.
    #[arg(long, value_name = "JSON|@FILE")]
    pub desired: Option<String>,

    /// Only update the twin if its etag is still this one (If-Match); default: any etag.
    #[arg(long, value_name = "ETAG")]
    pub etag: Option<String>,

    /// Run this query instead of the tutorial's two (repeatable; run in order).
    #[arg(long = "query", value_name = "SQL")]
    pub queries: Vec<String>,

    /// Return at most N rows per query and list at most N devices.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub top: Option<u64>,

    /// Rows per result page requested from the hub (x-ms-max-item-count; the hub caps it at 100).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub page_size: Option<u32>,

    /// Re-run the queries until the expected device appears in every result (the hub's query
    /// index lags behind writes), for at most DURATION (e.g. 30s, 2m); then exit 5.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub wait: Option<Duration>,

    /// Device to wait for with --wait [default: --device-id].
    #[arg(long, value_name = "ID", requires = "wait")]
    pub expect_device: Option<String>,

    /// Skip the device list.
    #[arg(long)]
    pub no_list: bool,

    /// Skip the twin update (only statistics, device list and queries).
    #[arg(long, conflicts_with_all = ["tags", "desired", "etag"])]
    pub no_update: bool,

    /// Output format: the tutorial's text lines, or one JSON document (schema below).
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT", default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,

    /// Extra CA certificate (PEM) to trust besides the system roots, e.g. the emulator's ca.pem.
    #[arg(long, env = "IOTHUB_CA_FILE", value_name = "PEM")]
    pub ca_file: Option<PathBuf>,

    /// More logging on stderr (-v: steps and retries, -vv: requests); RUST_LOG overrides.
    #[arg(short = 'v', long, action = ArgAction::Count)]
    pub verbose: u8,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// The tutorial's console lines.
    Text,
    /// One JSON document.
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    const CS: &str = "HostName=h;SharedAccessKeyName=p;SharedAccessKey=c2VjcmV0c2VjcmV0c2VjcmV0";

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let mut full = vec!["add-tags-and-query", "-c", CS];
        full.extend_from_slice(args);
        Cli::try_parse_from(full)
    }

    #[test]
    fn clap_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults() {
        let cli = parse(&[]).unwrap();
        assert_eq!(cli.device_id, "myDeviceId");
        assert_eq!(cli.output, OutputFormat::Text);
        assert!(cli.queries.is_empty() && cli.tags.is_none() && cli.wait.is_none());
        assert!(!format!("{cli:?}").contains("c2VjcmV0"));
    }

    #[test]
    fn every_flag_parses() {
        let cli = parse(&[
            "--device-id",
            "d1",
            "--tags",
            "{}",
            "--desired",
            "@d.json",
            "--etag",
            "AAAA",
            "--query",
            "SELECT 1",
            "--query",
            "SELECT 2",
            "--top",
            "5",
            "--page-size",
            "10",
            "--wait",
            "1m30s",
            "--expect-device",
            "d2",
            "--no-list",
            "-o",
            "json",
            "--ca-file",
            "/tmp/ca.pem",
            "-vv",
        ])
        .unwrap();
        assert_eq!(cli.queries, ["SELECT 1", "SELECT 2"]);
        assert_eq!(cli.top, Some(5));
        assert_eq!(cli.page_size, Some(10));
        assert_eq!(cli.wait, Some(Duration::from_secs(90)));
        assert_eq!(cli.expect_device.as_deref(), Some("d2"));
        assert_eq!(cli.output, OutputFormat::Json);
        assert_eq!(cli.verbose, 2);
        assert!(cli.no_list);
    }

    #[test]
    fn invalid_combinations_and_values() {
        assert!(parse(&["--expect-device", "d"]).is_err(), "needs --wait");
        assert!(parse(&["--no-update", "--tags", "{}"]).is_err());
        assert!(parse(&["--page-size", "0"]).is_err());
        assert!(parse(&["--top", "0"]).is_err());
        assert!(parse(&["--wait", "soon"]).is_err());
        assert!(parse(&["-o", "yaml"]).is_err());
    }

    #[test]
    fn help_documents_json_fields() {
        let help = Cli::command().render_long_help().to_string();
        for field in [
            "schemaVersion",
            "deviceIds",
            "itemType",
            "twinUpdate",
            "rowCount",
        ] {
            assert!(help.contains(field), "{field} missing from --help");
        }
    }
}
