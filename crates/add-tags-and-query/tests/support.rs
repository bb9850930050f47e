//! The binary against the shared test hub (`iothub_emulator::test_support::TestHub`): a
//! command configured for the hub, and a runner that fails the test if output shows a secret.

use std::ffi::OsStr;
use std::time::Duration;

use assert_cmd::Command;
use iothub_emulator::test_support::TestHub;

const SCRUBBED_ENV: [&str; 7] = [
    "RUST_LOG",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// An emulator with the tutorial's device and one more.
pub async fn tutorial_hub() -> TestHub {
    TestHub::with_devices(&["myDeviceId", "otherDevice"]).await
}

/// The binary, configured for the hub.
pub trait CliHub {
    /// The binary, configured through the environment like a user would (connection string
    /// and CA from the emulator), with proxies and log settings of the outer env removed.
    fn cmd(&self) -> Cmd;
    /// The same, as a tokio process (for tests that watch stderr while the command runs).
    fn tokio_cmd(&self) -> tokio::process::Command;
    /// The device reports cellular connectivity, as in the tutorial.
    async fn report_cellular(&self, device: &str);
}

impl CliHub for TestHub {
    fn cmd(&self) -> Cmd {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_add-tags-and-query"));
        for var in SCRUBBED_ENV {
            cmd.env_remove(var);
        }
        cmd.envs(env(self)).timeout(Duration::from_secs(60));
        Cmd(cmd)
    }

    fn tokio_cmd(&self) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_add-tags-and-query"));
        for var in SCRUBBED_ENV {
            cmd.env_remove(var);
        }
        cmd.envs(env(self)).kill_on_drop(true);
        cmd
    }

    async fn report_cellular(&self, device: &str) {
        self.patch_reported(
            device,
            serde_json::json!({"connectivity": {"type": "cellular"}}),
        )
        .await;
    }
}

fn env(hub: &TestHub) -> [(&'static str, String); 2] {
    [
        (
            "IOTHUB_CONNECTION_STRING",
            hub.emulator().service_connection_string(),
        ),
        (
            "IOTHUB_CA_FILE",
            hub.emulator().ca_file().display().to_string(),
        ),
    ]
}

/// The binary's command line, built by value so tests can chain and hand it to [`run`].
pub struct Cmd(Command);

impl Cmd {
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.0.arg(arg);
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> Self {
        self.0.args(args);
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.0.env(name, value);
        self
    }

    pub fn env_remove(mut self, name: &str) -> Self {
        self.0.env_remove(name);
        self
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    /// The lines printed under `heading:` up to the next blank line.
    pub fn section(&self, heading: &str) -> Vec<String> {
        let mut lines = self.stdout.lines();
        let wanted = format!("{heading}:");
        lines
            .by_ref()
            .find(|l| *l == wanted)
            .unwrap_or_else(|| panic!("no section {heading:?} in:\n{}", self.stdout));
        lines
            .take_while(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", self.stdout))
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// The single error line on stderr.
    #[track_caller]
    pub fn error_line(&self) -> &str {
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one error line expected:\n{}", self.stderr);
        let line = lines[0];
        assert!(line.starts_with("add-tags-and-query: error: "), "{line}");
        line
    }
}

/// Fails the test if `run` shows a secret.
pub fn assert_no_secrets(run: &Run, secrets: &[String]) {
    for secret in secrets {
        assert!(!secret.is_empty());
        assert!(
            !run.stdout.contains(secret.as_str()),
            "stdout leaks a secret"
        );
        assert!(
            !run.stderr.contains(secret.as_str()),
            "stderr leaks a secret"
        );
    }
    for text in [&run.stdout, &run.stderr] {
        assert!(!text.contains("sig="), "output leaks a SAS signature");
        // Hints may show the template `SharedAccessKey=…`, never a value.
        for (at, _) in text.match_indices("SharedAccessKey=") {
            let rest = &text[at + "SharedAccessKey=".len()..];
            assert!(rest.starts_with('…'), "output leaks a connection string");
        }
    }
}

/// Runs the command off the async runtime (the emulator keeps serving on it) and checks that
/// no output contains any of `secrets`.
pub async fn run(cmd: Cmd, secrets: &[String]) -> Run {
    let Cmd(mut cmd) = cmd;
    let started = std::time::Instant::now();
    let output = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("runner task")
        .expect("binary runs");
    let run = Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        elapsed: started.elapsed(),
    };
    assert_no_secrets(&run, secrets);
    run
}
