//! Command-line surface (clap derive). Validation only; no I/O here — `config` turns this
//! into a runnable [`crate::config::Config`].
//!
//! Conventions shared with the other binaries (README "CLI reference"): `short` only for `-c`,
//! `-o` and `-v`, upper-case value names, env fallbacks for the connection string and CA file,
//! and env values hidden from `--help` because they are secrets.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser, ValueEnum};
use iothub_cli::{parse_positive_duration, Secret};

const AFTER_HELP: &str = "\
Output (-o json): one JSON object per line, with an \"event\" field:
  connected     {deviceId, endpoint, transport, sessionPresent}
  twin          {desiredVersion, reportedVersion, twin:{desired, reported}}
  reported      {deviceId, status, version, patch}
  desired       {kind:\"patch\"|\"full\", version, properties}
  disconnected  {reason:\"connection_lost\"|\"token_renewal\"|\"client_closed\", detail?}
  reconnecting  {attempt, delayMs}
  reconnected   {sessionPresent, tokenExpiresAt}
  closed        {error}
  stopped       {reason:\"once\"|\"duration\"|\"ctrl-c\"|\"sigterm\"}
  method        {name, payload, status, response, latencyMs, error?}
  c2d           {body, properties:{system:{messageId, ...}, application:{...}}, redelivered}
  telemetry     {seq, latencyMs, acknowledged, pending, lost}   (one per acknowledged message)
  telemetryConfig {source:\"desired\"|\"method\", status:\"Success\"|\"Failed\", sendFrequency,
                desiredVersion?, error?}
  stopped also carries telemetry:{produced, acknowledged, lost, rejected, retried, pending}.
With --once only the \"reported\" object is printed.

Telemetry (--telemetry TEMPLATE): a message every --telemetry-interval, the first at once after
the reported patch. Placeholders in the template:
  {{seq}}              the message's sequence number, from 1 (also its message id, $.mid)
  {{now}}              the current UTC time, RFC 3339 with milliseconds
  {{deviceId}}         the device id ({{moduleId}}: the module id, empty for a device)
  {{random:MIN:MAX}}   a uniform random number in MIN..=MAX (integers when both bounds are;
                       otherwise as many decimals as the bounds have)
e.g. --telemetry '{\"temperature\":{{random:20.0:30.0}},\"seq\":{{seq}},\"at\":\"{{now}}\"}'
A message counts once the hub acknowledged it (PUBACK). Messages produced while the connection
is down wait (at most 1000; beyond that they are dropped and counted as lost) and are sent after
the reconnect. With --telemetry-count N the run exits 0 once all N are acknowledged (1 if any
was lost).

While telemetry runs, its interval can be changed
- through desired properties, like the device of the \"Use desired properties to configure
  devices\" tutorial: desired telemetryConfig.sendFrequency (\"5s\", \"1m\" or a number of
  seconds, at most 24h) is applied and answered with reported telemetryConfig {sendFrequency,
  status: \"Success\"|\"Failed\", desiredVersion (the desired $version answered), configId
  (echoed when desired), error}; a value that cannot be used is reported Failed and the
  interval stays;
- with the direct method setTelemetryInterval, payload a number of seconds, answered 200
  (400 for a bad payload), as in the control-device quickstart; a --method-response for
  setTelemetryInterval replaces the built-in answer.

Without --once the device also answers direct methods (--method-response; any other method
gets 501 with a JSON body naming it) and prints and completes cloud-to-device messages.

Exit codes: 0 ok, 1 other failure, 2 invalid usage or input, 3 authentication rejected,
5 hub unreachable or timed out. (4, device not found, is not used: over MQTT the hub refuses
an unknown device like a wrong key, with exit 3.)";

/// Simulated device of the device-twins tutorial: reports its connectivity in the twin's
/// reported properties, then prints desired-property updates until Ctrl-C.
#[derive(Debug, Parser)]
#[command(name = "report-connectivity", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// Device or module connection string: HostName=…;DeviceId=…[;ModuleId=…];SharedAccessKey=…
    /// (optionally GatewayHostName=…, or SharedAccessSignature=… instead of the key).
    #[arg(
        short = 'c',
        long,
        env = "IOTHUB_DEVICE_CONNECTION_STRING",
        hide_env_values = true,
        value_name = "CONNECTION_STRING",
        required_unless_present = "devices_file"
    )]
    pub connection_string: Option<Secret>,

    /// Extra trusted CA certificate(s), PEM; the system roots stay trusted.
    #[arg(long, env = "IOTHUB_CA_FILE", value_name = "PEM")]
    pub ca_file: Option<PathBuf>,

    /// Connectivity type to report as {"connectivity":{"type":TYPE}}.
    #[arg(long, value_name = "TYPE", default_value = "cellular")]
    pub connectivity: String,

    /// Report this patch instead: inline JSON or @path/to/file.json.
    #[arg(long, value_name = "JSON|@FILE", conflicts_with = "connectivity")]
    pub reported: Option<String>,

    /// Exit 0 as soon as the hub acknowledges the reported patch.
    #[arg(long)]
    pub once: bool,

    /// Keep listening for desired updates this long after reporting, then disconnect and exit 0
    /// (e.g. 30s, 5m). Default: until Ctrl-C.
    #[arg(long, value_name = "D", value_parser = parse_positive_duration, conflicts_with = "once")]
    pub duration: Option<Duration>,

    /// Answer direct method NAME with STATUS and a JSON payload (inline, or @FILE; default
    /// null); repeatable, like `az iot device simulate --mrc/--mrp`. Example:
    /// --method-response reboot=200:{"rebooting":true}
    #[arg(long, value_name = "NAME=STATUS[:JSON|@FILE]", conflicts_with = "once")]
    pub method_response: Vec<String>,

    /// Send telemetry: a message template, inline or @FILE, with {{seq}}, {{now}}, {{deviceId}},
    /// {{moduleId}} and {{random:MIN:MAX}} placeholders (see below).
    #[arg(long, value_name = "TEMPLATE|@FILE", conflicts_with = "once")]
    pub telemetry: Option<String>,

    /// Time between telemetry messages (changed at run time by desired
    /// telemetryConfig.sendFrequency or the setTelemetryInterval method).
    #[arg(long, value_name = "D", default_value = "1s", value_parser = parse_positive_duration, requires = "telemetry")]
    pub telemetry_interval: Duration,

    /// Send this many telemetry messages, then exit 0 once all are acknowledged.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..), requires = "telemetry")]
    pub telemetry_count: Option<u64>,

    /// An application property on every telemetry message; repeatable.
    #[arg(long, value_name = "KEY=VALUE", requires = "telemetry")]
    pub property: Vec<String>,

    /// Telemetry content type ($.ct); the hub routes on a JSON body only with
    /// application/json and an encoding.
    #[arg(
        long,
        value_name = "TYPE",
        default_value = "application/json",
        requires = "telemetry"
    )]
    pub content_type: String,

    /// Telemetry content encoding ($.ce).
    #[arg(
        long,
        value_name = "ENCODING",
        default_value = "utf-8",
        requires = "telemetry"
    )]
    pub content_encoding: String,

    /// MQTT over TLS (port 8883) or over secure WebSockets (port 443).
    #[arg(long, value_enum, value_name = "TRANSPORT", default_value_t = TransportArg::Mqtt)]
    pub transport: TransportArg,

    /// Lifetime of each SAS token the device signs; the connection is renewed before expiry.
    #[arg(long, value_name = "D", default_value = "1h", value_parser = parse_positive_duration)]
    pub sas_ttl: Duration,

    /// Connect timeout, and how long to wait for each answer from the hub.
    #[arg(long, value_name = "D", default_value = "30s", value_parser = parse_positive_duration)]
    pub timeout: Duration,

    /// Output format: the tutorial's text, or JSON lines.
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT", default_value_t = Format::Text)]
    pub output: Format,

    /// Simulate N devices from this one process, each doing what the single device does; their
    /// identities come from --devices-file or --create-devices. Prints a summary at the end.
    #[arg(long, value_name = "N", help_heading = "Fleet",
          value_parser = clap::value_parser!(u32).range(1..=crate::fleet::MAX_FLEET as i64))]
    pub fleet: Option<u32>,

    /// Device connection strings, one a line (blank lines and # comments skipped); the first N
    /// are used, and -c is ignored.
    #[arg(
        long,
        value_name = "FILE",
        help_heading = "Fleet",
        requires = "fleet",
        conflicts_with = "create_devices"
    )]
    pub devices_file: Option<PathBuf>,

    /// With a service connection string in -c: create PREFIX-00000, PREFIX-00001, … through
    /// the bulk registry API (100 a request) and run them.
    #[arg(
        long,
        value_name = "PREFIX",
        help_heading = "Fleet",
        requires = "fleet"
    )]
    pub create_devices: Option<String>,

    /// HostName[:PORT] in the created devices' connection strings; default the service
    /// connection string's. For a hub whose MQTT port is not its HTTPS port (the emulator on
    /// non-standard ports).
    #[arg(
        long,
        value_name = "HOST[:PORT]",
        help_heading = "Fleet",
        requires = "create_devices"
    )]
    pub device_host: Option<String>,

    /// Delete the devices --create-devices created when the run ends.
    #[arg(long, help_heading = "Fleet", requires = "create_devices")]
    pub cleanup: bool,

    /// Start at most N devices a second (e.g. 500/s), each start jittered within its slot.
    /// Default: all at once, bounded by --max-connecting.
    #[arg(long, value_name = "N/s", help_heading = "Fleet", requires = "fleet",
          value_parser = crate::fleet::parse_rate)]
    pub connect_rate: Option<f64>,

    /// Connection attempts (TCP, TLS, CONNECT to CONNACK) in flight at once across the fleet.
    #[arg(long, value_name = "N", help_heading = "Fleet", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_connecting: u32,

    /// Upper bound of the first reconnect delay after a lost connection; it doubles per failed
    /// attempt up to 30 s, each delay drawn from its upper half at random.
    #[arg(long, value_name = "D", default_value = "200ms", value_parser = parse_positive_duration)]
    pub reconnect_backoff: Duration,

    /// Serve the fleet's counters in Prometheus text format at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR", help_heading = "Fleet", requires = "fleet")]
    pub metrics_listen: Option<std::net::SocketAddr>,

    /// More logging on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short = 'v', long, action = ArgAction::Count)]
    pub verbose: u8,
}

