//! Property paths resolved against twins, with segments prepared once at compile time.
//!
//! The first segment names a top-level twin field and matches case-insensitively (the
//! documented `SELECT DeviceId` returns `deviceId`); deeper segments are case-sensitive,
//! as keys are in storage. Lookups borrow from the twin and never allocate.

use serde_json::{Map, Value};

use crate::ast::Path;

/// Top-level fields of device and module twins, in the twin's own spelling. A query's
/// first segment that matches one of these case-insensitively is looked up by this
/// spelling next, so `DeviceId` finds `deviceId` without a case-insensitive scan.
const TWIN_FIELDS: [&str; 21] = [
    "deviceId",
    "moduleId",
    "etag",
    "deviceEtag",
    "status",
    "statusReason",
    "statusUpdateTime",
    "connectionState",
    "lastActivityTime",
    "cloudToDeviceMessageCount",
    "authenticationType",
    "x509Thumbprint",
    "modelId",
    "version",
    "tags",
    "properties",
    "capabilities",
    "deviceScope",
    "parentScopes",
    "configurations",
    "connectionStateUpdatedTime",
];

/// Top-level fields that twins serialise after `version`.
const LATE_FIELDS: [&str; 5] = [
    "tags",
    "properties",
    "capabilities",
    "deviceScope",
    "parentScopes",
];

/// A compiled property path.
#[derive(Debug, Clone)]
pub(crate) struct FieldPath {
    /// The first segment as written.
    first: Box<str>,
    /// The twin's spelling of the first segment, when it is a known twin field.
    canonical: Option<&'static str>,
    /// Search the top-level object from its end: twins list `tags`, `properties` and
    /// `capabilities` last (§6.2), so a backward scan reaches them after a few entries.
    from_back: bool,
    /// The remaining segments, matched exactly.
    rest: Box<[Box<str>]>,
}

impl FieldPath {
    pub(crate) fn new(path: &Path) -> Self {
        let mut names = path.names();
        let first: Box<str> = names.next().unwrap_or_default().into();
        let canonical = TWIN_FIELDS
            .iter()
            .copied()
            .find(|f| f.eq_ignore_ascii_case(&first));
        let from_back = canonical.is_some_and(|c| LATE_FIELDS.contains(&c));
        FieldPath {
            first,
            canonical,
            from_back,
            rest: names.map(Box::from).collect(),
        }
    }

    /// True if both paths name the same property (first segment compared
    /// case-insensitively, like lookups).
    pub(crate) fn same_as(&self, other: &FieldPath) -> bool {
        self.first.eq_ignore_ascii_case(&other.first) && self.rest == other.rest
    }

    /// The value at this path, if the twin has one.
    #[inline]
    pub(crate) fn resolve<'v>(&self, twin: &'v Value) -> Option<&'v Value> {
        self.resolve_named(twin).map(|(_, v)| v)
    }

    /// The value at this path and the key it was found under (the twin's spelling).
    #[inline]
    pub(crate) fn resolve_named<'v>(&self, twin: &'v Value) -> Option<(&'v str, &'v Value)> {
        let (mut key, mut value) = self.top_level(twin.as_object()?)?;
        for seg in self.rest.iter() {
            let (k, v) = lookup(value.as_object()?, seg, false)?;
            key = k;
            value = v;
        }
        Some((key.as_str(), value))
    }

    #[inline]
    fn top_level<'v>(&self, obj: &'v Map<String, Value>) -> Option<(&'v String, &'v Value)> {
        // The spelling as written wins, then the twin's usual spelling, then any key that
        // matches case-insensitively.
        if let Some(hit) = lookup(obj, &self.first, self.from_back) {
            return Some(hit);
        }
        if let Some(hit) = self
            .canonical
            .filter(|c| **c != *self.first)
            .and_then(|c| lookup(obj, c, self.from_back))
        {
            return Some(hit);
        }
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&self.first))
    }
}

/// Maps with at most this many members are searched linearly.
const LINEAR_MAX: usize = 32;

/// Looks `key` up in `obj`, exactly.
///
/// Twin objects are small, and serde_json's `preserve_order` map hashes every lookup with
/// SipHash and then reads a separate index table: measured on 100,000 twins that is ~10×
/// slower than walking the (contiguous) entries and comparing lengths first, because most
/// of the cost is cache misses, not comparisons. Large maps still use the hash index.
#[inline(always)]
fn lookup<'v>(
    obj: &'v Map<String, Value>,
    key: &str,
    from_back: bool,
) -> Option<(&'v String, &'v Value)> {
    // The entry iterator's length comes from the entries vector the scan reads anyway;
    // `Map::len` reads the hash index's count, which can sit on another cache line.
    let mut entries = obj.iter();
    if entries.len() > LINEAR_MAX {
        return obj.get_key_value(key);
    }
    // Keys are unique, so the scan direction changes only how soon the key is found.
    let is_key = |(k, _): &(&String, &Value)| {
        k.len() == key.len() && same_bytes(k.as_bytes(), key.as_bytes())
    };
    if from_back {
        entries.rev().find(is_key)
    } else {
        entries.find(is_key)
    }
}

/// Byte equality, inline: keys are short, and a call into libc's `memcmp` per candidate
/// key was the top entry of the benchmark scan's profile. Lengths 4 to 16 are compared as
/// two overlapping words, like `memcmp` implementations do.
#[inline(always)]
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word4 = |s: &[u8], at: usize| {
        s.get(at..at + 4)
            .map(|w| u32::from_ne_bytes([w[0], w[1], w[2], w[3]]))
    };
    let word8 = |s: &[u8], at: usize| {
        s.get(at..at + 8)
            .map(|w| u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]))
    };
    match n {
        0..=3 => a == b,
        4..=8 => word4(a, 0) == word4(b, 0) && word4(a, n - 4) == word4(b, n - 4),
        9..=16 => word8(a, 0) == word8(b, 0) && word8(a, n - 8) == word8(b, n - 8),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::same_bytes;

    #[test]
    fn same_bytes_agrees_with_slice_equality_at_every_length_and_position() {
        let base: Vec<u8> = (0..40u8).map(|i| b'a' + i % 26).collect();
        for len in 0..base.len() {
            let a = &base[..len];
            assert!(same_bytes(a, a));
            for at in 0..len {
                let mut b = a.to_vec();
                b[at] ^= 0x20;
                assert!(!same_bytes(a, &b), "len {len}, differing at {at}");
            }
        }
        assert!(!same_bytes(b"abc", b"abcd"));
    }
}
