//! Parsing, printing and round-tripping service and device connection strings, and the
//! rejection of malformed ones with errors that name the problem and never the key.

use std::collections::HashSet;
use std::time::Duration;

use iothub_auth::{
    ConnectionStringError, ConnectionStringKind, DeviceConnectionString, DeviceCredential,
    ParsedSas, SasError, SasToken, ServiceConnectionString, SharedAccessKey,
};

const KEY: &str = "NMgJDvdKTxjLi+xBxxkDDEwDJxEvOE5u8BiT0mVgPeg=";
/// The key without its padding: what leaks if a message echoes a pasted key split at `=`.
const KEY_BODY: &str = "NMgJDvdKTxjLi+xBxxkDDEwDJxEvOE5u8BiT0mVgPeg";
const HOST: &str = "myhub.azure-devices.net";

fn key() -> SharedAccessKey {
    SharedAccessKey::from_base64(KEY).expect("valid key")
}

fn service(s: &str) -> Result<ServiceConnectionString, ConnectionStringError> {
    s.parse()
}

fn device(s: &str) -> Result<DeviceConnectionString, ConnectionStringError> {
    s.parse()
}

/// A device SAS token for `id`, valid until `se`.
fn device_token(id: &str, se: u64) -> SasToken {
    SasToken::generate(&format!("{HOST}/devices/{id}"), &key(), None, se)
}

#[test]
fn service_string_in_any_order_with_tolerated_noise() {
    let expected = ServiceConnectionString::new(HOST, "iothubowner", key());
    for text in [
        format!("HostName={HOST};SharedAccessKeyName=iothubowner;SharedAccessKey={KEY}"),
        format!("SharedAccessKey={KEY};HostName={HOST};SharedAccessKeyName=iothubowner"),
        format!("SharedAccessKeyName=iothubowner;SharedAccessKey={KEY};HostName={HOST};"),
        format!(" HostName = {HOST} ;\tSharedAccessKeyName=iothubowner;;SharedAccessKey={KEY} ;\n"),
    ] {
        assert_eq!(service(&text).as_ref(), Ok(&expected), "{text}");
    }
}

#[test]
fn service_string_host_port_and_round_trip() {
    let text =
        format!("HostName=localhost:18443;SharedAccessKeyName=service;SharedAccessKey={KEY}");
    let parsed = service(&text).expect("parses");
    assert_eq!(parsed.host_name, "localhost:18443");
    assert_eq!(parsed.host(), "localhost");
    assert_eq!(parsed.port(), Some(18443));
    assert_eq!(parsed.shared_access_key_name, "service");
    assert_eq!(parsed.shared_access_key.expose_base64(), KEY);
    assert_eq!(parsed.expose_connection_string(), text);
    assert_eq!(service(&parsed.expose_connection_string()), Ok(parsed));

    let no_port = service(&format!(
        "HostName={HOST};SharedAccessKeyName=s;SharedAccessKey={KEY}"
    ))
    .expect("parses");
    assert_eq!(no_port.host(), HOST);
    assert_eq!(no_port.port(), None);
}

#[test]
fn service_sas_token_signs_the_host_name_with_the_policy() {
    let parsed = service(&format!(
        "HostName=localhost:18443;SharedAccessKeyName=service;SharedAccessKey={KEY}"
    ))
    .expect("parses");
    let token = parsed.sas_token_expiring_at(1_700_000_000);
    assert_eq!(
        token.as_str(),
        SasToken::generate("localhost:18443", &key(), Some("service"), 1_700_000_000).as_str()
    );
    assert!(token
        .as_str()
        .starts_with("SharedAccessSignature sr=localhost%3A18443&sig="));
    assert!(token.as_str().ends_with("&se=1700000000&skn=service"));

    let before = iothub_auth::unix_now();
    let token = parsed.sas_token(Duration::from_secs(3600));
    let after = iothub_auth::unix_now();
    assert!((before + 3600..=after + 3600).contains(&token.expires_at_unix()));
    let verified = ParsedSas::parse(token.as_str()).expect("parses");
    assert_eq!(
        verified.authorize(&[&key()], after, "localhost/devices/x"),
        Ok(())
    );
}

