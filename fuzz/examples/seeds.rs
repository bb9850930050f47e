//! Writes the seed inputs of every target from the repository's own tests:
//! `cargo run --manifest-path fuzz/Cargo.toml --example seeds -- <out dir>`.
//!
//! Seeds are the string literals of iothub-query's tests (queries, and the conditions of the
//! type-semantics table wrapped in `SELECT * FROM devices WHERE`), and of iothub-auth's tests
//! and SDK vectors (connection strings, SAS tokens), with the tests' constants substituted
//! into their `format!` strings. `cargo fuzz cmin` then keeps the ones that add coverage
//! (FUZZING.md).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use iothub_auth::{encode_component, SasToken, SharedAccessKey};

/// The tests' constants (iothub-auth/tests/*.rs, sas/sdk_vectors.rs).
const KEY: &str = "NMgJDvdKTxjLi+xBxxkDDEwDJxEvOE5u8BiT0mVgPeg=";
const HOST: &str = "myhub.azure-devices.net";
const SE: u64 = 1_700_000_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::args().nth(1).ok_or("usage: seeds <out dir>")?);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let query_dir = repo.join("crates/iothub-query");
    let auth_dir = repo.join("crates/iothub-auth");

    let mut queries = BTreeSet::new();
    for file in rust_files(&query_dir.join("tests"))? {
        let in_semantics_table = file.ends_with("semantics.rs");
        for literal in literals(&fs::read_to_string(&file)?) {
            if literal.to_ascii_uppercase().contains("SELECT") {
                queries.insert(literal);
            } else if in_semantics_table && looks_like_condition(&literal) {
                queries.insert(format!("SELECT * FROM devices WHERE {literal}"));
            }
        }
    }
    let queries: Vec<Vec<u8>> = queries.into_iter().filter_map(substituted).collect();
    write(&out.join("query"), &queries)?;

    let mut auth_literals = Vec::new();
    for file in rust_files(&auth_dir.join("tests"))?
        .into_iter()
        .chain(rust_files(&auth_dir.join("src/sas"))?)
    {
        auth_literals.extend(literals(&fs::read_to_string(&file)?));
    }
    let key = SharedAccessKey::from_base64(KEY)?;
    let device_token = SasToken::generate(&format!("{HOST}/devices/dev1"), &key, None, SE);

    let mut strings: BTreeSet<Vec<u8>> = auth_literals
        .iter()
        .filter(|l| l.contains('=') && (l.contains(';') || l.contains("HostName")))
        .filter_map(|l| substituted(l.clone()))
        .collect();
    strings.insert(
        format!(
            "HostName={HOST};DeviceId=dev1;SharedAccessSignature={}",
            device_token.as_str()
        )
        .into_bytes(),
    );
    write(
        &out.join("connection_string"),
        &strings.into_iter().collect::<Vec<_>>(),
    )?;

    let mut tokens: BTreeSet<Vec<u8>> = auth_literals
        .iter()
        .filter(|l| l.to_ascii_lowercase().contains("sharedaccesssignature"))
        .filter_map(|l| substituted(l.clone()))
        .map(|t| [b"T".as_slice(), &t].concat())
        .collect();
    tokens.insert([b"T".as_slice(), device_token.as_str().as_bytes()].concat());
    // Tokens to sign: the resources and policies the tests sign, with and without edits
    // (edits: case flip in `sr`, percent-encoding in `sig`, a byte overwritten in `se`).
    let resources = [
        (HOST.to_owned(), Some("iothubowner")),
        (format!("{HOST}/devices/dev1"), None),
        (format!("{HOST}/devices/a#b/modules/m 1"), Some("device")),
        ("localhost:18443".to_owned(), Some("service")),
        ("h.net/devices/é".to_owned(), None),
    ];
    for (i, (resource, policy)) in resources.iter().enumerate() {
        for edits in [
            &[][..],
            &[[4, 30, 0, 0], [3, 80, 0, 0], [0, 200, 0, b'9']][..],
        ] {
            let selector = i as u8 | if policy.is_some() { 4 } else { 0 };
            let mut seed = vec![b'S', selector];
            seed.extend(SE.to_le_bytes());
            seed.push(edits.len() as u8);
            seed.extend(edits.iter().flatten());
            seed.extend(resource.as_bytes());
            if let Some(policy) = policy {
                seed.push(b'\n');
                seed.extend(policy.as_bytes());
            }
            tokens.insert(seed);
        }
    }
    write(
        &out.join("sas_token"),
        &tokens.into_iter().collect::<Vec<_>>(),
    )?;
    write(&out.join("mqtt_session"), &mqtt_session_seeds()?)?;
    write(&out.join("twin_patch"), &twin_patch_seeds())?;
    Ok(())
}

