//! Duration arguments (`--wait`, `--duration`, `--sas-ttl`, `--timeout`, ...): humantime's
//! syntax (`30s`, `5m`, `1h30m`, `250ms`, `1d`), or a bare number of seconds (`90`).
//!
//! Both functions fit clap's `value_parser`: `#[arg(value_parser = parse_duration)]`.

use std::time::Duration;

/// A duration argument that could not be used. `Display` quotes the text and says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not a duration at all.
    #[error("'{text}': {reason} (examples: 30s, 5m, 1h30m, 250ms)")]
    Syntax {
        /// The argument as given (trimmed).
        text: String,
        /// humantime's explanation.
        reason: String,
    },
    /// Zero where only a positive duration makes sense (a timeout, a token lifetime).
    #[error("'{text}': must be greater than zero")]
    Zero {
        /// The argument as given (trimmed).
        text: String,
    },
}

/// Parses `90`, `90s`, `1m30s`, `500ms`; surrounding whitespace is ignored.
///
/// # Errors
/// [`DurationError::Syntax`] for anything else (negative values, unknown units, empty text).
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(text).map_err(|e| DurationError::Syntax {
        text: text.to_owned(),
        reason: e.to_string(),
    })
}

/// Like [`parse_duration`], but zero is refused: a zero timeout or lifetime is never meant.
///
/// # Errors
/// [`DurationError::Syntax`], or [`DurationError::Zero`] for `0`, `0s`, `0ms`, ...
pub fn parse_positive_duration(text: &str) -> Result<Duration, DurationError> {
    let duration = parse_duration(text)?;
    if duration.is_zero() {
        return Err(DurationError::Zero {
            text: text.trim().to_owned(),
        });
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_seconds_and_humantime_units() {
        for (text, expected) in [
            ("90", Duration::from_secs(90)),
            ("90s", Duration::from_secs(90)),
            ("1m30s", Duration::from_secs(90)),
            ("500ms", Duration::from_millis(500)),
            ("2m", Duration::from_secs(120)),
            ("2h", Duration::from_secs(7200)),
            ("1h30m", Duration::from_secs(5400)),
            ("1d", Duration::from_secs(86_400)),
            (" 0s ", Duration::ZERO),
            ("0", Duration::ZERO),
        ] {
            assert_eq!(parse_duration(text), Ok(expected), "{text:?}");
        }
    }

    #[test]
    fn garbage_is_refused_with_the_text_and_examples() {
        for text in ["", "s", "-1s", "5 parsecs", "soon", "1.5.3s"] {
            assert!(
                matches!(parse_duration(text), Err(DurationError::Syntax { .. })),
                "{text:?}"
            );
        }
        let message = parse_duration("10x").unwrap_err().to_string();
        assert!(message.starts_with("'10x': "), "{message}");
        assert!(
            message.ends_with("(examples: 30s, 5m, 1h30m, 250ms)"),
            "{message}"
        );
    }

    #[test]
    fn positive_refuses_zero_only() {
        assert_eq!(parse_positive_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(
            parse_positive_duration(" 0ms").unwrap_err().to_string(),
            "'0ms': must be greater than zero"
        );
        assert!(matches!(
            parse_positive_duration("0"),
            Err(DurationError::Zero { .. })
        ));
        assert!(matches!(
            parse_positive_duration("x"),
            Err(DurationError::Syntax { .. })
        ));
    }
}