#[test]
fn device_string_variants() {
    let plain = device(&format!(
        "DeviceId=dev1;SharedAccessKey={KEY};HostName={HOST}"
    ))
    .expect("parses");
    assert_eq!(plain, DeviceConnectionString::with_key(HOST, "dev1", key()));
    assert_eq!(plain.resource_uri(), format!("{HOST}/devices/dev1"));
    assert_eq!(plain.host(), HOST);
    assert_eq!(plain.port(), None);

    let full = device(&format!(
        "HostName={HOST}; DeviceId=dev #1+x ;ModuleId=mod.1;SharedAccessKey={KEY};GatewayHostName=localhost:8884;"
    ))
    .expect("parses");
    assert_eq!(full.device_id, "dev #1+x");
    assert_eq!(full.module_id.as_deref(), Some("mod.1"));
    assert_eq!(full.gateway_host_name.as_deref(), Some("localhost:8884"));
    assert_eq!(
        full.resource_uri(),
        format!("{HOST}/devices/dev #1+x/modules/mod.1")
    );
    assert_eq!(device(&full.expose_connection_string()), Ok(full.clone()));
    assert_eq!(
        full.expose_connection_string(),
        format!("HostName={HOST};DeviceId=dev #1+x;ModuleId=mod.1;SharedAccessKey={KEY};GatewayHostName=localhost:8884")
    );

    let emulator = device(&format!(
        "HostName=localhost:18883;DeviceId=d;SharedAccessKey={KEY}"
    ))
    .expect("parses");
    assert_eq!(
        (emulator.host(), emulator.port()),
        ("localhost", Some(18883))
    );
    assert_eq!(emulator.resource_uri(), "localhost:18883/devices/d");
}

#[test]
fn device_key_credential_signs_like_the_sdks() {
    let parsed = device(&format!(
        "HostName={HOST};DeviceId=device1;SharedAccessKey={KEY}"
    ))
    .expect("parses");
    let token = parsed
        .sas_token_expiring_at(1_700_000_000, 0)
        .expect("signs");
    assert_eq!(
        token.as_str(),
        "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdevice1&sig=YmIL%2FdTZAntV%2FlLZdg3E7re%2BiH8C6Gt9dG4E4I74ho0%3D&se=1700000000"
    );
    let token = parsed.sas_token(Duration::from_secs(60)).expect("signs");
    assert!(token.expires_at_unix() >= iothub_auth::unix_now() + 59);
    assert_eq!(token.resource(), format!("{HOST}/devices/device1"));
}

#[test]
fn device_sas_credential_is_returned_until_it_expires() {
    let token = device_token("dev1", 4_000_000_000);
    let text = format!(
        "HostName={HOST};DeviceId=dev1;SharedAccessSignature={}",
        token.as_str()
    );
    let parsed = device(&text).expect("parses");
    assert_eq!(
        parsed.credential,
        DeviceCredential::SharedAccessSignature(token.clone())
    );
    assert_eq!(parsed.sas_token(Duration::from_secs(60)), Ok(token.clone()));
    assert_eq!(parsed.expose_connection_string(), text);
    assert_eq!(device(&parsed.expose_connection_string()), Ok(parsed));

    let expired = device_token("dev1", 1_700_000_000);
    let parsed = device(&format!(
        "HostName={HOST};DeviceId=dev1;SharedAccessSignature={}",
        expired.as_str()
    ))
    .expect("parsing does not look at the clock");
    assert_eq!(
        parsed.sas_token(Duration::from_secs(60)),
        Err(SasError::Expired {
            expired_at: 1_700_000_000
        })
    );
    assert_eq!(parsed.sas_token_expiring_at(0, 1_700_000_000), Ok(expired));
}

