//! REST endpoints of the emulator with a plain reqwest client: statistics, devices, auth,
//! error format, api-version, fault injection and the admin endpoints.

use iothub_emulator::test_support::{TestHub, API_VERSION_QUERY};
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::mqtt::MqttHub;
use crate::support::rest::{assert_error, encode, RestHub};

#[tokio::test]
async fn statistics_count_devices() {
    let hub = TestHub::start().await;
    hub.create_device("s1").await;
    hub.create_device("s2").await;
    hub.send(
        Method::PUT,
        "/devices/s2",
        "iothubowner",
        Some(&json!({"deviceId": "s2", "status": "disabled"})),
    )
    .await; // 409: create-only; the disable below goes through If-Match.
    let res = hub
        .send_with(
            Method::PUT,
            "/devices/s2",
            &hub.service_token("iothubowner"),
            Some(&json!({"deviceId": "s2", "status": "disabled"})),
            &[("if-match", "\"*\"")],
        )
        .await;
    assert_eq!(res.status(), 200);
    let res = hub
        .send(Method::GET, "/statistics/devices", "registryRead", None)
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    let stats: Value = res.json().await.unwrap();
    assert_eq!(
        stats,
        json!({"totalDeviceCount": 2, "enabledDeviceCount": 1, "disabledDeviceCount": 1})
    );
    let res = hub
        .send(Method::GET, "/statistics/service", "service", None)
        .await;
    assert_eq!(res.status(), 200);
    let stats: Value = res.json().await.unwrap();
    assert_eq!(stats, json!({"connectedDeviceCount": 0}));
}

#[tokio::test]
async fn device_lifecycle_create_conflict_update_precondition_delete() {
    let hub = TestHub::start().await;
    let created = hub.create_device("dev-1").await;
    assert_eq!(created["deviceId"], "dev-1");
    assert_eq!(created["status"], "enabled");
    assert_eq!(created["authentication"]["type"], "sas");
    let primary = created["authentication"]["symmetricKey"]["primaryKey"]
        .as_str()
        .unwrap();
    assert_eq!(primary.len(), 44, "32-byte generated key");
    assert_eq!(created["connectionStateUpdatedTime"], "0001-01-01T00:00:00");

    let res = hub
        .send(Method::GET, "/devices/dev-1", "registryRead", None)
        .await;
    assert_eq!(res.status(), 200);
    let got: Value = res.json().await.unwrap();
    assert_eq!(got["etag"], created["etag"]);

    let res = hub
        .send(
            Method::PUT,
            "/devices/dev-1",
            "registryReadWrite",
            Some(&json!({"deviceId": "dev-1"})),
        )
        .await;
    let msg = assert_error(res, 409, "DeviceAlreadyExists").await;
    assert!(msg.contains("dev-1"));

    let etag = created["etag"].as_str().unwrap();
    let quoted = format!("\"{etag}\"");
    let keys = json!({"type": "sas", "symmetricKey": {
        "primaryKey": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "secondaryKey": "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="}});
    let res = hub
        .send_with(
            Method::PUT,
            "/devices/dev-1",
            &hub.service_token("iothubowner"),
            Some(&json!({"deviceId": "dev-1", "authentication": keys})),
            &[("if-match", &quoted)],
        )
        .await;
    assert_eq!(res.status(), 200);
    let updated: Value = res.json().await.unwrap();
    assert_ne!(updated["etag"], created["etag"]);
    assert_eq!(
        updated["authentication"]["symmetricKey"]["primaryKey"],
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
    );
    assert_eq!(updated["generationId"], created["generationId"]);

    // The old etag is now stale.
    let res = hub
        .send_with(
            Method::PUT,
            "/devices/dev-1",
            &hub.service_token("iothubowner"),
            Some(&json!({"deviceId": "dev-1"})),
            &[("if-match", &quoted)],
        )
        .await;
    assert_error(res, 412, "PreconditionFailed").await;
    let res = hub
        .send_with(
            Method::PUT,
            "/devices/missing",
            &hub.service_token("iothubowner"),
            Some(&json!({"deviceId": "missing"})),
            &[("if-match", "\"*\"")],
        )
        .await;
    assert_error(res, 404, "DeviceNotFound").await;

    // Exactly one key supplied is rejected.
    let res = hub
        .send(
            Method::PUT,
            "/devices/dev-2",
            "iothubowner",
            Some(&json!({"authentication": {"symmetricKey": {"primaryKey": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}}})),
        )
        .await;
    assert_error(res, 400, "ArgumentInvalid").await;

    let res = hub
        .send_with(
            Method::DELETE,
            "/devices/dev-1",
            &hub.service_token("iothubowner"),
            None,
            &[("if-match", "\"bm9wZQ==\"")],
        )
        .await;
    assert_error(res, 412, "PreconditionFailed").await;
    let res = hub
        .send(Method::DELETE, "/devices/dev-1", "iothubowner", None)
        .await;
    assert_eq!(res.status(), 204);
    let res = hub
        .send(Method::DELETE, "/devices/dev-1", "iothubowner", None)
        .await;
    assert_error(res, 404, "DeviceNotFound").await;
    let res = hub
        .send(Method::GET, "/devices/dev-1", "iothubowner", None)
        .await;
    let msg = assert_error(res, 404, "DeviceNotFound").await;
    assert_eq!(msg, "ErrorCode:DeviceNotFound;dev-1");
}

