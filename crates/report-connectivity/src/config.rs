//! Turns parsed arguments into what a run needs: the connection string, client options and
//! the reported patch. All input validation (exit code 2) happens here, before any network I/O.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use iothub_cli::{load_ca_file, parse_json_arg, read_input_file};
use iothub_device::{Backoff, ClientOptions, DeviceConnectionString, TransportKind};
use serde_json::{json, Value};

use crate::cli::{Cli, Format, TransportArg};
use crate::error::AppError;
use crate::methods::MethodResponses;
use crate::telemetry::desired::check_interval;
use crate::telemetry::template::{RenderContext, Template};
use crate::telemetry::TelemetrySettings;

/// Everything a run needs.
pub struct Config {
    /// The device and its credentials.
    pub conn: DeviceConnectionString,
    /// Transport, CA, token lifetime and timeouts.
    pub options: ClientOptions,
    /// The reported properties to send.
    pub patch: Value,
    /// `--once`: stop after the acknowledgement.
    pub once: bool,
    /// `--duration`: listen this long after reporting.
    pub duration: Option<Duration>,
    /// `-o`.
    pub format: Format,
    /// `--method-response`: canned direct-method answers.
    pub methods: MethodResponses,
    /// `--telemetry` and the flags beside it; shared by every device of a fleet.
    pub telemetry: Option<Arc<TelemetrySettings>>,
}

impl Config {
    /// Validates and resolves the arguments.
    ///
    /// # Errors
    /// An [`AppError`] with exit code 2 naming the bad argument.
    pub fn from_cli(cli: Cli) -> Result<Config, AppError> {
        // The auth crate's errors never echo the text (it may hold a key) and carry a hint when
        // a service connection string was passed for a device one.
        let conn: DeviceConnectionString = cli
            .connection_string
            .as_ref()
            .map(|secret| secret.expose())
            .unwrap_or_default()
            .parse()
            .map_err(AppError::ConnectionString)?;
        let ca_pem = match &cli.ca_file {
            Some(path) => Some(load_ca_file(path)?.into_pem()),
            None => None,
        };
        let patch = match &cli.reported {
            Some(arg) => parse_patch(arg)?,
            None => json!({ "connectivity": { "type": cli.connectivity } }),
        };
        let methods = MethodResponses::parse(&cli.method_response)?;
        let telemetry = match &cli.telemetry {
            Some(arg) => Some(Arc::new(telemetry_settings(&cli, arg, &conn.device_id)?)),
            None => None,
        };
        let options = ClientOptions {
            transport: match cli.transport {
                TransportArg::Mqtt => TransportKind::Mqtt,
                TransportArg::MqttWs => TransportKind::MqttWebSockets,
            },
            ca_pem,
            sas_ttl: cli.sas_ttl,
            connect_timeout: cli.timeout,
            request_timeout: cli.timeout,
            backoff: reconnect_backoff(cli.reconnect_backoff),
            ..ClientOptions::default()
        };
        Ok(Config {
            conn,
            options,
            patch,
            once: cli.once,
            duration: cli.duration,
            format: cli.output,
            methods,
            telemetry,
        })
    }
}

/// `--reconnect-backoff`: the first delay's ceiling; the cap stays the client's default
/// (30 s) unless the first delay is already longer.
pub(crate) fn reconnect_backoff(initial: Duration) -> Backoff {
    let default = Backoff::default();
    Backoff {
        initial,
        max: default.max.max(initial),
    }
}

/// `--telemetry` and the flags beside it. A template rendered as JSON content must render to
/// JSON, so a typo shows now rather than as messages the back end cannot parse.
fn telemetry_settings(
    cli: &Cli,
    arg: &str,
    device_id: &str,
) -> Result<TelemetrySettings, AppError> {
    let text = match arg.strip_prefix('@') {
        Some(path) => {
            let bytes = read_input_file(Path::new(path))
                .map_err(|e| AppError::Telemetry(format!("--telemetry: {e}")))?;
            String::from_utf8(bytes).map_err(|_| {
                AppError::Telemetry(format!("--telemetry: '{path}' is not UTF-8 text"))
            })?
        }
        None => arg.to_owned(),
    };
    let template =
        Template::parse(&text).map_err(|e| AppError::Telemetry(format!("--telemetry: {e}")))?;
    if cli.content_type.eq_ignore_ascii_case("application/json") {
        let sample = template.render(&RenderContext {
            seq: 1,
            device_id,
            module_id: Some("module"),
        });
        if let Err(e) = serde_json::from_str::<Value>(&sample) {
            return Err(AppError::Telemetry(format!(
                "--telemetry: the template does not render to JSON ({e}): {sample}; quote string placeholders (\"{{{{now}}}}\"), or pass --content-type text/plain"
            )));
        }
    }
    let interval = check_interval(cli.telemetry_interval)
        .map_err(|e| AppError::Telemetry(format!("--telemetry-interval: {e}")))?;
    let mut properties = Vec::with_capacity(cli.property.len());
    for pair in &cli.property {
        match pair.split_once('=') {
            Some((key, value)) if !key.is_empty() && !key.starts_with('$') => {
                properties.push((key.to_owned(), value.to_owned()));
            }
            _ => {
                return Err(AppError::Telemetry(format!(
                    "--property '{pair}': expected KEY=VALUE with a KEY that is not empty and does not start with '$' (system properties have their own flags)"
                )))
            }
        }
    }
    Ok(TelemetrySettings {
        template,
        interval,
        count: cli.telemetry_count,
        properties,
        content_type: Some(cli.content_type.clone()).filter(|t| !t.is_empty()),
        content_encoding: Some(cli.content_encoding.clone()).filter(|e| !e.is_empty()),
    })
}