/// Client byte streams after CONNECT, as the emulator's MQTT tests send them (subscribe to twin
/// responses and desired patches, twin GET, reported PATCH good and bad, telemetry with
/// properties, method subscription and response, unsubscribe, ping, QoS 2, a wildcard filter,
/// DISCONNECT), each behind the scene bytes that pick the hub's answers, desired changes,
/// reconnects and the device id (see `src/mqtt_session.rs`).
fn mqtt_session_seeds() -> Result<Vec<Vec<u8>>, String> {
    use iothub_emulator::fuzzing::{
        encode_packet, Packet, PubAck, Publish, QoS, Subscribe, SubscribeFilter, Unsubscribe,
    };
    let publish = |topic: &str, qos: QoS, pkid: u16, payload: &str| {
        let mut p = Publish::new(topic, qos, payload.to_owned());
        p.pkid = pkid;
        Packet::Publish(p)
    };
    let subscribe = |filters: &[(&str, QoS)]| {
        let filters = filters
            .iter()
            .map(|(f, q)| SubscribeFilter::new((*f).to_owned(), *q));
        let mut s = Subscribe::new_many(filters);
        s.pkid = 1;
        Packet::Subscribe(s)
    };
    let mut deep = serde_json::json!(1);
    for _ in 0..11 {
        deep = serde_json::json!({ "x": deep });
    }
    let deep = deep.to_string();
    let mut seeds = Vec::new();
    for (scene, id) in [
        (0x00, "d1"),
        (0x04, "d1"),
        (0x0c, "d1"),
        (0x02, "d1"),
        (0x13, "dev%20%231"),
    ] {
        let twin = subscribe(&[
            ("$iothub/twin/res/#", QoS::AtLeastOnce),
            ("$iothub/twin/PATCH/properties/desired/#", QoS::ExactlyOnce),
        ]);
        let streams = vec![
            vec![
                twin.clone(),
                publish("$iothub/twin/GET/?$rid=1", QoS::AtMostOnce, 0, " "),
                publish(
                    "$iothub/twin/PATCH/properties/reported/?$rid=2",
                    QoS::AtLeastOnce,
                    3,
                    r#"{"connectivity":{"type":"cellular"},"old":null}"#,
                ),
                Packet::PubAck(PubAck::new(1)),
                Packet::PingReq,
                publish(
                    "$iothub/twin/PATCH/properties/reported/?$rid=bad-json",
                    QoS::AtMostOnce,
                    0,
                    "{not json",
                ),
                publish(
                    "$iothub/twin/PATCH/properties/reported/?$rid=too-deep",
                    QoS::AtMostOnce,
                    0,
                    &deep,
                ),
                Packet::Disconnect,
                twin.clone(),
                publish(
                    "$iothub/twin/GET/?$rid=63d48e43-3d3a",
                    QoS::AtLeastOnce,
                    9,
                    "",
                ),
            ],
            vec![
                subscribe(&[
                    ("$iothub/methods/POST/#", QoS::AtMostOnce),
                    (
                        &format!("devices/{id}/messages/devicebound/#"),
                        QoS::AtLeastOnce,
                    ),
                ]),
                publish(
                    &format!("devices/{id}/messages/events/%24.ct=application%2Fjson"),
                    QoS::AtLeastOnce,
                    2,
                    r#"{"t":21}"#,
                ),
                publish("$iothub/methods/res/200/?$rid=5", QoS::AtMostOnce, 0, "{}"),
                Packet::Unsubscribe(Unsubscribe::new("$iothub/twin/PATCH/properties/desired/#")),
                publish(
                    &format!("devices/{id}/messages/events/"),
                    QoS::ExactlyOnce,
                    4,
                    "x",
                ),
            ],
            vec![twin.clone(), subscribe(&[("#", QoS::AtMostOnce)])],
        ];
        for stream in streams {
            let mut seed = vec![scene];
            for packet in &stream {
                seed.extend(encode_packet(packet)?);
            }
            seeds.push(seed);
        }
    }
    Ok(seeds)
}

