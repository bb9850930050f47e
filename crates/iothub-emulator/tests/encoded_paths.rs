//! Paths with percent-encoded separators, as Azure IoT Explorer sends every REST call
//! (`/twins%2F{id}`), reach the same resources as the plain paths.

use iothub_emulator::test_support::TestHub;
use reqwest::{Method, StatusCode};
use serde_json::Value;

#[tokio::test]
async fn encoded_slashes_reach_the_same_resources_as_plain_ones() {
    let hub = TestHub::start().await;
    hub.add_device("probeDev").await;

    let twin: Value = hub
        .request(Method::GET, "/twins%2FprobeDev", "iothubowner")
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(twin["deviceId"], "probeDev");

    let sent = hub
        .request(
            Method::POST,
            "/devices%2FprobeDev%2Fmessages%2FdeviceBound",
            "iothubowner",
        )
        .header("iothub-messageid", "explorer-1")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), StatusCode::NO_CONTENT);
    let identity = hub.device_identity("probeDev").await;
    assert_eq!(identity["cloudToDeviceMessageCount"], 1);

    // Other escapes keep their meaning: `%25` is a `%` inside the id, not a separator.
    let missing = hub
        .request(Method::GET, "/twins/probeDev%252Fx", "iothubowner")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}
