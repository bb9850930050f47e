//! Reading a file named on the command line, with a size cap: `--tags @/dev/zero` or a
//! mistyped path to a disk image must fail at once, not fill memory.

use std::io::Read;
use std::path::{Path, PathBuf};

/// The largest file an argument may name (`@file` JSON, `--ca-file`): 1 MiB. Twin documents
/// are capped far below that by the hub, and a CA bundle with every public root is ~200 KiB.
pub const INPUT_FILE_LIMIT: u64 = 1024 * 1024;

/// Why an argument's file could not be read. `Display` starts with the path; callers put the
/// flag in front.
#[derive(Debug, thiserror::Error)]
pub enum InputFileError {
    /// Opening or reading failed (missing file, no permission, a directory, ...).
    #[error("cannot read '{}': {source}", path.display())]
    Unreadable {
        /// The file as given.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The file holds more than `limit` bytes; reading stopped there.
    #[error("'{}' is larger than {} (the limit for files given as arguments)", path.display(), human_size(*limit))]
    TooLarge {
        /// The file as given.
        path: PathBuf,
        /// The cap that was exceeded, in bytes.
        limit: u64,
    },
}

impl InputFileError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            InputFileError::Unreadable { path, .. } | InputFileError::TooLarge { path, .. } => path,
        }
    }
}

/// Reads `path` whole, refusing files over [`INPUT_FILE_LIMIT`].
///
/// # Errors
/// [`InputFileError::Unreadable`] or [`InputFileError::TooLarge`].
pub fn read_input_file(path: &Path) -> Result<Vec<u8>, InputFileError> {
    read_bounded(path, INPUT_FILE_LIMIT)
}

/// Reads at most `limit + 1` bytes, so an endless source (`/dev/zero`, a FIFO that never
/// closes after sending too much) stops as soon as it has proven too large.
pub(crate) fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, InputFileError> {
    let unreadable = |source| InputFileError::Unreadable {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > limit {
        return Err(InputFileError::TooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    Ok(bytes)
}

fn human_size(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    const KIB: u64 = 1024;
    if bytes >= MIB && bytes / MIB * MIB == bytes {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= KIB && bytes / KIB * KIB == bytes {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_small_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("small.json");
        std::fs::write(&path, b"{}").unwrap();
        assert_eq!(read_input_file(&path).unwrap(), b"{}");
    }

    #[test]
    fn a_file_of_exactly_the_limit_is_accepted_one_more_byte_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("edge");
        std::fs::write(&path, vec![b' '; 16]).unwrap();
        assert_eq!(read_bounded(&path, 16).unwrap().len(), 16);
        let err = read_bounded(&path, 15).unwrap_err();
        assert!(
            matches!(err, InputFileError::TooLarge { limit: 15, .. }),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "'{}' is larger than 15 bytes (the limit for files given as arguments)",
                path.display()
            )
        );
    }

    #[cfg(unix)]
    #[test]
    fn an_endless_file_stops_at_the_limit() {
        let err = read_input_file(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "'/dev/zero' is larger than 1 MiB (the limit for files given as arguments)"
        );
    }

    #[test]
    fn a_missing_file_names_the_path() {
        let err = read_input_file(Path::new("/nonexistent/x.json")).unwrap_err();
        assert!(matches!(err, InputFileError::Unreadable { .. }));
        assert!(
            err.to_string()
                .starts_with("cannot read '/nonexistent/x.json': "),
            "{err}"
        );
        assert_eq!(err.path(), Path::new("/nonexistent/x.json"));
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_size(INPUT_FILE_LIMIT), "1 MiB");
        assert_eq!(human_size(64 * 1024), "64 KiB");
        assert_eq!(human_size(1000), "1000 bytes");
    }
}