/// Twin write bodies as the emulator's REST and MQTT twin tests send them (merge, `null`
/// deletes, echoed read-only members, PUT, cleared sections, bad names, depth 10 and 11, size
/// limits, out-of-range integers), behind the byte that picks the write (`P` PATCH, `U` PUT,
/// `R` reported; see `src/twin_patch.rs`).
fn twin_patch_seeds() -> Vec<Vec<u8>> {
    use serde_json::{json, Value};
    let nest = |levels: usize| {
        let mut v = json!("leaf");
        for i in (0..levels).rev() {
            v = json!({ format!("l{i}"): v });
        }
        v
    };
    let chunk = "x".repeat(3000);
    let mut big = serde_json::Map::new();
    for i in 0..12 {
        big.insert(format!("k{i}"), json!(chunk));
    }
    let bodies: Vec<(u8, Value)> = vec![
        (
            b'P',
            json!({"tags": {"location": {"region": "US", "plant": "Redmond43"}}}),
        ),
        (
            b'P',
            json!({
                "deviceId": "t1", "etag": "whatever", "version": 99, "status": "disabled",
                "properties": {
                    "desired": {"cfg": {"a": 1, "b": 2}, "$metadata": {"x": 1}, "$version": 42},
                    "reported": {"ignored": true}
                }
            }),
        ),
        (
            b'P',
            json!({"properties": {"desired": {"cfg": {"b": null}, "telemetryConfig": null}}}),
        ),
        (b'P', json!({"tags": null, "properties": {"desired": null}})),
        (
            b'P',
            json!({"Tags": {"a": [1, {"b": 2}]}, "Properties": {"Desired": {"n": 1.5e3}}}),
        ),
        (b'P', json!({"tags": {"a.b": 1}})),
        (b'P', json!({"tags": {"$x": 1, "a b": 2}})),
        (b'P', json!({"tags": 5})),
        (b'P', json!({"properties": {"desired": nest(10)}})),
        (b'P', json!({"properties": {"desired": {"deep": nest(10)}}})),
        (b'P', json!({"tags": {"a": chunk, "b": chunk, "c": chunk}})),
        (b'P', json!({"properties": {"desired": big}})),
        (
            b'P',
            json!({"tags": {"n": 4_503_599_627_370_495_i64, "m": -4_503_599_627_370_496_i64}}),
        ),
        (b'P', json!({"tags": {"n": 9_007_199_254_740_993_u64}})),
        (
            b'U',
            json!({"tags": {"only": "this"}, "properties": {"desired": {"d": true}}}),
        ),
        (
            b'U',
            json!({"properties": {"desired": {"telemetryConfig": {"sendFrequency": "1m"}}}}),
        ),
        (
            b'R',
            json!({"connectivity": {"type": "wifi"}, "flag": null}),
        ),
        (
            b'R',
            json!({"telemetryConfig": {"sendFrequency": "5m", "status": "success"}}),
        ),
        (b'R', nest(11)),
    ];
    let mut seeds: Vec<Vec<u8>> = bodies
        .into_iter()
        .map(|(mode, body)| [vec![mode], body.to_string().into_bytes()].concat())
        .collect();
    seeds.push(b"P{\"tags\":{\"n\":100000000000000000000}}".to_vec());
    seeds.push(b"P".to_vec());
    seeds.push(b"R{not json".to_vec());
    seeds
}

