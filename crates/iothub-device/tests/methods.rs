//! Direct methods through the client, invoked over the service REST API
//! (`POST /twins/{id}/methods`): answers with the application's status and payload over TLS and
//! WebSockets, calls in flight at once, the automatic answer to a dropped request, an answer
//! refused after the connection that carried its call was lost, and module methods.

use iothub_device::{ConnectionEvent, DeviceClient, Error, MethodRequests};
use iothub_emulator::test_support::TestHub;
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{add_module, rest, wait_for, DeviceHub, PROMPTLY};

async fn invoke(hub: &TestHub, device: &str, body: Value) -> (u16, Value) {
    let path = format!("/twins/{device}/methods");
    tokio::time::timeout(PROMPTLY * 3, rest(hub, Method::POST, &path, Some(body)))
        .await
        .expect("the hub answers the call in time")
}

async fn next_request(requests: &mut MethodRequests) -> iothub_device::MethodRequest {
    tokio::time::timeout(PROMPTLY, requests.next())
        .await
        .expect("a method request in time")
        .expect("stream open")
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_get_the_applications_status_and_payload_over_tls_and_websockets() {
    let hub = TestHub::start().await;
    hub.add_device("dev-methods").await;
    for (conn, options) in [
        (hub.device_connection("dev-methods"), hub.options()),
        (hub.device_connection_ws("dev-methods"), hub.ws_options()),
    ] {
        let client = DeviceClient::connect(conn, options).await.expect("connect");
        let mut requests = client.method_requests().await.expect("subscribed");

        let call = invoke(
            &hub,
            "dev-methods",
            json!({"methodName": "getTemp", "payload": {"unit": "C"}, "responseTimeoutInSeconds": 30}),
        );
        let device = async {
            let request = next_request(&mut requests).await;
            assert_eq!(request.name(), "getTemp");
            assert_eq!(request.payload(), Some(json!({"unit": "C"})));
            assert!(request.remaining() > std::time::Duration::from_secs(60));
            request.respond(200, &json!({"t": 21.5})).await
        };
        let ((status, answer), responded) = tokio::join!(call, device);
        responded.expect("the hub acknowledged the answer");
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer, json!({"status": 200, "payload": {"t": 21.5}}));

        // No payload: an empty body on the wire, null for the application; any status goes.
        let call = invoke(&hub, "dev-methods", json!({"methodName": "reboot"}));
        let device = async {
            let request = next_request(&mut requests).await;
            assert_eq!(request.payload_bytes(), b"");
            assert_eq!(request.payload(), Some(Value::Null));
            request.respond(299, &Value::Null).await
        };
        let ((status, answer), responded) = tokio::join!(call, device);
        responded.expect("acknowledged");
        assert_eq!(
            (status, answer),
            (200, json!({"status": 299, "payload": null}))
        );
        client.disconnect().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_in_flight_at_once_are_answered_in_any_order() {
    let hub = TestHub::start().await;
    let conn = hub.add_device("dev-many").await;
    let client = DeviceClient::connect(conn, hub.options())
        .await
        .expect("connect");
    let mut requests = client.method_requests().await.expect("subscribed");
    let names = ["one", "two", "three"];
    let calls = futures_util::future::join_all(names.map(|name| {
        invoke(
            &hub,
            "dev-many",
            json!({"methodName": name, "payload": name}),
        )
    }));
    let device = async {
        let mut pending = Vec::new();
        for _ in names {
            pending.push(next_request(&mut requests).await);
        }
        // Answer the last one first.
        while let Some(request) = pending.pop() {
            let status = 200 + names.iter().position(|n| *n == request.name()).unwrap() as i32;
            let echo = request.payload().unwrap();
            request.respond(status, &echo).await.expect("answered");
        }
    };
    let (answers, ()) = tokio::join!(calls, device);
    for (i, (status, answer)) in answers.into_iter().enumerate() {
        assert_eq!(status, 200);
        assert_eq!(answer, json!({"status": 200 + i, "payload": names[i]}));
    }
    client.disconnect().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_dropped_unanswered_gets_500() {
    let hub = TestHub::start().await;
    let conn = hub.add_device("dev-drop").await;
    let client = DeviceClient::connect(conn, hub.options())
        .await
        .expect("connect");
    let mut requests = client.method_requests().await.expect("subscribed");
    let call = invoke(&hub, "dev-drop", json!({"methodName": "forgotten"}));
    let device = async { drop(next_request(&mut requests).await) };
    let ((status, answer), ()) = tokio::join!(call, device);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], 500);
    let message = answer["payload"]["message"].as_str().unwrap();
    assert!(message.contains("'forgotten'"), "{message}");
    client.disconnect().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_after_its_connection_was_lost_is_refused_and_calls_resume() {
    let hub = TestHub::start().await;
    let conn = hub.add_device("dev-lost").await;
    let client = DeviceClient::connect(conn, hub.options())
        .await
        .expect("connect");
    let mut events = client.connection_events();
    let mut requests = client.method_requests().await.expect("subscribed");

    let call = invoke(&hub, "dev-lost", json!({"methodName": "slow"}));
    let device = async {
        let request = next_request(&mut requests).await;
        hub.emulator().faults().drop_device_connection("dev-lost");
        wait_for(&mut events, |e| {
            matches!(e, ConnectionEvent::Disconnected { .. })
        })
        .await;
        request.respond(200, &json!("too late")).await
    };
    let ((status, answer), late) = tokio::join!(call, device);
    // The hub failed the call the moment the device went away.
    assert_eq!(status, 404, "{answer}");
    assert!(matches!(late, Err(Error::NoLongerPending(_))), "{late:?}");

    // After the reconnect the subscription is back; the hub waits for it (connect timeout).
    wait_for(&mut events, |e| {
        matches!(e, ConnectionEvent::Connected { .. })
    })
    .await;
    let call = invoke(
        &hub,
        "dev-lost",
        json!({"methodName": "again", "connectTimeoutInSeconds": 20}),
    );
    let device = async {
        let request = next_request(&mut requests).await;
        request.respond(200, &json!("ok")).await
    };
    let ((status, answer), responded) = tokio::join!(call, device);
    responded.expect("answered");
    assert_eq!(
        (status, answer),
        (200, json!({"status": 200, "payload": "ok"}))
    );
    client.disconnect().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_module_answers_its_own_methods() {
    let hub = TestHub::start().await;
    hub.add_device("dev-modm").await;
    let conn = add_module(&hub, "dev-modm", "m1").await;
    let client = DeviceClient::connect(conn, hub.options())
        .await
        .expect("module connects");
    let mut requests = client.method_requests().await.expect("subscribed");
    let call = async {
        tokio::time::timeout(
            PROMPTLY * 3,
            rest(
                &hub,
                Method::POST,
                "/twins/dev-modm/modules/m1/methods",
                Some(json!({"methodName": "ping", "payload": 1})),
            ),
        )
        .await
        .expect("answer in time")
    };
    let device = async {
        let request = next_request(&mut requests).await;
        assert_eq!(request.name(), "ping");
        request.respond(200, &json!("pong")).await
    };
    let ((status, answer), responded) = tokio::join!(call, device);
    responded.expect("answered");
    assert_eq!(
        (status, answer),
        (200, json!({"status": 200, "payload": "pong"}))
    );
    // The device itself is not subscribed: its own method is not online.
    let (status, _) = invoke(&hub, "dev-modm", json!({"methodName": "ping"})).await;
    assert_eq!(status, 404);
    client.disconnect().await;
}
