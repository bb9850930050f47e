//! A secret argument (a connection string): readable only through [`Secret::expose`], so the
//! parsed command line can be logged or printed with `{:?}` without leaking the key.

use std::fmt;
use std::str::FromStr;

/// What [`Secret`] prints instead of its text.
pub const REDACTED: &str = "<redacted>";

/// A secret string. `Debug` and `Display` print [`REDACTED`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `text`.
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    /// The secret text; call sites are the only places it is read.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Secret::new(text))
    }
}

impl From<String> for Secret {
    fn from(text: String) -> Secret {
        Secret(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_formats_its_text() {
        let secret: Secret = "SharedAccessKey=c2VjcmV0".parse().unwrap();
        assert_eq!(format!("{secret:?}"), "<redacted>");
        assert_eq!(format!("{secret}"), "<redacted>");
        assert_eq!(format!("{:?}", Some(secret.clone())), "Some(<redacted>)");
        assert_eq!(secret.expose(), "SharedAccessKey=c2VjcmV0");
        assert_eq!(Secret::from("x".to_owned()), Secret::new("x"));
    }
}
