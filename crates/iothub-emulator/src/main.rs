//! `iothub-emulator`: a local Azure IoT Hub (what it implements: README "Emulator fidelity";
//! how it is built: ARCHITECTURE.md#inside-the-emulator).
//!
//! Starts both listeners, writes the ready file once they accept connections, prints `export`
//! lines on stdout (so `eval "$(iothub-emulator …)"`-style use works) and a banner on stderr,
//! then runs until SIGINT or SIGTERM, when it stops accepting, finishes in-flight writes and
//! exits 0.

use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{ArgAction, Parser};
use iothub_cli::{exit, parse_duration, parse_positive_duration, StopSignals};
use iothub_emulator::{ConnectionLimits, Emulator, EmulatorConfig, RunningEmulator};
use serde_json::{json, Map, Value};

/// How long SIGINT/SIGTERM waits for in-flight requests and pending writes.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// A local Azure IoT Hub: service REST API, device MQTT, SAS auth, TLS, durable state.
#[derive(Debug, Parser)]
#[command(name = "iothub-emulator", version)]
struct Cli {
    /// State, keys and CA live here.
    #[arg(long, value_name = "DIR", default_value = "./.iothub-emulator")]
    data_dir: PathBuf,
    /// Keep nothing on disk except the CA files.
    #[arg(long)]
    in_memory: bool,
    /// Hub host name in connection strings and certificate SANs.
    #[arg(long, value_name = "NAME", default_value = "localhost")]
    hostname: String,
    /// Listen address.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    bind: IpAddr,
    /// REST API + MQTT over WebSockets (/$iothub/websocket); 0 = any free port.
    #[arg(long, value_name = "PORT", default_value_t = 8443)]
    https_port: u16,
    /// MQTT over TLS; 0 = any free port.
    #[arg(long, value_name = "PORT", default_value_t = 8883)]
    mqtt_port: u16,
    /// AMQP 1.0 over TLS: the built-in Event Hub-compatible endpoint; 0 = any free port.
    #[arg(long, value_name = "PORT", default_value_t = 5671)]
    amqp_port: u16,
    /// Register this device at start if missing (repeatable; keys kept if present).
    #[arg(long = "device", value_name = "ID")]
    devices: Vec<String>,
    /// Query results trail writes by this long, as on the real hub (e.g. 5s, 1m; twin GETs stay
    /// current). Default 0: queries are current.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "0")]
    query_lag: std::time::Duration,
    /// Once every listener accepts connections, write this JSON file atomically.
    #[arg(long, value_name = "PATH")]
    ready_file: Option<PathBuf>,
    /// Device-to-cloud messages the hub keeps (the most recent ones; at least 1).
    #[arg(long, value_name = "N", default_value_t = iothub_emulator::DEFAULT_TELEMETRY_CAPACITY)]
    telemetry_buffer: usize,
    /// Partitions of the built-in Event Hub-compatible endpoint (1 to 32; a device's events
    /// always land in the same one).
    #[arg(long, value_name = "N", default_value_t = iothub_emulator::DEFAULT_PARTITIONS,
        value_parser = clap::value_parser!(u32).range(1..=i64::from(iothub_emulator::MAX_PARTITIONS)))]
    partitions: u32,
    /// Bytes each partition of the built-in endpoint keeps (bodies, properties, annotations);
    /// the oldest events go first beyond it. Default 32 MiB (33554432).
    #[arg(long, value_name = "BYTES", default_value_t = iothub_emulator::DEFAULT_RETENTION_BYTES,
        value_parser = parse_retention_bytes)]
    event_retention_bytes: usize,
    /// How long the built-in endpoint keeps an event (e.g. 1h, 7d is the real hub's maximum).
    /// Default 1d, the real hub's default.
    #[arg(long, value_name = "DURATION", value_parser = parse_positive_duration, default_value = "1d")]
    event_retention: std::time::Duration,
    /// More logging on stderr (-v: device connections, -vv: debug, -vvv: dependencies too);
    /// RUST_LOG overrides.
    #[arg(short = 'v', long, action = ArgAction::Count)]
    verbose: u8,
}

