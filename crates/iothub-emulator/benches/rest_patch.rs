//! REST twin PATCH throughput with concurrent clients, durability on (SQLite, WAL, group commit),
//! measured side by side with `--in-memory` in the same run, so the cost of durability reads as
//! a ratio that the machine's noise affects less than the absolute figures.
//!
//! Not a test: `cargo bench -p iothub-emulator --bench rest_patch`. The emulator binary runs as
//! its own process (durable store in a temp dir, ephemeral ports), so its CPU time is measured
//! apart from the clients'. Every counted PATCH was answered 200, i.e. after its commit.
//!
//! Knobs (environment): `BENCH_CLIENTS` concurrent clients (default 64), `BENCH_SECONDS`
//! measuring time (default 10), `BENCH_DEVICES` devices patched round-robin (default 1000),
//! `BENCH_CONNECTIONS` client pools the clients share (default 16).

// A benchmark harness, not a service: a failed set-up step aborts the run with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use iothub_auth::ServiceConnectionString;
use serde_json::Value;

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU seconds (user + system) used by a process, from `/proc/<pid>/stat` (Linux).
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // CLK_TCK is 100 on Linux x86-64.
    Some(ticks / 100.0)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// The emulator process; killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let durable = measure(false).await;
    let in_memory = measure(true).await;
    println!(
        "rest_patch: durable / in-memory = {:.2} (throughput), {:.2} (updates per emulator CPU-second)",
        durable.updates_per_second / in_memory.updates_per_second,
        durable.updates_per_cpu_second / in_memory.updates_per_cpu_second
    );
}

struct Measured {
    updates_per_second: f64,
    updates_per_cpu_second: f64,
}

/// The bench's knobs (see the crate doc).
struct Knobs {
    clients: usize,
    seconds: u64,
    devices: usize,
    connections: usize,
}

impl Knobs {
    fn from_env() -> Knobs {
        Knobs {
            clients: knob("BENCH_CLIENTS", 64),
            seconds: knob("BENCH_SECONDS", 10) as u64,
            devices: knob("BENCH_DEVICES", 1000),
            connections: knob("BENCH_CONNECTIONS", 16).max(1),
        }
    }
}

/// A started emulator process and what its ready file says.
struct Started {
    server: Server,
    _dir: tempfile::TempDir,
    port: u16,
    ca: Vec<u8>,
    auth: String,
}

