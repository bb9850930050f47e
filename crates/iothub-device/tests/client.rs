//! DeviceClient against the in-process emulator: twin GET/PATCH, desired updates, WebSockets,
//! SAS renewal, dropped connections, bad credentials, unreachable hubs.

mod support;

use std::time::{Duration, Instant};

use iothub_device::{
    ClientOptions, ConnectionEvent, DesiredUpdateKind, DeviceClient, DisconnectReason, Error,
};
use serde_json::json;
use support::{closed_port, with_wrong_key, TestHub};

#[tokio::test(flavor = "multi_thread")]
async fn reports_and_reads_back_through_the_service_api() {
    let hub = TestHub::start().await;
    let conn = hub.device("dev-report").await;
    let client = DeviceClient::connect(conn, hub.options())
        .await
        .expect("connect");

    let before = client.get_twin().await.expect("get twin");
    let base = before.reported_version().expect("reported $version");
    let patch = json!({"connectivity": {"type": "cellular"}});
    let version = client.update_reported(&patch).await.expect("patch");
    assert!(version > base, "new version {version} after {base}");

    let twin = hub.rest_twin("dev-report").await;
    assert_eq!(
        twin["properties"]["reported"]["connectivity"]["type"],
        "cellular"
    );
    assert_eq!(twin["properties"]["reported"]["$version"], version);

    let after = client.get_twin().await.expect("get twin");
    assert_eq!(after.reported["connectivity"]["type"], "cellular");
    assert_eq!(after.reported_version(), Some(version));
    client.disconnect().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_transport_reports_too() {
    let hub = TestHub::start().await;
    hub.device("dev-ws").await;
    let client = DeviceClient::connect(hub.device_ws("dev-ws"), hub.ws_options())
        .await
        .expect("connect over wss");
    let version = client
        .update_reported(&json!({"connectivity": {"type": "wifi"}}))
        .await
        .expect("patch");
    let twin = hub.rest_twin("dev-ws").await;
    assert_eq!(
        twin["properties"]["reported"]["connectivity"]["type"],
        "wifi"
    );
    assert_eq!(twin["properties"]["reported"]["$version"], version);
    client.disconnect().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn desired_patches_arrive_within_a_second() {
    let hub = TestHub::start().await;
    let conn = hub.device("dev-desired").await;
    let client = DeviceClient::connect(conn, hub.options())
        .await
        .expect("connect");
    let mut updates = client.desired_updates();
    // Make sure the subscription is live before the service writes.
    client.get_twin().await.expect("get twin");

    let sent = Instant::now();
    hub.patch_desired("dev-desired", json!({"telemetryInterval": 5}))
        .await;
    let update = tokio::time::timeout(Duration::from_secs(1), updates.next())
        .await
        .expect("desired patch within 1 s")
        .expect("stream open");
    assert!(sent.elapsed() < Duration::from_secs(1));
    assert_eq!(update.kind, DesiredUpdateKind::Patch);
    assert_eq!(update.properties["telemetryInterval"], 5);
    assert!(update.version >= 2);
    client.disconnect().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn patches_sent_while_the_connection_drops_are_all_acknowledged() {
    let hub = TestHub::start().await;
    let conn = hub.device("dev-drops").await;
    let client = DeviceClient::connect(conn, hub.options())
        .await
        .expect("connect");
    let mut events = client.connection_events();
    let faults = hub.emulator.faults();

    // 100 patches, one every 15 ms, each awaited in its own task.
    let sender = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut tasks = Vec::new();
            for i in 0..100u32 {
                let client = client.clone();
                tasks.push(tokio::spawn(async move {
                    let key = format!("p{i}");
                    client.update_reported(&json!({ key: i })).await
                }));
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
            tasks
        })
    };

    // Meanwhile drop the connection five times, each time once the client is back.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        faults.drop_device_connection("dev-drops");
        wait_for(&mut events, |e| {
            matches!(
                e,
                ConnectionEvent::Disconnected {
                    reason: DisconnectReason::ConnectionLost(_)
                }
            )
        })
        .await;
        wait_for(&mut events, |e| {
            matches!(e, ConnectionEvent::Connected { .. })
        })
        .await;
    }

    let mut acknowledged = 0;
    for task in sender.await.expect("sender") {
        task.await.expect("task").expect("every patch acknowledged");
        acknowledged += 1;
    }
    assert_eq!(acknowledged, 100);

    let twin = hub.rest_twin("dev-drops").await;
    let reported = &twin["properties"]["reported"];
    for i in 0..100u32 {
        assert_eq!(
            reported[format!("p{i}")],
            i,
            "patch {i} missing: {reported}"
        );
    }
    client.disconnect().await;
}