#[test]
fn display_and_debug_redact_every_secret() {
    let service = service(&format!(
        "HostName={HOST};SharedAccessKeyName=iothubowner;SharedAccessKey={KEY}"
    ))
    .expect("parses");
    let with_key = device(&format!(
        "HostName={HOST};DeviceId=d;ModuleId=m;SharedAccessKey={KEY}"
    ))
    .expect("parses");
    let token = device_token("d", 4_000_000_000);
    let sig = token
        .as_str()
        .split("sig=")
        .nth(1)
        .and_then(|s| s.split('&').next())
        .expect("sig");
    let with_sas = device(&format!(
        "HostName={HOST};DeviceId=d;SharedAccessSignature={}",
        token.as_str()
    ))
    .expect("parses");

    assert_eq!(
        service.to_string(),
        format!("HostName={HOST};SharedAccessKeyName=iothubowner;SharedAccessKey=<redacted>")
    );
    assert_eq!(
        with_key.to_string(),
        format!("HostName={HOST};DeviceId=d;ModuleId=m;SharedAccessKey=<redacted>")
    );
    assert_eq!(
        with_sas.to_string(),
        format!("HostName={HOST};DeviceId=d;SharedAccessSignature=<redacted>")
    );
    let shown = [
        format!("{service:?}"),
        format!("{service:#?}"),
        format!("{with_key:?}"),
        format!("{with_sas:?}"),
        format!("{:?}", with_key.credential),
        format!("{:?}", with_sas.credential),
        service.to_string(),
        with_key.to_string(),
        with_sas.to_string(),
    ];
    for text in shown {
        assert!(!text.contains(KEY_BODY), "key leaked: {text}");
        assert!(!text.contains(sig), "signature leaked: {text}");
        assert!(text.contains("redacted"), "{text}");
    }
}

enum Kind {
    Service,
    Device,
}

