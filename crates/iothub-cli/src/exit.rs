//! The exit codes of every iothub-twins binary (README "CLI reference"). Scripts branch on
//! them, so the values never change.
//!
//! Usage errors that clap detects (unknown flag, bad value) exit with clap's own code 2, which
//! is [`USAGE`].

/// Success.
pub const OK: u8 = 0;
/// Any failure not listed below (e.g. a stale `--etag`, an untrusted certificate, Ctrl-C
/// before the work was done).
pub const OTHER: u8 = 1;
/// Invalid usage or input: flags, connection string, JSON, CA file, query.
pub const USAGE: u8 = 2;
/// The hub rejected the credentials or the policy's permissions.
pub const AUTH: u8 = 3;
/// The device does not exist.
pub const DEVICE_NOT_FOUND: u8 = 4;
/// The hub could not be reached, did not answer in time, or kept throttling.
pub const UNREACHABLE: u8 = 5;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_the_documented_ones() {
        assert_eq!(
            [OK, OTHER, USAGE, AUTH, DEVICE_NOT_FOUND, UNREACHABLE],
            [0, 1, 2, 3, 4, 5]
        );
    }

    #[test]
    fn clap_usage_errors_agree_with_usage() {
        let error = clap::Error::new(clap::error::ErrorKind::UnknownArgument);
        assert_eq!(error.exit_code(), i32::from(USAGE));
    }
}
