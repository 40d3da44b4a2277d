//! Names for containers created without one, shaped like dockerd's `adjective_surname`
//! (our own short lists), and the check dockerd applies to names given.

use std::hash::{BuildHasher, Hasher};

use crate::error::ApiError;

const ADJECTIVES: &[&str] = &[
    "admiring",
    "bold",
    "brave",
    "busy",
    "calm",
    "clever",
    "cool",
    "eager",
    "elated",
    "epic",
    "focused",
    "gallant",
    "gentle",
    "happy",
    "hopeful",
    "jolly",
    "keen",
    "kind",
    "lucid",
    "modest",
    "nifty",
    "optimistic",
    "peaceful",
    "quirky",
    "relaxed",
    "sharp",
    "stoic",
    "sweet",
    "tender",
    "upbeat",
    "vibrant",
    "wizardly",
    "youthful",
    "zealous",
];

const NAMES: &[&str] = &[
    "agnesi", "babbage", "bohr", "curie", "darwin", "dijkstra", "einstein", "euler", "fermat",
    "franklin", "galileo", "gauss", "hopper", "hypatia", "kepler", "knuth", "lamport", "lovelace",
    "maxwell", "meitner", "newton", "noether", "pascal", "ritchie", "shannon", "tesla", "thompson",
    "torvalds", "turing", "wozniak",
];

/// A random `adjective_name`; after a few tries a digit is added, as dockerd does.
pub fn generate(retry: usize) -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_usize(retry);
    let r = h.finish();
    let a = ADJECTIVES[(r % ADJECTIVES.len() as u64) as usize];
    let n = NAMES[((r >> 16) % NAMES.len() as u64) as usize];
    if retry < 3 {
        format!("{a}_{n}")
    } else {
        format!("{a}_{n}{}", (r >> 32) % 10)
    }
}

/// dockerd's rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]+` after an optional `/`.
pub fn validate(name: &str) -> Result<&str, ApiError> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    let mut chars = bare.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok =
        bare.len() >= 2 && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if first_ok && rest_ok {
        Ok(bare)
    } else {
        Err(ApiError::bad_request(format!(
            "Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let g = generate(0);
        assert!(validate(&g).is_ok(), "{g}");
        assert!(g.contains('_'));
        assert_eq!(validate("/web").unwrap(), "web");
        assert_eq!(validate("a.b-c_1").unwrap(), "a.b-c_1");
        assert!(validate("-x").is_err());
        assert!(validate("x").is_err());
        assert!(validate("a/b").is_err());
        assert!(validate("").is_err());
    }
}