/// `(kind, input, expected fragment of the message)`. Every input contains the key somewhere
/// (or a different secret, see below), so "no key in the message" is tested for each.
fn malformed_cases() -> Vec<(Kind, String, &'static str)> {
    let other_device_token = device_token("other", 4_000_000_000);
    let no_se = device_token("d", 4_000_000_000)
        .as_str()
        .replace("&se=4000000000", "");
    let long_id = "x".repeat(129);
    use Kind::{Device, Service};
    vec![
        (Service, "".into(), "the connection string is empty"),
        (Service, format!(" ;;{KEY_BODY}{KEY_BODY}"), "segment 1 of the connection string is not a Key=Value pair"),
        (Service, format!("HostName={HOST};SharedAccessKeyName=iothubowner;{KEY}"),
            "segment 3 of the connection string has an unknown key that is not shown (it may be key material)"),
        (Service, format!("HostName={HOST};=iothubowner;SharedAccessKey={KEY}"), "segment 2 of the connection string has an empty key name"),
        (Service, format!("hostname={HOST};SharedAccessKeyName=iothubowner;SharedAccessKey={KEY}"),
            "unknown key 'hostname' in the connection string (did you mean 'HostName'?)"),
        (Service, format!("HostName={HOST};SharedAccessKeyName=iothubowner;SharedAccessKey={KEY};Transport=mqtt"),
            "unknown key 'Transport' in the connection string; known keys"),
        (Service, format!("HostName={HOST};HostName=b.net;SharedAccessKeyName=iothubowner;SharedAccessKey={KEY}"),
            "duplicate key 'HostName'"),
        (Service, format!("HostName={HOST};SharedAccessKeyName=iothubowner;SharedAccessKey={KEY};SharedAccessKey={KEY}"),
            "duplicate key 'SharedAccessKey'"),
        (Service, format!("SharedAccessKeyName=iothubowner;SharedAccessKey={KEY}"), "the connection string is missing HostName"),
        (Service, format!("HostName={HOST};SharedAccessKey={KEY}"), "the connection string is missing SharedAccessKeyName"),
        (Service, format!("HostName={HOST};SharedAccessKeyName=iothubowner"), "the connection string is missing SharedAccessKey"),
        (Service, format!("HostName= ;SharedAccessKeyName=iothubowner;SharedAccessKey={KEY}"), "HostName in the connection string is empty"),
        (Service, format!("HostName={HOST};SharedAccessKeyName=iothubowner;SharedAccessKey=;x={KEY}"), "SharedAccessKey in the connection string is empty"),
        (Service, format!("HostName={HOST};SharedAccessKeyName=iothubowner;SharedAccessKey=*{KEY}"),
            "invalid SharedAccessKey in the connection string: the key is not valid base64"),
        (Service, format!("HostName={HOST};SharedAccessKeyName=iothubowner;SharedAccessKey={}", &KEY[..12]),
            "invalid SharedAccessKey in the connection string: the key decodes to 9 bytes; IoT Hub keys are 16 to 64 bytes"),
        (Service, format!("HostName={HOST}:99999;SharedAccessKeyName=iothubowner;SharedAccessKey={KEY}"),
            "invalid HostName in the connection string: the port after ':' must be a number from 1 to 65535"),
        (Service, format!("HostName=my hub.net;SharedAccessKeyName=iothubowner;SharedAccessKey={KEY}"),
            "invalid HostName in the connection string: a host name may contain only letters"),
        (Service, format!("HostName=:443;SharedAccessKeyName=iothubowner;SharedAccessKey={KEY}"),
            "invalid HostName in the connection string: the host part before ':' is empty"),
        (Service, format!("HostName={HOST};SharedAccessKeyName=iot hub owner;SharedAccessKey={KEY}"),
            "invalid SharedAccessKeyName in the connection string: a policy name is at most 64"),
        (Service, format!("HostName={HOST};SharedAccessKeyName=iothubowner;SharedAccessSignature=SharedAccessSignature sr={HOST}&sig={KEY}&se=1"),
            "SharedAccessSignature is not supported in a service connection string"),
        (Service, format!("HostName={HOST};SharedAccessKeyName=iothubowner;SharedAccessKey={KEY};x509=yes"),
            "invalid x509 in the connection string: the only recognised value is 'true'"),
        (Service, format!("HostName={HOST};DeviceId=dev1;SharedAccessKey={KEY}"),
            "a device connection string (HostName=…;DeviceId=…;SharedAccessKey=…) was given, but a service connection string (HostName=…;SharedAccessKeyName=…;SharedAccessKey=…, e.g. the iothubowner policy) is needed here"),
        (Service, format!("HostName={HOST};SharedAccessKeyName=iothubowner;SharedAccessKey={KEY};GatewayHostName=gw"),
            "GatewayHostName is not supported in a service connection string"),
        (Device, format!("HostName={HOST};SharedAccessKeyName=iothubowner;SharedAccessKey={KEY}"),
            "a service connection string (HostName=…;SharedAccessKeyName=…;SharedAccessKey=…, e.g. the iothubowner policy) was given, but a device connection string (HostName=…;DeviceId=…;SharedAccessKey=…) is needed here"),
        (Device, format!("HostName={HOST};DeviceId=d;SharedAccessKeyName=device;SharedAccessKey={KEY}"),
            "SharedAccessKeyName is not supported in a device connection string"),
        (Device, format!("HostName={HOST};SharedAccessKey={KEY}"), "the connection string is missing DeviceId"),
        (Device, format!("HostName={HOST};DeviceId=dev1"), "the connection string is missing SharedAccessKey (or SharedAccessSignature)"),
        (Device, format!("HostName={HOST};DeviceId=d;SharedAccessKey={KEY};SharedAccessSignature={}", device_token("d", 4_000_000_000).as_str()),
            "the connection string has both SharedAccessKey and SharedAccessSignature; give exactly one"),
        (Device, format!("HostName={HOST};DeviceId=a/b;SharedAccessKey={KEY}"), "invalid DeviceId in the connection string: it must not contain '/'"),
        (Device, format!("HostName={HOST};DeviceId={long_id};SharedAccessKey={KEY}"), "invalid DeviceId in the connection string: it is longer than 128 characters"),
        (Device, format!("HostName={HOST};DeviceId=d;ModuleId=m\u{7};SharedAccessKey={KEY}"), "invalid ModuleId in the connection string: it must not contain control characters"),
        (Device, format!("HostName={HOST};DeviceId=d;SharedAccessKey={KEY};GatewayHostName=gw:0"),
            "invalid GatewayHostName in the connection string: the port after ':' must be a number"),
        (Device, format!("HostName={HOST};DeviceId=d;x509=true"), "X.509 authentication is not supported yet (the connection string has x509=true)"),
        (Device, format!("HostName={HOST};DeviceId=d;SharedAccessSignature={KEY}"),
            "invalid SharedAccessSignature in the connection string: malformed SAS token: it does not start with 'SharedAccessSignature '"),
        (Device, format!("HostName={HOST};DeviceId=d;SharedAccessSignature={no_se}"),
            "invalid SharedAccessSignature in the connection string: malformed SAS token: missing field 'se'"),
        (Device, format!("HostName={HOST};DeviceId=d;SharedAccessSignature={}", other_device_token.as_str()),
            "invalid SharedAccessSignature in the connection string: its sr does not cover this HostName/DeviceId/ModuleId"),
    ]
}

