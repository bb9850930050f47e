//! Shared by the end-to-end tests: an in-process emulator with `myDeviceId` registered, and the
//! two built binaries run as a user would run them.

use std::path::PathBuf;
use std::process::{Command, Output};

use iothub_emulator::{Emulator, EmulatorConfig, RunningEmulator};

pub const DEVICE_ID: &str = "myDeviceId";

/// A running emulator and the directory holding its CA (removed on drop).
pub struct Hub {
    pub emulator: RunningEmulator,
    _dir: tempfile::TempDir,
}

impl Hub {
    pub async fn start() -> Hub {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut config = EmulatorConfig::for_tests(dir.path());
        config.devices = vec![DEVICE_ID.to_string()];
        let emulator = Emulator::start(config).await.expect("emulator starts");
        Hub {
            emulator,
            _dir: dir,
        }
    }

    pub fn service_connection_string(&self) -> String {
        self.emulator.service_connection_string()
    }

    pub fn device_connection_string(&self) -> String {
        self.emulator
            .device_connection_string(DEVICE_ID)
            .expect("device registered at start")
    }

    /// Every secret the hub could leak into a transcript.
    pub fn secrets(&self) -> Vec<String> {
        let mut secrets = Vec::new();
        for cs in [
            self.service_connection_string(),
            self.device_connection_string(),
        ] {
            let key = cs
                .split(';')
                .find_map(|part| part.strip_prefix("SharedAccessKey="))
                .expect("connection string has a key");
            secrets.push(key.to_string());
        }
        secrets
    }
}

/// Path of a workspace binary, freshly built: `cargo test -p iothub-twins` alone would not
/// rebuild another package's binary, and a stale one would make these tests lie.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "--quiet",
                "-p",
                "add-tags-and-query",
                "-p",
                "report-connectivity",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the two binaries failed");
    });
    let test_exe = std::env::current_exe().expect("test executable path");
    let dir = test_exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is not built: run the workspace tests with `cargo test --workspace`",
        path.display()
    );
    path
}

/// Runs a binary with a clean IoT Hub environment (no inherited connection strings).
pub async fn run(name: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(binary(name));
    command.args(args);
    for var in [
        "IOTHUB_CONNECTION_STRING",
        "IOTHUB_DEVICE_CONNECTION_STRING",
        "IOTHUB_CA_FILE",
        "RUST_LOG",
    ] {
        command.env_remove(var);
    }
    for (key, value) in env {
        command.env(key, value);
    }
    tokio::task::spawn_blocking(move || command.output().expect("binary runs"))
        .await
        .expect("blocking task")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The device ids printed under `heading` (up to the next blank line).
pub fn listed_under(transcript: &str, heading: &str) -> Vec<String> {
    let mut lines = transcript.lines();
    let found = lines.by_ref().any(|line| line.trim_end() == heading);
    assert!(found, "heading {heading:?} missing from:\n{transcript}");
    lines
        .take_while(|line| !line.trim().is_empty())
        .map(|line| line.trim().to_string())
        .collect()
}
