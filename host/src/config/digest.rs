//! What a configuration reload compares: a digest of each section as
//! written (after `${NAME}` interpolation), one per source, plugin and sink
//! and one per other table. Equal digests mean the section did not change,
//! secrets included; the digests themselves never print, so not even a
//! hash of a secret reaches a log.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// Tables whose entries are compared one by one (`sources.github`).
const NAMED: [&str; 3] = ["sources", "plugins", "sinks"];

/// Section key (`server`, `sinks.archive`) to the digest of its value.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SectionDigests(BTreeMap<String, [u8; 32]>);

impl std::fmt::Debug for SectionDigests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl SectionDigests {
    /// The digests of the interpolated document `value`.
    pub(super) fn of(value: &toml::Value) -> Self {
        let mut digests = BTreeMap::new();
        let Some(table) = value.as_table() else {
            return Self(digests);
        };
        for (key, section) in table {
            match section.as_table() {
                Some(entries) if NAMED.contains(&key.as_str()) => {
                    for (name, entry) in entries {
                        digests.insert(format!("{key}.{name}"), digest(entry));
                    }
                }
                _ => {
                    digests.insert(key.clone(), digest(section));
                }
            }
        }
        Self(digests)
    }

    /// Takes `key`'s digest from `from` (or drops it, if `from` has none):
    /// a reload that leaves a section running as it was records it as it
    /// was, so the next reload still reports it changed.
    pub fn keep(&mut self, from: &Self, key: &str) {
        match from.0.get(key) {
            Some(digest) => self.0.insert(key.to_string(), *digest),
            None => self.0.remove(key),
        };
    }

    /// Whether `key` is written the same way in both (absent in both counts
    /// as the same).
    pub fn same(&self, other: &Self, key: &str) -> bool {
        self.0.get(key) == other.0.get(key)
    }
}

/// A table serializes with its keys sorted, so the same section written
/// in another key order or with other comments digests the same.
fn digest(value: &toml::Value) -> [u8; 32] {
    let text = toml::to_string(value).unwrap_or_else(|_| format!("{value:?}"));
    Sha256::digest(text.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digests(text: &str) -> SectionDigests {
        SectionDigests::of(&toml::from_str(text).expect("toml"))
    }

    #[test]
    fn each_named_entry_and_each_other_table_compares_on_its_own() {
        let before = digests(
            "[server]\nlisten = \"127.0.0.1:1\"\n[sinks.a]\ntype = \"file\"\n[sinks.b]\ntype = \"file\"\n",
        );
        let after = digests(
            "# a comment\n[sinks.b]\ntype = \"file\"\n[server]\nlisten = \"127.0.0.1:2\"\n[sinks.a]\ntype = \"http\"\n",
        );
        assert!(!before.same(&after, "server"));
        assert!(!before.same(&after, "sinks.a"));
        assert!(before.same(&after, "sinks.b"));
        assert!(before.same(&after, "admin"), "absent in both");
    }

    #[test]
    fn debug_shows_the_keys_and_never_a_digest() {
        let shown = format!("{:?}", digests("[sources.github]\nsecret = \"s3cr3t\"\n"));
        assert_eq!(shown, "{\"sources.github\"}");
    }
}