/// The tests' `format!` placeholders that have one fixed value; literals with any other
/// placeholder are dropped.
fn substituted(literal: String) -> Option<Vec<u8>> {
    let resource = encode_component(&format!("{HOST}/devices/dev1"));
    let key = SharedAccessKey::from_base64("BQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQU=").ok()?;
    let sig = encode_component(&key.sign(format!("{resource}\n{SE}").as_bytes()));
    let text = literal
        .replace("{KEY}", KEY)
        .replace("{KEY_BODY}", KEY.trim_end_matches('='))
        .replace("{HOST}", HOST)
        .replace("{SE}", &SE.to_string())
        .replace("{sr}", &resource)
        .replace("{sig}", &sig);
    let placeholder = text.contains('{') && text.contains('}');
    (!placeholder && !text.is_empty()).then(|| text.into_bytes())
}

fn looks_like_condition(literal: &str) -> bool {
    literal.contains(['=', '<', '>'])
        || [
            " IN ", " NIN ", "IS_", "STARTS", "ENDS", "NOT ", " AND ", " OR ",
        ]
        .iter()
        .any(|word| literal.contains(word))
}

fn rust_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    files.retain(|f| f.extension().is_some_and(|e| e == "rs"));
    files.sort();
    Ok(files)
}

fn write(dir: &Path, seeds: &[Vec<u8>]) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    for (i, seed) in seeds.iter().enumerate() {
        fs::write(dir.join(format!("seed-{i:04}")), seed)?;
    }
    println!("{}: {} seeds", dir.display(), seeds.len());
    Ok(())
}

/// The string literals of Rust source (normal and raw; escapes decoded, `\`-newline
/// continuations joined). Comments and char literals are skipped.
fn literals(source: &str) -> Vec<String> {
    let chars: Vec<char> = source.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '/' if chars.get(i + 1) == Some(&'/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '\'' => {
                // A char literal ('x', '\n', '\u{..}') or a lifetime.
                if chars.get(i + 1) == Some(&'\\') {
                    i += 2;
                    while i < chars.len() && chars[i] != '\'' {
                        i += 1;
                    }
                } else if chars.get(i + 2) == Some(&'\'') {
                    i += 2;
                }
                i += 1;
            }
            'r' if matches!(chars.get(i + 1), Some('#') | Some('"'))
                && (i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')) =>
            {
                let hashes = chars[i + 1..].iter().take_while(|&&c| c == '#').count();
                let open = i + 1 + hashes;
                if chars.get(open) != Some(&'"') {
                    i += 1;
                    continue;
                }
                let close: String = std::iter::once('"')
                    .chain("#".repeat(hashes).chars())
                    .collect();
                let body: String = chars[open + 1..].iter().collect();
                match body.find(&close) {
                    Some(end) => {
                        out.push(body[..end].to_owned());
                        i = open + 1 + body[..end].chars().count() + close.chars().count();
                    }
                    None => break,
                }
            }
            '"' => {
                let mut text = String::new();
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' {
                        i += 1;
                        match chars.get(i) {
                            Some('n') => text.push('\n'),
                            Some('t') => text.push('\t'),
                            Some('r') => text.push('\r'),
                            Some('0') => text.push('\0'),
                            Some('u') => {
                                let end = (i..chars.len()).find(|&j| chars[j] == '}').unwrap_or(i);
                                let hex: String = chars[i + 2..end].iter().collect();
                                if let Some(c) =
                                    u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32)
                                {
                                    text.push(c);
                                }
                                i = end;
                            }
                            Some('x') => {
                                let hex: String =
                                    chars[i + 1..(i + 3).min(chars.len())].iter().collect();
                                if let Ok(b) = u8::from_str_radix(&hex, 16) {
                                    text.push(char::from(b));
                                }
                                i += 2;
                            }
                            Some('\n') => {
                                while chars.get(i + 1).is_some_and(|c| c.is_whitespace()) {
                                    i += 1;
                                }
                            }
                            Some(&c) => text.push(c),
                            None => break,
                        }
                    } else {
                        text.push(chars[i]);
                    }
                    i += 1;
                }
                out.push(text);
                i += 1;
            }
            _ => i += 1,
        }
    }
    out
}
