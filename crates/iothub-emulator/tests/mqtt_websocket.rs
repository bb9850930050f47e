//! MQTT over WebSockets (`wss://localhost:{https-port}/$iothub/websocket`) with rumqttc's
//! `Transport::Wss`, which fails the connection unless the `mqtt` subprotocol is echoed.

use iothub_auth::SharedAccessKey;
use iothub_emulator::test_support::TestHub;
use rumqttc::{ConnectReturnCode, ConnectionError};
use serde_json::{json, Value};

use crate::support::mqtt::{Client, MqttHub};

#[tokio::test]
async fn twin_round_trip_and_desired_push_over_websockets() {
    let hub = TestHub::start().await;
    let device = hub.device("ws-device").await;
    let client = Client::start(hub.ws_options(&device.id, &hub.device_token(&device)));
    client.expect_connack().await;
    client.subscribe_twin().await;

    let (status, twin) = client.get_twin("ws-1").await;
    assert_eq!(status, 200);
    let reported = twin["reported"]["$version"].as_u64().expect("$version");

    // A 4 KB value makes the PATCH span several WebSocket frames on some stacks and exercises
    // packet reassembly on ours.
    let big = "x".repeat(4000);
    let (status, version, _) = client
        .patch_reported("ws-2", &json!({"blob": big}).to_string())
        .await;
    assert_eq!((status, version), (204, Some(reported + 1)));

    hub.patch_desired(&device.id, json!({"interval": 30})).await;
    let push = client
        .expect_publish("$iothub/twin/PATCH/properties/desired/")
        .await;
    let body: Value = serde_json::from_slice(&push.payload).expect("JSON");
    assert_eq!(body["interval"], 30);

    let state = hub.device_identity(&device.id).await;
    assert_eq!(state["connectionState"], "Connected");
}

#[tokio::test]
async fn websocket_connect_with_a_bad_token_gets_connack_5() {
    let hub = TestHub::start().await;
    let device = hub.device("ws-device").await;
    let forged = hub.token(
        &device.id,
        &SharedAccessKey::generate(),
        iothub_auth::unix_now() + 60,
    );
    let client = Client::start(hub.ws_options(&device.id, &forged));
    match client.expect_error().await {
        ConnectionError::ConnectionRefused(code) => {
            assert_eq!(code, ConnectReturnCode::NotAuthorized)
        }
        other => panic!("expected CONNACK 5, got {other}"),
    }
}

#[tokio::test]
async fn websocket_and_tls_share_one_session_per_client_id() {
    let hub = TestHub::start().await;
    let device = hub.device("both").await;
    let over_tls = hub.connect(&device).await;
    over_tls.subscribe_twin().await;
    let over_ws = Client::start(hub.ws_options(&device.id, &hub.device_token(&device)));
    assert!(
        over_ws.expect_connack().await,
        "the TLS session is taken over"
    );
    over_tls.expect_error().await;
    let (status, _) = over_ws.get_twin("shared").await;
    assert_eq!(status, 200);
}

/// A bare HTTP/1.1 upgrade request, to see exactly what the emulator answers.
async fn upgrade_request(hub: &TestHub, protocol: Option<&str>) -> reqwest::Response {
    // HTTP/1.1 only: over HTTP/2 a WebSocket is opened with CONNECT (RFC 8441), not GET.
    let http1 = reqwest::Client::builder()
        .use_rustls_tls()
        .http1_only()
        .add_root_certificate(
            reqwest::Certificate::from_pem(hub.emulator().ca_pem().as_bytes()).expect("CA"),
        )
        .resolve(
            "localhost",
            ([127, 0, 0, 1], hub.emulator().https_port()).into(),
        )
        .build()
        .expect("HTTP/1.1 client");
    let mut request = http1
        .get(format!(
            "https://localhost:{}/$iothub/websocket",
            hub.emulator().https_port()
        ))
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
    if let Some(protocol) = protocol {
        request = request.header("sec-websocket-protocol", protocol);
    }
    request.send().await.expect("upgrade request")
}

#[tokio::test]
async fn the_offered_subprotocol_is_echoed_in_the_clients_spelling() {
    let hub = TestHub::start().await;
    // The C SDK offers "MQTT"; paho, mqtt.js and rumqttc offer "mqtt".
    for offered in ["MQTT", "mqtt"] {
        let response = upgrade_request(&hub, Some(offered)).await;
        assert_eq!(response.status(), 101, "{offered}");
        let echoed = response
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok());
        assert_eq!(echoed, Some(offered));
    }
    let response = upgrade_request(&hub, None).await;
    assert_eq!(response.status(), 400, "no mqtt subprotocol offered");
}