/// `--transport` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TransportArg {
    /// MQTT over TLS.
    Mqtt,
    /// MQTT over secure WebSockets.
    #[value(name = "mqtt-ws")]
    MqttWs,
}

/// `-o` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Human-readable, like the tutorial's ReportConnectivity.py.
    Text,
    /// One JSON object per line.
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let mut full = vec![
            "report-connectivity",
            "-c",
            "HostName=h;DeviceId=d;SharedAccessKey=a2V5",
        ];
        full.extend_from_slice(args);
        Cli::try_parse_from(full)
    }

    #[test]
    fn defaults() {
        let cli = parse(&[]).unwrap();
        assert_eq!(cli.connectivity, "cellular");
        assert!(!cli.once);
        assert_eq!(cli.transport, TransportArg::Mqtt);
        assert_eq!(cli.sas_ttl, Duration::from_secs(3600));
        assert_eq!(cli.timeout, Duration::from_secs(30));
        assert_eq!(cli.output, Format::Text);
        assert_eq!(cli.duration, None);
        assert!(!format!("{cli:?}").contains("a2V5"), "the key never prints");
    }

    #[test]
    fn every_flag() {
        let cli = parse(&[
            "--ca-file",
            "ca.pem",
            "--reported",
            "{}",
            "--duration",
            "20s",
            "--transport",
            "mqtt-ws",
            "--sas-ttl",
            "5s",
            "--timeout",
            "2s",
            "-o",
            "json",
            "-vv",
            "--method-response",
            "a=200",
            "--method-response",
            "b=404:{}",
        ])
        .unwrap();
        assert_eq!(cli.method_response, ["a=200", "b=404:{}"]);
        assert_eq!(cli.ca_file, Some(PathBuf::from("ca.pem")));
        assert_eq!(cli.reported.as_deref(), Some("{}"));
        assert_eq!(cli.duration, Some(Duration::from_secs(20)));
        assert_eq!(cli.transport, TransportArg::MqttWs);
        assert_eq!(cli.sas_ttl, Duration::from_secs(5));
        assert_eq!(cli.timeout, Duration::from_secs(2));
        assert_eq!(cli.output, Format::Json);
        assert_eq!(cli.verbose, 2);
    }

    #[test]
    fn conflicts_and_bad_values_are_usage_errors() {
        for args in [
            &["--reported", "{}", "--connectivity", "wifi"][..],
            &["--once", "--duration", "5s"],
            &["--sas-ttl", "0s"],
            &["--timeout", "soon"],
            &["--transport", "amqp"],
            &["--once", "--method-response", "a=200"],
        ] {
            let err = parse(args).expect_err("must fail");
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }
}
