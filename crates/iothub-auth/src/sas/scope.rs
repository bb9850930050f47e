//! Whether a token resource covers a requested resource.

/// `token_resource` and `requested` are unencoded `host[:port][/path]` strings.
pub(crate) fn covers(token_resource: &str, requested: &str) -> bool {
    let (token_host, token_path) = split(token_resource);
    let (requested_host, requested_path) = split(requested);
    if token_host.is_empty() || !token_host.eq_ignore_ascii_case(requested_host) {
        return false;
    }
    // Prefix by whole segment, as IoT Hub scopes tokens (ARCHITECTURE.md#sas-tokens): `/a/b`
    // covers `/a/b` and `/a/b/c`, never `/a/bc`.
    match requested_path.strip_prefix(token_path) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// Splits into (host without port, path starting with `/` or empty). Trailing `/` are dropped,
/// as the C# SDK's audience check does.
fn split(resource: &str) -> (&str, &str) {
    let resource = resource.trim_end_matches('/');
    let (authority, path) = match resource.find('/') {
        Some(slash) => resource.split_at(slash),
        None => (resource, ""),
    };
    (strip_port(authority), path)
}

fn strip_port(authority: &str) -> &str {
    match authority.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

#[cfg(test)]
mod tests {
    use super::covers;

    #[test]
    fn segment_prefix_and_host_rules() {
        let cases = [
            ("h.net", "h.net", true),
            ("h.net", "h.net/devices/x", true),
            ("h.net", "H.NET/devices/x/modules/m", true),
            ("h.net:18443", "h.net/devices/x", true),
            ("h.net", "h.net:8883/devices/x", true),
            ("h.net/devices", "h.net/devices/x", true),
            ("h.net/devices/", "h.net/devices/x", true),
            ("h.net/devices/a", "h.net/devices/a", true),
            ("h.net/devices/a", "h.net/devices/a/", true),
            ("h.net/devices/a", "h.net/devices/a/modules/m", true),
            ("h.net/devices/a", "h.net/devices/ab", false),
            ("h.net/devices/a", "h.net/devices/b", false),
            ("h.net/devices/a", "h.net", false),
            ("h.net/devices/a", "h.net/devices", false),
            // Device ids are case-sensitive in IoT Hub; only the host is not.
            ("h.net/devices/a", "h.net/devices/A", false),
            ("h.net", "other.net/devices/x", false),
            ("h.net", "h.network/devices/x", false),
            ("", "h.net", false),
            ("", "", false),
        ];
        for (token, requested, expected) in cases {
            assert_eq!(covers(token, requested), expected, "{token} vs {requested}");
        }
    }
}
