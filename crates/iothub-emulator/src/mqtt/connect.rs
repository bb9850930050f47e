//! CONNECT: who the client is and whether it may connect (ARCHITECTURE.md#device-mqtt,
//! ARCHITECTURE.md#sas-tokens; <https://learn.microsoft.com/azure/iot/iot-mqtt-connect-to-iot-hub>).
//!
//! * Client id: `{deviceId}` or `{deviceId}/{moduleId}`.
//! * Username: `{host}/{clientId}/?api-version=…&…`, parsed leniently: the query is ignored,
//!   a missing `?` (old C SDK) or a missing trailing part is tolerated, any `:port` on the host
//!   is ignored.
//! * Password: a SAS token for `{host}/devices/{id}` signed with a device key (for a module
//!   `{host}/devices/{id}/modules/{mid}` signed with the module's own key), or signed with a
//!   policy key that grants DeviceConnect (`skn`).
//!
//! Every refusal is answered with CONNACK 5 (IoT Hub never sends the other codes for bad
//! credentials), except an MQTT version other than 3.1.1 (code 1). The [`Refusal`] says why, for
//! logs only; it never contains the token.

use std::time::Duration;

use iothub_auth::{ParsedSas, SasError, SharedAccessKey};
use percent_encoding::percent_decode_str;
use rumqttc::mqttbytes::v4::{Connect, ConnectReturnCode};
use rumqttc::mqttbytes::Protocol;

use super::topic::Identity;

/// The server-side keep-alive limit: 1.5 × the client's, capped at 29.45 minutes
/// (<https://learn.microsoft.com/azure/iot/iot-mqtt-connect-to-iot-hub>).
const MAX_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(1767);

/// The longest a connection lives on one SAS token, however far ahead its `se` lies: a token
/// signed with a key that was rotated since stops working at the latest this long after CONNECT
/// (the device SDKs renew their tokens well within this, typically every hour).
pub const MAX_SESSION_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// The keys a token may be checked against, as the hub stores them.
#[derive(Clone)]
pub struct KeyPair {
    /// Primary key.
    pub primary: SharedAccessKey,
    /// Secondary key.
    pub secondary: SharedAccessKey,
}

/// Where CONNECT looks up credentials (the hub in production, a table in unit tests).
pub trait Credentials {
    /// The hub name devices use in usernames and SAS resources.
    fn hostname(&self) -> &str;
    /// The device's keys and whether it is enabled; `None` if it is not registered.
    fn device_keys(&self, device_id: &str) -> Option<(KeyPair, bool)>;
    /// The module's own keys and whether its device is enabled; `None` if it is not registered.
    fn module_keys(&self, device_id: &str, module_id: &str) -> Option<(KeyPair, bool)>;
    /// A shared access policy's keys and whether it grants DeviceConnect; `None` if unknown.
    fn policy_keys(&self, policy: &str) -> Option<(KeyPair, bool)>;
}

/// A client that passed CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// Who it is.
    pub identity: Identity,
    /// The MQTT client id (session key).
    pub client_id: String,
    /// Clean session flag: `false` keeps the session across connections.
    pub clean_session: bool,
    /// Close the connection when no packet arrived for this long (`None`: keep-alive 0).
    pub keep_alive_timeout: Option<Duration>,
    /// When the connection is closed (Unix seconds): the token's `se`, but no later than
    /// [`MAX_SESSION_LIFETIME`] after CONNECT.
    pub session_ends_at: u64,
}