#[tokio::test]
async fn ids_are_percent_decoded_validated_and_listed() {
    let hub = TestHub::start().await;
    let odd = "a#b?c+d;e:f$g'h";
    let created = hub.create_device(odd).await;
    assert_eq!(created["deviceId"], odd);
    let res = hub
        .send(
            Method::GET,
            &format!("/devices/{}", encode(odd)),
            "registryRead",
            None,
        )
        .await;
    assert_eq!(res.status(), 200);
    let res = hub
        .send(
            Method::PUT,
            "/devices/has%20space",
            "iothubowner",
            Some(&json!({})),
        )
        .await;
    let msg = assert_error(res, 400, "ArgumentInvalid").await;
    assert!(msg.contains("invalid character"), "{msg}");
    let res = hub
        .send(
            Method::PUT,
            "/devices/abc",
            "iothubowner",
            Some(&json!({"deviceId": "xyz"})),
        )
        .await;
    assert_error(res, 400, "ArgumentInvalid").await;
    // Case-sensitive ids.
    hub.create_device("Case").await;
    hub.create_device("case").await;
    for path in ["/devices", "/devices/", "/devices/?top=2"] {
        let res = hub.send(Method::GET, path, "registryRead", None).await;
        assert_eq!(res.status(), 200, "{path}");
        let list: Vec<Value> = res.json().await.unwrap();
        let expected = if path.contains("top=2") { 2 } else { 3 };
        assert_eq!(list.len(), expected, "{path}");
    }
}

#[tokio::test]
async fn malformed_json_is_a_400() {
    let hub = TestHub::start().await;
    let res = hub
        .http()
        .put(hub.url("/devices/x"))
        .header("authorization", hub.service_token("iothubowner"))
        .header("content-type", "application/json")
        .body("{\"deviceId\": ")
        .send()
        .await
        .unwrap();
    let msg = assert_error(res, 400, "IotHubFormatError").await;
    assert!(msg.contains("line 1"), "{msg}");
}

