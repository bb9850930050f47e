//! Hub-side verification: round trips, tampering, expiry, tolerated SDK variations, scope.

use std::collections::HashMap;

use iothub_auth::{ParsedSas, SasError, SasToken, SharedAccessKey};

const HOST: &str = "myhub.azure-devices.net";
const SE: u64 = 1_700_000_000;

fn key(byte: u8) -> SharedAccessKey {
    // 32 bytes of `byte`, base64: distinct, valid keys without randomness.
    let text = base64_of(&[byte; 32]);
    SharedAccessKey::from_base64(&text).expect("valid key")
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn device_resource(id: &str) -> String {
    format!("{HOST}/devices/{id}")
}

fn parse(token: &str) -> ParsedSas {
    ParsedSas::parse(token).expect("token parses")
}

/// Replaces the value of one field (`name=`) in a token, keeping everything else.
fn with_field(token: &str, name: &str, value: &str) -> String {
    let (scheme, fields) = token.split_once(' ').expect("scheme");
    let fields: Vec<String> = fields
        .split('&')
        .map(|field| match field.split_once('=') {
            Some((n, _)) if n == name => format!("{n}={value}"),
            _ => field.to_owned(),
        })
        .collect();
    format!("{scheme} {}", fields.join("&"))
}

fn field<'a>(token: &'a str, name: &str) -> &'a str {
    token
        .split(['&', ' '])
        .find_map(|f| f.strip_prefix(name).and_then(|rest| rest.strip_prefix('=')))
        .expect("field present")
}

#[test]
fn device_round_trip_with_primary_or_secondary() {
    let (primary, secondary, other) = (key(1), key(2), key(3));
    for signer in [&primary, &secondary] {
        let token = SasToken::generate(&device_resource("dev1"), signer, None, SE);
        let parsed = parse(token.as_str());
        assert_eq!(parsed.verify_signature(&[&primary, &secondary]), Ok(()));
        assert_eq!(parsed.resource(), device_resource("dev1"));
        assert_eq!(parsed.expires_at_unix(), SE);
        assert_eq!(parsed.policy_name(), None);
        assert_eq!(
            parsed.authorize(&[&primary, &secondary], SE, &device_resource("dev1")),
            Ok(())
        );
    }
    let token = SasToken::generate(&device_resource("dev1"), &other, None, SE);
    assert_eq!(
        parse(token.as_str()).verify_signature(&[&primary, &secondary]),
        Err(SasError::BadSignature)
    );
    assert_eq!(
        parse(token.as_str()).verify_signature(&[]),
        Err(SasError::BadSignature)
    );
}

#[test]
fn module_and_service_round_trips() {
    let k = key(7);
    let module = format!("{HOST}/devices/dev1/modules/mod 1");
    let token = SasToken::generate(&module, &k, None, SE);
    assert_eq!(
        parse(token.as_str()).authorize(&[&k], SE - 1, &module),
        Ok(())
    );

    let token = SasToken::generate("localhost:18443", &k, Some("iothubowner"), SE);
    assert!(token
        .as_str()
        .starts_with("SharedAccessSignature sr=localhost%3A18443&sig="));
    let parsed = parse(token.as_str());
    assert_eq!(parsed.policy_name(), Some("iothubowner"));
    assert_eq!(parsed.resource(), "localhost:18443");
    assert_eq!(parsed.authorize(&[&k], SE, "localhost/devices/x"), Ok(()));
}

#[test]
fn sas_token_parse_round_trips_generate() {
    let k = key(9);
    let token = SasToken::generate(&device_resource("dev #1+x"), &k, Some("p"), SE);
    let reparsed = SasToken::parse(token.as_str()).expect("parses");
    assert_eq!(reparsed, token);
    assert_eq!(reparsed.as_str(), token.as_str());
    assert_eq!(reparsed.expires_at_unix(), SE);
    assert_eq!(reparsed.resource(), device_resource("dev #1+x"));
    assert_eq!(reparsed.policy_name(), Some("p"));
    assert_eq!(
        SasToken::parse(&format!("  {}\n", token.as_str())),
        Ok(token)
    );
}

#[test]
fn tampered_sr_is_rejected() {
    let k = key(1);
    let token = SasToken::generate(&device_resource("dev1"), &k, None, SE);
    let tampered = [
        with_field(
            token.as_str(),
            "sr",
            "myhub.azure-devices.net%2Fdevices%2Fdev2",
        ),
        with_field(token.as_str(), "sr", "myhub.azure-devices.net"),
        // Same resource once decoded, but not the text that was signed.
        with_field(
            token.as_str(),
            "sr",
            "myhub.azure-devices.net%2fdevices%2fdev1",
        ),
        with_field(token.as_str(), "sr", "myhub.azure-devices.net/devices/dev1"),
    ];
    for t in tampered {
        assert_eq!(
            parse(&t).verify_signature(&[&k]),
            Err(SasError::BadSignature),
            "{t}"
        );
    }
}

