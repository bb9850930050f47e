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
//! use iothub_auth::{DeviceConnectionString, ParsedSas};
//!
//! let device: DeviceConnectionString =
//!     "HostName=myhub.azure-devices.net;DeviceId=device1;SharedAccessKey=NMgJDvdKTxjLi+xBxxkDDEwDJxEvOE5u8BiT0mVgPeg="
//!         .parse()?;
//! let token = device.sas_token_expiring_at(1_700_000_000, 0)?;
//! assert_eq!(
//!     token.as_str(),
//!     "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdevice1\
//!      &sig=YmIL%2FdTZAntV%2FlLZdg3E7re%2BiH8C6Gt9dG4E4I74ho0%3D&se=1700000000"
//! );
//!
//! // The hub side.
//! let DeviceConnectionString { credential: iothub_auth::DeviceCredential::SharedAccessKey(key), .. } = &device
//! else { unreachable!() };
//! let parsed = ParsedSas::parse(token.as_str())?;
//! parsed.authorize(&[key], 1_699_999_000, "myhub.azure-devices.net/devices/device1")?;
//! assert!(!parsed.covers("myhub.azure-devices.net/devices/device2"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod clock;
mod connection_string;
mod error;
mod key;
mod sas;

pub use clock::unix_now;
pub use connection_string::{DeviceConnectionString, DeviceCredential, ServiceConnectionString};
pub use error::{ConnectionStringError, ConnectionStringKind, KeyError, SasError};
pub use key::SharedAccessKey;
pub use sas::{ParsedSas, SasToken};
