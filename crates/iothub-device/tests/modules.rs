//! Module identities from a module connection string: the module's own twin (GET, reported
//! PATCH, desired pushes), telemetry and subscriptions, over TLS and WebSockets.

use iothub_device::{ClientOptions, DeviceClient, DeviceConnectionString, Message};
use iothub_emulator::test_support::TestHub;
use reqwest::Method;
use serde_json::json;

use crate::support::{add_module, rest, DeviceHub, PROMPTLY};

async fn exercise_module(
    hub: &TestHub,
    conn: DeviceConnectionString,
    options: ClientOptions,
    connectivity: &str,
) {
    let client = DeviceClient::connect(conn, options)
        .await
        .expect("the module connects");
    assert_eq!(client.device_id(), "dev-mod");
    assert_eq!(client.module_id(), Some("mod-1"));
    let mut desired = client.desired_updates();

    let version = client
        .update_reported(&json!({"connectivity": {"type": connectivity}}))
        .await
        .expect("module reported patch");
    let (status, twin) = rest(hub, Method::GET, "/twins/dev-mod/modules/mod-1", None).await;
    assert_eq!(status, 200, "{twin}");
    assert_eq!(twin["moduleId"], "mod-1");
    assert_eq!(
        twin["properties"]["reported"]["connectivity"]["type"],
        connectivity
    );
    assert_eq!(twin["properties"]["reported"]["$version"], version);
    // The device's own twin is untouched.
    let device_twin = hub.twin("dev-mod").await;
    assert!(
        device_twin["properties"]["reported"]["connectivity"].is_null(),
        "{device_twin}"
    );

    let (status, body) = rest(
        hub,
        Method::PATCH,
        "/twins/dev-mod/modules/mod-1",
        Some(json!({"properties": {"desired": {"interval": connectivity}}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let update = tokio::time::timeout(PROMPTLY, desired.next())
        .await
        .expect("desired push in time")
        .expect("stream open");
    assert_eq!(update.properties["interval"], connectivity);

    let twin = client.get_twin().await.expect("module twin GET");
    assert_eq!(twin.desired["interval"], connectivity);

    client
        .send_telemetry(&Message::new("{}").with_property("from", "module"))
        .await
        .expect("module telemetry acknowledged");
    client.method_requests().await.expect("module methods");
    client.c2d_messages().await.expect("module C2D");
    client.disconnect().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_module_connection_string_works_on_the_module_twin_over_tls_and_websockets() {
    let hub = TestHub::start().await;
    hub.add_device("dev-mod").await;
    let conn = add_module(&hub, "dev-mod", "mod-1").await;
    exercise_module(&hub, conn.clone(), hub.options(), "cellular").await;

    let mut ws = conn;
    ws.host_name = hub.device_connection_ws("dev-mod").host_name;
    exercise_module(&hub, ws, hub.ws_options(), "wifi").await;
}
