//! Direct methods end to end: `POST /twins/{id}/methods` over REST, answered by a plain rumqttc
//! device on `$iothub/methods/res/{status}/?$rid=…`
//! (<https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-direct-methods>): the request
//! on the wire, payload round trips, 404 `DeviceNotOnline`, 504, the connect timeout, a
//! disconnect failing the call at once, calls in flight at once, bad requests, permissions.

use std::time::{Duration, Instant};

use iothub_auth::{SasToken, SharedAccessKey};
use iothub_emulator::test_support::TestHub;
use iothub_emulator::ConnectionLimits;
use reqwest::{Method, Response};
use rumqttc::{Packet, Publish, QoS};
use serde_json::{json, Value};

use crate::support::mqtt::{Client, Device, MqttHub};
use crate::support::rest::{assert_error, encode, RestHub};

/// How long a test waits for a call that should end soon (a loaded CI machine included).
const CALL_WAIT: Duration = Duration::from_secs(60);

/// `POST /twins/{id}/methods` with `body`, signed for `policy`.
async fn invoke_as(hub: &TestHub, policy: &str, device_id: &str, body: &Value) -> Response {
    let path = format!("/twins/{}/methods", encode(device_id));
    let call = hub.send(Method::POST, &path, policy, Some(body));
    tokio::time::timeout(CALL_WAIT, call)
        .await
        .expect("the hub answers the call in time")
}

async fn invoke(hub: &TestHub, device_id: &str, body: &Value) -> Response {
    invoke_as(hub, "service", device_id, body).await
}

/// A call running in its own task, so the test can play the device meanwhile.
fn spawn_invoke(hub: &TestHub, device_id: &str, body: Value) -> tokio::task::JoinHandle<Response> {
    let path = format!("/twins/{}/methods", encode(device_id));
    let request = hub
        .request(Method::POST, &path, "service")
        .header("content-type", "application/json; charset=utf-8")
        .body(body.to_string());
    tokio::spawn(async move {
        tokio::time::timeout(CALL_WAIT, request.send())
            .await
            .expect("the hub answers the call in time")
            .expect("request completes")
    })
}

/// A connected device subscribed to `$iothub/methods/POST/#`.
async fn method_device(hub: &TestHub, device: &Device) -> Client {
    let client = hub.connect(device).await;
    subscribe_methods(&client).await;
    client
}

async fn subscribe_methods(client: &Client) {
    client
        .client
        .subscribe("$iothub/methods/POST/#", QoS::AtMostOnce)
        .await
        .expect("subscribe");
    loop {
        match client.next().await {
            Some(Ok(Packet::SubAck(_))) => return,
            Some(Ok(_)) => {}
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }
}

/// The next method request: its name and `$rid` from the topic, and the publish itself.
async fn next_request(client: &Client) -> (String, String, Publish) {
    let publish = client.expect_publish("$iothub/methods/POST/").await;
    let rest = publish
        .topic
        .strip_prefix("$iothub/methods/POST/")
        .expect("method topic");
    let (name, query) = rest.split_once("/?$rid=").expect("name/?$rid=");
    (name.to_string(), query.to_string(), publish)
}

async fn respond(client: &Client, rid: &str, status: i32, body: impl Into<Vec<u8>>) {
    client
        .client
        .publish(
            format!("$iothub/methods/res/{status}/?$rid={rid}"),
            QoS::AtLeastOnce,
            false,
            body.into(),
        )
        .await
        .expect("publish response");
}

async fn answer_of(call: tokio::task::JoinHandle<Response>) -> (u16, String) {
    let response = call.await.expect("call task");
    let status = response.status().as_u16();
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json; charset=utf-8")
    );
    (status, response.text().await.expect("body"))
}

