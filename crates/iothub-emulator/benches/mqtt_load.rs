//! MQTT device load: memory per idle TLS connection, then acknowledged reported-property
//! patches per second over all of those connections.
//!
//! Not a test. Run (raise the descriptor limit first; each process holds one per connection):
//!
//! ```text
//! ulimit -n 20000
//! cargo bench -p iothub-emulator --bench mqtt_load
//! ```
//!
//! Knobs (environment): `MQTT_LOAD_CONNECTIONS` device connections (default 10000),
//! `MQTT_LOAD_SECONDS` measuring time (default 10), `MQTT_LOAD_WINDOW` reported patches in flight
//! per connection (default 1: each device waits for its 204 before the next PATCH),
//! `MQTT_LOAD_DURABLE=1` to keep state in SQLite (default: `--in-memory`).
//!
//! The emulator runs in this process; the devices run in a child process (this same binary,
//! re-executed), so the resident-set growth measured here is the emulator's alone. Devices are
//! plain MQTT 3.1.1 over TLS through rumqttc's codec: CONNECT (clean session 0, keep-alive
//! 600 s), SUBSCRIBE `$iothub/twin/res/#`, then idle until the load phase, where every device
//! publishes reported PATCHes at QoS 1 and counts the `$iothub/twin/res/204/` responses.

// A benchmark harness, not a service: a failed set-up step aborts the run with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use iothub_auth::{DeviceConnectionString, SasToken};
use iothub_emulator::{Emulator, EmulatorConfig};
use rumqttc::{Connect, Packet, Publish, QoS, Subscribe};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ROLE: &str = "MQTT_LOAD_ROLE";
const MAX_PACKET: usize = 256 * 1024 + 16 * 1024;

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if std::env::var(ROLE).as_deref() == Ok("devices") {
        runtime.block_on(devices::run());
    } else {
        runtime.block_on(hub());
    }
}

/// The emulator side: start it, register devices, spawn the device process, measure.
async fn hub() {
    let connections = knob("MQTT_LOAD_CONNECTIONS", 10_000);
    let limit = open_files_limit();
    assert!(
        limit > connections + 256,
        "the open-files limit is {limit}; {connections} connections need more: run `ulimit -n 20000` \
         (or lower MQTT_LOAD_CONNECTIONS)"
    );
    let durable = knob("MQTT_LOAD_DURABLE", 0) == 1;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = EmulatorConfig::for_tests(dir.path());
    config.in_memory = !durable;
    let emulator = Emulator::start(config).await.expect("emulator starts");

    let mut tokens = String::new();
    for i in 0..connections {
        let id = format!("load{i:05}");
        let cs = emulator.add_device(&id).await.expect("device");
        let cs = DeviceConnectionString::from_str(&cs).expect("device connection string");
        let token: SasToken = cs.sas_token(Duration::from_secs(3600)).expect("token");
        tokens.push_str(&format!("{id}\t{}\n", token.as_str()));
    }
    let tokens_file = dir.path().join("tokens.tsv");
    std::fs::write(&tokens_file, tokens).expect("tokens file");

    // Let start-up allocations settle before the baseline.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let baseline = rss_kib();
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .env(ROLE, "devices")
        .env("MQTT_LOAD_PORT", emulator.mqtt_port().to_string())
        .env("MQTT_LOAD_CA", emulator.ca_file())
        .env("MQTT_LOAD_TOKENS", &tokens_file)
        .env("MQTT_LOAD_HOST", emulator.hostname())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("device process starts");
    let mut to_child = child.stdin.take().expect("child stdin");
    let mut from_child = BufReader::new(child.stdout.take().expect("child stdout")).lines();

    let connected = tokio::task::block_in_place(|| from_child.next())
        .and_then(Result::ok)
        .expect("device process reports its connections");
    println!("devices: {connected}");
    // Idle connections: give the server a moment to finish handshake-time allocations.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let loaded = rss_kib();
    let per_connection = (loaded.saturating_sub(baseline)) as f64 * 1024.0 / connections as f64;
    println!(
        "memory: {connections} idle TLS device connections, emulator RSS {baseline} KiB -> {loaded} KiB, \
         {:.1} KB per connection",
        per_connection / 1000.0
    );

    writeln!(to_child, "go").expect("start the load");
    let result = tokio::task::block_in_place(|| from_child.next())
        .and_then(Result::ok)
        .expect("device process reports throughput");
    println!("throughput: {result}");
    let after = rss_kib();
    println!("memory after load: emulator RSS {after} KiB");
    let _ = child.wait();
    emulator.shutdown().await;
}

