//! Turns parsed arguments into a run plan: parses the connection string, reads the CA file,
//! parses JSON arguments and resolves defaults. All input errors surface here, before any
//! request is sent.

use std::num::NonZeroU32;
use std::time::Duration;

use iothub_auth::ServiceConnectionString;
use iothub_cli::{load_ca_file, parse_json_arg};
use iothub_service::{IfMatch, ServiceError, TwinPatch};
use serde_json::{json, Value};

use crate::cli::{Cli, OutputFormat};
use crate::error::AppError;

/// The tutorial's first query.
pub const REDMOND43_QUERY: &str = "SELECT * FROM devices WHERE tags.location.plant = 'Redmond43'";
/// The tutorial's second query.
pub const REDMOND43_CELLULAR_QUERY: &str = "SELECT * FROM devices WHERE tags.location.plant = 'Redmond43' AND properties.reported.connectivity.type = 'cellular'";

/// How often `--wait` re-runs the queries.
const WAIT_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Everything a run needs.
#[derive(Debug)]
pub struct Config {
    /// The hub and its credentials.
    pub connection: ServiceConnectionString,
    /// Extra CA certificate(s), PEM.
    pub ca_pem: Option<Vec<u8>>,
    /// Print the device list.
    pub list_devices: bool,
    /// The twin update, unless `--no-update`.
    pub update: Option<TwinUpdate>,
    /// Queries to run, in order.
    pub queries: Vec<QuerySpec>,
    /// `x-ms-max-item-count`.
    pub page_size: Option<NonZeroU32>,
    /// Row cap per query and for the device list.
    pub top: Option<u64>,
    /// `--wait`.
    pub wait: Option<WaitSpec>,
    /// Output format.
    pub output: OutputFormat,
}

/// The PATCH of the tutorial.
#[derive(Debug)]
pub struct TwinUpdate {
    /// Target device.
    pub device_id: String,
    /// Tags and desired properties.
    pub patch: TwinPatch,
    /// `If-Match`.
    pub if_match: IfMatch,
    /// The `--etag` text, for messages.
    pub etag: Option<String>,
}

/// One query and the heading it is printed under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuerySpec {
    /// e.g. `Devices in Redmond43`.
    pub heading: String,
    /// The query text.
    pub sql: String,
}

/// `--wait` / `--expect-device`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitSpec {
    /// Device that must appear in every query's results.
    pub device_id: String,
    /// Give up after this long.
    pub timeout: Duration,
    /// Pause between polls.
    pub poll_interval: Duration,
}

impl Config {
    /// Validates and resolves the arguments.
    ///
    /// # Errors
    /// An [`AppError`] with exit code 2 naming the bad argument.
    pub fn from_cli(cli: Cli) -> Result<Config, AppError> {
        let connection: ServiceConnectionString = cli.connection_string.expose().parse()?;
        let ca_pem = match &cli.ca_file {
            Some(path) => Some(load_ca_file(path)?.into_pem()),
            None => None,
        };
        let update = if cli.no_update {
            None
        } else {
            Some(twin_update(&cli)?)
        };
        Ok(Config {
            connection,
            ca_pem,
            list_devices: !cli.no_list,
            update,
            queries: query_specs(&cli.queries)?,
            page_size: cli.page_size.and_then(NonZeroU32::new),
            top: cli.top,
            wait: wait_spec(&cli),
            output: cli.output,
        })
    }
}

/// `--device-id`, `--tags` (default: the tutorial's location), `--desired` and `--etag`.
fn twin_update(cli: &Cli) -> Result<TwinUpdate, AppError> {
    let tags = match &cli.tags {
        Some(raw) => parse_json_arg("--tags", raw)?,
        None => tutorial_tags(),
    };
    let desired = cli
        .desired
        .as_deref()
        .map(|raw| parse_json_arg("--desired", raw))
        .transpose()?;
    let patch = TwinPatch::from_json(Some(tags), desired).map_err(|error| match error {
        ServiceError::NotAnObject { section, found } => {
            AppError::PatchNotAnObject { section, found }
        }
        other => AppError::from(other),
    })?;
    Ok(TwinUpdate {
        device_id: cli.device_id.clone(),
        patch,
        if_match: if_match(cli.etag.as_deref())?,
        etag: cli.etag.clone(),
    })
}

/// `{"location":{"region":"US","plant":"Redmond43"}}`, as the tutorial's script writes it.
fn tutorial_tags() -> Value {
    json!({"location": {"region": "US", "plant": "Redmond43"}})
}

/// `--etag`: checked now, so a malformed one is a usage error rather than a failed request.
fn if_match(etag: Option<&str>) -> Result<IfMatch, AppError> {
    let Some(etag) = etag else {
        return Ok(IfMatch::Any);
    };
    let if_match = IfMatch::Etag(etag.to_owned());
    if_match
        .header_value()
        .map_err(|e| AppError::Usage(format!("--etag: {e}")))?;
    Ok(if_match)
}

