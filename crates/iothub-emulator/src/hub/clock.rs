//! Timestamps in the two formats the hub uses on the wire.

use time::macros::format_description;
use time::OffsetDateTime;

/// "Never set" in device-identity JSON (no `Z`, ARCHITECTURE.md#service-rest-api).
pub const DEVICE_NEVER: &str = "0001-01-01T00:00:00";
/// "Never set" in twin JSON (ARCHITECTURE.md#service-rest-api).
pub const TWIN_NEVER: &str = "0001-01-01T00:00:00Z";

/// Now, as ISO-8601 UTC with 7 fractional digits and `Z` (the hub's twin timestamp format).
pub fn now_iso() -> String {
    format_iso(OffsetDateTime::now_utc())
}

fn format_iso(t: OffsetDateTime) -> String {
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:7]Z");
    // Formatting a UTC time with a fixed description only fails for years beyond 9999.
    t.format(&fmt).unwrap_or_else(|_| TWIN_NEVER.to_string())
}

/// `MM/dd/yyyy HH:mm:ss`, as in the hub's `Tracking ID:…-TimeStamp:` suffix.
pub fn tracking_timestamp() -> String {
    let fmt = format_description!("[month]/[day]/[year] [hour]:[minute]:[second]");
    OffsetDateTime::now_utc()
        .format(&fmt)
        .unwrap_or_else(|_| "01/01/0001 00:00:00".to_string())
}

/// .NET ticks (100 ns since 0001-01-01) of now: the shape of the hub's `generationId`.
pub fn dotnet_ticks_now() -> u64 {
    const UNIX_EPOCH_TICKS: i128 = 621_355_968_000_000_000;
    let ticks = OffsetDateTime::now_utc().unix_timestamp_nanos() / 100 + UNIX_EPOCH_TICKS;
    u64::try_from(ticks).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_has_seven_fraction_digits_and_z() {
        let s = now_iso();
        assert_eq!(s.len(), "2023-01-02T21:42:14.7050295Z".len(), "{s}");
        assert!(s.ends_with('Z'));
    }

    #[test]
    fn generation_id_has_eighteen_digits() {
        assert_eq!(dotnet_ticks_now().to_string().len(), 18);
    }
}
