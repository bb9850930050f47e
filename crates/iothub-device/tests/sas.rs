//! SAS tokens: renewal over TLS and WebSockets, fixed tokens, expired tokens.

use std::time::{Duration, Instant};

use iothub_device::{ClientOptions, ConnectionEvent, DeviceClient, DisconnectReason, Error};
use iothub_emulator::test_support::TestHub;
use serde_json::json;

use crate::support::{key_of, wait_for, DeviceHub};

#[tokio::test(flavor = "multi_thread")]
async fn short_sas_tokens_are_renewed_and_the_client_stays_usable() {
    let hub = TestHub::start().await;
    let conn = hub.add_device("dev-sas").await;
    let options = ClientOptions {
        sas_ttl: Duration::from_secs(5),
        ..hub.options()
    };
    let client = DeviceClient::connect(conn, options).await.expect("connect");
    let mut events = client.connection_events();

    // Renewals come every few seconds; wait for three, however slow the machine, up to a cap
    // far beyond what three 5-second tokens need.
    let end = Instant::now() + Duration::from_secs(90);
    let mut renewals = 0;
    let mut acknowledged_after_renewal = 0;
    let mut pending_renewal = false;
    while acknowledged_after_renewal < 3 {
        let remaining = end.saturating_duration_since(Instant::now());
        let Ok(Some(event)) = tokio::time::timeout(remaining, events.next()).await else {
            panic!(
                "{renewals} renewals, {acknowledged_after_renewal} acknowledged patches in 90 s"
            );
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
    assert!(renewals >= 3, "only {renewals} renewals");
    assert!(acknowledged_after_renewal >= 3);
    let twin = client.get_twin().await.expect("still usable");
    assert_eq!(twin.reported["renewal"], acknowledged_after_renewal);
    client.disconnect().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_connections_renew_their_token_too() {
    let hub = TestHub::start().await;
    hub.add_device("dev-ws-renew").await;
    let options = ClientOptions {
        sas_ttl: Duration::from_secs(5),
        ..hub.ws_options()
    };
    let client = DeviceClient::connect(hub.device_connection_ws("dev-ws-renew"), options)
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
async fn a_fixed_sas_token_connects_and_an_expired_one_is_refused_locally() {
    let hub = TestHub::start().await;
    let conn = hub.add_device("dev-sas-fixed").await;
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
