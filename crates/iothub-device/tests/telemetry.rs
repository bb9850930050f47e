//! Telemetry with properties, acknowledged by the hub (PUBACK), over TLS and WebSockets, as the
//! hub parsed it; the method and C2D subscriptions granted; messages refused locally.

use iothub_device::{DeviceClient, Error, Message, MAX_TELEMETRY_SIZE};
use iothub_emulator::test_support::TestHub;

use crate::support::{add_module, DeviceHub, PROMPTLY};

fn reading(i: u32) -> Message {
    Message::new(format!(r#"{{"temperature":{i}}}"#))
        .with_message_id(format!("msg {i}"))
        .with_content_type("application/json")
        .with_content_encoding("utf-8")
        .with_property("alert", "high & rising")
}

#[tokio::test(flavor = "multi_thread")]
async fn telemetry_returns_after_the_pubacks_over_tls_and_websockets() {
    let hub = TestHub::start().await;
    hub.add_device("dev-telemetry").await;
    for (conn, options) in [
        (hub.device_connection("dev-telemetry"), hub.options()),
        (hub.device_connection_ws("dev-telemetry"), hub.ws_options()),
    ] {
        let client = DeviceClient::connect(conn, options).await.expect("connect");
        // More messages than the in-flight window, all at once.
        let sends = (0..40).map(|i| {
            let client = client.clone();
            async move { client.send_telemetry(&reading(i)).await }
        });
        let results = tokio::time::timeout(PROMPTLY, futures_util::future::join_all(sends))
            .await
            .expect("every PUBACK in time");
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        client.disconnect().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn methods_and_c2d_subscriptions_are_granted() {
    let hub = TestHub::start().await;
    let conn = hub.add_device("dev-subscribe").await;
    let client = DeviceClient::connect(conn, hub.options())
        .await
        .expect("connect");
    tokio::time::timeout(PROMPTLY, client.method_requests())
        .await
        .expect("SUBACK in time")
        .expect("methods granted");
    tokio::time::timeout(PROMPTLY, client.c2d_messages())
        .await
        .expect("SUBACK in time")
        .expect("C2D granted");
    // Asking again while granted answers at once, and twin traffic is unaffected.
    client.method_requests().await.expect("methods again");
    client.get_twin().await.expect("twin");
    client.disconnect().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_telemetry_is_refused_before_sending() {
    let hub = TestHub::start().await;
    let conn = hub.add_device("dev-big").await;
    let client = DeviceClient::connect(conn, hub.options())
        .await
        .expect("connect");
    let err = client
        .send_telemetry(&Message::new(vec![b'x'; MAX_TELEMETRY_SIZE + 1]))
        .await
        .expect_err("too large");
    assert!(matches!(err, Error::InvalidMessage(_)), "{err:?}");
    assert!(err.to_string().contains("262144"), "{err}");
    // The connection is still usable.
    client
        .send_telemetry(&Message::new(vec![b'x'; 1024]))
        .await
        .expect("a normal message");
    client.disconnect().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_hub_reads_the_body_and_every_property_back() {
    let hub = TestHub::start().await;
    hub.add_device("dev-props").await;
    let device = DeviceClient::connect(hub.device_connection("dev-props"), hub.options())
        .await
        .expect("connect");
    device
        .send_telemetry(
            &reading(7)
                .with_correlation_id("corr/7")
                .with_property("unit", "°C"),
        )
        .await
        .expect("acknowledged");
    let module_conn = add_module(&hub, "dev-props", "sensor").await;
    let module = DeviceClient::connect(module_conn, hub.options())
        .await
        .expect("module connects");
    module
        .send_telemetry(&Message::new("m").with_property("k", "v"))
        .await
        .expect("acknowledged");

    let received = hub.wait_for_telemetry(2).await;
    let first = &received[0];
    assert_eq!(
        (first.device_id.as_str(), first.module_id.as_deref()),
        ("dev-props", None)
    );
    assert_eq!(&first.body[..], br#"{"temperature":7}"#);
    assert_eq!(first.system.message_id.as_deref(), Some("msg 7"));
    assert_eq!(first.system.correlation_id.as_deref(), Some("corr/7"));
    assert_eq!(
        first.system.content_type.as_deref(),
        Some("application/json")
    );
    assert_eq!(first.system.content_encoding.as_deref(), Some("utf-8"));
    assert_eq!(
        first.properties,
        [
            ("alert".to_owned(), Some("high & rising".to_owned())),
            ("unit".to_owned(), Some("°C".to_owned())),
        ]
    );
    let second = &received[1];
    assert_eq!(
        (second.device_id.as_str(), second.module_id.as_deref()),
        ("dev-props", Some("sensor"))
    );
    assert_eq!(second.properties, [("k".to_owned(), Some("v".to_owned()))]);
    device.disconnect().await;
    module.disconnect().await;
}
