//! Parsing of `WWW-Authenticate` headers (RFC 7235): one or more challenges, each a scheme
//! followed by `name=value` parameters whose values may be quoted and contain commas.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Lowercase scheme: `bearer`, `basic`, ...
    pub scheme: String,
    /// Parameters, keys lowercased.
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
    }
}

fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~/:".contains(c)
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        self.s.get(self.i).map(|b| *b as char)
    }
    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.i += 1;
        }
    }
    fn skip_ws_commas(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | ',')) {
            self.i += 1;
        }
    }
    fn token(&mut self) -> String {
        let start = self.i;
        while self.peek().is_some_and(is_tchar) {
            self.i += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }
    /// A quoted string (cursor on the opening quote), with backslash escapes.
    fn quoted(&mut self) -> String {
        self.i += 1;
        let mut out = Vec::new();
        while let Some(c) = self.s.get(self.i).copied() {
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    if let Some(n) = self.s.get(self.i).copied() {
                        out.push(n);
                        self.i += 1;
                    }
                }
                _ => out.push(c),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    /// An unquoted value: everything up to a comma or whitespace (token68 may end in '=').
    fn bare_value(&mut self) -> String {
        let start = self.i;
        while self
            .peek()
            .is_some_and(|c| c != ',' && c != ' ' && c != '\t')
        {
            self.i += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }
}

/// Parses every challenge of one header value. Unparseable junk is skipped, never fatal:
/// the caller decides what to do when no usable challenge remains.
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut c = Cursor {
        s: header.as_bytes(),
        i: 0,
    };
    let mut out: Vec<Challenge> = Vec::new();
    loop {
        c.skip_ws_commas();
        if c.peek().is_none() {
            break;
        }
        let scheme = c.token();
        if scheme.is_empty() {
            c.i += 1; // not a token character: skip it
            continue;
        }
        let mut params = BTreeMap::new();
        loop {
            c.skip_ws_commas();
            let save = c.i;
            let name = c.token();
            if name.is_empty() {
                if c.peek().is_some() && c.peek() != Some(',') {
                    c.i += 1;
                    continue;
                }
                break;
            }
            c.skip_ws();
            if c.peek() != Some('=') {
                // Not a parameter: the next challenge's scheme starts here.
                c.i = save;
                break;
            }
            c.i += 1;
            c.skip_ws();
            let value = if c.peek() == Some('"') {
                c.quoted()
            } else {
                c.bare_value()
            };
            params.insert(name.to_ascii_lowercase(), value);
        }
        out.push(Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_bearer() {
        let h = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#;
        let c = parse_challenges(h);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c[0].param("service"), Some("registry.docker.io"));
        assert_eq!(c[0].param("scope"), Some("repository:library/busybox:pull"));
    }

    #[test]
    fn quoted_values_with_commas_and_escapes() {
        let h = r#"Bearer realm="http://127.0.0.1:1/token", scope="repository:a/b:pull,push repository:c:pull", error="insufficient_scope", note="say \"hi\"""#;
        let c = parse_challenges(h);
        assert_eq!(c.len(), 1);
        assert_eq!(
            c[0].param("scope"),
            Some("repository:a/b:pull,push repository:c:pull")
        );
        assert_eq!(c[0].param("error"), Some("insufficient_scope"));
        assert_eq!(c[0].param("note"), Some(r#"say "hi""#));
    }

    #[test]
    fn basic_and_multiple_challenges() {
        let c = parse_challenges(r#"Basic realm="Registry Realm""#);
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].param("realm"), Some("Registry Realm"));

        let c = parse_challenges(r#"Basic realm="a, b", Bearer realm=https://t/x,service=reg"#);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].param("realm"), Some("a, b"));
        assert_eq!(c[1].scheme, "bearer");
        assert_eq!(c[1].param("realm"), Some("https://t/x"));
        assert_eq!(c[1].param("service"), Some("reg"));
    }

    #[test]
    fn tolerant_of_odd_input() {
        assert!(parse_challenges("").is_empty());
        let c = parse_challenges("Negotiate");
        assert_eq!(c.len(), 1);
        assert!(c[0].params.is_empty());
        let c = parse_challenges(r#"BEARER Realm = "x" , SERVICE=y"#);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some("x"));
        assert_eq!(c[0].param("service"), Some("y"));
        // An unterminated quote takes the rest of the header.
        let c = parse_challenges(r#"Bearer realm="abc"#);
        assert_eq!(c[0].param("realm"), Some("abc"));
    }
}
