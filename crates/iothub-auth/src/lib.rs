//! Azure IoT Hub credentials: connection strings and shared access signature (SAS) tokens.
//!
//! * [`ServiceConnectionString`] and [`DeviceConnectionString`] parse the `Key=Value;…` strings
//!   the Azure portal hands out (`FromStr`), with errors that name the bad field and never
//!   contain the key, and a hint when a device string is given where a service string is
//!   needed (or the reverse).
//! * [`SasToken::generate`] signs tokens byte-for-byte like the official SDKs
//!   (`SharedAccessSignature sr=…&sig=…&se=…[&skn=…]`).
//! * [`ParsedSas`] is the hub side: it accepts every field order and `sr` encoding the SDKs
//!   produce, verifies the HMAC in constant time against primary or secondary keys, checks
//!   expiry against a caller-supplied clock and checks the token's scope.
//! * Secrets ([`SharedAccessKey`], tokens, connection strings) print as `<redacted>` in `Debug`
//!   and `Display`; getting at them takes an explicit `expose_*`/`as_str` call.
//!
//! ```
//! use iothub_auth::{DeviceConnectionString, ParsedSas, SasError, SharedAccessKey};
//!
//! const KEY: &str = "NMgJDvdKTxjLi+xBxxkDDEwDJxEvOE5u8BiT0mVgPeg=";
//! let device: DeviceConnectionString =
//!     format!("HostName=myhub.azure-devices.net;DeviceId=device1;SharedAccessKey={KEY}").parse()?;
//! println!("{device}"); // HostName=…;DeviceId=device1;SharedAccessKey=<redacted>
//!
//! // Client side: sign (`sas_token(ttl)` uses the clock; here the expiry is fixed).
//! let token = device.sas_token_expiring_at(1_700_000_000, 0)?;
//! assert_eq!(
//!     token.as_str(),
//!     "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdevice1\
//!      &sig=YmIL%2FdTZAntV%2FlLZdg3E7re%2BiH8C6Gt9dG4E4I74ho0%3D&se=1700000000"
//! );
//!
//! // Hub side: signature (primary or secondary key), expiry, scope.
//! let primary = SharedAccessKey::from_base64(KEY)?;
//! let secondary = SharedAccessKey::generate();
//! let parsed = ParsedSas::parse(token.as_str())?;
//! parsed.authorize(&[&primary, &secondary], 1_699_999_000, "myhub.azure-devices.net/devices/device1")?;
//! assert_eq!(
//!     parsed.check_not_expired(1_700_000_001),
//!     Err(SasError::Expired { expired_at: 1_700_000_000 })
//! );
//! assert!(!parsed.covers("myhub.azure-devices.net/devices/device2"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Decisions worth knowing
//!
//! * **Expiry is strict.** A token is valid up to and including second `se`; there is no clock
//!   skew allowance (the C# SDK allows 5 minutes). Callers that want one pass an earlier `now`.
//! * **`skn` is not signed.** No SDK covers it with the HMAC; it only selects which policy's keys
//!   the verifier tries. Verifiers must look keys up by `skn` (see
//!   [`ParsedSas::verify_signature`]).
//! * **`sr` is verified as transmitted** and decoded only for the scope check, because SDKs
//!   differ in how they encode it (the C SDK does not encode it at all).
//! * **Scope**: the host compares case-insensitively with any `:port` ignored; the path compares
//!   case-sensitively (device ids are case-sensitive) and by whole segment.
//! * **Connection strings** are parsed more forgivingly than Python's SDK (whitespace trimmed,
//!   empty segments and a trailing `;` ignored) but as strictly on content: unknown or
//!   duplicate keys, empty values and non-base64 keys are errors. IPv6 literal host names are
//!   not supported.

mod clock;
mod connection_string;
mod error;
mod key;
mod sas;

pub use clock::unix_now;
pub use connection_string::{DeviceConnectionString, DeviceCredential, ServiceConnectionString};
pub use error::{ConnectionStringError, ConnectionStringKind, KeyError, SasError};
pub use key::SharedAccessKey;
pub use sas::{encode_component, ParsedSas, SasToken};
