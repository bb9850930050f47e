//! MQTT CONNECT and connection lifecycle against the emulator with a plain rumqttc client:
//! CONNACK 5 refusals, one connection per client id, token expiry, keep-alive, fault injection
//! and the connection state the service sees over REST.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use iothub_auth::{SasToken, SharedAccessKey};
use iothub_emulator::test_support::TestHub;
use rumqttc::{ConnectReturnCode, ConnectionError};

use crate::support::mqtt::{Client, MqttHub, RawClient, WAIT};

async fn refused_with(hub: &TestHub, client_id: &str, password: &str) -> ConnectReturnCode {
    let client = Client::start(hub.options(client_id, password));
    match client.expect_error().await {
        ConnectionError::ConnectionRefused(code) => code,
        other => panic!("expected a refused CONNACK, got {other}"),
    }
}

#[tokio::test]
async fn bad_signature_expired_token_and_another_devices_token_get_connack_5() {
    let hub = TestHub::start().await;
    let device = hub.device("d1").await;
    let other = hub.device("d2").await;
    let later = iothub_auth::unix_now() + 3600;

    let forged = hub.token("d1", &SharedAccessKey::generate(), later);
    assert_eq!(
        refused_with(&hub, "d1", &forged).await,
        ConnectReturnCode::NotAuthorized
    );

    let expired = hub.token("d1", &device.key, iothub_auth::unix_now() - 10);
    assert_eq!(
        refused_with(&hub, "d1", &expired).await,
        ConnectReturnCode::NotAuthorized
    );

    let others = hub.device_token(&other);
    assert_eq!(
        refused_with(&hub, "d1", &others).await,
        ConnectReturnCode::NotAuthorized
    );

    assert_eq!(
        refused_with(&hub, "ghost", &hub.device_token(&device)).await,
        ConnectReturnCode::NotAuthorized
    );

    // The right token still works after all that.
    hub.connect(&device).await;
}

#[tokio::test]
async fn policy_tokens_need_device_connect() {
    let hub = TestHub::start().await;
    hub.device("d1").await;
    let resource = format!("{}/devices/d1", hub.emulator().hostname());
    let later = iothub_auth::unix_now() + 3600;
    let policy_key = |name: &str| -> SharedAccessKey {
        let cs = hub
            .emulator()
            .policy_connection_string(name)
            .expect("policy exists");
        let cs: iothub_auth::ServiceConnectionString = cs.parse().expect("valid");
        cs.shared_access_key
    };

    let device_policy = SasToken::generate(&resource, &policy_key("device"), Some("device"), later);
    let client = Client::start(hub.options("d1", device_policy.as_str()));
    client.expect_connack().await;

    let service_policy =
        SasToken::generate(&resource, &policy_key("service"), Some("service"), later);
    assert_eq!(
        refused_with(&hub, "d1", service_policy.as_str()).await,
        ConnectReturnCode::NotAuthorized
    );
}

#[tokio::test]
async fn a_second_connection_with_the_same_client_id_closes_the_first() {
    let hub = TestHub::start().await;
    let device = hub.device("d1").await;
    let first = hub.connect(&device).await;
    first.subscribe_twin().await;

    let second = hub.connect(&device).await;
    first.expect_error().await;

    // The session moved over: the twin response subscription works without resubscribing.
    let (status, twin) = second.get_twin("after-takeover").await;
    assert_eq!(status, 200);
    assert!(twin["desired"]["$version"].is_u64());
}

#[tokio::test]
async fn the_connection_closes_when_the_sas_token_expires() {
    let hub = TestHub::start().await;
    let device = hub.device("d1").await;
    // Seconds of validity to spare for a slow CONNECT on a loaded machine.
    let se = iothub_auth::unix_now() + 5;
    let client = Client::start(hub.options("d1", &hub.token("d1", &device.key, se)));
    client.expect_connack().await;
    let connected_at = Instant::now();
    let valid_for = Duration::from_secs(se).saturating_sub(since_epoch());
    client.expect_error().await;
    let lasted = connected_at.elapsed();
    // The monotonic and the wall clock may disagree by a hair over a few seconds.
    assert!(
        lasted + Duration::from_millis(100) >= valid_for,
        "closed after {lasted:?}, before the token expired ({valid_for:?} after CONNACK)"
    );
    assert!(iothub_auth::unix_now() >= se, "closed before se");
}

fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is past 1970")
}

#[tokio::test]
async fn keep_alive_is_enforced_at_one_and_a_half_times() {
    let hub = TestHub::start().await;
    let device = hub.device("d1").await;
    let mut raw = RawClient::connect(&hub).await;
    // Before CONNECT: the hub's silence clock starts when CONNECT arrives, so however slow the
    // CONNACK, the connection lives at least 1.5 s from here.
    let started = Instant::now();
    let ack = raw.handshake(&hub, &device, 1).await;
    assert_eq!(ack.code, ConnectReturnCode::Success);
    raw.expect_closed().await;
    let silent_for = started.elapsed();
    assert!(
        silent_for >= Duration::from_millis(1400),
        "closed after {silent_for:?}"
    );
    // Generous, for loaded CI machines: it only shows the close is the keep-alive's doing.
    assert!(
        silent_for < Duration::from_secs(8),
        "closed after {silent_for:?}"
    );
}

#[tokio::test]
async fn refused_and_dropped_connections_by_fault_injection() {
    let hub = TestHub::start().await;
    let device = hub.device("d1").await;

    hub.emulator()
        .faults()
        .refuse_connections_for(Duration::from_secs(30));
    let refused = Client::start(hub.options("d1", &hub.device_token(&device)));
    let error = refused.expect_error().await;
    assert!(
        !matches!(error, ConnectionError::ConnectionRefused(_)),
        "closed without a CONNACK, got {error}"
    );
    hub.emulator()
        .faults()
        .refuse_connections_for(Duration::ZERO);

    let client = hub.connect(&device).await;
    hub.emulator().faults().drop_device_connection("d1");
    client.expect_error().await;
}

#[tokio::test]
async fn connection_state_is_visible_over_rest() {
    let hub = TestHub::start().await;
    let device = hub.device("d1").await;
    let before = hub.device_identity("d1").await;
    assert_eq!(before["connectionState"], "Disconnected");

    let client = hub.connect(&device).await;
    let connected = hub.device_identity("d1").await;
    assert_eq!(connected["connectionState"], "Connected");
    let connected_at = connected["connectionStateUpdatedTime"]
        .as_str()
        .expect("time")
        .to_string();
    assert_ne!(
        connected_at,
        before["connectionStateUpdatedTime"].as_str().expect("time")
    );
    let twin = hub.twin("d1").await;
    assert_eq!(twin["connectionState"], "Connected");

    client.subscribe_twin().await;
    client.get_twin("activity").await;
    let active = hub.device_identity("d1").await;
    assert!(active["lastActivityTime"].as_str().expect("time") >= connected_at.as_str());

    client.client.disconnect().await.expect("disconnect");
    // DISCONNECT is processed asynchronously and the state is only visible over REST: poll.
    let deadline = Instant::now() + WAIT;
    loop {
        let state = hub.device_identity("d1").await;
        if state["connectionState"] == "Disconnected" {
            assert!(
                state["connectionStateUpdatedTime"].as_str().expect("time")
                    >= connected_at.as_str()
            );
            break;
        }
        assert!(Instant::now() < deadline, "still {state}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn shutdown_closes_tls_and_websocket_connections() {
    let hub = TestHub::start().await;
    let device = hub.device("d1").await;
    let other = hub.device("d2").await;
    let over_tls = hub.connect(&device).await;
    let over_ws = Client::start(hub.ws_options(&other.id, &hub.device_token(&other)));
    over_ws.expect_connack().await;

    tokio::time::timeout(WAIT, hub.shutdown())
        .await
        .expect("shutdown completes with devices connected");
    over_tls.expect_error().await;
    over_ws.expect_error().await;
}
