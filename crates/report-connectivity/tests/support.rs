//! Running the binary against the shared test hub (`iothub_emulator::test_support::TestHub`):
//! one-shot runs with their output, and long runs read line by line while they go on.

use std::process::Stdio;
use std::time::{Duration, Instant};

use iothub_auth::{DeviceConnectionString, SharedAccessKey};
use iothub_emulator::test_support::{RefusedPort, TestHub};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

const BIN: &str = env!("CARGO_BIN_EXE_report-connectivity");

/// How long "promptly" may take across processes: room for a loaded 2-core CI machine. How
/// fast it really is belongs in the benchmarks.
pub const PROMPTLY: Duration = Duration::from_secs(10);

/// What the device driver logs at `-vv` for each failed connection attempt.
pub const ATTEMPT_FAILED: &str = "connection attempt failed";

/// The binary, configured for the hub.
pub trait CliHub {
    /// A command with the emulator's CA, `connection_string` and nothing else in the
    /// environment; output piped, killed if the test drops it.
    fn command(&self, connection_string: &str) -> Command;
}

impl CliHub for TestHub {
    fn command(&self, connection_string: &str) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.env_clear()
            .env("IOTHUB_CA_FILE", self.emulator().ca_file())
            .env("IOTHUB_DEVICE_CONNECTION_STRING", connection_string)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }
}

/// A finished run.
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

/// Runs `cmd` to the end; fails the test if that takes longer than `limit`.
pub async fn run(mut cmd: Command, limit: Duration) -> Output {
    let started = Instant::now();
    let out = tokio::time::timeout(limit, cmd.output())
        .await
        .expect("the binary finishes in time")
        .expect("the binary runs");
    Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}

/// A device connection string for a local port that refuses connections while `port` lives.
pub fn unreachable_connection_string(port: &RefusedPort) -> String {
    DeviceConnectionString::with_key(
        format!("localhost:{}", port.port()),
        "nobody",
        SharedAccessKey::generate(),
    )
    .expose_connection_string()
}

/// A long-running child: stdout read line by line, stderr drained in the background (so the
/// pipe never fills) and searchable.
pub struct Running {
    child: Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    stderr: mpsc::UnboundedReceiver<String>,
}

impl Running {
    pub fn spawn(mut cmd: Command) -> Running {
        let mut child = cmd.spawn().expect("spawn");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines: BufReader::new(stdout).lines(),
            stderr: rx,
        }
    }

    pub async fn next_line(&mut self, limit: Duration) -> String {
        tokio::time::timeout(limit, self.lines.next_line())
            .await
            .expect("a line in time")
            .expect("read stdout")
            .expect("stdout still open")
    }

    /// Next JSON line whose `event` is `name`.
    pub async fn next_event(&mut self, name: &str, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let line = self
                .next_line(deadline.saturating_duration_since(Instant::now()))
                .await;
            let value: Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            if value["event"] == name {
                return value;
            }
        }
    }

    /// Skips stderr lines until one contains `needle`.
    pub async fn stderr_line_containing(&mut self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        let mut seen = String::new();
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(remaining, self.stderr.recv()).await {
                Ok(Some(line)) if line.contains(needle) => return line,
                Ok(Some(line)) => {
                    seen.push_str(&line);
                    seen.push('\n');
                }
                Ok(None) => panic!("stderr ended without {needle:?}:\n{seen}"),
                Err(_) => panic!("no {needle:?} on stderr in {limit:?}:\n{seen}"),
            }
        }
    }

    pub fn signal(&self, name: &str) {
        let pid = self.child.id().expect("running").to_string();
        // The shell's built-in `kill`: no extra crate, and no reliance on a kill binary.
        let status = std::process::Command::new("sh")
            .args(["-c", "kill -s \"$1\" \"$2\"", "sh", name, &pid])
            .status()
            .expect("sh runs");
        assert!(status.success());
    }

    pub async fn wait(&mut self, limit: Duration) -> Option<i32> {
        tokio::time::timeout(limit, self.child.wait())
            .await
            .expect("exits in time")
            .expect("wait")
            .code()
    }
}

/// A service REST call signed for `iothubowner`: the status and the JSON body (`Null` when
/// there is none). PATCH and DELETE are unconditional; a PUT (no If-Match) creates.
pub async fn rest(
    hub: &TestHub,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    hub.owner_call(method, path, body).await
}

/// Registers module `module` on the registered device `device`; returns its connection
/// string for `host_name` (the device's MQTT or WebSocket `HostName`).
pub async fn add_module(hub: &TestHub, device: &str, module: &str, host_name: &str) -> String {
    hub.add_module(device, module, host_name).await
}
