//! The endpoint end to end without sockets: a device on the far side of an in-memory pipe, the
//! real driver, session table and hub on this side. The pipe's small buffer stands in for a
//! device that stops reading.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use iothub_auth::SasToken;
use rumqttc::mqttbytes::v4::{Connect, ConnectReturnCode, Packet, Publish, Subscribe};
use rumqttc::mqttbytes::QoS;
use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::session_table::MAX_UNSENT_DESIRED;
use super::transport::StreamTransport;
use super::{codec, driver, Endpoint, SessionTable};
use crate::connections::Connections;
use crate::hub::{Hub, TwinWrite, TwinWriteMode};
use crate::persist::Loaded;

/// Generous: these waits end at once unless something is broken.
const WAIT: Duration = Duration::from_secs(20);

const DEVICE: &str = "d1";

struct Harness {
    hub: Hub,
    endpoint: Endpoint,
    connections: Connections,
}

async fn harness() -> Harness {
    let sessions = SessionTable::default();
    let hub = Hub::open(
        "localhost".into(),
        None,
        Loaded::default(),
        Arc::new(sessions.clone()),
        crate::events::EventsConfig::default(),
    )
    .await
    .expect("in-memory hub");
    hub.ensure_device(DEVICE).await.expect("device");
    let connections = Connections::default();
    let endpoint = Endpoint::new(hub.clone(), sessions, connections.clone());
    Harness {
        hub,
        endpoint,
        connections,
    }
}

/// The device's end of a connection whose pipe buffers `capacity` bytes each way.
struct Device {
    pipe: DuplexStream,
    buf: BytesMut,
}

impl Harness {
    fn connect_pipe(&self, capacity: usize) -> Device {
        let (device, hub_side) = tokio::io::duplex(capacity);
        let endpoint = self.endpoint.clone();
        self.connections.spawn(driver::run(
            StreamTransport(hub_side),
            endpoint,
            "pipe".to_string(),
        ));
        Device {
            pipe: device,
            buf: BytesMut::new(),
        }
    }

    /// A connected device (clean session 0), subscribed to desired notifications.
    async fn subscribed_device(&self, capacity: usize) -> (Device, bool) {
        let mut device = self.connect_pipe(capacity);
        let session_present = device.connect(&self.hub).await;
        device
            .send(Packet::Subscribe(Subscribe::new(
                "$iothub/twin/PATCH/properties/desired/#",
                QoS::AtLeastOnce,
            )))
            .await;
        match device.recv().await {
            Some(Packet::SubAck(_)) => {}
            other => panic!("expected SUBACK, got {other:?}"),
        }
        (device, session_present)
    }

    async fn patch_desired(&self, n: u64) {
        let mut desired = Map::new();
        desired.insert("n".into(), json!(n));
        let write = TwinWrite {
            mode: TwinWriteMode::Patch,
            tags: None,
            desired: Some(desired),
        };
        self.hub
            .update_twin(DEVICE, write, None)
            .await
            .expect("desired PATCH");
    }

    fn desired_version(&self) -> u64 {
        self.hub.twin_json(DEVICE).expect("twin")["properties"]["desired"]["$version"]
            .as_u64()
            .expect("$version")
    }

    fn connection_state(&self) -> Value {
        self.hub.device_json(DEVICE).expect("device")["connectionState"].clone()
    }
}

impl Device {
    async fn send(&mut self, packet: Packet) {
        let mut out = BytesMut::new();
        codec::encode(&packet, &mut out).expect("encodes");
        self.pipe.write_all(&out).await.expect("pipe write");
    }