#[test]
fn tampered_sig_is_rejected() {
    let k = key(1);
    let token = SasToken::generate(&device_resource("dev1"), &k, None, SE);
    let sig = field(token.as_str(), "sig").to_owned();
    let mut flipped = sig.clone().into_bytes();
    flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).expect("ascii");
    let other_key_sig = field(
        SasToken::generate(&device_resource("dev1"), &key(2), None, SE).as_str(),
        "sig",
    )
    .to_owned();
    let truncated = base64_of(&[0u8; 30]);
    for bad in [flipped, other_key_sig, truncated] {
        let t = with_field(token.as_str(), "sig", &bad);
        assert_eq!(
            parse(&t).verify_signature(&[&k]),
            Err(SasError::BadSignature),
            "{t}"
        );
    }
}

#[test]
fn tampered_se_is_rejected() {
    let k = key(1);
    let token = SasToken::generate(&device_resource("dev1"), &k, None, SE);
    for se in [SE + 1, SE - 1, u64::MAX] {
        let t = with_field(token.as_str(), "se", &se.to_string());
        assert_eq!(
            parse(&t).verify_signature(&[&k]),
            Err(SasError::BadSignature),
            "{t}"
        );
    }
    // Same number, different text: the signature covers `se` as transmitted.
    let t = with_field(token.as_str(), "se", &format!("0{SE}"));
    assert_eq!(parse(&t).expires_at_unix(), SE);
    assert_eq!(
        parse(&t).verify_signature(&[&k]),
        Err(SasError::BadSignature)
    );
}

/// `skn` is not covered by the HMAC; what protects it is that the verifier takes the keys of
/// the policy `skn` names. A forged `skn` therefore checks the signature against the wrong
/// policy's keys (or none) and fails.
#[test]
fn tampered_skn_selects_other_keys_and_is_rejected() {
    let policies: HashMap<&str, [SharedAccessKey; 2]> = HashMap::from([
        ("registryRead", [key(10), key(11)]),
        ("iothubowner", [key(20), key(21)]),
    ]);
    let verify = |token: &str| -> Result<(), SasError> {
        let parsed = ParsedSas::parse(token)?;
        let keys: Vec<&SharedAccessKey> = parsed
            .policy_name()
            .and_then(|name| policies.get(name))
            .map(|pair| pair.iter().collect())
            .unwrap_or_default();
        parsed.verify_signature(&keys)
    };
    let token = SasToken::generate(HOST, &policies["registryRead"][1], Some("registryRead"), SE);
    assert_eq!(verify(token.as_str()), Ok(()));
    for forged in ["iothubowner", "service", "REGISTRYREAD"] {
        let t = with_field(token.as_str(), "skn", forged);
        assert_eq!(verify(&t), Err(SasError::BadSignature), "{t}");
    }
    let without_skn = token.as_str().replace("&skn=registryRead", "");
    assert_eq!(verify(&without_skn), Err(SasError::BadSignature));
}

#[test]
fn expiry_is_strict_and_injectable() {
    let k = key(1);
    let parsed = parse(SasToken::generate(HOST, &k, Some("p"), SE).as_str());
    assert_eq!(parsed.check_not_expired(0), Ok(()));
    assert_eq!(parsed.check_not_expired(SE), Ok(()));
    assert_eq!(
        parsed.check_not_expired(SE + 1),
        Err(SasError::Expired { expired_at: SE })
    );
    assert_eq!(
        parsed.authorize(&[&k], SE + 1, HOST),
        Err(SasError::Expired { expired_at: SE })
    );
    assert!(SasError::Expired { expired_at: SE }
        .to_string()
        .contains("1700000000"));
}