/// The soft `RLIMIT_NOFILE` of this process (inherited by the device process).
fn open_files_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("/proc/self/limits");
    limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|soft| soft.parse().ok())
        .unwrap_or(u64::MAX)
}

/// This process's resident set size, from `/proc/self/status`.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

mod devices {
    //! The device process: many raw MQTT-over-TLS device connections.

    use super::*;

    struct Config {
        port: u16,
        host: String,
        connector: tokio_rustls::TlsConnector,
        window: u64,
    }

    pub async fn run() {
        let config = Arc::new(Config {
            port: knob("MQTT_LOAD_PORT", 0) as u16,
            host: std::env::var("MQTT_LOAD_HOST").expect("host"),
            connector: connector(Path::new(&std::env::var("MQTT_LOAD_CA").expect("CA path"))),
            window: knob("MQTT_LOAD_WINDOW", 1).max(1),
        });
        let seconds = knob("MQTT_LOAD_SECONDS", 10);
        let tokens = std::fs::read_to_string(PathBuf::from(
            std::env::var("MQTT_LOAD_TOKENS").expect("tokens"),
        ))
        .expect("tokens file");
        let devices: Vec<(String, String)> = tokens
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(id, token)| (id.to_string(), token.to_string()))
            .collect();

        let go = Arc::new(tokio::sync::Notify::new());
        let started = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicU64::new(0));
        // Connect in bounded bursts so the listen backlog never overflows.
        let gate = Arc::new(tokio::sync::Semaphore::new(128));
        let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel();
        let begin = Instant::now();
        let count = devices.len();
        for (id, token) in devices {
            let (config, go, started, acked, gate, ready) = (
                config.clone(),
                go.clone(),
                started.clone(),
                acked.clone(),
                gate.clone(),
                ready_tx.clone(),
            );
            tokio::spawn(async move {
                let permit = gate.acquire_owned().await.expect("gate");
                let device = Device::connect(&config, &id, &token).await;
                drop(permit);
                let _ = ready.send(());
                if !started.load(Ordering::Acquire) {
                    go.notified().await;
                }
                device.load(&config, &acked).await;
            });
        }
        drop(ready_tx);
        let mut ready = 0;
        while ready < count && ready_rx.recv().await.is_some() {
            ready += 1;
        }
        println!(
            "{ready} connected and subscribed in {:.1} s",
            begin.elapsed().as_secs_f64()
        );

        let mut line = String::new();
        tokio::task::block_in_place(|| std::io::stdin().read_line(&mut line)).expect("go line");
        started.store(true, Ordering::Release);
        go.notify_waiters();
        // Warm up, then count over the measuring window.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (c0, t0) = (acked.load(Ordering::Relaxed), Instant::now());
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let (c1, elapsed) = (acked.load(Ordering::Relaxed), t0.elapsed().as_secs_f64());
        println!(
            "{} acknowledged reported patches in {elapsed:.2} s over {ready} connections (window {}): {:.0} patches/s",
            c1 - c0,
            config.window,
            (c1 - c0) as f64 / elapsed
        );
        std::io::stdout().flush().expect("flush");
        std::process::exit(0);
    }

    fn connector(ca: &Path) -> tokio_rustls::TlsConnector {
        let pem = std::fs::read(ca).expect("CA file");
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            roots.add(cert.expect("certificate")).expect("CA accepted");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }

    struct Device {
        stream: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
        inbuf: BytesMut,
        out: BytesMut,
        next_pkid: u16,
    }

    impl Device {
        async fn connect(config: &Config, id: &str, token: &str) -> Device {
            // A full listen backlog refuses a burst now and then: retry a little, then give up.
            let mut attempts = 0;
            let tcp = loop {
                match tokio::net::TcpStream::connect(("127.0.0.1", config.port)).await {
                    Ok(tcp) => break tcp,
                    Err(error) if attempts >= 100 => panic!("{id}: cannot connect: {error}"),
                    Err(_) => {
                        attempts += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            };
            let _ = tcp.set_nodelay(true);
            let name =
                rustls::pki_types::ServerName::try_from(config.host.clone()).expect("server name");
            let stream = config
                .connector
                .connect(name, tcp)
                .await
                .expect("TLS handshake");
            let mut device = Device {
                stream,
                inbuf: BytesMut::new(),
                out: BytesMut::new(),
                next_pkid: 1,
            };
            let mut connect = Connect::new(id);
            connect.clean_session = false;
            connect.keep_alive = 600;
            connect.set_login(
                format!("{}/{id}/?api-version=2021-04-12", config.host),
                token,
            );
            device.send(Packet::Connect(connect)).await;
            match device.recv().await {
                Packet::ConnAck(ack) if ack.code == rumqttc::ConnectReturnCode::Success => {}
                other => panic!("{id}: CONNECT refused: {other:?}"),
            }
            let mut subscribe = Subscribe::new("$iothub/twin/res/#", QoS::AtMostOnce);
            subscribe.pkid = device.pkid();
            device.send(Packet::Subscribe(subscribe)).await;
            match device.recv().await {
                Packet::SubAck(_) => {}
                other => panic!("{id}: expected SUBACK, got {other:?}"),
            }
            // Idle devices keep no read buffer around.
            device.inbuf = BytesMut::new();
            device.out = BytesMut::new();
            device
        }

        fn pkid(&mut self) -> u16 {
            let id = self.next_pkid;
            self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
            id
        }

        fn queue_patch(&mut self, n: u64) {
            let mut publish = Publish::new(
                format!("$iothub/twin/PATCH/properties/reported/?$rid={n}"),
                QoS::AtLeastOnce,
                format!("{{\"temperature\":{},\"sequence\":{n}}}", n % 40),
            );
            publish.pkid = self.pkid();
            Packet::Publish(publish)
                .write(&mut self.out, MAX_PACKET)
                .expect("encode");
        }

        async fn send(&mut self, packet: Packet) {
            packet.write(&mut self.out, MAX_PACKET).expect("encode");
            self.flush().await;
        }

        async fn flush(&mut self) {
            self.stream.write_all(&self.out).await.expect("write");
            self.stream.flush().await.expect("flush");
            self.out.clear();
        }

        async fn recv(&mut self) -> Packet {
            loop {
                match Packet::read(&mut self.inbuf, MAX_PACKET) {
                    Ok(packet) => return packet,
                    Err(rumqttc::Error::InsufficientBytes(n)) => self.inbuf.reserve(n.max(1024)),
                    Err(error) => panic!("bad packet from the emulator: {error}"),
                }
                if !self.out.is_empty() {
                    self.flush().await;
                }
                let n = self.stream.read_buf(&mut self.inbuf).await.expect("read");
                assert!(n > 0, "the emulator closed a device connection");
            }
        }

        /// Closed-loop reported PATCHes: `window` in flight, one more per 204.
        async fn load(mut self, config: &Config, acked: &AtomicU64) {
            let mut sequence = 0;
            for _ in 0..config.window {
                sequence += 1;
                self.queue_patch(sequence);
            }
            self.flush().await;
            loop {
                match self.recv().await {
                    Packet::Publish(response)
                        if response.topic.starts_with("$iothub/twin/res/204/") =>
                    {
                        acked.fetch_add(1, Ordering::Relaxed);
                        sequence += 1;
                        // Written when no further packet is buffered (see `recv`), so a burst
                        // of responses is answered in one write.
                        self.queue_patch(sequence);
                    }
                    Packet::Publish(other) => panic!("unexpected response {}", other.topic),
                    _ => {}
                }
            }
        }
    }
}