/// Why a CONNECT was refused (for logs; the client only sees the CONNACK code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not MQTT 3.1.1.
    #[error("unsupported MQTT protocol level")]
    ProtocolVersion,
    /// Empty client id, or more than `device/module`.
    #[error("client id '{0}' is not a device id or device/module id")]
    BadClientId(String),
    /// The username does not name this hub and this client id.
    #[error("username does not match '{{host}}/{client_id}/…'")]
    BadUsername {
        /// The CONNECT's client id.
        client_id: String,
    },
    /// No password: X.509 authentication is not emulated.
    #[error("no SAS token in the password field")]
    MissingPassword,
    /// The module is not registered (or has no SAS keys).
    #[error("module '{0}' is not registered")]
    UnknownModule(String),
    /// The device is not registered.
    #[error("device '{0}' is not registered")]
    UnknownDevice(String),
    /// The device is disabled.
    #[error("device '{0}' is disabled")]
    DeviceDisabled(String),
    /// `skn` names no policy.
    #[error("shared access policy '{0}' does not exist")]
    UnknownPolicy(String),
    /// The policy lacks DeviceConnect.
    #[error("shared access policy '{0}' does not grant DeviceConnect")]
    PolicyLacksDeviceConnect(String),
    /// Malformed token, bad signature, expired, or scoped to another resource.
    #[error(transparent)]
    Token(#[from] SasError),
}

impl Refusal {
    /// The CONNACK code for this refusal.
    pub fn return_code(&self) -> ConnectReturnCode {
        match self {
            Refusal::ProtocolVersion => ConnectReturnCode::RefusedProtocolVersion,
            _ => ConnectReturnCode::NotAuthorized,
        }
    }
}

/// Decides whether `connect` may open a session, at time `now_unix`.
///
/// # Errors
/// The first check that failed, as a [`Refusal`].
pub fn authenticate(
    connect: &Connect,
    credentials: &impl Credentials,
    now_unix: u64,
) -> Result<Accepted, Refusal> {
    if connect.protocol != Protocol::V4 {
        return Err(Refusal::ProtocolVersion);
    }
    let identity = parse_client_id(&connect.client_id)?;
    let login = connect.login.as_ref().ok_or(Refusal::MissingPassword)?;
    let hostname = credentials.hostname();
    if !username_matches(&login.username, hostname, &connect.client_id) {
        return Err(Refusal::BadUsername {
            client_id: connect.client_id.clone(),
        });
    }
    if login.password.is_empty() {
        return Err(Refusal::MissingPassword);
    }
    let token = ParsedSas::parse(&login.password)?;
    let (device_keys, enabled) = match &identity.module_id {
        None => credentials
            .device_keys(&identity.device_id)
            .ok_or_else(|| Refusal::UnknownDevice(identity.device_id.clone()))?,
        Some(module) => credentials
            .module_keys(&identity.device_id, module)
            .ok_or_else(|| Refusal::UnknownModule(connect.client_id.clone()))?,
    };
    if !enabled {
        return Err(Refusal::DeviceDisabled(identity.device_id.clone()));
    }
    let keys = match token.policy_name() {
        None => device_keys,
        Some(policy) => {
            let (keys, device_connect) = credentials
                .policy_keys(policy)
                .ok_or_else(|| Refusal::UnknownPolicy(policy.to_string()))?;
            if !device_connect {
                return Err(Refusal::PolicyLacksDeviceConnect(policy.to_string()));
            }
            keys
        }
    };
    let resource = match &identity.module_id {
        None => format!("{hostname}/devices/{}", identity.device_id),
        Some(module) => format!("{hostname}/devices/{}/modules/{module}", identity.device_id),
    };
    token.authorize(&[&keys.primary, &keys.secondary], now_unix, &resource)?;
    Ok(Accepted {
        identity,
        client_id: connect.client_id.clone(),
        clean_session: connect.clean_session,
        keep_alive_timeout: keep_alive_timeout(connect.keep_alive),
        session_ends_at: token
            .expires_at_unix()
            .min(now_unix.saturating_add(MAX_SESSION_LIFETIME.as_secs())),
    })
}

/// `device` or `device/module`.
fn parse_client_id(client_id: &str) -> Result<Identity, Refusal> {
    let bad = || Refusal::BadClientId(client_id.to_string());
    let mut parts = client_id.split('/');
    let device_id = parts.next().filter(|d| !d.is_empty()).ok_or_else(bad)?;
    let module_id = match parts.next() {
        None => None,
        Some(m) if !m.is_empty() => Some(m.to_string()),
        Some(_) => return Err(bad()),
    };
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok(Identity {
        device_id: device_id.to_string(),
        module_id,
    })
}