#[test]
fn tolerated_sdk_variations() {
    let resource = device_resource("dev1");
    // The space and lower-case variants below only test something if the signature has a `+`
    // (and so a `%2B`): take the first of a few fixed keys that gives one.
    let (k, token) = (0..=255u8)
        .map(|byte| {
            let k = key(byte);
            let token = SasToken::generate(&resource, &k, Some("device"), SE);
            (k, token)
        })
        .find(|(_, token)| field(token.as_str(), "sig").contains("%2B"))
        .expect("some key yields a '+' in the signature");
    let sr = field(token.as_str(), "sr");
    let sig = field(token.as_str(), "sig");
    let variants = [
        // Node order.
        format!("SharedAccessSignature sr={sr}&sig={sig}&skn=device&se={SE}"),
        // The order of the example in Microsoft's MQTT documentation
        // (https://learn.microsoft.com/azure/iot/iot-mqtt-connect-to-iot-hub), upper-case field
        // names, odd scheme case, surrounding whitespace.
        format!("  sharedaccesssignature  SIG={sig}&SE={SE}&Skn=device&SR={sr} "),
        // Lower-case hex escapes in sig (C shared utility).
        format!(
            "SharedAccessSignature sr={sr}&sig={}&se={SE}&skn=device",
            lower_hex_escapes(sig)
        ),
        // `+` that was form-decoded into a space somewhere on the way.
        format!(
            "SharedAccessSignature sr={sr}&sig={}&se={SE}&skn=device",
            sig.replace("%2B", " ")
        ),
        // Signature not escaped at all (Python service SDK leaves `/` unescaped).
        format!(
            "SharedAccessSignature sr={sr}&sig={}&se={SE}&skn=device",
            percent_decode(sig)
        ),
        // C SDK's always-present, possibly empty `skn`, and a trailing `&`.
        format!("SharedAccessSignature sr={sr}&sig={sig}&se={SE}&skn=&"),
    ];
    for token in &variants {
        let parsed = parse(token);
        assert_eq!(parsed.verify_signature(&[&k]), Ok(()), "{token}");
        assert_eq!(parsed.resource(), resource);
    }
    assert_eq!(parse(&variants[5]).policy_name(), None);
}

fn lower_hex_escapes(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        out.push('%');
        out.push_str(&rest[i + 1..i + 3].to_ascii_lowercase());
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    out
}

fn percent_decode(s: &str) -> String {
    s.replace("%2B", "+")
        .replace("%2F", "/")
        .replace("%3D", "=")
}

#[test]
fn unencoded_sr_is_accepted() {
    // What the C SDK sends: the resource unencoded, signed as is.
    let k = key(5);
    let sr = device_resource("dev1");
    let sig = k.sign(format!("{sr}\n{SE}").as_bytes());
    let token = format!(
        "SharedAccessSignature sr={sr}&sig={}&se={SE}",
        sig.replace('+', "%2b")
            .replace('/', "%2f")
            .replace('=', "%3d")
    );
    let parsed = parse(&token);
    assert_eq!(parsed.authorize(&[&k], SE, &sr), Ok(()));
}

#[test]
fn scope_checks() {
    let k = key(6);
    let dev_a = parse(SasToken::generate(&device_resource("A"), &k, None, SE).as_str());
    assert!(dev_a.covers(&device_resource("A")));
    assert!(dev_a.covers(&format!("{HOST}/devices/A/modules/m1")));
    assert!(dev_a.covers("MYHUB.Azure-Devices.NET/devices/A"));
    assert!(!dev_a.covers(&device_resource("B")));
    assert!(!dev_a.covers(&device_resource("AB")));
    assert!(
        !dev_a.covers(HOST),
        "a device token must not cover the service root"
    );
    assert!(!dev_a.covers(&format!("{HOST}/devices")));
    assert!(!dev_a.covers("otherhub.azure-devices.net/devices/A"));
    assert_eq!(
        dev_a.check_covers(&device_resource("B")),
        Err(SasError::OutOfScope {
            token_resource: device_resource("A"),
            requested: device_resource("B"),
        })
    );
    assert_eq!(
        dev_a.authorize(&[&k], SE, &device_resource("B")),
        Err(SasError::OutOfScope {
            token_resource: device_resource("A"),
            requested: device_resource("B"),
        })
    );

    let service = parse(SasToken::generate(HOST, &k, Some("iothubowner"), SE).as_str());
    assert!(service.covers(HOST));
    assert!(service.covers(&device_resource("x")));
    assert!(service.covers(&format!("{HOST}/devices/x/modules/y")));

    // Emulator host names carry ports; the port never decides scope.
    let emulator = parse(SasToken::generate("localhost:18443", &k, Some("service"), SE).as_str());
    assert!(emulator.covers("localhost"));
    assert!(emulator.covers("localhost:8883/devices/x"));
    assert!(emulator.covers("LOCALHOST/devices/x"));

    let registry =
        parse(SasToken::generate(&format!("{HOST}/devices"), &k, Some("r"), SE).as_str());
    assert!(registry.covers(&device_resource("x")));
    assert!(!registry.covers(HOST));
    assert!(!registry.covers(&format!("{HOST}/devicesX")));
}