#[test]
fn malformed_strings_get_distinct_precise_errors_without_key_material() {
    let cases = malformed_cases();
    assert!(cases.len() >= 20, "only {} cases", cases.len());
    let sig_of = |token: &SasToken| {
        token
            .as_str()
            .split("sig=")
            .nth(1)
            .and_then(|s| s.split('&').next())
            .map(str::to_owned)
    };
    let secrets: Vec<String> = [
        KEY_BODY.to_owned(),
        KEY_BODY[..12].to_owned(),
        sig_of(&device_token("d", 4_000_000_000)).expect("sig"),
        sig_of(&device_token("other", 4_000_000_000)).expect("sig"),
    ]
    .into();
    let mut messages = HashSet::new();
    for (kind, input, expected) in &cases {
        let message = match kind {
            Kind::Service => service(input).expect_err(input).to_string(),
            Kind::Device => device(input).expect_err(input).to_string(),
        };
        assert!(
            message.contains(expected),
            "input {input:?}\n  got: {message}\n  want: {expected}"
        );
        for secret in &secrets {
            assert!(
                !message.contains(secret.as_str()),
                "secret leaked for {input:?}: {message}"
            );
        }
        assert!(
            messages.insert(message.clone()),
            "message not distinct: {message}"
        );
    }
}

#[test]
fn wrong_kind_errors_are_typed() {
    assert_eq!(
        service(&format!(
            "HostName={HOST};DeviceId=d;ModuleId=m;SharedAccessKey={KEY}"
        )),
        Err(ConnectionStringError::WrongKind {
            given: ConnectionStringKind::Device,
            needed: ConnectionStringKind::Service,
        })
    );
    assert_eq!(
        device(&format!(
            "HostName={HOST};SharedAccessKeyName=registryRead;SharedAccessKey={KEY}"
        )),
        Err(ConnectionStringError::WrongKind {
            given: ConnectionStringKind::Service,
            needed: ConnectionStringKind::Device,
        })
    );
}

#[test]
fn key_errors_keep_their_source() {
    use std::error::Error as _;
    let err = service(&format!(
        "HostName={HOST};SharedAccessKeyName=p;SharedAccessKey={KEY_BODY}"
    ))
    .expect_err("unpadded key");
    assert_eq!(
        err,
        ConnectionStringError::InvalidKey(iothub_auth::KeyError::InvalidBase64)
    );
    assert!(err.source().is_some());
    assert!(!err.to_string().contains(KEY_BODY));
}

#[test]
fn x509_is_reported_as_unsupported_for_both_kinds() {
    let text = format!("HostName={HOST};DeviceId=d;x509=TRUE");
    assert_eq!(device(&text), Err(ConnectionStringError::X509NotSupported));
    let text = format!("HostName={HOST};SharedAccessKeyName=p;SharedAccessKey={KEY};x509=true");
    assert_eq!(service(&text), Err(ConnectionStringError::X509NotSupported));
}