/// `--event-retention-bytes`: at least 1 KiB, so that a partition can hold an event.
fn parse_retention_bytes(text: &str) -> Result<usize, String> {
    let bytes: usize = text
        .parse()
        .map_err(|_| format!("'{text}' is not a byte count (e.g. 33554432)"))?;
    if bytes < 1024 {
        return Err(format!("{bytes} bytes is too small: use at least 1024"));
    }
    Ok(bytes)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    iothub_cli::init_logging(cli.verbose);
    iothub_cli::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("iothub-emulator: cannot start the async runtime: {e}");
            return ExitCode::from(exit::OTHER);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(message) => {
            eprintln!("iothub-emulator: {message}");
            ExitCode::from(exit::OTHER)
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    // Before the ready file exists: a script that sends SIGTERM as soon as it sees the file
    // must get a clean shutdown, not the default "die at once".
    let mut signals =
        StopSignals::listen().map_err(|e| format!("cannot listen for SIGINT/SIGTERM: {e}"))?;
    let config = EmulatorConfig {
        hostname: cli.hostname,
        bind: cli.bind,
        https_port: cli.https_port,
        mqtt_port: cli.mqtt_port,
        amqp_port: cli.amqp_port,
        data_dir: cli.data_dir,
        in_memory: cli.in_memory,
        devices: cli.devices.clone(),
        connection_limits: ConnectionLimits::default(),
        telemetry_capacity: cli.telemetry_buffer,
        query_lag: cli.query_lag,
        events: iothub_emulator::EventsConfig {
            partitions: cli.partitions,
            retention_bytes: cli.event_retention_bytes,
            retention: cli.event_retention,
        },
    };
    let emulator = Emulator::start(config).await.map_err(|e| e.to_string())?;
    let devices = device_strings(&emulator, &cli.devices);
    if let Some(path) = &cli.ready_file {
        write_ready_file(path, &emulator, &devices)
            .map_err(|e| format!("cannot write the ready file {}: {e}", path.display()))?;
    }
    print_exports(&emulator, &cli.devices, &devices);
    print_banner(&emulator, cli.in_memory);

    let signal = signals.recv().await;
    eprintln!("iothub-emulator: shutting down ({})", signal.name());
    // Acknowledged writes are already committed; the bound only guards against a stuck client.
    if tokio::time::timeout(SHUTDOWN_GRACE, emulator.shutdown())
        .await
        .is_err()
    {
        eprintln!(
            "iothub-emulator: in-flight requests did not finish within {SHUTDOWN_GRACE:?}; exiting"
        );
    }
    Ok(())
}

fn device_strings(emulator: &RunningEmulator, ids: &[String]) -> Map<String, Value> {
    ids.iter()
        .filter_map(|id| {
            emulator
                .device_connection_string(id)
                .map(|cs| (id.clone(), Value::String(cs)))
        })
        .collect()
}

fn write_ready_file(
    path: &Path,
    emulator: &RunningEmulator,
    devices: &Map<String, Value>,
) -> std::io::Result<()> {
    let doc = json!({
        "hostname": emulator.hostname(),
        "https_port": emulator.https_port(),
        "mqtt_port": emulator.mqtt_port(),
        "amqp_port": emulator.amqp_port(),
        "ca_file": emulator.ca_file(),
        "service_connection_string": emulator.service_connection_string(),
        "eventhub_connection_string": emulator.eventhub_connection_string(),
        "devices": devices,
    });
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        // The document holds the service and device connection strings: owner only.
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        // A leftover temp file keeps its old mode; tighten it as well.
        #[cfg(unix)]
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        file.write_all(doc.to_string().as_bytes())?;
        file.sync_all()?;
    }
    // Readers see either no file or the complete document.
    std::fs::rename(&tmp, path)
}

/// Single-quotes `s` for POSIX shells.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn print_exports(emulator: &RunningEmulator, ids: &[String], devices: &Map<String, Value>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "export IOTHUB_CONNECTION_STRING={}",
        shell_quote(&emulator.service_connection_string())
    );
    let _ = writeln!(
        out,
        "export IOTHUB_EVENTHUB_CONNECTION_STRING={}",
        shell_quote(&emulator.eventhub_connection_string())
    );
    let _ = writeln!(
        out,
        "export IOTHUB_CA_FILE={}",
        shell_quote(&emulator.ca_file().display().to_string())
    );
    if let [only] = ids {
        if let Some(Value::String(cs)) = devices.get(only) {
            let _ = writeln!(
                out,
                "export IOTHUB_DEVICE_CONNECTION_STRING={}",
                shell_quote(cs)
            );
        }
    }
    let _ = out.flush();
}

fn print_banner(emulator: &RunningEmulator, in_memory: bool) {
    eprintln!(
        "iothub-emulator ready: hub {host}\n  REST + MQTT/WebSockets  https://{host}:{https}\n  MQTT over TLS           mqtts://{host}:{mqtt}\n  AMQP (Event Hubs)       amqps://{host}:{amqp}/{entity}\n  CA certificate          {ca}\n  state                   {state}\n  Ctrl-C to stop",
        host = emulator.hostname(),
        https = emulator.https_port(),
        mqtt = emulator.mqtt_port(),
        amqp = emulator.amqp_port(),
        entity = emulator.hostname().split('.').next().unwrap_or_default(),
        ca = emulator.ca_file().display(),
        state = if in_memory { "in memory" } else { "durable (data dir)" },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_with_defaults() {
        let cli = Cli::try_parse_from(["iothub-emulator"]).unwrap();
        assert_eq!(cli.https_port, 8443);
        assert_eq!(cli.mqtt_port, 8883);
        assert_eq!(cli.amqp_port, 5671);
        assert_eq!(cli.hostname, "localhost");
        let cli = Cli::try_parse_from([
            "iothub-emulator",
            "--in-memory",
            "--https-port",
            "0",
            "--device",
            "a",
            "--device",
            "b",
            "--ready-file",
            "r.json",
        ])
        .unwrap();
        assert!(cli.in_memory);
        assert_eq!(cli.devices, ["a", "b"]);
        assert!(cli.query_lag.is_zero());
        let cli = Cli::try_parse_from(["iothub-emulator", "--query-lag", "1m30s"]).unwrap();
        assert_eq!(cli.query_lag, std::time::Duration::from_secs(90));
        assert!(Cli::try_parse_from(["iothub-emulator", "--query-lag", "soon"]).is_err());
    }

    #[test]
    fn quoting_survives_single_quotes() {
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
    }
}
