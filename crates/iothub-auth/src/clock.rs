//! The one place that reads the wall clock; everything else takes `now` as a parameter.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, as SAS `se` fields count them. A clock set before 1970 reads
/// as 0 rather than failing: every token then looks unexpired, which the hub side rejects anyway.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}