/// `{host}/{clientId}` followed by nothing, `/`, or `/` + query (with or without `?`).
fn username_matches(username: &str, hostname: &str, client_id: &str) -> bool {
    let Some((host, rest)) = username.split_once('/') else {
        return false;
    };
    if !same_host(host, hostname) {
        return false;
    }
    let after_id = rest
        .strip_prefix(client_id)
        .map(str::to_string)
        .or_else(|| {
            // Some clients percent-encode the device id in the username.
            let decoded = percent_decode_str(rest).decode_utf8_lossy().into_owned();
            decoded.strip_prefix(client_id).map(str::to_string)
        });
    matches!(after_id.as_deref(), Some(tail) if tail.is_empty() || tail.starts_with('/'))
}

/// Host names compare ASCII case-insensitively, ignoring a `:port` on either side.
fn same_host(a: &str, b: &str) -> bool {
    fn strip_port(h: &str) -> &str {
        match h.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => h,
        }
    }
    strip_port(a).eq_ignore_ascii_case(strip_port(b))
}

/// 1.5 × the client's keep-alive, capped; none for keep-alive 0.
fn keep_alive_timeout(keep_alive_secs: u16) -> Option<Duration> {
    (keep_alive_secs > 0).then(|| {
        let millis = u64::from(keep_alive_secs) * 1500;
        Duration::from_millis(millis).min(MAX_KEEP_ALIVE_TIMEOUT)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use iothub_auth::SasToken;

    const HOST: &str = "localhost";

    struct Table {
        device: KeyPair,
        other: KeyPair,
        module: KeyPair,
        policy: KeyPair,
    }

    impl Credentials for Table {
        fn hostname(&self) -> &str {
            HOST
        }
        fn device_keys(&self, id: &str) -> Option<(KeyPair, bool)> {
            match id {
                "d1" => Some((self.device.clone(), true)),
                "d2" => Some((self.other.clone(), true)),
                "off" => Some((self.device.clone(), false)),
                _ => None,
            }
        }
        fn module_keys(&self, device: &str, module: &str) -> Option<(KeyPair, bool)> {
            match (device, module) {
                ("d1", "m1") => Some((self.module.clone(), true)),
                ("off", "m1") => Some((self.module.clone(), false)),
                _ => None,
            }
        }
        fn policy_keys(&self, name: &str) -> Option<(KeyPair, bool)> {
            match name {
                "device" => Some((self.policy.clone(), true)),
                "service" => Some((self.policy.clone(), false)),
                _ => None,
            }
        }
    }

    fn pair() -> KeyPair {
        KeyPair {
            primary: SharedAccessKey::generate(),
            secondary: SharedAccessKey::generate(),
        }
    }

    fn table() -> Table {
        Table {
            device: pair(),
            other: pair(),
            module: pair(),
            policy: pair(),
        }
    }

    const NOW: u64 = 1_800_000_000;

    fn connect(client_id: &str, username: &str, password: &str) -> Connect {
        let mut c = Connect::new(client_id);
        c.clean_session = false;
        c.keep_alive = 60;
        c.set_login(username, password);
        c
    }

    fn token(resource: &str, key: &SharedAccessKey, policy: Option<&str>, se: u64) -> String {
        SasToken::generate(resource, key, policy, se)
            .as_str()
            .to_string()
    }

    #[test]
    fn device_key_token_is_accepted_with_sdk_usernames() {
        let t = table();
        let password = token("localhost/devices/d1", &t.device.secondary, None, NOW + 60);
        for username in [
            "localhost/d1/?api-version=2021-04-12",
            "LOCALHOST:8883/d1/?api-version=2019-10-01&DeviceClientType=azure-iot-device-iothub-py%2F2.14.0",
            "localhost/d1/api-version=2016-11-14&DeviceClientType=iothubclient%2F1.1.12",
            "localhost/d1/",
            "localhost/d1",
        ] {
            let accepted = authenticate(&connect("d1", username, &password), &t, NOW).expect(username);
            assert_eq!(accepted.identity.device_id, "d1");
            assert!(!accepted.clean_session);
            assert_eq!(accepted.session_ends_at, NOW + 60);
            assert_eq!(accepted.keep_alive_timeout, Some(Duration::from_secs(90)));
        }
    }

    #[test]
    fn a_token_valid_for_decades_is_honoured_for_the_session_lifetime_bound_only() {
        let t = table();
        let decades = NOW + 30 * 365 * 24 * 3600;
        let password = token("localhost/devices/d1", &t.device.primary, None, decades);
        let accepted = authenticate(&connect("d1", "localhost/d1/", &password), &t, NOW)
            .expect("a long-lived token is accepted");
        assert_eq!(accepted.session_ends_at, NOW + 24 * 3600);
        assert_eq!(MAX_SESSION_LIFETIME, Duration::from_secs(24 * 3600));
    }

    #[test]
    fn policy_with_device_connect_is_accepted() {
        let t = table();
        let password = token(
            "localhost/devices/d1",
            &t.policy.primary,
            Some("device"),
            NOW + 60,
        );
        assert!(authenticate(
            &connect("d1", "localhost/d1/?api-version=x", &password),
            &t,
            NOW
        )
        .is_ok());
        let hub_wide = token("localhost", &t.policy.primary, Some("device"), NOW + 60);
        assert!(authenticate(
            &connect("d1", "localhost/d1/?api-version=x", &hub_wide),
            &t,
            NOW
        )
        .is_ok());
    }

    #[test]
    fn refusals() {
        let t = table();
        let user = "localhost/d1/?api-version=2021-04-12";
        let good = token("localhost/devices/d1", &t.device.primary, None, NOW + 60);
        type Expect = fn(&Refusal) -> bool;
        let cases: Vec<(Connect, Expect)> = vec![
            (
                connect(
                    "d1",
                    user,
                    &token(
                        "localhost/devices/d1",
                        &SharedAccessKey::generate(),
                        None,
                        NOW + 60,
                    ),
                ),
                |r| matches!(r, Refusal::Token(SasError::BadSignature)),
            ),
            (
                connect(
                    "d1",
                    user,
                    &token("localhost/devices/d1", &t.device.primary, None, NOW - 1),
                ),
                |r| matches!(r, Refusal::Token(SasError::Expired { .. })),
            ),
            // Another device's valid token.
            (
                connect(
                    "d1",
                    user,
                    &token("localhost/devices/d2", &t.other.primary, None, NOW + 60),
                ),
                |r| matches!(r, Refusal::Token(SasError::BadSignature)),
            ),
            // Our key, but scoped to another device.
            (
                connect(
                    "d1",
                    user,
                    &token("localhost/devices/d2", &t.device.primary, None, NOW + 60),
                ),
                |r| matches!(r, Refusal::Token(SasError::OutOfScope { .. })),
            ),
            (
                connect(
                    "d1",
                    user,
                    &token(
                        "localhost/devices/d1",
                        &t.policy.primary,
                        Some("service"),
                        NOW + 60,
                    ),
                ),
                |r| matches!(r, Refusal::PolicyLacksDeviceConnect(_)),
            ),
            (
                connect(
                    "d1",
                    user,
                    &token(
                        "localhost/devices/d1",
                        &t.policy.primary,
                        Some("nope"),
                        NOW + 60,
                    ),
                ),
                |r| matches!(r, Refusal::UnknownPolicy(_)),
            ),
            (connect("d1", "otherhost/d1/?api-version=x", &good), |r| {
                matches!(r, Refusal::BadUsername { .. })
            }),
            (connect("d1", "localhost/d10/?api-version=x", &good), |r| {
                matches!(r, Refusal::BadUsername { .. })
            }),
            (connect("d1", user, ""), |r| {
                matches!(r, Refusal::MissingPassword)
            }),
            (connect("d1", user, "not a token"), |r| {
                matches!(r, Refusal::Token(SasError::Malformed(_)))
            }),
            (connect("ghost", "localhost/ghost/", &good), |r| {
                matches!(r, Refusal::UnknownDevice(_))
            }),
            (
                connect(
                    "off",
                    "localhost/off/",
                    &token("localhost/devices/off", &t.device.primary, None, NOW + 60),
                ),
                |r| matches!(r, Refusal::DeviceDisabled(_)),
            ),
            // A module signs with its own key, for its own resource.
            (
                connect(
                    "d1/m1",
                    "localhost/d1/m1/?api-version=x",
                    &token(
                        "localhost/devices/d1/modules/m2",
                        &t.module.primary,
                        None,
                        NOW + 60,
                    ),
                ),
                |r| matches!(r, Refusal::Token(SasError::OutOfScope { .. })),
            ),
            (
                connect(
                    "d1/m1",
                    "localhost/d1/m1/?api-version=x",
                    &token(
                        "localhost/devices/d1/modules/m1",
                        &t.device.primary,
                        None,
                        NOW + 60,
                    ),
                ),
                |r| matches!(r, Refusal::Token(SasError::BadSignature)),
            ),
            (
                connect(
                    "d1/m2",
                    "localhost/d1/m2/",
                    &token(
                        "localhost/devices/d1/modules/m2",
                        &t.module.primary,
                        None,
                        NOW + 60,
                    ),
                ),
                |r| matches!(r, Refusal::UnknownModule(_)),
            ),
            (
                connect(
                    "off/m1",
                    "localhost/off/m1/",
                    &token(
                        "localhost/devices/off/modules/m1",
                        &t.module.primary,
                        None,
                        NOW + 60,
                    ),
                ),
                |r| matches!(r, Refusal::DeviceDisabled(_)),
            ),
            (connect("", "localhost//", &good), |r| {
                matches!(r, Refusal::BadClientId(_))
            }),
            (connect("a/b/c", "localhost/a/b/c/", &good), |r| {
                matches!(r, Refusal::BadClientId(_))
            }),
        ];
        for (i, (c, expected)) in cases.into_iter().enumerate() {
            let refusal =
                authenticate(&c, &t, NOW).expect_err(&format!("case {i} must be refused"));
            assert!(expected(&refusal), "case {i}: {refusal:?}");
            assert_eq!(refusal.return_code(), ConnectReturnCode::NotAuthorized);
            assert!(
                !refusal.to_string().contains("sig="),
                "refusal text leaks the token"
            );
        }
    }

    #[test]
    fn a_module_connects_with_its_own_key_or_a_device_connect_policy() {
        let t = table();
        let own = token(
            "localhost/devices/d1/modules/m1",
            &t.module.secondary,
            None,
            NOW + 60,
        );
        let accepted = authenticate(
            &connect("d1/m1", "localhost/d1/m1/?api-version=2021-04-12", &own),
            &t,
            NOW,
        )
        .expect("module key");
        assert_eq!(accepted.client_id, "d1/m1");
        assert_eq!(accepted.identity.module_id.as_deref(), Some("m1"));
        let policy = token(
            "localhost/devices/d1/modules/m1",
            &t.policy.primary,
            Some("device"),
            NOW + 60,
        );
        assert!(authenticate(&connect("d1/m1", "localhost/d1/m1/", &policy), &t, NOW).is_ok());
    }

    #[test]
    fn only_mqtt_3_1_1() {
        let t = table();
        let mut c = connect("d1", "localhost/d1/", "x");
        c.protocol = Protocol::V5;
        let refusal = authenticate(&c, &t, NOW).expect_err("v5");
        assert_eq!(
            refusal.return_code(),
            ConnectReturnCode::RefusedProtocolVersion
        );
    }

    #[test]
    fn keep_alive_is_one_and_a_half_times_capped() {
        assert_eq!(keep_alive_timeout(0), None);
        assert_eq!(keep_alive_timeout(4), Some(Duration::from_secs(6)));
        assert_eq!(keep_alive_timeout(1740), Some(MAX_KEEP_ALIVE_TIMEOUT));
    }
}