async fn start_emulator(in_memory: bool) -> Started {
    let dir = tempfile::tempdir().expect("temp dir");
    let ready_file = dir.path().join("ready.json");
    let mut command = Command::new(env!("CARGO_BIN_EXE_iothub-emulator"));
    command
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args([
            "--https-port",
            "0",
            "--mqtt-port",
            "0",
            "--amqp-port",
            "0",
            "--ready-file",
        ])
        .arg(&ready_file);
    if in_memory {
        command.arg("--in-memory");
    }
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("emulator binary starts");
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    let ready: Value = loop {
        if let Ok(text) = std::fs::read_to_string(&ready_file) {
            break serde_json::from_str(&text).expect("ready file");
        }
        assert!(Instant::now() < deadline, "emulator not ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let port = u16::try_from(ready["https_port"].as_u64().expect("port")).expect("port");
    let ca = std::fs::read(ready["ca_file"].as_str().expect("ca")).expect("CA file");
    let cs = ServiceConnectionString::from_str(
        ready["service_connection_string"]
            .as_str()
            .expect("connection string"),
    )
    .expect("connection string");
    let auth = cs.sas_token(Duration::from_secs(3600)).as_str().to_string();
    Started {
        server,
        _dir: dir,
        port,
        ca,
        auth,
    }
}

/// `knobs.connections` HTTP/1.1 clients trusting the emulator's CA.
fn client_pool(started: &Started, knobs: &Knobs) -> Vec<reqwest::Client> {
    (0..knobs.connections)
        .map(|_| {
            reqwest::Client::builder()
                .use_rustls_tls()
                .add_root_certificate(reqwest::Certificate::from_pem(&started.ca).expect("CA"))
                .resolve("localhost", ([127, 0, 0, 1], started.port).into())
                .http1_only()
                .pool_max_idle_per_host(knobs.clients)
                .build()
                .expect("client")
        })
        .collect()
}

async fn create_devices(client: &reqwest::Client, base: &str, auth: &str, devices: usize) {
    for i in 0..devices {
        let res = client
            .put(format!("{base}/devices/bench{i:05}?api-version=2021-04-12"))
            .header("authorization", auth)
            .body("{}")
            .send()
            .await
            .expect("create device");
        assert_eq!(res.status(), 200, "create device");
    }
}

/// Counters shared by the patching clients.
#[derive(Default)]
struct Counters {
    done: AtomicU64,
    failed: AtomicU64,
    /// Only PATCHes answered while this is set are counted.
    measuring: AtomicBool,
    stop: AtomicBool,
}

/// One client's loop: desired PATCHes round-robin over the devices until `stop`.
async fn patch_until_stopped(
    client: reqwest::Client,
    c: usize,
    knobs: (usize, usize),
    base: String,
    auth: String,
    counters: Arc<Counters>,
) {
    let (clients, devices) = knobs;
    let mut n: u64 = 0;
    while !counters.stop.load(Ordering::Relaxed) {
        let device = (c + (n as usize) * clients) % devices;
        let url = format!("{base}/twins/bench{device:05}?api-version=2021-04-12");
        let body = format!(r#"{{"properties":{{"desired":{{"counter":{n},"client":{c}}}}}}}"#);
        let ok = match client
            .patch(&url)
            .header("authorization", &auth)
            .header("content-type", "application/json; charset=utf-8")
            .body(body)
            .send()
            .await
        {
            Ok(res) => res.status() == 200 && res.bytes().await.is_ok(),
            Err(_) => false,
        };
        if counters.measuring.load(Ordering::Relaxed) {
            let counter = if ok { &counters.done } else { &counters.failed };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        n += 1;
    }
}

async fn measure(in_memory: bool) -> Measured {
    let mode = if in_memory { "in-memory" } else { "durable" };
    let knobs = Knobs::from_env();
    let Knobs {
        clients,
        seconds,
        devices,
        connections,
    } = knobs;
    let started = start_emulator(in_memory).await;
    let server_pid = started.server.0.id().to_string();
    let pool = client_pool(&started, &knobs);
    let base = format!("https://localhost:{}", started.port);
    create_devices(&pool[0], &base, &started.auth, devices).await;

    let counters = Arc::new(Counters::default());
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            tokio::spawn(patch_until_stopped(
                pool[c % pool.len()].clone(),
                c,
                (clients, devices),
                base.clone(),
                started.auth.clone(),
                counters.clone(),
            ))
        })
        .collect();
    // Warm-up: connections, TLS handshakes, SQLite pages.
    tokio::time::sleep(Duration::from_secs(2)).await;
    counters.measuring.store(true, Ordering::Relaxed);
    let server_before = cpu_seconds(&server_pid);
    let client_before = cpu_seconds("self");
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    counters.measuring.store(false, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    let delta = |before: Option<f64>, pid: &str| match (before, cpu_seconds(pid)) {
        (Some(a), Some(b)) => b - a,
        _ => f64::NAN,
    };
    let server_cpu = delta(server_before, &server_pid);
    let client_cpu = delta(client_before, "self");
    counters.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let ok = counters.done.load(Ordering::Relaxed) as f64;
    println!(
        "rest_patch: {clients} clients, {connections} client pools (HTTP/1.1 + TLS), {devices} devices, {mode} store: {ok} acknowledged twin PATCHes in {elapsed:.1} s = {:.0} updates/s ({} failed)",
        ok / elapsed,
        counters.failed.load(Ordering::Relaxed)
    );
    // The machine may be shared: say how much CPU each side actually got.
    println!(
        "rest_patch: {mode}: emulator CPU {server_cpu:.1} s ({:.2} cores) = {:.0} updates per emulator CPU-second; clients CPU {client_cpu:.1} s ({:.2} cores); load average {}",
        server_cpu / elapsed,
        ok / server_cpu,
        client_cpu / elapsed,
        load_average()
    );
    drop(started);
    Measured {
        updates_per_second: ok / elapsed,
        updates_per_cpu_second: ok / server_cpu,
    }
}
