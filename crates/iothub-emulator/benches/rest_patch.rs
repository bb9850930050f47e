//! REST twin PATCH throughput with concurrent clients, durability on (SQLite, WAL, group commit).
//!
//! Not a test: `cargo bench -p iothub-emulator --bench rest_patch`. Knobs (environment):
//! `BENCH_CLIENTS` concurrent clients (default 64), `BENCH_SECONDS` measuring time (default 10),
//! `BENCH_DEVICES` devices patched round-robin (default 1000), `BENCH_CONNECTIONS` HTTP/1.1
//! connections the clients share (default 16). The emulator runs in this process on ephemeral
//! ports with its data in a temp dir; every counted PATCH was answered 200 after its commit.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use iothub_auth::ServiceConnectionString;
use iothub_emulator::{Emulator, EmulatorConfig};

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU seconds (user + system) this process has used, from `/proc/self/stat` (Linux).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
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

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let clients = knob("BENCH_CLIENTS", 64);
    let seconds = knob("BENCH_SECONDS", 10) as u64;
    let devices = knob("BENCH_DEVICES", 1000);
    let connections = knob("BENCH_CONNECTIONS", 16).max(1);

    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = EmulatorConfig::for_tests(dir.path());
    config.in_memory = false;
    let emulator = Emulator::start(config).await.expect("emulator starts");
    for i in 0..devices {
        emulator
            .add_device(&format!("bench{i:05}"))
            .await
            .expect("device");
    }
    let port = emulator.https_port();
    let cs = ServiceConnectionString::from_str(&emulator.service_connection_string())
        .expect("connection string");
    let auth = cs.sas_token(Duration::from_secs(3600)).as_str().to_string();
    let pool: Vec<reqwest::Client> = (0..connections)
        .map(|_| {
            reqwest::Client::builder()
                .use_rustls_tls()
                .add_root_certificate(
                    reqwest::Certificate::from_pem(emulator.ca_pem().as_bytes()).expect("CA"),
                )
                .resolve("localhost", ([127, 0, 0, 1], port).into())
                .http1_only()
                .pool_max_idle_per_host(clients)
                .build()
                .expect("client")
        })
        .collect();

    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let client = pool[c % pool.len()].clone();
        let (auth, done, failed, measuring, stop) = (
            auth.clone(),
            done.clone(),
            failed.clone(),
            measuring.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut n: u64 = 0;
            while !stop.load(Ordering::Relaxed) {
                let device = (c + (n as usize) * clients) % devices;
                let url = format!(
                    "https://localhost:{port}/twins/bench{device:05}?api-version=2021-04-12"
                );
                let body =
                    format!(r#"{{"properties":{{"desired":{{"counter":{n},"client":{c}}}}}}}"#);
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
                if measuring.load(Ordering::Relaxed) {
                    if ok {
                        done.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                n += 1;
            }
        }));
    }
    // Warm-up: connections, TLS handshakes, SQLite pages.
    tokio::time::sleep(Duration::from_secs(2)).await;
    measuring.store(true, Ordering::Relaxed);
    let cpu_before = cpu_seconds();
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = match (cpu_before, cpu_seconds()) {
        (Some(a), Some(b)) => b - a,
        _ => f64::NAN,
    };
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let ok = done.load(Ordering::Relaxed);
    println!(
        "rest_patch: {clients} clients over {connections} HTTP/1.1 connection pools, {devices} devices, durable store: {ok} acknowledged twin PATCHes in {elapsed:.1} s = {:.0} updates/s ({} failed)",
        ok as f64 / elapsed,
        failed.load(Ordering::Relaxed)
    );
    // The machine may be shared: report how much CPU this process (server + clients) got.
    println!(
        "rest_patch: process CPU {cpu:.1} s over {elapsed:.1} s wall ({:.2} cores) = {:.0} updates per CPU-second (server and clients together); load average {}",
        cpu / elapsed,
        ok as f64 / cpu,
        load_average()
    );
    emulator.shutdown().await;
}
