//! Query strings as dockerd reads them: booleans (`1`, `true`, …), and the `filters`
//! parameter (JSON: `{"key": {"value": true}}`, or the older `{"key": ["value"]}`).

use std::collections::{BTreeMap, BTreeSet};

use crate::error::ApiError;

#[derive(Debug, Default)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Self {
        let pairs = form_urlencoded::parse(raw.unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        Self { pairs }
    }

    /// The last value given for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value given for `key`, in order (`names=a&names=b`).
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// `get` without empty values.
    pub fn non_empty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.is_empty())
    }

    /// dockerd's `BoolValue`: anything but "", "0", "no", "false" and "none" is true.
    pub fn bool(&self, key: &str) -> bool {
        match self.get(key) {
            None => false,
            Some(v) => !matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "" | "0" | "no" | "false" | "none"
            ),
        }
    }

    pub fn filters(&self) -> Result<Filters, ApiError> {
        Filters::parse(self.get("filters").unwrap_or(""))
    }
}

/// Parsed `filters`: each key with its set of values.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Filters(pub BTreeMap<String, BTreeSet<String>>);

impl Filters {
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        if raw.trim().is_empty() {
            return Ok(Self::default());
        }
        let bad = |e: String| ApiError::bad_request(format!("invalid filter: {e}"));
        let value: serde_json::Value = serde_json::from_str(raw).map_err(|e| bad(e.to_string()))?;
        let obj = value
            .as_object()
            .ok_or_else(|| bad(format!("{raw}: not a JSON object")))?;
        let mut out = BTreeMap::new();
        for (key, v) in obj {
            let values: BTreeSet<String> = match v {
                serde_json::Value::Object(m) => m
                    .iter()
                    .filter(|(_, on)| on.as_bool().unwrap_or(false))
                    .map(|(k, _)| k.clone())
                    .collect(),
                serde_json::Value::Array(a) => a
                    .iter()
                    .map(|x| x.as_str().map(str::to_string))
                    .collect::<Option<_>>()
                    .ok_or_else(|| bad(format!("values of {key:?} must be strings")))?,
                _ => return Err(bad(format!("{key:?}: expected a map or a list of values"))),
            };
            out.insert(key.clone(), values);
        }
        Ok(Self(out))
    }

    /// Refuses keys outside `allowed`, as dockerd does ("invalid filter 'x'").
    pub fn only(&self, allowed: &[&str]) -> Result<(), ApiError> {
        match self.0.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(ApiError::bad_request(format!("invalid filter '{k}'"))),
            None => Ok(()),
        }
    }

    pub fn values(&self, key: &str) -> impl Iterator<Item = &String> {
        self.0.get(key).into_iter().flatten()
    }

    /// A boolean filter (`dangling=true`): None when absent.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, ApiError> {
        let mut out = None;
        for v in self.values(key) {
            let b = match v.to_ascii_lowercase().as_str() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "invalid filter '{key}={v}': expected true or false"
                    )));
                }
            };
            out = Some(b);
        }
        Ok(out)
    }
}

/// `path.Match`-style globbing as docker's reference filter uses it: `*` (not across `/`)
/// and `?`.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    fn go(p: &[char], t: &[char]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some('*') => (0..=t.len())
                .take_while(|&i| i == 0 || t[i - 1] != '/')
                .any(|i| go(&p[1..], &t[i..])),
            Some('?') => t.first().is_some_and(|c| *c != '/') && go(&p[1..], &t[1..]),
            Some(c) => t.first() == Some(c) && go(&p[1..], &t[1..]),
        }
    }
    go(&p, &t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bools_like_dockerd() {
        let q = Query::parse(Some("a=1&b=True&c=0&d=&e=no&f=yes&force=false"));
        assert!(q.bool("a") && q.bool("b") && q.bool("f"));
        assert!(!q.bool("c") && !q.bool("d") && !q.bool("e") && !q.bool("force"));
        assert!(!q.bool("missing"));
    }

    #[test]
    fn filters_both_forms() {
        let f = Filters::parse(r#"{"reference":{"busy*":true,"off":false},"dangling":["true"]}"#)
            .unwrap();
        assert_eq!(f.values("reference").collect::<Vec<_>>(), vec!["busy*"]);
        assert_eq!(f.bool("dangling").unwrap(), Some(true));
        assert!(f.only(&["reference", "dangling"]).is_ok());
        let e = f.only(&["reference"]).unwrap_err();
        assert_eq!(e.message, "invalid filter 'dangling'");
        assert!(Filters::parse("[1]").is_err());
        assert!(Filters::parse("{oops").is_err());
        assert_eq!(Filters::parse("").unwrap(), Filters::default());
        let q = Query::parse(Some("filters=%7B%22label%22%3A%5B%22a%3Db%22%5D%7D"));
        assert_eq!(
            q.filters().unwrap().values("label").collect::<Vec<_>>(),
            vec!["a=b"]
        );
    }

    #[test]
    fn globbing() {
        assert!(glob("busybox", "busybox"));
        assert!(glob("busy*", "busybox"));
        assert!(glob("*/busybox", "127.0.0.1:5000/busybox"));
        assert!(!glob("*", "a/b"));
        assert!(glob("b?sybox:*", "busybox:latest"));
        assert!(!glob("busybox", "busybox2"));
    }
}