#[tokio::test]
async fn a_call_reaches_the_device_at_qos0_and_its_answer_comes_back() {
    let hub = TestHub::start().await;
    let device = hub.device("d1").await;
    let client = method_device(&hub, &device).await;

    let call = spawn_invoke(
        &hub,
        "d1",
        json!({"methodName": "reboot", "payload": {"delay": [1, 2.5], "why": "test"},
               "responseTimeoutInSeconds": 30, "connectTimeoutInSeconds": 0}),
    );
    let (name, rid, publish) = next_request(&client).await;
    assert_eq!(name, "reboot");
    assert!(
        !rid.is_empty() && rid.bytes().all(|b| b.is_ascii_digit()),
        "a decimal $rid and nothing after it: {}",
        publish.topic
    );
    assert_eq!(
        publish.qos,
        QoS::AtMostOnce,
        "the hub sends requests at QoS 0"
    );
    assert_eq!(&publish.payload[..], br#"{"delay":[1,2.5],"why":"test"}"#);
    respond(&client, &rid, 299, r#"{"done":true,"n":[1]}"#).await;
    let (status, body) = answer_of(call).await;
    assert_eq!(status, 200);
    assert_eq!(body, r#"{"status":299,"payload":{"done":true,"n":[1]}}"#);

    // No payload (Node sends null): an empty body; an empty answer is a null payload.
    let call = spawn_invoke(&hub, "d1", json!({"methodName": "ping", "payload": null}));
    let (name, rid, publish) = next_request(&client).await;
    assert_eq!(name, "ping");
    assert!(publish.payload.is_empty());
    respond(&client, &rid, 200, "").await;
    assert_eq!(
        answer_of(call).await,
        (200, r#"{"status":200,"payload":null}"#.to_string())
    );

    // Python sends `""` for no payload; the device gets the two bytes `""`. A body that is
    // not JSON is spliced in as the device sent it, as the hub does.
    let call = spawn_invoke(&hub, "d1", json!({"methodName": "echo", "payload": ""}));
    let (_, rid, publish) = next_request(&client).await;
    assert_eq!(&publish.payload[..], b"\"\"");
    respond(&client, &rid, -3, "'single quoted'").await;
    assert_eq!(
        answer_of(call).await,
        (
            200,
            r#"{"status":-3,"payload":'single quoted'}"#.to_string()
        )
    );

    // An answer over 128 KB is refused.
    let call = spawn_invoke(&hub, "d1", json!({"methodName": "big"}));
    let (_, rid, _) = next_request(&client).await;
    respond(
        &client,
        &rid,
        200,
        format!("\"{}\"", "x".repeat(128 * 1024)),
    )
    .await;
    let response = call.await.expect("call task");
    assert_error(response, 413, "MessageTooLarge").await;
}

#[tokio::test]
async fn no_answer_is_a_504_before_the_timeout_and_a_late_answer_is_ignored() {
    let hub = TestHub::start().await;
    let device = hub.device("d1").await;
    let client = method_device(&hub, &device).await;

    let started = Instant::now();
    let call = spawn_invoke(
        &hub,
        "d1",
        json!({"methodName": "slow", "responseTimeoutInSeconds": 5}),
    );
    let (_, rid, _) = next_request(&client).await;
    let response = call.await.expect("call task");
    let elapsed = started.elapsed();
    let message = assert_error(response, 504, "GatewayTimeout").await;
    assert_eq!(
        message,
        "ErrorCode:GatewayTimeout;Timed out waiting for the response from device."
    );
    assert!(
        elapsed >= Duration::from_millis(4500),
        "the hub waits the response timeout (less a small margin): {elapsed:?}"
    );

    // The late answer is dropped and the device stays connected and usable.
    respond(&client, &rid, 200, "{}").await;
    let call = spawn_invoke(&hub, "d1", json!({"methodName": "fast"}));
    let (name, rid, _) = next_request(&client).await;
    assert_eq!(name, "fast");
    respond(&client, &rid, 201, "1").await;
    assert_eq!(
        answer_of(call).await,
        (200, r#"{"status":201,"payload":1}"#.to_string())
    );
}

#[tokio::test]
async fn offline_unsubscribed_and_unknown_devices_get_404s() {
    let hub = TestHub::start().await;
    let device = hub.device("d1").await;
    let body = json!({"methodName": "reboot"});

    let message = assert_error(invoke(&hub, "d1", &body).await, 404, "DeviceNotOnline").await;
    assert_eq!(
        message,
        "ErrorCode:DeviceNotOnline;Timed out waiting for device to connect."
    );
    let client = hub.connect(&device).await;
    let message = assert_error(invoke(&hub, "d1", &body).await, 404, "DeviceNotOnline").await;
    assert_eq!(
        message,
        "ErrorCode:DeviceNotOnline;Timed out waiting for device to subscribe."
    );
    let message = assert_error(invoke(&hub, "nobody", &body).await, 404, "DeviceNotFound").await;
    assert_eq!(message, "ErrorCode:DeviceNotFound;nobody");

    // Subscribed: it works; unsubscribed again: not online.
    subscribe_methods(&client).await;
    let call = spawn_invoke(&hub, "d1", body.clone());
    let (_, rid, _) = next_request(&client).await;
    respond(&client, &rid, 200, "null").await;
    assert_eq!(answer_of(call).await.0, 200);
    client
        .client
        .unsubscribe("$iothub/methods/POST/#")
        .await
        .expect("unsubscribe");
    loop {
        match client.next().await {
            Some(Ok(Packet::UnsubAck(_))) => break,
            Some(Ok(_)) => {}
            other => panic!("expected UNSUBACK, got {other:?}"),
        }
    }
    assert_error(invoke(&hub, "d1", &body).await, 404, "DeviceNotOnline").await;
}

#[tokio::test]
async fn a_connect_timeout_waits_for_the_device_to_come_online() {
    let hub = TestHub::start().await;
    let device = hub.device("late").await;
    let call = spawn_invoke(
        &hub,
        "late",
        json!({"methodName": "hello", "payload": 7, "connectTimeoutInSeconds": 60}),
    );
    let client = hub.connect(&device).await;
    subscribe_methods(&client).await;
    let (name, rid, publish) = next_request(&client).await;
    assert_eq!((name.as_str(), &publish.payload[..]), ("hello", &b"7"[..]));
    respond(&client, &rid, 200, "\"hi\"").await;
    assert_eq!(
        answer_of(call).await,
        (200, r#"{"status":200,"payload":"hi"}"#.to_string())
    );

    // Nobody comes: 404 once the connect timeout has passed.
    hub.device("never").await;
    let started = Instant::now();
    let response = invoke(
        &hub,
        "never",
        &json!({"methodName": "hello", "connectTimeoutInSeconds": 1}),
    )
    .await;
    assert_error(response, 404, "DeviceNotOnline").await;
    assert!(started.elapsed() >= Duration::from_millis(500));
}

#[tokio::test]
async fn a_device_that_disconnects_mid_call_fails_it_at_once() {
    let hub = TestHub::start().await;
    let device = hub.device("d1").await;
    let client = method_device(&hub, &device).await;
    let started = Instant::now();
    let call = spawn_invoke(
        &hub,
        "d1",
        json!({"methodName": "hang", "responseTimeoutInSeconds": 300}),
    );
    next_request(&client).await;
    client.client.disconnect().await.expect("DISCONNECT");
    let response = call.await.expect("call task");
    assert_error(response, 404, "DeviceNotOnline").await;
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the call does not wait out its 300 s"
    );

    // A connection dropped by the hub (fault injection) fails its calls the same way.
    let client = method_device(&hub, &device).await;
    let call = spawn_invoke(
        &hub,
        "d1",
        json!({"methodName": "hang", "responseTimeoutInSeconds": 300}),
    );
    next_request(&client).await;
    hub.emulator().faults().drop_device_connection("d1");
    assert_error(call.await.expect("call task"), 404, "DeviceNotOnline").await;
}

#[tokio::test]
async fn many_calls_are_in_flight_at_once_on_one_device_and_across_devices() {
    let hub = TestHub::start().await;
    let device = hub.device("busy").await;
    let client = method_device(&hub, &device).await;
    let calls: Vec<_> = (0..8)
        .map(|n| spawn_invoke(&hub, "busy", json!({"methodName": "work", "payload": n})))
        .collect();
    let mut requests = Vec::new();
    for _ in 0..calls.len() {
        let (_, rid, publish) = next_request(&client).await;
        requests.push((rid, publish.payload.to_vec()));
    }
    // Answered in reverse order of arrival, each with its own payload echoed.
    for (rid, payload) in requests.iter().rev() {
        respond(&client, rid, 200, payload.clone()).await;
    }
    for (n, call) in calls.into_iter().enumerate() {
        assert_eq!(
            answer_of(call).await,
            (200, format!(r#"{{"status":200,"payload":{n}}}"#))
        );
    }

    let mut devices = Vec::new();
    for n in 0..5 {
        let device = hub.device(&format!("fleet-{n}")).await;
        devices.push(method_device(&hub, &device).await);
    }
    let calls: Vec<_> = (0..devices.len())
        .map(|n| spawn_invoke(&hub, &format!("fleet-{n}"), json!({"methodName": "id"})))
        .collect();
    for (n, client) in devices.iter().enumerate() {
        let (_, rid, _) = next_request(client).await;
        respond(client, &rid, 200, format!("\"fleet-{n}\"")).await;
    }
    for (n, call) in calls.into_iter().enumerate() {
        assert_eq!(
            answer_of(call).await,
            (200, format!(r#"{{"status":200,"payload":"fleet-{n}"}}"#))
        );
    }
}

#[tokio::test]
async fn bad_requests_are_400s_naming_the_problem() {
    let hub = TestHub::start().await;
    hub.device("d1").await;
    for (body, code, needle) in [
        (json!({}), "ArgumentNull", "methodName"),
        (json!({"methodName": ""}), "ArgumentInvalid", "empty"),
        (
            json!({"methodName": "a/b"}),
            "ArgumentInvalid",
            "may not contain",
        ),
        (
            json!({"methodName": "m", "responseTimeoutInSeconds": 0}),
            "ArgumentInvalid",
            "responseTimeoutInSeconds must be within [5; 300].",
        ),
        (
            json!({"methodName": "m", "responseTimeoutInSeconds": 301}),
            "ArgumentInvalid",
            "responseTimeoutInSeconds must be within [5; 300].",
        ),
        (
            json!({"methodName": "m", "connectTimeoutInSeconds": 301}),
            "ArgumentInvalid",
            "connectTimeoutInSeconds must be within [0; 300].",
        ),
        (
            json!({"methodName": "m", "connectTimeoutInSeconds": "soon"}),
            "ArgumentInvalid",
            "integer",
        ),
        (
            json!({"methodName": "m", "payload": "x".repeat(128 * 1024)}),
            "ArgumentInvalid",
            "128 KB",
        ),
    ] {
        let message = assert_error(invoke(&hub, "d1", &body).await, 400, code).await;
        assert!(message.contains(needle), "{body}: {message}");
    }
    let response = hub
        .request(Method::POST, "/twins/d1/methods", "service")
        .body("{not json")
        .send()
        .await
        .expect("request");
    assert_error(response, 400, "IotHubFormatError").await;
}

#[tokio::test]
async fn methods_need_service_connect() {
    let hub = TestHub::start().await;
    hub.device("d1").await;
    let body = json!({"methodName": "reboot"});
    for policy in ["registryRead", "registryReadWrite", "device"] {
        let message = assert_error(
            invoke_as(&hub, policy, "d1", &body).await,
            401,
            "IotHubUnauthorizedAccess",
        )
        .await;
        assert!(message.contains(policy), "{message}");
    }
    for policy in ["service", "iothubowner"] {
        // Allowed: the device is simply not online.
        assert_error(
            invoke_as(&hub, policy, "d1", &body).await,
            404,
            "DeviceNotOnline",
        )
        .await;
    }
}

/// Creates module `device/module` and connects it as client id `{device}/{module}`,
/// subscribed to methods.
async fn module_client(hub: &TestHub, device: &str, module: &str) -> Client {
    let response = hub
        .send(
            Method::PUT,
            &format!("/devices/{device}/modules/{module}"),
            "iothubowner",
            Some(&json!({"deviceId": device, "moduleId": module})),
        )
        .await;
    assert_eq!(response.status(), 200, "create module");
    let identity: Value = response.json().await.expect("module JSON");
    let key = SharedAccessKey::from_base64(
        identity["authentication"]["symmetricKey"]["primaryKey"]
            .as_str()
            .expect("primary key"),
    )
    .expect("key");
    let resource = format!(
        "{}/devices/{device}/modules/{module}",
        hub.emulator().hostname()
    );
    let token = SasToken::generate(&resource, &key, None, iothub_auth::unix_now() + 3600);
    let client = Client::start(hub.options(&format!("{device}/{module}"), token.as_str()));
    client.expect_connack().await;
    subscribe_methods(&client).await;
    client
}

fn spawn_module_invoke(
    hub: &TestHub,
    device: &str,
    module: &str,
    body: Value,
) -> tokio::task::JoinHandle<Response> {
    let path = format!("/twins/{device}/modules/{module}/methods");
    let request = hub
        .request(Method::POST, &path, "service")
        .header("content-type", "application/json; charset=utf-8")
        .body(body.to_string());
    tokio::spawn(async move {
        tokio::time::timeout(CALL_WAIT, request.send())
            .await
            .expect("the hub answers the call in time")
            .expect("request completes")
    })
}

#[tokio::test]
async fn module_methods_go_to_the_module_session_only() {
    let hub = TestHub::start().await;
    let device = hub.device("d1").await;
    let device_client = method_device(&hub, &device).await;
    let module = module_client(&hub, "d1", "m1").await;

    let call = spawn_module_invoke(
        &hub,
        "d1",
        "m1",
        json!({"methodName": "restart", "payload": [1]}),
    );
    let (name, rid, publish) = next_request(&module).await;
    assert_eq!(
        (name.as_str(), &publish.payload[..]),
        ("restart", &b"[1]"[..])
    );
    // The device cannot answer the module's call.
    respond(&device_client, &rid, 500, "\"wrong session\"").await;
    respond(&module, &rid, 200, "{\"module\":true}").await;
    assert_eq!(
        answer_of(call).await,
        (
            200,
            r#"{"status":200,"payload":{"module":true}}"#.to_string()
        )
    );

    // The device's own calls still reach the device, and only it.
    let call = spawn_invoke(&hub, "d1", json!({"methodName": "own"}));
    let (name, rid, _) = next_request(&device_client).await;
    assert_eq!(name, "own", "the module's request never reached the device");
    respond(&device_client, &rid, 200, "1").await;
    assert_eq!(answer_of(call).await.0, 200);

    let body = json!({"methodName": "restart"});
    let response = hub
        .send(
            Method::POST,
            "/twins/d1/modules/nope/methods",
            "service",
            Some(&body),
        )
        .await;
    assert_error(response, 404, "ModuleNotFound").await;
    let response = hub
        .send(
            Method::POST,
            "/twins/nobody/modules/m1/methods",
            "service",
            Some(&body),
        )
        .await;
    assert_error(response, 404, "DeviceNotFound").await;
    module.client.disconnect().await.expect("DISCONNECT");
    let response = hub
        .send(
            Method::POST,
            "/twins/d1/modules/m1/methods",
            "service",
            Some(&body),
        )
        .await;
    let message = assert_error(response, 404, "DeviceNotOnline").await;
    assert!(message.contains("connect"), "{message}");
}

#[tokio::test]
async fn a_call_outlasting_the_https_idle_timeout_is_still_answered() {
    let idle = Duration::from_secs(2);
    let hub = TestHub::configured(|config| {
        config.connection_limits = ConnectionLimits {
            idle_timeout: idle,
            ..ConnectionLimits::default()
        }
    })
    .await;
    let device = hub.device("d1").await;
    let client = method_device(&hub, &device).await;
    let call = spawn_invoke(&hub, "d1", json!({"methodName": "think"}));
    let (_, rid, _) = next_request(&client).await;
    // The HTTPS connection moves no byte meanwhile; waiting for the device is not idleness.
    tokio::time::sleep(idle * 2).await;
    respond(&client, &rid, 200, "42").await;
    assert_eq!(
        answer_of(call).await,
        (200, r#"{"status":200,"payload":42}"#.to_string())
    );
}