/// `--query` (repeatable), or the tutorial's two queries with their headings.
fn query_specs(queries: &[String]) -> Result<Vec<QuerySpec>, AppError> {
    if queries.is_empty() {
        return Ok(vec![
            QuerySpec {
                heading: "Devices in Redmond43".into(),
                sql: REDMOND43_QUERY.into(),
            },
            QuerySpec {
                heading: "Devices in Redmond43 using cellular network".into(),
                sql: REDMOND43_CELLULAR_QUERY.into(),
            },
        ]);
    }
    queries
        .iter()
        .map(|sql| {
            if sql.trim().is_empty() {
                return Err(AppError::Usage("--query: the query is empty".into()));
            }
            Ok(QuerySpec {
                heading: format!("Results of {}", sql.trim()),
                sql: sql.clone(),
            })
        })
        .collect()
}

/// `--wait` with `--expect-device`, which defaults to `--device-id`.
fn wait_spec(cli: &Cli) -> Option<WaitSpec> {
    cli.wait.map(|timeout| WaitSpec {
        device_id: cli
            .expect_device
            .clone()
            .unwrap_or_else(|| cli.device_id.clone()),
        timeout,
        poll_interval: WAIT_POLL_INTERVAL,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    const KEY: &str = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0";

    fn config(args: &[&str]) -> Result<Config, AppError> {
        let cs =
            format!("HostName=hub.example;SharedAccessKeyName=iothubowner;SharedAccessKey={KEY}");
        let mut full = vec!["add-tags-and-query".to_owned(), "-c".to_owned(), cs];
        full.extend(args.iter().map(|s| s.to_string()));
        Config::from_cli(Cli::try_parse_from(full).unwrap())
    }

    #[test]
    fn tutorial_defaults() {
        let c = config(&[]).unwrap();
        let update = c.update.unwrap();
        assert_eq!(update.device_id, "myDeviceId");
        assert_eq!(update.if_match, IfMatch::Any);
        assert_eq!(
            update.patch.to_body(),
            json!({"tags":{"location":{"region":"US","plant":"Redmond43"}}})
        );
        assert_eq!(c.queries.len(), 2);
        assert_eq!(c.queries[0].heading, "Devices in Redmond43");
        assert_eq!(c.queries[1].sql, REDMOND43_CELLULAR_QUERY);
        assert!(c.list_devices && c.wait.is_none());
    }

    #[test]
    fn custom_queries_tags_desired_and_wait() {
        let c = config(&[
            "--tags",
            r#"{"a":1}"#,
            "--desired",
            r#"{"b":2}"#,
            "--etag",
            "AAAAAAAAAAE=",
            "--query",
            "SELECT COUNT() AS n FROM devices",
            "--wait",
            "5s",
            "--device-id",
            "d9",
        ])
        .unwrap();
        let update = c.update.unwrap();
        assert_eq!(
            update.patch.to_body(),
            json!({"tags":{"a":1},"properties":{"desired":{"b":2}}})
        );
        assert_eq!(update.if_match, IfMatch::Etag("AAAAAAAAAAE=".into()));
        assert_eq!(
            c.queries[0].heading,
            "Results of SELECT COUNT() AS n FROM devices"
        );
        let wait = c.wait.unwrap();
        assert_eq!(wait.device_id, "d9", "defaults to --device-id");
        assert_eq!(wait.timeout, Duration::from_secs(5));
    }

    #[test]
    fn input_errors_are_usage_errors() {
        for (args, expected) in [
            (vec!["--tags", "{"], "--tags: invalid JSON"),
            (
                vec!["--tags", "[1]"],
                "--tags/--desired: tags must be a JSON object",
            ),
            (vec!["--desired", "{\"a\":}"], "--desired: invalid JSON"),
            (vec!["--etag", "a\"b"], "--etag:"),
            (vec!["--query", "  "], "--query: the query is empty"),
            (
                vec!["--ca-file", "/nonexistent/ca.pem"],
                "--ca-file: cannot read",
            ),
        ] {
            let err = config(&args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
            assert!(err.to_string().starts_with(expected), "{args:?}: {err}");
        }
    }

    #[test]
    fn connection_string_errors_hint_and_hide_the_key() {
        let device_cs = format!("HostName=hub.example;DeviceId=d1;SharedAccessKey={KEY}");
        let cli = Cli::try_parse_from(["x", "-c", device_cs.as_str()]).unwrap();
        let err = Config::from_cli(cli).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let msg = err.to_string();
        assert!(msg.contains("device connection string"), "{msg}");
        assert!(!msg.contains(KEY));
        let cli = Cli::try_parse_from(["x", "-c", "HostName=h;garbage"]).unwrap();
        let err = Config::from_cli(cli).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.to_string().starts_with("--connection-string: "),
            "{err}"
        );
    }
}
