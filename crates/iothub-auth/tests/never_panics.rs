//! Property tests: no input makes a parser panic, generated tokens always verify, and error
//! messages never contain the key that was in the input.

use iothub_auth::{
    DeviceConnectionString, ParsedSas, SasToken, ServiceConnectionString, SharedAccessKey,
};
use proptest::prelude::*;

/// Feeds one text to every parser and checker; they may fail but must not panic.
fn parse_everything(text: &str) {
    let _ = text
        .parse::<ServiceConnectionString>()
        .map(|c| c.to_string());
    let _ = text
        .parse::<DeviceConnectionString>()
        .map(|c| (c.to_string(), c.resource_uri()));
    let _ = SasToken::parse(text).map(|t| t.to_string());
    let _ = SharedAccessKey::from_base64(text);
    if let Ok(parsed) = ParsedSas::parse(text) {
        let key = SharedAccessKey::generate();
        let _ = parsed.verify_signature(&[&key]);
        let _ = parsed.check_not_expired(u64::MAX);
        let _ = parsed.covers(text);
        let _ = format!("{parsed:?}");
    }
}

/// Text made of the pieces connection strings and tokens are built from, so random inputs get
/// past the first checks and reach the deeper ones.
fn structured_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("HostName=".to_owned()),
        Just("DeviceId=".to_owned()),
        Just("ModuleId=".to_owned()),
        Just("SharedAccessKeyName=".to_owned()),
        Just("SharedAccessKey=".to_owned()),
        Just("SharedAccessSignature=".to_owned()),
        Just("GatewayHostName=".to_owned()),
        Just("x509=true".to_owned()),
        Just("SharedAccessSignature ".to_owned()),
        Just("sr=".to_owned()),
        Just("sig=".to_owned()),
        Just("se=".to_owned()),
        Just("skn=".to_owned()),
        Just("NMgJDvdKTxjLi+xBxxkDDEwDJxEvOE5u8BiT0mVgPeg=".to_owned()),
        Just("myhub.azure-devices.net".to_owned()),
        Just("/devices/".to_owned()),
        Just(":18443".to_owned()),
        "[;=&% +/:]{1,3}",
        "%[0-9A-Fa-f]{0,2}",
        "[0-9]{1,22}",
        "\\PC{0,6}",
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..16).prop_map(|pieces| pieces.concat())
}

/// Encodes `bytes` as the standard base64 text of a valid key.
fn key_from(bytes: &[u8]) -> SharedAccessKey {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(bytes);
    SharedAccessKey::from_base64(&text).expect("16..=64 bytes is a valid key")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC*") {
        parse_everything(&text);
    }

    #[test]
    fn arbitrary_bytes_as_lossy_text_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        parse_everything(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn structured_text_never_panics(text in structured_text()) {
        parse_everything(&text);
        parse_everything(&format!("SharedAccessSignature {text}"));
        parse_everything(&format!("HostName=h.net;DeviceId=d;SharedAccessSignature=SharedAccessSignature {text}"));
    }

    #[test]
    fn covers_never_panics(a in "\\PC{0,40}", b in "\\PC{0,40}") {
        let key = SharedAccessKey::generate();
        let parsed = ParsedSas::parse(SasToken::generate(&a, &key, None, 1).as_str());
        // An empty resource gives an empty `sr`, which the parser rightly refuses.
        prop_assert_eq!(parsed.is_ok(), !a.is_empty());
        if let Ok(parsed) = parsed {
            let _ = parsed.covers(&b);
            prop_assert_eq!(parsed.resource(), a.as_str());
        }
    }

    #[test]
    fn generated_tokens_verify_and_cover_their_resource(
        resource in "[A-Za-z0-9.-]{1,20}(:[0-9]{1,5})?(/[^/]{1,12}){0,4}",
        key_bytes in prop::collection::vec(any::<u8>(), 16..=64),
        other_bytes in prop::collection::vec(any::<u8>(), 16..=64),
        policy in proptest::option::of("\\PC{1,12}"),
        se in any::<u64>(),
    ) {
        let key = key_from(&key_bytes);
        let token = SasToken::generate(&resource, &key, policy.as_deref(), se);
        let parsed = ParsedSas::parse(token.as_str()).expect("own token parses");
        prop_assert_eq!(parsed.verify_signature(&[&key]), Ok(()));
        prop_assert_eq!(parsed.check_not_expired(se), Ok(()));
        prop_assert!(parsed.covers(&resource));
        prop_assert_eq!(parsed.resource(), resource.as_str());
        prop_assert_eq!(parsed.policy_name(), policy.as_deref());
        prop_assert_eq!(parsed.expires_at_unix(), se);
        let reparsed = SasToken::parse(token.as_str());
        prop_assert_eq!(reparsed.as_ref(), Ok(&token));
        let other = key_from(&other_bytes);
        if other != key {
            prop_assert!(parsed.verify_signature(&[&other]).is_err());
        }
        let shown = format!("{token} {token:?} {parsed:?}");
        let signed = format!("{}\n{se}", parsed.resource_as_sent());
        let sig = key.sign(signed.as_bytes());
        prop_assert!(!shown.contains(&sig));
    }

}

proptest! {
    // Two structured texts per case make this the slowest property; fewer cases keep
    // `cargo test` quick while still covering many shapes.
    #![proptest_config(ProptestConfig::with_cases(600))]

    /// A key placed anywhere in a (possibly broken) connection string never shows up in the
    /// error, whether it is in `SharedAccessKey=`, pasted bare, or mangled.
    #[test]
    fn errors_never_contain_the_key(
        key_bytes in prop::collection::vec(any::<u8>(), 16..=64),
        prefix in structured_text(),
        suffix in structured_text(),
        bare in any::<bool>(),
    ) {
        let key = key_from(&key_bytes);
        let body = key.expose_base64().trim_end_matches('=').to_owned();
        let segment = if bare { key.expose_base64().to_owned() } else { format!("SharedAccessKey={}", key.expose_base64()) };
        let text = format!("{prefix};{segment};{suffix}");
        if let Err(err) = text.parse::<ServiceConnectionString>() {
            let message = err.to_string();
            prop_assert!(!message.contains(&body), "{}", message);
        }
        if let Err(err) = text.parse::<DeviceConnectionString>() {
            let message = err.to_string();
            prop_assert!(!message.contains(&body), "{}", message);
        }
    }

    #[test]
    fn valid_strings_round_trip(
        host in "[a-z0-9-]{1,20}(\\.[a-z0-9-]{1,10}){0,3}",
        port in proptest::option::of(1u16..),
        id in "[A-Za-z0-9 #+.*!()_-]{1,30}",
        module in proptest::option::of("[A-Za-z0-9._-]{1,20}"),
        key_bytes in prop::collection::vec(any::<u8>(), 16..=64),
    ) {
        let host_name = match port { Some(p) => format!("{host}:{p}"), None => host.clone() };
        let mut device = DeviceConnectionString::with_key(host_name.clone(), id.trim(), key_from(&key_bytes));
        device.module_id = module;
        if !device.device_id.is_empty() {
            let text = device.expose_connection_string();
            let reparsed = text.parse::<DeviceConnectionString>();
            prop_assert_eq!(reparsed.as_ref(), Ok(&device));
            prop_assert_eq!(device.host(), host.as_str());
            prop_assert_eq!(device.port(), port);
        }
        let service = ServiceConnectionString::new(host_name, "iothubowner", key_from(&key_bytes));
        let text = service.expose_connection_string();
        let reparsed = text.parse::<ServiceConnectionString>();
        prop_assert_eq!(reparsed.as_ref(), Ok(&service));
    }
}
