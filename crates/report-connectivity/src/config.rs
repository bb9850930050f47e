//! Turns parsed arguments into what a run needs: the connection string, client options and
//! the reported patch. All input validation (exit code 2) happens here, before any network I/O.

use std::path::Path;
use std::time::Duration;

use iothub_device::{ClientOptions, DeviceConnectionString, TransportKind};
use serde_json::{json, Value};

use crate::cli::{Cli, Format, TransportArg};
use crate::error::AppError;

pub struct Config {
    pub conn: DeviceConnectionString,
    pub options: ClientOptions,
    pub patch: Value,
    pub once: bool,
    pub duration: Option<Duration>,
    pub format: Format,
}

impl Config {
    pub fn from_cli(cli: Cli) -> Result<Config, AppError> {
        // The auth crate's errors never echo the text (it may hold a key) and carry a hint when
        // a service connection string was passed for a device one.
        let conn: DeviceConnectionString = cli
            .connection_string
            .parse()
            .map_err(|e| AppError::Usage(format!("invalid device connection string: {e}")))?;
        let ca_pem = cli.ca_file.as_deref().map(read_ca).transpose()?;
        let patch = match &cli.reported {
            Some(arg) => parse_patch(arg)?,
            None => json!({ "connectivity": { "type": cli.connectivity } }),
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
            ..ClientOptions::default()
        };
        Ok(Config {
            conn,
            options,
            patch,
            once: cli.once,
            duration: cli.duration,
            format: cli.output,
        })
    }
}

fn read_ca(path: &Path) -> Result<Vec<u8>, AppError> {
    std::fs::read(path)
        .map_err(|e| AppError::Usage(format!("cannot read CA file {}: {e}", path.display())))
}

/// `--reported`: inline JSON, or `@path` to a JSON file. Must be an object.
fn parse_patch(arg: &str) -> Result<Value, AppError> {
    let (text, source) = match arg.strip_prefix('@') {
        Some(path) => (
            std::fs::read_to_string(path)
                .map_err(|e| AppError::Usage(format!("cannot read --reported file {path}: {e}")))?,
            path.to_owned(),
        ),
        None => (arg.to_owned(), "--reported".to_owned()),
    };
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| AppError::Usage(format!("{source} is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(AppError::Usage(format!(
            "{source} must be a JSON object (the reported properties to merge)"
        )));
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
            &["-c", DEVICE, "--ca-file", "/nonexistent/ca.pem"],
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
