//! The emulator binary: ready file, export lines, SIGKILL durability, SIGTERM graceful exit.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use iothub_auth::ServiceConnectionString;
use iothub_emulator::test_support::{https_client, API_VERSION_QUERY};
use reqwest::Method;
use serde_json::{json, Value};

struct Running {
    child: Child,
    ready: Value,
}

impl Drop for Running {
    /// A failing test must not leave the emulator running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(data_dir: &Path, extra: &[&str]) -> Running {
    let ready_file = data_dir.join("ready.json");
    let _ = std::fs::remove_file(&ready_file);
    let child = Command::new(env!("CARGO_BIN_EXE_iothub-emulator"))
        .arg("--data-dir")
        .arg(data_dir)
        .args([
            "--https-port",
            "0",
            "--mqtt-port",
            "0",
            "--amqp-port",
            "0",
            "--ready-file",
        ])
        .arg(&ready_file)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("emulator binary starts");
    // From here on the guard reaps the process, whatever happens.
    let mut running = Running {
        child,
        ready: Value::Null,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(&ready_file) {
            running.ready = serde_json::from_str(&text).expect("ready file is complete JSON");
            return running;
        }
        assert!(Instant::now() < deadline, "ready file never appeared");
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Api {
    client: reqwest::Client,
    port: u64,
    auth: String,
}

impl Api {
    fn new(ready: &Value) -> Api {
        let ca = std::fs::read_to_string(ready["ca_file"].as_str().unwrap()).unwrap();
        let port = ready["https_port"].as_u64().unwrap();
        let cs =
            ServiceConnectionString::from_str(ready["service_connection_string"].as_str().unwrap())
                .unwrap();
        Api {
            client: https_client(&ca),
            port,
            auth: cs.sas_token(Duration::from_secs(600)).as_str().to_string(),
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .client
            .request(
                method,
                format!("https://localhost:{}{path}?{API_VERSION_QUERY}", self.port),
            )
            .header("authorization", &self.auth);
        if let Some(b) = body {
            req = req.body(b.to_string());
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = start(dir.path(), &["--device", "boot-device"]);
    assert!(first.ready["devices"]["boot-device"]
        .as_str()
        .unwrap()
        .contains("DeviceId=boot-device"));
    let api = Api::new(&first.ready);
    let mut expected = Vec::new();
    for i in 0..20 {
        let id = format!("dur{i}");
        let (status, _) = api
            .call(
                Method::PUT,
                &format!("/devices/{id}"),
                Some(json!({"deviceId": id})),
            )
            .await;
        assert_eq!(status, 200);
        for n in 0..3 {
            let (status, _) = api
                .call(
                    Method::PATCH,
                    &format!("/twins/{id}"),
                    Some(json!({"tags": {"n": n}, "properties": {"desired": {"step": n, "nested": {"i": i}}}})),
                )
                .await;
            assert_eq!(status, 200);
        }
    }
    let (status, _) = api.call(Method::DELETE, "/devices/dur19", None).await;
    assert_eq!(status, 204);
    for i in 0..19 {
        let id = format!("dur{i}");
        let device = api
            .call(Method::GET, &format!("/devices/{id}"), None)
            .await
            .1;
        let twin = api.call(Method::GET, &format!("/twins/{id}"), None).await.1;
        assert_eq!(twin["properties"]["desired"]["$version"], 4);
        expected.push((id, device, twin));
    }
    let boot_before = api.call(Method::GET, "/devices/boot-device", None).await.1;

    // SIGKILL: no chance to flush anything.
    first.child.kill().unwrap();
    first.child.wait().unwrap();

    let mut second = start(dir.path(), &["--device", "boot-device"]);
    // Ports are ephemeral; everything after `HostName=…;` must be identical.
    let without_host = |v: &Value| v.as_str().unwrap().split_once(';').unwrap().1.to_string();
    assert_eq!(
        without_host(&second.ready["service_connection_string"]),
        without_host(&first.ready["service_connection_string"]),
        "policy keys survive"
    );
    assert_eq!(
        without_host(&second.ready["devices"]["boot-device"]),
        without_host(&first.ready["devices"]["boot-device"]),
        "device keys survive"
    );
    let api = Api::new(&second.ready);
    for (id, device, twin) in &expected {
        let (status, got_device) = api.call(Method::GET, &format!("/devices/{id}"), None).await;
        assert_eq!(status, 200, "{id} survives");
        assert_eq!(&got_device, device, "keys, etag, generation of {id}");
        let got_twin = api.call(Method::GET, &format!("/twins/{id}"), None).await.1;
        assert_eq!(&got_twin, twin, "twin of {id}: versions, etag, metadata");
    }
    assert_eq!(
        api.call(Method::GET, "/devices/boot-device", None).await.1,
        boot_before
    );
    let (status, _) = api.call(Method::GET, "/devices/dur19", None).await;
    assert_eq!(status, 404, "the delete survives too");
    // Writes continue from the restored counters.
    let (_, twin) = api
        .call(
            Method::PATCH,
            "/twins/dur0",
            Some(json!({"tags": {"after": true}})),
        )
        .await;
    assert_eq!(twin["etag"], "AAAAAAAAAAU=");
    second.child.kill().unwrap();
    second.child.wait().unwrap();
}

#[tokio::test]
async fn sigterm_exits_cleanly_and_exports_are_printed() {
    let dir = tempfile::tempdir().unwrap();
    let mut running = start(dir.path(), &["--in-memory", "--device", "only-one"]);
    let status = Command::new("kill")
        .args(["-TERM", &running.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = running.child.wait_with_output_compat();
    assert!(output.0.success(), "exit 0 on SIGTERM: {:?}", output.0);
    let stdout = output.1;
    assert!(
        stdout.contains("export IOTHUB_CONNECTION_STRING='HostName=localhost:"),
        "{stdout}"
    );
    assert!(stdout.contains("export IOTHUB_CA_FILE='"), "{stdout}");
    assert!(
        stdout.contains("export IOTHUB_DEVICE_CONNECTION_STRING='HostName=localhost:"),
        "{stdout}"
    );
    assert!(
        dir.path().join("ca.pem").exists(),
        "--in-memory still writes the CA"
    );
    assert!(
        !dir.path().join("state.sqlite3").exists(),
        "--in-memory keeps no state"
    );
}

trait WaitCompat {
    fn wait_with_output_compat(&mut self) -> (std::process::ExitStatus, String);
}

impl WaitCompat for Child {
    fn wait_with_output_compat(&mut self) -> (std::process::ExitStatus, String) {
        use std::io::Read as _;
        let mut stdout = String::new();
        if let Some(mut out) = self.stdout.take() {
            out.read_to_string(&mut stdout).unwrap();
        }
        (self.wait().unwrap(), stdout)
    }
}
