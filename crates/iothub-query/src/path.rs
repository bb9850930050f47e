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
    first: Key,
    /// The twin's spelling of the first segment, when it is a known twin field and spelt
    /// differently in the query.
    canonical: Option<Key>,
    /// Search the top-level object from its end: twins list `tags`, `properties` and
    /// `capabilities` last (ARCHITECTURE.md#service-rest-api), so a backward scan reaches them
    /// after a few entries.
    from_back: bool,
    /// The remaining segments, matched exactly. Stored inline (not boxed one by one) so
    /// the per-row walk reads each segment's length and words without another pointer.
    rest: Box<[Key]>,
}

impl FieldPath {
    pub(crate) fn new(path: &Path) -> Self {
        let mut names = path.names();
        let first: &str = names.next().unwrap_or_default();
        let canonical = TWIN_FIELDS
            .iter()
            .copied()
            .find(|f| f.eq_ignore_ascii_case(first));
        let from_back = canonical.is_some_and(|c| LATE_FIELDS.contains(&c));
        FieldPath {
            first: Key::new(first),
            canonical: canonical.filter(|c| *c != first).map(Key::new),
            from_back,
            rest: names.map(Key::new).collect(),
        }
    }

    /// True if both paths name the same property (first segment compared
    /// case-insensitively, like lookups).
    pub(crate) fn same_as(&self, other: &FieldPath) -> bool {
        self.first
            .as_str()
            .eq_ignore_ascii_case(other.first.as_str())
            && self.rest.len() == other.rest.len()
            && self
                .rest
                .iter()
                .zip(other.rest.iter())
                .all(|(a, b)| a.as_str() == b.as_str())
    }

    /// The value at this path, if the twin has one.
    ///
    /// Always inlined into the row filter: the scan is memory-bound, and a call that
    /// saves and restores registers per row leaves less room in the CPU's window for the
    /// next rows' cache misses.
    #[inline(always)]
    pub(crate) fn resolve<'v>(&self, twin: &'v Value) -> Option<&'v Value> {
        let (_, top) = self.top_level(twin.as_object()?)?;
        let down = |v: &'v Value, seg: &Key| lookup(v.as_object()?, seg, false).map(|(_, v)| v);
        // Paths of up to four segments are walked unrolled, so every level has its own
        // branches: the CPU predicts each level's "found at entry k" pattern separately
        // and keeps more rows in flight, instead of sharing one loop's history.
        match &*self.rest {
            [] => Some(top),
            [a] => down(top, a),
            [a, b] => down(down(top, a)?, b),
            [a, b, c] => down(down(down(top, a)?, b)?, c),
            longer => longer.iter().try_fold(top, down),
        }
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
        // The spelling as written wins; the other spellings are out of line so the common
        // case stays a small loop.
        match lookup(obj, &self.first, self.from_back) {
            Some(hit) => Some(hit),
            None => self.top_level_other_spelling(obj),
        }
    }

    /// The twin's usual spelling, then any key that matches case-insensitively.
    #[cold]
    #[inline(never)]
    fn top_level_other_spelling<'v>(
        &self,
        obj: &'v Map<String, Value>,
    ) -> Option<(&'v String, &'v Value)> {
        if let Some(hit) = self
            .canonical
            .as_ref()
            .and_then(|c| lookup(obj, c, self.from_back))
        {
            return Some(hit);
        }
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(self.first.as_str()))
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
    key: &Key,
    from_back: bool,
) -> Option<(&'v String, &'v Value)> {
    // The entry iterator's length comes from the entries vector the scan reads anyway;
    // `Map::len` reads the hash index's count, which can sit on another cache line.
    let mut entries = obj.iter();
    if entries.len() > LINEAR_MAX {
        return obj.get_key_value(key.as_str());
    }
    // Keys are unique, so the scan direction changes only how soon the key is found.
    let is_key = |(k, _): &(&String, &Value)| key.is(k);
    if from_back {
        entries.rev().find(is_key)
    } else {
        entries.find(is_key)
    }
}

