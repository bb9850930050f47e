//! Shared by the end-to-end tests: the shared test hub (`iothub_emulator::test_support`) with
//! `myDeviceId` registered, and the two built binaries run as a user would run them.

use std::path::PathBuf;
use std::process::{Command, Output};

use iothub_emulator::test_support::TestHub;

pub const DEVICE_ID: &str = "myDeviceId";

/// An emulator with the tutorial's device registered.
pub async fn tutorial_hub() -> TestHub {
    TestHub::with_devices(&[DEVICE_ID]).await
}

/// The tutorial device's connection string (MQTT over TLS).
pub fn device_connection_string(hub: &TestHub) -> String {
    hub.emulator()
        .device_connection_string(DEVICE_ID)
        .expect("device registered at start")
}

/// Path of a workspace binary, freshly built: `cargo test -p iothub-twins` alone would not
/// rebuild another package's binary, and a stale one would make these tests lie. The build is
/// the README's test build (`cargo test --workspace`), so under that command it is a no-op; a
/// narrower `cargo build -p …` resolves other features and would rebuild the binaries.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .args(["test", "--workspace", "--no-run", "--quiet"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        // What cargo sets for this test process describes this package, not the build; build
        // scripts that track such a variable (ring's tracks CARGO_MANIFEST_DIR) would rebuild.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if is_set_by_cargo_for_tests(&name) {
                cargo.env_remove(&*name);
            }
        }
        let status = cargo.status().expect("cargo runs");
        assert!(status.success(), "building the workspace's binaries failed");
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

fn is_set_by_cargo_for_tests(name: &str) -> bool {
    name.starts_with("CARGO_PKG_")
        || matches!(
            name,
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_CRATE_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_TARGET_TMPDIR"
                | "CARGO_RUSTC_CURRENT_DIR"
                | "OUT_DIR"
        )
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