#[tokio::test]
async fn missing_api_version_is_invalid_protocol_version() {
    let hub = TestHub::start().await;
    let url = format!(
        "https://localhost:{}/statistics/devices",
        hub.emulator().https_port()
    );
    let res = hub
        .http()
        .get(&url)
        .header("authorization", hub.service_token("iothubowner"))
        .send()
        .await
        .unwrap();
    assert_error(res, 400, "InvalidProtocolVersion").await;
    // Any value is accepted.
    let res = hub
        .http()
        .get(format!("{url}?api-version=2015-08-15-preview"))
        .header("authorization", hub.service_token("iothubowner"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn authentication_failures_are_401() {
    let hub = TestHub::start().await;
    hub.create_device("d1").await;
    // No header.
    let res = hub.http().get(hub.url("/devices/d1")).send().await.unwrap();
    assert_error(res, 401, "IotHubUnauthorizedAccess").await;
    // Bad signature.
    let forged = hub.forged_token("iothubowner");
    let res = hub
        .send_with(Method::GET, "/devices/d1", &forged, None, &[])
        .await;
    assert_error(res, 401, "IotHubUnauthorizedAccess").await;
    // Expired.
    let cs: iothub_auth::ServiceConnectionString =
        hub.emulator().service_connection_string().parse().unwrap();
    let expired = cs.sas_token_expiring_at(iothub_auth::unix_now() - 3600);
    let res = hub
        .send_with(Method::GET, "/devices/d1", expired.as_str(), None, &[])
        .await;
    let msg = assert_error(res, 401, "IotHubUnauthorizedAccess").await;
    assert!(msg.contains("expired"), "{msg}");
    // registryRead may read a twin but not patch it.
    let res = hub
        .send(Method::GET, "/twins/d1", "registryRead", None)
        .await;
    assert_eq!(res.status(), 200);
    let res = hub
        .send(
            Method::PATCH,
            "/twins/d1",
            "registryRead",
            Some(&json!({"tags": {"a": 1}})),
        )
        .await;
    assert_error(res, 401, "IotHubUnauthorizedAccess").await;
    // service cannot write the registry; registryRead cannot either.
    for policy in ["service", "registryRead", "device"] {
        let res = hub
            .send(Method::PUT, "/devices/d2", policy, Some(&json!({})))
            .await;
        assert_error(res, 401, "IotHubUnauthorizedAccess").await;
    }
    // A device-scoped token reaches no service endpoint.
    let device_cs: iothub_auth::DeviceConnectionString = hub
        .emulator()
        .device_connection_string("d1")
        .unwrap()
        .parse()
        .unwrap();
    let device_token = device_cs
        .sas_token(std::time::Duration::from_secs(600))
        .unwrap();
    for path in ["/twins/d1", "/devices/d1", "/statistics/devices"] {
        let res = hub
            .send_with(Method::GET, path, device_token.as_str(), None, &[])
            .await;
        assert_error(res, 401, "IotHubUnauthorizedAccess").await;
    }
    // Every policy is usable with its own permissions.
    let res = hub
        .send(
            Method::PATCH,
            "/twins/d1",
            "service",
            Some(&json!({"tags": {"a": 1}})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let res = hub
        .send(
            Method::PATCH,
            "/twins/d1",
            "registryReadWrite",
            Some(&json!({"tags": {"a": 2}})),
        )
        .await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn injected_twin_faults_and_admin_endpoints() {
    let hub = TestHub::start().await;
    hub.create_device("f1").await;
    hub.emulator().faults().fail_next_twin_operations(1, 429);
    let res = hub.send(Method::GET, "/twins/f1", "service", None).await;
    assert_error(res, 429, "ThrottlingException").await;
    let res = hub.send(Method::GET, "/twins/f1", "service", None).await;
    assert_eq!(res.status(), 200);

    // Admin endpoint: owner only.
    let admin = format!(
        "https://localhost:{}/$emulator/faults/fail-twin-operations?count=2&status=503",
        hub.emulator().https_port()
    );
    let res = hub
        .http()
        .post(&admin)
        .header("authorization", hub.service_token("service"))
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "IotHubUnauthorizedAccess").await;
    let res = hub
        .http()
        .post(&admin)
        .header("authorization", hub.service_token("iothubowner"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    for _ in 0..2 {
        let res = hub
            .send(
                Method::PATCH,
                "/twins/f1",
                "service",
                Some(&json!({"tags": {"x": 1}})),
            )
            .await;
        assert_error(res, 503, "ServiceUnavailable").await;
    }
    let res = hub
        .send(
            Method::PATCH,
            "/twins/f1",
            "service",
            Some(&json!({"tags": {"x": 1}})),
        )
        .await;
    assert_eq!(res.status(), 200);

    for path in [
        "/$emulator/faults/refuse-connections?seconds=0",
        "/$emulator/faults/drop-connection/f1",
    ] {
        let res = hub
            .http()
            .post(format!(
                "https://localhost:{}{path}",
                hub.emulator().https_port()
            ))
            .header("authorization", hub.service_token("iothubowner"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204, "{path}");
    }
}

#[tokio::test]
async fn websocket_route_is_served_and_unknown_routes_are_404() {
    let hub = TestHub::start().await;
    let res = hub
        .http()
        .get(format!(
            "https://localhost:{}/$iothub/websocket?iothub-no-client-cert=true",
            hub.emulator().https_port()
        ))
        .send()
        .await
        .unwrap();
    assert_ne!(res.status(), 404, "the websocket route exists");
    let res = hub.send(Method::GET, "/nope", "iothubowner", None).await;
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn connection_strings_carry_non_standard_ports_only() {
    let hub = TestHub::start().await;
    let cs = hub.emulator().service_connection_string();
    assert!(cs.starts_with(&format!(
        "HostName=localhost:{};SharedAccessKeyName=iothubowner;SharedAccessKey=",
        hub.emulator().https_port()
    )));
    let device = hub.emulator().add_device("cs1").await.unwrap();
    assert!(device.starts_with(&format!(
        "HostName=localhost:{};DeviceId=cs1;SharedAccessKey=",
        hub.emulator().mqtt_port()
    )));
    assert_eq!(
        hub.emulator().add_device("cs1").await.unwrap(),
        device,
        "keys kept"
    );
    let ws = hub.emulator().device_connection_string_ws("cs1").unwrap();
    assert!(ws.starts_with(&format!(
        "HostName=localhost:{};",
        hub.emulator().https_port()
    )));
    for policy in ["service", "registryRead", "registryReadWrite", "device"] {
        assert!(hub.emulator().policy_connection_string(policy).is_some());
    }
    assert!(hub.emulator().policy_connection_string("nope").is_none());
}

#[tokio::test]
async fn shutdown_closes_both_listeners() {
    let hub = TestHub::start().await;
    hub.create_device("before-shutdown").await;
    let https = hub.emulator().https_port();
    let mqtt = hub.emulator().mqtt_port();
    let client = hub.http().clone();
    let tls = tls_connector(&hub);
    // Shutdown returns once both listeners are closed.
    hub.shutdown().await;
    for port in [https, mqtt] {
        assert!(
            !serves_this_emulator(&tls, port).await,
            "port {port} still accepts after shutdown"
        );
    }
    let res = client
        .get(format!(
            "https://localhost:{https}/statistics/devices?{API_VERSION_QUERY}"
        ))
        .send()
        .await;
    assert!(res.is_err());
}

fn tls_connector(hub: &TestHub) -> tokio_rustls::TlsConnector {
    let rumqttc::TlsConfiguration::Rustls(config) = hub.tls() else {
        unreachable!("a rustls configuration")
    };
    tokio_rustls::TlsConnector::from(config)
}

/// Whether `port` accepts a TLS connection with this emulator's certificate. A refused
/// connection is the expected answer; a parallel test may also have been handed the freed port,
/// but its server cannot show a certificate this emulator's CA signed.
async fn serves_this_emulator(tls: &tokio_rustls::TlsConnector, port: u16) -> bool {
    let Ok(tcp) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("server name");
    tls.connect(name, tcp).await.is_ok()
}