/// A string that rows are compared against many times (a path segment, a string
/// constant), prepared once: its length and the words an equality test loads.
///
/// The scan is memory-bound and its speed depends on how many rows the CPU keeps in
/// flight, so the per-candidate test is kept to a length compare and one or two loads
/// compared against registers, with no call into libc's `memcmp` and no reload of the
/// query's own bytes. Lengths 4 to 16 are compared as two overlapping words, like
/// `memcmp` implementations do.
#[derive(Debug, Clone)]
pub(crate) struct Key {
    text: Box<str>,
    /// The first word of `text` (4 bytes for lengths 4..=8, 8 bytes for 9..=16).
    head: u64,
    /// The last word of `text`, same width as `head`.
    tail: u64,
}

impl Key {
    pub(crate) fn new(text: &str) -> Key {
        let b = text.as_bytes();
        let n = b.len();
        let (head, tail) = match n {
            4..=8 => (u64::from(word4(b, 0)), u64::from(word4(b, n - 4))),
            9..=16 => (word8(b, 0), word8(b, n - 8)),
            _ => (0, 0),
        };
        Key {
            text: text.into(),
            head,
            tail,
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// True if `candidate` is exactly this key.
    #[inline(always)]
    pub(crate) fn is(&self, candidate: &str) -> bool {
        let b = candidate.as_bytes();
        let n = b.len();
        if n != self.text.len() {
            return false;
        }
        match n {
            4..=8 => u64::from(word4(b, 0)) == self.head && u64::from(word4(b, n - 4)) == self.tail,
            9..=16 => word8(b, 0) == self.head && word8(b, n - 8) == self.tail,
            _ => b == self.text.as_bytes(),
        }
    }
}

/// The 4 bytes of `s` at `at` as a word; callers guarantee `at + 4 <= s.len()`.
#[inline(always)]
fn word4(s: &[u8], at: usize) -> u32 {
    let mut w = [0; 4];
    w.copy_from_slice(&s[at..at + 4]);
    u32::from_ne_bytes(w)
}

/// The 8 bytes of `s` at `at` as a word; callers guarantee `at + 8 <= s.len()`.
#[inline(always)]
fn word8(s: &[u8], at: usize) -> u64 {
    let mut w = [0; 8];
    w.copy_from_slice(&s[at..at + 8]);
    u64::from_ne_bytes(w)
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::{FieldPath, Key};
    use crate::ast::Path;
    use crate::span::{Span, Spanned};

    fn field_path(names: &[&str]) -> FieldPath {
        FieldPath::new(&Path {
            segments: names
                .iter()
                .map(|n| Spanned::new((*n).to_owned(), Span::default()))
                .collect(),
            span: Span::default(),
        })
    }

    /// `resolve` unrolls short paths and loops over long ones: every depth must agree
    /// with `resolve_named`, find the leaf, and miss on an absent or non-object level.
    #[test]
    fn resolve_agrees_with_resolve_named_at_every_depth() {
        let names = ["tags", "a", "bb", "ccc", "dddd", "eeeee", "ffffff", "g"];
        let mut twin = json!("leaf");
        for name in names.iter().rev() {
            twin = json!({ "other": 1, *name: twin, "more": [] });
        }
        for depth in 1..=names.len() {
            let path = field_path(&names[..depth]);
            let found = path.resolve(&twin);
            assert!(found.is_some(), "depth {depth}");
            assert_eq!(found, path.resolve_named(&twin).map(|(_, v)| v));
            if depth == names.len() {
                assert_eq!(found, Some(&Value::from("leaf")));
            }
            let mut missing = names[..depth].to_vec();
            missing[depth - 1] = "nope";
            assert_eq!(field_path(&missing).resolve(&twin), None, "depth {depth}");
        }
        let mut through_leaf = names.to_vec();
        through_leaf.push("deeper");
        assert_eq!(field_path(&through_leaf).resolve(&twin), None);
    }

    #[test]
    fn key_agrees_with_string_equality_at_every_length_and_position() {
        let base: String = (0..40u8).map(|i| char::from(b'a' + i % 26)).collect();
        for len in 0..base.len() {
            let a = &base[..len];
            let key = Key::new(a);
            assert!(key.is(a));
            for at in 0..len {
                let mut b = a.as_bytes().to_vec();
                b[at] ^= 0x20;
                let b = String::from_utf8(b).unwrap_or_default();
                assert!(!key.is(&b), "len {len}, differing at {at}");
            }
        }
        assert!(!Key::new("abc").is("abcd"));
        assert!(!Key::new("abcd").is("abc"));
    }
}