async fn wait_for(
    events: &mut iothub_device::ConnectionEvents,
    wanted: impl Fn(&ConnectionEvent) -> bool,
) {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("event in time")
            .expect("stream open");
        if wanted(&event) {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn short_sas_tokens_are_renewed_and_the_client_stays_usable() {
    let hub = TestHub::start().await;
    let conn = hub.device("dev-sas").await;
    let options = ClientOptions {
        sas_ttl: Duration::from_secs(5),
        ..hub.options()
    };
    let client = DeviceClient::connect(conn, options).await.expect("connect");
    let mut events = client.connection_events();

    let end = Instant::now() + Duration::from_secs(20);
    let mut renewals = 0;
    let mut acknowledged_after_renewal = 0;
    let mut pending_renewal = false;
    while Instant::now() < end {
        let remaining = end.saturating_duration_since(Instant::now());
        let Ok(Some(event)) = tokio::time::timeout(remaining, events.next()).await else {
            break;
        };
        match event {
            ConnectionEvent::Disconnected {
                reason: DisconnectReason::TokenRenewal,
            } => {
                renewals += 1;
                pending_renewal = true;
            }
            ConnectionEvent::Disconnected { reason } => panic!("unexpected disconnect: {reason:?}"),
            ConnectionEvent::Connected { .. } if pending_renewal => {
                pending_renewal = false;
                client
                    .update_reported(&json!({ "renewal": renewals }))
                    .await
                    .expect("patch after renewal");
                acknowledged_after_renewal += 1;
            }
            ConnectionEvent::Closed { error } => panic!("client closed: {error:?}"),
            _ => {}
        }
    }
    assert!(renewals >= 3, "only {renewals} renewals in 20 s");
    assert!(acknowledged_after_renewal >= 3);
    let twin = client.get_twin().await.expect("still usable");
    assert_eq!(twin.reported["renewal"], acknowledged_after_renewal);
    client.disconnect().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn desired_changes_made_while_offline_surface_after_reconnect() {
    let hub = TestHub::start().await;
    let conn = hub.device("dev-offline").await;
    let client = DeviceClient::connect(conn, hub.options())
        .await
        .expect("connect");
    let mut updates = client.desired_updates();
    let mut events = client.connection_events();
    client.get_twin().await.expect("get twin");

    let faults = hub.emulator.faults();
    faults.refuse_connections_for(Duration::from_secs(2));
    faults.drop_device_connection("dev-offline");
    // Wait until the device noticed, then change desired while it cannot connect.
    loop {
        let event = tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .expect("disconnect noticed")
            .expect("stream open");
        if matches!(event, ConnectionEvent::Disconnected { .. }) {
            break;
        }
    }
    hub.patch_desired("dev-offline", json!({"mode": "eco"}))
        .await;

    let update = tokio::time::timeout(Duration::from_secs(15), updates.next())
        .await
        .expect("update after reconnect")
        .expect("stream open");
    // IoT Hub keeps no notifications for offline devices, so normally the resync GET finds the
    // change (kind Full). The emulator queues them in the clean-session-0 session instead, so
    // the notification may win the race (kind Patch). Either way it is delivered exactly once.
    assert_eq!(update.properties["mode"], "eco", "{update:?}");
    assert_eq!(update.properties["$version"], update.version);
    let again = tokio::time::timeout(Duration::from_secs(1), updates.next()).await;
    assert!(again.is_err(), "delivered twice: {again:?}");
    client.disconnect().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn throttled_twin_operations_are_retried() {
    let hub = TestHub::start().await;
    let conn = hub.device("dev-throttle").await;
    let client = DeviceClient::connect(conn, hub.options())
        .await
        .expect("connect");
    client.get_twin().await.expect("get twin");
    hub.emulator.faults().fail_next_twin_operations(2, 429);
    let version = client
        .update_reported(&json!({"after": "throttling"}))
        .await
        .expect("retried until accepted");
    let twin = hub.rest_twin("dev-throttle").await;
    assert_eq!(twin["properties"]["reported"]["$version"], version);
    client.disconnect().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rejected_credentials_fail_at_once() {
    let hub = TestHub::start().await;
    let conn = hub.device("dev-badkey").await;
    let started = Instant::now();
    let err = DeviceClient::connect(with_wrong_key(&conn), hub.options())
        .await
        .expect_err("wrong key must fail");
    assert!(matches!(err, Error::AuthenticationRejected(_)), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_hub_times_out_with_the_last_error() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let conn = iothub_device::DeviceConnectionString::with_key(
        format!("localhost:{}", closed_port()),
        "dev",
        iothub_auth::SharedAccessKey::generate(),
    );
    let options = ClientOptions {
        connect_timeout: Duration::from_secs(2),
        ..ClientOptions::default()
    };
    let started = Instant::now();
    let err = DeviceClient::connect(conn, options)
        .await
        .expect_err("nothing listens");
    let elapsed = started.elapsed();
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    assert!(
        elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    assert!(
        err.to_string().contains("refused") || err.to_string().contains("I/O"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn untrusted_certificates_are_not_accepted() {
    let hub = TestHub::start().await;
    let conn = hub.device("dev-untrusted").await;
    // Another emulator's CA: a valid CA that did not sign this hub's certificate (and the test
    // does not depend on what the machine's system store holds).
    let other = TestHub::start().await;
    let options = ClientOptions {
        ca_pem: Some(other.emulator.ca_pem().as_bytes().to_vec()),
        connect_timeout: Duration::from_secs(20),
        ..hub.options()
    };
    let started = std::time::Instant::now();
    let err = DeviceClient::connect(conn, options)
        .await
        .expect_err("wrong CA, no trust");
    // Terminal at once: retrying cannot make the certificate trusted.
    assert!(matches!(err, Error::UntrustedCertificate(_)), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10), "{err}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn gateway_host_name_is_dialled_while_host_name_stays_the_identity() {
    let hub = TestHub::start().await;
    let conn = hub.device("dev-gw").await;
    // Identity `localhost` (the hub's name), TCP/TLS to 127.0.0.1 (a SAN of the emulator's cert).
    let text = format!(
        "HostName={};DeviceId=dev-gw;GatewayHostName=127.0.0.1:{};SharedAccessKey={}",
        conn.host(),
        hub.emulator.mqtt_port(),
        key_of(&conn).expose_base64()
    );
    let client = DeviceClient::connect(text.parse().expect("gateway string"), hub.options())
        .await
        .expect("connect through the gateway address");
    assert!(
        client.endpoint().starts_with("127.0.0.1:"),
        "{}",
        client.endpoint()
    );
    client
        .update_reported(&json!({"via": "gateway"}))
        .await
        .expect("patch");
    assert_eq!(
        hub.rest_twin("dev-gw").await["properties"]["reported"]["via"],
        "gateway"
    );
    client.disconnect().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fixed_sas_token_connects_and_an_expired_one_is_refused_locally() {
    let hub = TestHub::start().await;
    let conn = hub.device("dev-sas-fixed").await;
    let token = conn.sas_token(Duration::from_secs(600)).expect("token");
    let text = format!(
        "HostName={};DeviceId=dev-sas-fixed;SharedAccessSignature={}",
        conn.host_name,
        token.as_str()
    );
    let client = DeviceClient::connect(text.parse().expect("SAS string"), hub.options())
        .await
        .expect("connect with a fixed token");
    client.get_twin().await.expect("get twin");
    client.disconnect().await;

    let expired = iothub_auth::SasToken::generate(
        &conn.resource_uri(),
        key_of(&conn),
        None,
        iothub_auth::unix_now() - 10,
    );
    let text = format!(
        "HostName={};DeviceId=dev-sas-fixed;SharedAccessSignature={}",
        conn.host_name,
        expired.as_str()
    );
    let err = DeviceClient::connect(text.parse().expect("SAS string"), hub.options())
        .await
        .expect_err("expired token");
    assert_eq!(err, Error::TokenExpired);
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_revoked_while_connected_stop_the_client_without_a_retry_loop() {
    let hub = TestHub::start().await;
    let conn = hub.device("dev-revoked").await;
    let client = DeviceClient::connect(conn, hub.options())
        .await
        .expect("connect");
    let mut events = client.connection_events();
    hub.delete_device("dev-revoked").await;
    hub.emulator.faults().drop_device_connection("dev-revoked");

    let mut attempts = 0;
    let error = loop {
        let event = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("closed in time")
            .expect("stream ends only after Closed");
        match event {
            ConnectionEvent::Reconnecting { .. } => attempts += 1,
            ConnectionEvent::Closed { error } => break error,
            _ => {}
        }
    };
    assert!(attempts <= 1, "{attempts} reconnect attempts");
    assert!(
        matches!(error, Some(Error::AuthenticationRejected(_))),
        "{error:?}"
    );
    let later = client.get_twin().await.expect_err("client is closed");
    assert!(matches!(later, Error::AuthenticationRejected(_)), "{later}");
    assert!(events.next().await.is_none(), "stream ends after Closed");
}

fn key_of(conn: &iothub_device::DeviceConnectionString) -> &iothub_auth::SharedAccessKey {
    match &conn.credential {
        iothub_auth::DeviceCredential::SharedAccessKey(key) => key,
        other => panic!("emulator devices use keys, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn twins_larger_than_rumqttcs_default_packet_limit_round_trip() {
    let hub = TestHub::start().await;
    let conn = hub.device("dev-large").await;
    let client = DeviceClient::connect(conn, hub.options())
        .await
        .expect("connect");
    // ~28 KB of reported properties: within the hub's 32 KB section limit, far above the
    // 10 KiB rumqttc allows by default in each direction.
    let value = "x".repeat(4000);
    let patch: serde_json::Map<String, serde_json::Value> =
        (0..7).map(|i| (format!("blob{i}"), json!(value))).collect();
    let version = client
        .update_reported(&serde_json::Value::Object(patch))
        .await
        .expect("large patch");
    let twin = client.get_twin().await.expect("large twin GET");
    assert_eq!(twin.reported_version(), Some(version));
    assert_eq!(twin.reported["blob6"].as_str().map(str::len), Some(4000));
    client.disconnect().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn impossible_patches_are_refused_locally_and_the_connection_survives() {
    let hub = TestHub::start().await;
    let conn = hub.device("dev-huge").await;
    let client = DeviceClient::connect(conn, hub.options())
        .await
        .expect("connect");
    let mut events = client.connection_events();
    let huge = json!({ "blob": "x".repeat(40 * 1024) });
    let err = client.update_reported(&huge).await.expect_err("over 32 KB");
    assert!(matches!(err, Error::InvalidPatch(_)), "{err}");
    let err = client
        .update_reported(&json!([1, 2]))
        .await
        .expect_err("not an object");
    assert!(matches!(err, Error::InvalidPatch(_)), "{err}");
    client
        .update_reported(&json!({"still": "fine"}))
        .await
        .expect("connection unaffected");
    let quiet = tokio::time::timeout(Duration::from_millis(200), events.next()).await;
    assert!(quiet.is_err(), "no connection event expected: {quiet:?}");
    client.disconnect().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_connections_renew_their_token_too() {
    let hub = TestHub::start().await;
    hub.device("dev-ws-renew").await;
    let options = ClientOptions {
        sas_ttl: Duration::from_secs(5),
        ..hub.ws_options()
    };
    let client = DeviceClient::connect(hub.device_ws("dev-ws-renew"), options)
        .await
        .expect("connect over wss");
    let mut events = client.connection_events();
    wait_for(&mut events, |e| {
        matches!(
            e,
            ConnectionEvent::Disconnected {
                reason: DisconnectReason::TokenRenewal
            }
        )
    })
    .await;
    wait_for(&mut events, |e| {
        matches!(e, ConnectionEvent::Connected { .. })
    })
    .await;
    client
        .update_reported(&json!({"renewed": true}))
        .await
        .expect("patch after renewal");
    client.disconnect().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_retries_while_the_hub_refuses_connections() {
    let hub = TestHub::start().await;
    let conn = hub.device("dev-refused").await;
    hub.emulator
        .faults()
        .refuse_connections_for(Duration::from_millis(1500));
    let started = Instant::now();
    let client = DeviceClient::connect(conn, hub.options())
        .await
        .expect("connects once the hub accepts again");
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    client.get_twin().await.expect("usable");
    client.disconnect().await;
}
