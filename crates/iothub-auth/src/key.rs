//! The shared access key: validated once, signed with, never printed.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::digest::Key;
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

use crate::error::KeyError;

/// Shortest decoded key IoT Hub accepts (C# `SecurityConstants.MinKeyLengthInBytes`).
const MIN_KEY_BYTES: usize = 16;
/// Longest decoded key IoT Hub accepts (C# `SecurityConstants.MaxKeyLengthInBytes`).
const MAX_KEY_BYTES: usize = 64;
/// Length of keys made by [`SharedAccessKey::generate`], the same as the portal's.
const GENERATED_KEY_BYTES: usize = 32;

/// HMAC-SHA256 keyed once, when the key is validated; each signature starts from a copy.
type KeyedMac = Hmac<Sha256>;

/// A device or policy key: base64 text that decodes to 16–64 bytes.
///
/// `Debug` and `Display` print `SharedAccessKey(<redacted>)`; the only way to the secret text is
/// the explicit [`SharedAccessKey::expose_base64`]. Equality is constant-time over the decoded
/// bytes.
#[derive(Clone)]
pub struct SharedAccessKey {
    /// The text as given; kept so connection strings round-trip byte for byte.
    base64: String,
    decoded: Vec<u8>,
    /// `decoded` as the MAC's key schedule, built by the constructors (where an error has a
    /// place to go) so signing cannot fail. Boxed: the MAC state outweighs the rest of the key,
    /// and keys sit in enums beside small values.
    keyed: Box<KeyedMac>,
}

impl SharedAccessKey {
    /// Validates `s` as standard base64 (with padding) decoding to 16–64 bytes.
    ///
    /// The error never contains any part of `s`.
    pub fn from_base64(s: &str) -> Result<Self, KeyError> {
        if s.is_empty() {
            return Err(KeyError::Empty);
        }
        let decoded = STANDARD.decode(s).map_err(|_| KeyError::InvalidBase64)?;
        if !(MIN_KEY_BYTES..=MAX_KEY_BYTES).contains(&decoded.len()) {
            return Err(KeyError::InvalidLength { len: decoded.len() });
        }
        // HMAC takes keys of any length, so this error cannot happen; it maps onto the one
        // variant that names a length the MAC could not take.
        let keyed = KeyedMac::new_from_slice(&decoded)
            .map_err(|_| KeyError::InvalidLength { len: decoded.len() })?;
        let keyed = Box::new(keyed);
        Ok(Self {
            base64: s.to_owned(),
            decoded,
            keyed,
        })
    }

    /// A fresh random 32-byte key (what the emulator hands out for new devices and policies).
    pub fn generate() -> Self {
        // A key shorter than HMAC-SHA256's 64-byte block is that block zero-padded (RFC 2104
        // section 2), so keying with the full block is infallible and equals keying with the
        // 32 random bytes alone.
        let mut block = Key::<KeyedMac>::default();
        rand::thread_rng().fill_bytes(&mut block[..GENERATED_KEY_BYTES]);
        let bytes = block[..GENERATED_KEY_BYTES].to_vec();
        Self {
            base64: STANDARD.encode(&bytes),
            decoded: bytes,
            keyed: Box::new(KeyedMac::new(&block)),
        }
    }

    /// The key's base64 text. Named so every place that handles the secret is easy to grep.
    pub fn expose_base64(&self) -> &str {
        &self.base64
    }

    /// `base64(HMAC-SHA256(decoded key, message))`, the signature format of IoT Hub SAS tokens.
    pub fn sign(&self, message: &[u8]) -> String {
        STANDARD.encode(self.mac(message))
    }

    /// A key of any length, for the Node SDK's test vector whose 8-byte key is below IoT Hub's
    /// minimum.
    #[cfg(test)]
    pub(crate) fn from_bytes_any_length(bytes: &[u8]) -> Self {
        Self {
            base64: STANDARD.encode(bytes),
            decoded: bytes.to_vec(),
            keyed: Box::new(
                KeyedMac::new_from_slice(bytes).expect("HMAC takes keys of any length"),
            ),
        }
    }

