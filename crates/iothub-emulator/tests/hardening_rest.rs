//! Issue 12 hardening of the REST front door: token scopes name exactly the resource the router
//! serves (case 1), numbers beyond the 64-bit range (case 9a), invalid UTF-8 in a path (case 9b).

use iothub_auth::SasToken;
use iothub_emulator::test_support::TestHub;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::rest::{assert_error, encode, RestHub};

/// An `Authorization` value for `policy` whose `sr` is `localhost{scope}` (plain text: the
/// generator encodes it once, as the SDKs do).
fn scoped_token(hub: &TestHub, policy: &str, scope: &str) -> String {
    let connection = hub.policy_connection(policy);
    SasToken::generate(
        &format!("localhost{scope}"),
        &connection.shared_access_key,
        Some(policy),
        iothub_auth::unix_now() + 3600,
    )
    .as_str()
    .to_owned()
}

async fn get_with(hub: &TestHub, path: &str, token: &str) -> reqwest::Response {
    hub.send_with(Method::GET, path, token, None, &[]).await
}

#[tokio::test]
async fn a_scope_naming_an_encoded_id_does_not_reach_the_decoded_one() {
    let hub = TestHub::start().await;
    hub.create_device("dev1").await;
    hub.create_device("dev%31").await;
    // The token names the device `dev%31`; the path `/devices/dev%31` is device `dev1`.
    let token = scoped_token(&hub, "registryRead", "/devices/dev%31");
    assert_error(
        get_with(&hub, "/devices/dev%31", &token).await,
        401,
        "IotHubUnauthorizedAccess",
    )
    .await;
    // The device it names, spelled the way the router decodes it, is reachable.
    let res = get_with(&hub, "/devices/dev%2531", &token).await;
    assert_eq!(res.status(), 200);
    let device: Value = res.json().await.expect("device JSON");
    assert_eq!(device["deviceId"], "dev%31");

    // Same for a twin write: a scope of `/twins/dev%31` cannot PATCH `dev1`.
    let token = scoped_token(&hub, "service", "/twins/dev%31");
    let res = hub
        .send_with(
            Method::PATCH,
            "/twins/dev%31",
            &token,
            Some(&json!({"tags": {"hijacked": true}})),
            &[],
        )
        .await;
    assert_error(res, 401, "IotHubUnauthorizedAccess").await;
    assert_eq!(hub.twin("dev1").await["tags"]["hijacked"], Value::Null);
}

#[tokio::test]
async fn a_correct_scope_reaches_ids_that_need_encoding() {
    let hub = TestHub::start().await;
    for id in ["a#b", "a+b", "x%y", "p%23q", "s(1)=@$'!*?"] {
        hub.create_device(id).await;
        let encoded = encode(id);
        let token = scoped_token(&hub, "registryReadWrite", &format!("/devices/{id}"));
        let res = get_with(&hub, &format!("/devices/{encoded}"), &token).await;
        assert_eq!(
            res.status(),
            200,
            "GET /devices/{encoded} with a scope of {id}"
        );
        let device: Value = res.json().await.expect("device JSON");
        assert_eq!(device["deviceId"], id);

        let token = scoped_token(&hub, "service", &format!("/twins/{id}"));
        let res = hub
            .send_with(
                Method::PATCH,
                &format!("/twins/{encoded}"),
                &token,
                Some(&json!({"tags": {"scoped": id}})),
                &[],
            )
            .await;
        assert_eq!(
            res.status(),
            200,
            "PATCH /twins/{encoded} with a scope of {id}"
        );
        assert_eq!(hub.twin(id).await["tags"]["scoped"], id);
    }
    // `+` is not a space in a path: a scope of `a+b` reaches `/devices/a+b` sent unencoded.
    let token = scoped_token(&hub, "registryRead", "/devices/a+b");
    assert_eq!(get_with(&hub, "/devices/a+b", &token).await.status(), 200);
    // A scope of `a b` does not reach `a+b`.
    let token = scoped_token(&hub, "registryRead", "/devices/a b");
    assert_eq!(get_with(&hub, "/devices/a+b", &token).await.status(), 401);
}

#[tokio::test]
async fn scopes_with_spaces_and_non_ascii_compare_decoded() {
    let hub = TestHub::start().await;
    // Neither id can exist (the hub's id charset is ASCII without spaces), so a correctly scoped
    // request passes authentication and is refused as a bad or unknown id, never as a 401.
    for (id, path) in [("a b", "/devices/a%20b"), ("dé", "/devices/d%C3%A9")] {
        let token = scoped_token(&hub, "registryRead", &format!("/devices/{id}"));
        let status = get_with(&hub, path, &token).await.status();
        assert!(
            status == StatusCode::NOT_FOUND || status == StatusCode::BAD_REQUEST,
            "{path} with a scope of {id:?}: {status}"
        );
        // The encoded spelling as a scope names another resource.
        let token = scoped_token(&hub, "registryRead", path);
        assert_eq!(get_with(&hub, path, &token).await.status(), 401, "{path}");
    }
}

/// Sends `body` verbatim (no JSON round trip, which would change the number).
async fn patch_raw(hub: &TestHub, body: &str) -> reqwest::Response {
    hub.request(Method::PATCH, "/twins/d1", "iothubowner")
        .header("content-type", "application/json; charset=utf-8")
        .body(body.to_owned())
        .send()
        .await
        .expect("request completes")
}

#[tokio::test]
async fn integers_beyond_64_bits_are_refused_like_2_pow_53_plus_1() {
    let hub = TestHub::with_devices(&["d1"]).await;
    let reference = patch_raw(&hub, r#"{"tags":{"n":9007199254740993}}"#).await;
    let status = reference.status().as_u16();
    let code = reference
        .headers()
        .get("iothub-errorcode")
        .and_then(|v| v.to_str().ok())
        .expect("2^53+1 is refused with an error code")
        .to_owned();
    assert_eq!(status, 400);
    for big in [
        "100000000000000000000",
        "-100000000000000000000",
        "18446744073709551616",
        "1e20",
    ] {
        let res = patch_raw(&hub, &format!(r#"{{"tags":{{"n":{big}}}}}"#)).await;
        let message = assert_error(res, status, &code).await;
        assert!(message.contains("tags.n"), "{message}");
        let res = patch_raw(
            &hub,
            &format!(r#"{{"properties":{{"desired":{{"n":[{big}]}}}}}}"#),
        )
        .await;
        assert_error(res, status, &code).await;
    }
    let twin = hub.twin("d1").await;
    assert_eq!(twin["tags"]["n"], Value::Null, "{twin}");
    assert_eq!(twin["properties"]["desired"]["n"], Value::Null, "{twin}");
    // Fractions and in-range whole numbers written as floats are still accepted.
    let res = patch_raw(&hub, r#"{"tags":{"f":1.5,"g":2.0,"h":-3e3}}"#).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn invalid_utf8_in_a_path_gets_a_format_a_error() {
    let hub = TestHub::with_devices(&["d1"]).await;
    for (method, path) in [
        (Method::GET, "/devices/%FF"),
        (Method::PUT, "/devices/d%C3"),
        (Method::DELETE, "/devices/%80x"),
        (Method::GET, "/twins/%FF"),
        (Method::PATCH, "/twins/%FE%FF"),
        (Method::POST, "/$emulator/faults/drop-connection/%FF"),
    ] {
        let res = hub
            .send(method.clone(), path, "iothubowner", Some(&json!({})))
            .await;
        let message = assert_error(res, 400, "ArgumentInvalid").await;
        assert!(message.contains("UTF-8"), "{method} {path}: {message}");
    }
}
