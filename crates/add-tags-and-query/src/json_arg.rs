//! JSON arguments (`--tags`, `--desired`): inline JSON or `@path/to/file.json`.

use serde_json::Value;

use crate::error::AppError;

/// Reads and parses a JSON argument. Errors name the flag, the file if any, and serde's
/// line/column of the problem.
pub fn parse_json_arg(flag: &str, raw: &str) -> Result<Value, AppError> {
    let (text, origin) = match raw.strip_prefix('@') {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| AppError::Usage(format!("{flag}: cannot read '{path}': {e}")))?;
            (text, format!(" in '{path}'"))
        }
        None => (raw.to_owned(), String::new()),
    };
    serde_json::from_str(&text)
        .map_err(|e| AppError::Usage(format!("{flag}: invalid JSON{origin}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::io::Write;

    #[test]
    fn inline_json() {
        assert_eq!(
            parse_json_arg("--tags", r#"{"a":1}"#).unwrap(),
            json!({"a":1})
        );
    }

    #[test]
    fn inline_error_points_at_position() {
        let err = parse_json_arg("--tags", r#"{"a" 1}"#)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("--tags: invalid JSON: "), "{err}");
        assert!(err.contains("line 1 column 6"), "{err}");
    }

    #[test]
    fn file_json_and_errors() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        write!(file, "{{\n  \"desired\": true,\n  oops\n}}").unwrap();
        let arg = format!("@{}", file.path().display());
        let err = parse_json_arg("--desired", &arg).unwrap_err().to_string();
        assert!(err.contains("invalid JSON in '"), "{err}");
        assert!(err.contains("line 3 column 3"), "{err}");

        let mut ok = tempfile::NamedTempFile::new().unwrap();
        write!(ok, "{{\"x\": [1, 2]}}").unwrap();
        let arg = format!("@{}", ok.path().display());
        assert_eq!(
            parse_json_arg("--desired", &arg).unwrap(),
            json!({"x":[1,2]})
        );

        let err = parse_json_arg("--tags", "@/nonexistent/tags.json")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("--tags: cannot read '/nonexistent/tags.json'"),
            "{err}"
        );
    }
}