/// `--reported`: inline JSON, or `@path` to a JSON file. Must be an object.
pub(crate) fn parse_patch(arg: &str) -> Result<Value, AppError> {
    let value = parse_json_arg("--reported", arg)?;
    if !value.is_object() {
        return Err(AppError::ReportedNotAnObject);
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    const DEVICE: &str =
        "HostName=h.net;DeviceId=d;SharedAccessKey=NMgJDvdKTxjLi+xBxxkDDEwDJxEvOE5u8BiT0mVgPeg=";
    const SERVICE: &str = "HostName=h.net;SharedAccessKeyName=iothubowner;SharedAccessKey=NMgJDvdKTxjLi+xBxxkDDEwDJxEvOE5u8BiT0mVgPeg=";

    fn config(args: &[&str]) -> Result<Config, AppError> {
        let mut full = vec!["report-connectivity"];
        full.extend_from_slice(args);
        Config::from_cli(Cli::try_parse_from(full).expect("clap accepts these"))
    }

    #[test]
    fn default_patch_reports_cellular() {
        let c = config(&["-c", DEVICE]).unwrap();
        assert_eq!(c.patch, json!({"connectivity": {"type": "cellular"}}));
        let c = config(&["-c", DEVICE, "--connectivity", "wifi"]).unwrap();
        assert_eq!(c.patch, json!({"connectivity": {"type": "wifi"}}));
    }

    #[test]
    fn reported_accepts_inline_json_and_files() {
        let c = config(&["-c", DEVICE, "--reported", r#"{"a":{"b":1}}"#]).unwrap();
        assert_eq!(c.patch, json!({"a": {"b": 1}}));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.json");
        std::fs::write(&path, r#"{"fw":"1.2"}"#).unwrap();
        let arg = format!("@{}", path.display());
        let c = config(&["-c", DEVICE, "--reported", &arg]).unwrap();
        assert_eq!(c.patch, json!({"fw": "1.2"}));
    }

    #[test]
    fn bad_input_is_exit_code_2() {
        for args in [
            &["-c", DEVICE, "--reported", "[1]"][..],
            &["-c", DEVICE, "--reported", "{not json"],
            &["-c", DEVICE, "--reported", "@/nonexistent/p.json"],
            &["-c", DEVICE, "--reported", "@/dev/zero"],
            &["-c", DEVICE, "--ca-file", "/nonexistent/ca.pem"],
            &["-c", DEVICE, "--ca-file", "/dev/null"],
            &["-c", "HostName=h.net"],
        ] {
            let err = config(args).err().expect("must fail");
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn a_service_connection_string_is_refused_with_a_hint_and_no_secret() {
        let err = config(&["-c", SERVICE]).err().expect("must fail");
        assert_eq!(err.exit_code(), 2);
        let text = err.to_string();
        assert!(text.contains("service connection string"), "{text}");
        assert!(!text.contains("NMgJDvdK"), "secret leaked: {text}");
    }

    #[test]
    fn module_connection_strings_and_method_responses_are_accepted() {
        let module = "HostName=h.net;DeviceId=d;ModuleId=m;SharedAccessKey=NMgJDvdKTxjLi+xBxxkDDEwDJxEvOE5u8BiT0mVgPeg=";
        let c = config(&[
            "-c",
            module,
            "--method-response",
            "reboot=200:{\"ok\":true}",
        ])
        .unwrap();
        assert_eq!(c.conn.module_id.as_deref(), Some("m"));
        assert_eq!(c.methods.answer_for("reboot").status, 200);
        let err = config(&["-c", module, "--method-response", "reboot"])
            .err()
            .expect("must fail");
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn options_follow_the_flags() {
        let c = config(&[
            "-c",
            DEVICE,
            "--transport",
            "mqtt-ws",
            "--sas-ttl",
            "5s",
            "--timeout",
            "3s",
        ])
        .unwrap();
        assert_eq!(c.options.transport, TransportKind::MqttWebSockets);
        assert_eq!(c.options.sas_ttl, Duration::from_secs(5));
        assert_eq!(c.options.connect_timeout, Duration::from_secs(3));
        assert_eq!(c.options.request_timeout, Duration::from_secs(3));
    }
}