    /// The next whole packet, or `None` once the hub has closed the connection.
    async fn recv(&mut self) -> Option<Packet> {
        tokio::time::timeout(WAIT, async {
            loop {
                if let Some(packet) = codec::decode(&mut self.buf).expect("valid packets") {
                    return Some(packet);
                }
                match self.pipe.read_buf(&mut self.buf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
        })
        .await
        .expect("a packet or the close within the wait")
    }

    /// CONNECT with a valid token; returns CONNACK's `session_present`.
    async fn connect(&mut self, hub: &Hub) -> bool {
        let keys = hub.device_keys(DEVICE).expect("a registered device");
        let token = SasToken::generate(
            &format!("localhost/devices/{DEVICE}"),
            &keys.primary,
            None,
            iothub_auth::unix_now() + 3600,
        );
        let mut connect = Connect::new(DEVICE);
        connect.clean_session = false;
        connect.keep_alive = 600;
        connect.set_login(
            format!("localhost/{DEVICE}/?api-version=2021-04-12"),
            token.as_str(),
        );
        self.send(Packet::Connect(connect)).await;
        match self.recv().await {
            Some(Packet::ConnAck(ack)) if ack.code == ConnectReturnCode::Success => {
                ack.session_present
            }
            other => panic!("expected an accepting CONNACK, got {other:?}"),
        }
    }

    /// Everything the hub sends until it closes the connection.
    async fn drain(&mut self) -> Vec<Packet> {
        let mut packets = Vec::new();
        while let Some(packet) = self.recv().await {
            packets.push(packet);
        }
        packets
    }
}

fn desired_version_of(publish: &Publish) -> u64 {
    publish
        .topic
        .strip_prefix("$iothub/twin/PATCH/properties/desired/?$version=")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("not a desired notification: {}", publish.topic))
}

fn desired_versions(packets: &[Packet]) -> Vec<u64> {
    packets
        .iter()
        .filter_map(|packet| match packet {
            Packet::Publish(publish) => Some(desired_version_of(publish)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_device_that_stops_reading_is_disconnected_and_never_sees_a_gap() {
    let h = harness().await;
    // 512 bytes each way: a few notifications fill the pipe while the device reads nothing.
    let (mut device, _) = h.subscribed_device(512).await;
    let first = h.desired_version() + 1;
    let flood = MAX_UNSENT_DESIRED as u64 + 200;
    for n in 0..flood {
        h.patch_desired(n).await;
        // Let the connection write (and block) as it would against a real socket.
        tokio::task::yield_now().await;
    }
    let last = h.desired_version();
    assert_eq!(last, first + flood - 1);

    let received = desired_versions(&device.drain().await);
    assert!(
        !received.is_empty(),
        "the pipe holds a few notifications before the connection stalls"
    );
    assert!(
        (received.len() as u64) < flood,
        "a stalled connection cannot have taken every notification"
    );
    let expected: Vec<u64> = (first..first + received.len() as u64).collect();
    assert_eq!(received, expected, "versions arrive in order without a gap");
    assert_eq!(h.connection_state(), "Disconnected");

    // The device comes back in step: its session with the hole is not resumed (so it knows to
    // re-read its twin), nothing stale is replayed, and the notifications after it are complete.
    let (mut device, session_present) = h.subscribed_device(64 * 1024).await;
    assert!(
        !session_present,
        "a session that lost a notification is not resumed"
    );
    assert_eq!(h.desired_version(), last);
    h.patch_desired(flood).await;
    match device.recv().await {
        Some(Packet::Publish(publish)) => assert_eq!(desired_version_of(&publish), last + 1),
        other => panic!("expected the next desired notification, got {other:?}"),
    }
}

#[tokio::test]
async fn notifications_while_offline_after_falling_behind_are_not_replayed() {
    let h = harness().await;
    let (mut device, _) = h.subscribed_device(512).await;
    for n in 0..MAX_UNSENT_DESIRED as u64 + 50 {
        h.patch_desired(n).await;
    }
    device.drain().await;
    // While it is offline, more changes: queuing them would resume the series after the hole.
    h.patch_desired(0).await;
    let (mut device, session_present) = h.subscribed_device(64 * 1024).await;
    assert!(!session_present, "the session with the hole is not resumed");
    h.patch_desired(1).await;
    match device.recv().await {
        Some(Packet::Publish(publish)) => {
            assert_eq!(desired_version_of(&publish), h.desired_version())
        }
        other => panic!("expected only the newest notification, got {other:?}"),
    }
}

#[tokio::test]
async fn deleting_a_device_closes_its_session_at_once() {
    let h = harness().await;
    let (mut device, _) = h.subscribed_device(64 * 1024).await;
    assert_eq!(h.connection_state(), "Connected");
    h.hub.delete_device(DEVICE, None).await.expect("delete");
    assert!(device.drain().await.is_empty(), "closed without a word");

    // Re-created under the same id, it starts without the old session.
    h.hub.ensure_device(DEVICE).await.expect("re-create");
    let mut device = h.connect_pipe(64 * 1024);
    assert!(!device.connect(&h.hub).await, "no session present");
}

#[tokio::test]
async fn shutdown_closes_a_connection_that_has_not_sent_connect() {
    let h = harness().await;
    let mut silent = h.connect_pipe(1024);
    tokio::time::timeout(WAIT, h.connections.close())
        .await
        .expect("shutdown does not wait for the CONNECT timeout");
    assert!(silent.recv().await.is_none(), "the hub closed it");
}