    /// Raw HMAC-SHA256 of `message` under this key.
    pub(crate) fn mac(&self, message: &[u8]) -> [u8; 32] {
        let mut mac = KeyedMac::clone(&self.keyed);
        mac.update(message);
        mac.finalize().into_bytes().into()
    }
}

impl PartialEq for SharedAccessKey {
    fn eq(&self, other: &Self) -> bool {
        self.decoded.ct_eq(&other.decoded).into()
    }
}

impl Eq for SharedAccessKey {}

impl fmt::Debug for SharedAccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedAccessKey(<redacted>)")
    }
}

impl fmt::Display for SharedAccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedAccessKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Key of the Python device SDK's signing-mechanism unit test
    /// (`tests/unit/common/auth/test_signing_mechanism.py` in
    /// <https://github.com/Azure/azure-iot-sdk-python>).
    const PY_KEY: &str = "NMgJDvdKTxjLi+xBxxkDDEwDJxEvOE5u8BiT0mVgPeg=";

    #[test]
    fn python_sdk_signing_vector() {
        let key = SharedAccessKey::from_base64(PY_KEY).expect("valid key");
        assert_eq!(
            key.sign(b"sign this message"),
            "8NJRMT83CcplGrAGaUVIUM/md5914KpWVNngSVoF9/M="
        );
    }

    #[test]
    fn node_sdk_test_key_is_below_the_hub_minimum() {
        // base64("password") signs the Node vector (see `sas::sdk_vectors`), but at 8 bytes it
        // is not a key IoT Hub would accept.
        assert_eq!(
            SharedAccessKey::from_base64("cGFzc3dvcmQ="),
            Err(KeyError::InvalidLength { len: 8 })
        );
        assert_eq!(
            SharedAccessKey::from_bytes_any_length(b"password").expose_base64(),
            "cGFzc3dvcmQ="
        );
    }

    #[test]
    fn keeps_the_text_as_given() {
        let key = SharedAccessKey::from_base64(PY_KEY).expect("valid key");
        assert_eq!(key.expose_base64(), PY_KEY);
    }

    #[test]
    fn rejects_bad_keys_without_echoing_them() {
        for (text, expected) in [
            ("", KeyError::Empty),
            ("not base64!", KeyError::InvalidBase64),
            // Missing padding: Python's b64decode rejects this too.
            (
                "NMgJDvdKTxjLi+xBxxkDDEwDJxEvOE5u8BiT0mVgPeg",
                KeyError::InvalidBase64,
            ),
            (
                "NMgJDvdKTxjLi-xBxxkDDEwDJxEvOE5u8BiT0mVgPeg=",
                KeyError::InvalidBase64,
            ),
            ("c2hvcnQ=", KeyError::InvalidLength { len: 5 }),
        ] {
            let err = SharedAccessKey::from_base64(text).expect_err(text);
            assert_eq!(err, expected, "{text}");
            if !text.is_empty() {
                assert!(!err.to_string().contains(text), "{err}");
            }
        }
        let long = STANDARD.encode([7u8; 65]);
        assert_eq!(
            SharedAccessKey::from_base64(&long),
            Err(KeyError::InvalidLength { len: 65 })
        );
        assert!(SharedAccessKey::from_base64(&STANDARD.encode([7u8; 64])).is_ok());
        assert!(SharedAccessKey::from_base64(&STANDARD.encode([7u8; 16])).is_ok());
    }

    #[test]
    fn generated_keys_are_valid_and_distinct() {
        let a = SharedAccessKey::generate();
        let b = SharedAccessKey::generate();
        assert_ne!(a, b);
        let reparsed = SharedAccessKey::from_base64(a.expose_base64()).expect("valid");
        assert_eq!(reparsed, a);
        assert_eq!(reparsed.decoded.len(), GENERATED_KEY_BYTES);
        // `generate` keys the MAC with the zero-padded block, `from_base64` with the bytes alone.
        assert_eq!(
            reparsed.sign(b"sign this message"),
            a.sign(b"sign this message")
        );
    }

    #[test]
    fn debug_and_display_redact() {
        let key = SharedAccessKey::from_base64(PY_KEY).expect("valid key");
        for shown in [format!("{key}"), format!("{key:?}"), format!("{key:#?}")] {
            assert_eq!(shown, "SharedAccessKey(<redacted>)");
        }
    }
}
