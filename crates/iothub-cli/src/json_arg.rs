//! JSON arguments (`--tags`, `--desired`, `--reported`, ...): inline JSON, or `@path` to a
//! JSON file of at most [`INPUT_FILE_LIMIT`](crate::INPUT_FILE_LIMIT) bytes.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::input_file::{read_input_file, InputFileError};

/// Why a JSON argument was refused. `Display` is the whole message: the flag, the file if
/// any, and for bad JSON serde's line and column.
#[derive(Debug, thiserror::Error)]
pub enum JsonArgError {
    /// The `@file` could not be read, or is too large.
    #[error("{flag}: {source}")]
    File {
        /// The flag, e.g. `--tags`.
        flag: &'static str,
        /// What went wrong with the file.
        source: InputFileError,
    },
    /// The text is not JSON.
    #[error("{flag}: invalid JSON{}: {source}", in_file(path.as_deref()))]
    Invalid {
        /// The flag, e.g. `--tags`.
        flag: &'static str,
        /// The file the text came from, `None` for inline JSON.
        path: Option<PathBuf>,
        /// serde's description, with line and column.
        source: serde_json::Error,
    },
}

impl JsonArgError {
    /// The flag the argument was given to.
    pub fn flag(&self) -> &'static str {
        match self {
            JsonArgError::File { flag, .. } | JsonArgError::Invalid { flag, .. } => flag,
        }
    }
}

fn in_file(path: Option<&Path>) -> String {
    path.map(|p| format!(" in '{}'", p.display()))
        .unwrap_or_default()
}

/// Parses the value given to `flag`: `@path` reads that file, anything else is inline JSON.
///
/// # Errors
/// [`JsonArgError::File`] for an unreadable or oversized file, [`JsonArgError::Invalid`]
/// for text that is not JSON.
pub fn parse_json_arg(flag: &'static str, raw: &str) -> Result<Value, JsonArgError> {
    match raw.strip_prefix('@') {
        Some(path) => {
            let path = PathBuf::from(path);
            let bytes =
                read_input_file(&path).map_err(|source| JsonArgError::File { flag, source })?;
            serde_json::from_slice(&bytes).map_err(|source| JsonArgError::Invalid {
                flag,
                path: Some(path),
                source,
            })
        }
        None => serde_json::from_str(raw).map_err(|source| JsonArgError::Invalid {
            flag,
            path: None,
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inline_json() {
        assert_eq!(
            parse_json_arg("--tags", r#"{"a":1}"#).unwrap(),
            json!({"a":1})
        );
    }

    #[test]
    fn inline_error_names_the_flag_and_the_position() {
        let err = parse_json_arg("--tags", r#"{"a" 1}"#).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("--tags: invalid JSON: "), "{text}");
        assert!(text.contains("line 1 column 6"), "{text}");
        assert_eq!(err.flag(), "--tags");
    }

    #[test]
    fn file_json_and_its_errors() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "{\n  \"desired\": true,\n  oops\n}").unwrap();
        let err = parse_json_arg("--desired", &format!("@{}", bad.display()))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!("--desired: invalid JSON in '{}': ", bad.display())),
            "{err}"
        );
        assert!(err.contains("line 3 column 3"), "{err}");

        let good = dir.path().join("good.json");
        std::fs::write(&good, r#"{"x": [1, 2]}"#).unwrap();
        assert_eq!(
            parse_json_arg("--desired", &format!("@{}", good.display())).unwrap(),
            json!({"x":[1,2]})
        );
    }

    #[test]
    fn a_missing_file_is_named() {
        let err = parse_json_arg("--tags", "@/nonexistent/tags.json")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("--tags: cannot read '/nonexistent/tags.json': "),
            "{err}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn an_endless_file_fails_fast_with_the_limit() {
        let err = parse_json_arg("--tags", "@/dev/zero").unwrap_err();
        assert_eq!(
            err.to_string(),
            "--tags: '/dev/zero' is larger than 1 MiB (the limit for files given as arguments)"
        );
    }

    #[test]
    fn an_oversized_file_is_refused_before_parsing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.json");
        let mut big = String::from("[");
        while big.len() as u64 <= crate::INPUT_FILE_LIMIT {
            big.push_str("1,");
        }
        big.push_str("1]");
        std::fs::write(&path, big).unwrap();
        let err = parse_json_arg("--reported", &format!("@{}", path.display())).unwrap_err();
        assert!(
            matches!(
                &err,
                JsonArgError::File {
                    source: InputFileError::TooLarge { .. },
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("larger than 1 MiB"), "{err}");
    }
}