#[test]
fn malformed_tokens_have_precise_errors_without_the_signature() {
    let k = key(8);
    let good = SasToken::generate(&device_resource("d"), &k, None, SE);
    let sig = field(good.as_str(), "sig").to_owned();
    let sr = field(good.as_str(), "sr").to_owned();
    let cases = [
        (
            String::new(),
            "does not start with 'SharedAccessSignature '",
        ),
        (
            format!("Bearer sr={sr}&sig={sig}&se={SE}"),
            "does not start with",
        ),
        (
            format!("SharedAccessSignaturesr={sr}&sig={sig}&se={SE}"),
            "expected a space",
        ),
        (
            format!("SharedAccessSignature sig={sig}&se={SE}"),
            "missing field 'sr'",
        ),
        (
            format!("SharedAccessSignature sr={sr}&se={SE}"),
            "missing field 'sig'",
        ),
        (
            format!("SharedAccessSignature sr={sr}&sig={sig}"),
            "missing field 'se'",
        ),
        (
            format!("SharedAccessSignature sr={sr}&sig={sig}&se={SE}&se={SE}"),
            "duplicate field 'se'",
        ),
        (
            format!("SharedAccessSignature sr={sr}&sig={sig}&SIG={sig}&se={SE}"),
            "duplicate field 'sig'",
        ),
        (
            format!("SharedAccessSignature sr={sr}&sig={sig}&se={SE}&foo=1"),
            "unknown field 'foo'",
        ),
        (
            format!("SharedAccessSignature sr={sr}&{sig}&se={SE}"),
            "field 2 is not name=value",
        ),
        (
            format!("SharedAccessSignature sr={sr}&sig={sig}&se=-5"),
            "field 'se' is not a whole number",
        ),
        (
            format!("SharedAccessSignature sr={sr}&sig={sig}&se=+5"),
            "field 'se' is not a whole number",
        ),
        (
            format!("SharedAccessSignature sr={sr}&sig={sig}&se=99999999999999999999"),
            "field 'se' is not a whole number",
        ),
        (
            format!("SharedAccessSignature sr={sr}&sig={sig}&se="),
            "field 'se' is not a whole number",
        ),
        (
            format!("SharedAccessSignature sr=&sig={sig}&se={SE}"),
            "field 'sr' is empty",
        ),
        (
            format!("SharedAccessSignature sr={sr}&sig=&se={SE}"),
            "field 'sig' is empty",
        ),
        (
            format!("SharedAccessSignature sr={sr}&sig=%%%%&se={SE}"),
            "field 'sig' is not percent-encoded base64",
        ),
        (
            format!("SharedAccessSignature sr=%FF&sig={sig}&se={SE}"),
            "field 'sr' is not UTF-8",
        ),
        (
            format!("SharedAccessSignature sr={sr}&sig={sig}&se={SE}&skn=%C3"),
            "field 'skn' is not UTF-8",
        ),
    ];
    for (token, expected) in &cases {
        let err = ParsedSas::parse(token).expect_err(token);
        let message = err.to_string();
        assert!(matches!(err, SasError::Malformed(_)), "{token}: {err:?}");
        assert!(message.contains(expected), "{token}: {message}");
        assert!(!message.contains(&sig), "signature leaked: {message}");
        assert!(
            !message.contains(&percent_decode(&sig)),
            "signature leaked: {message}"
        );
        assert_eq!(SasToken::parse(token).err(), Some(err));
    }
    // An unknown "field name" that could be signature material is not echoed.
    let pasted = format!(
        "SharedAccessSignature sr={sr}&{}=x&se={SE}",
        percent_decode(&sig).trim_end_matches('=')
    );
    let message = ParsedSas::parse(&pasted)
        .expect_err("unknown field")
        .to_string();
    assert!(message.contains("field 2 has an unknown name"), "{message}");
    assert!(!message.contains(&percent_decode(&sig)[..20]), "{message}");
}

#[test]
fn debug_and_display_never_show_the_signature() {
    let k = key(3);
    let token = SasToken::generate(&device_resource("d"), &k, Some("device"), SE);
    let sig = field(token.as_str(), "sig").to_owned();
    let parsed = parse(token.as_str());
    for shown in [
        format!("{token}"),
        format!("{token:?}"),
        format!("{token:#?}"),
        format!("{parsed:?}"),
    ] {
        assert!(!shown.contains(&sig), "{shown}");
        assert!(!shown.contains(&percent_decode(&sig)), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
    assert_eq!(
        token.to_string(),
        format!(
            "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fd&sig=<redacted>&se={SE}&skn=device"
        )
    );
}

#[test]
fn unix_now_is_the_current_time() {
    let now = iothub_auth::unix_now();
    // 2023-11-14 and 2100-01-01: a sanity window, not a precise clock test.
    assert!(now > 1_700_000_000 && now < 4_102_444_800, "{now}");
}
