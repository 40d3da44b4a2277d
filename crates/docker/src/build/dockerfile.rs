//! The Dockerfile as the classic builder reads it: the `# escape=` directive, comments,
//! line continuations, `--flag=value` options, JSON (exec) versus shell form, and the
//! builder's own variable expansion (`$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR:+word}`)
//! with its quoting rules.
//!
//! Our own small parser rather than the `dockerfile-parser` crate: that crate brings pest
//! and snafu, has been quiet for years, and leaves expansion and quoting (the part the
//! builder's semantics hang on) to the caller anyway.

use std::collections::BTreeMap;

/// One instruction, continuations joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// Upper case: `FROM`, `RUN`…
    pub keyword: String,
    /// `--name=value` options before the arguments (`--chown`, `--from`, `--platform`).
    pub flags: Vec<(String, String)>,
    /// The arguments after the options, trimmed.
    pub rest: String,
    /// The instruction as written (continuations joined), for the "Step n/m" lines.
    pub original: String,
}

impl Instruction {
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The instructions that take `--flags`.
const WITH_FLAGS: &[&str] = &["FROM", "COPY", "ADD", "RUN", "HEALTHCHECK"];

/// Parses the Dockerfile; the escape character comes from its `# escape=` directive.
pub fn parse(text: &str) -> Result<(Vec<Instruction>, char), String> {
    let mut escape = '\\';
    let mut lines = text.lines().enumerate().peekable();
    // Parser directives: `# key=value` lines at the very top.
    while let Some((_, l)) = lines.peek() {
        let Some(d) = l.trim().strip_prefix('#') else {
            break;
        };
        let Some((k, v)) = d.split_once('=') else {
            break;
        };
        match k.trim().to_ascii_lowercase().as_str() {
            "escape" => {
                escape = match v.trim() {
                    "`" => '`',
                    "\\" => '\\',
                    other => return Err(format!("invalid escape token {other:?}: use \\ or `")),
                }
            }
            "syntax" | "check" => {}
            _ => break,
        }
        lines.next();
    }
    let mut out = Vec::new();
    let mut current = String::new();
    let mut start = 0;
    for (n, raw) in lines {
        let trimmed = raw.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && !current.is_empty()) {
            // Comments and empty lines inside a continued instruction are dropped.
            continue;
        }
        if current.is_empty() {
            start = n + 1;
        }
        let body = raw.trim_end();
        match body.strip_suffix(escape) {
            // Joined as moby does: the escape and the newline go, nothing is added.
            Some(head) => current.push_str(head.trim_start()),
            None => {
                current.push_str(body.trim_start());
                let line = std::mem::take(&mut current);
                if !line.trim().is_empty() {
                    out.push(instruction(line.trim(), start)?);
                }
            }
        }
    }
    if !current.trim().is_empty() {
        out.push(instruction(current.trim(), start)?);
    }
    Ok((out, escape))
}

fn instruction(line: &str, n: usize) -> Result<Instruction, String> {
    let (word, rest) = line
        .split_once(char::is_whitespace)
        .map(|(w, r)| (w, r.trim_start()))
        .unwrap_or((line, ""));
    let keyword = word.to_ascii_uppercase();
    if !keyword.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(format!(
            "dockerfile parse error line {n}: unknown instruction: {word}"
        ));
    }
    let mut flags = Vec::new();
    let mut rest = rest;
    if WITH_FLAGS.contains(&keyword.as_str()) {
        while let Some(f) = rest.strip_prefix("--") {
            let end = f.find(char::is_whitespace).unwrap_or(f.len());
            let (name, value) = f[..end].split_once('=').unwrap_or((&f[..end], ""));
            flags.push((name.to_string(), value.to_string()));
            rest = f[end..].trim_start();
        }
    }
    Ok(Instruction {
        original: format!("{keyword} {}", line[word.len()..].trim()),
        keyword,
        flags,
        rest: rest.trim().to_string(),
    })
}

/// The JSON (exec) form's strings, or None for the shell form.
pub fn exec_form(rest: &str) -> Option<Vec<String>> {
    if !rest.starts_with('[') {
        return None;
    }
    serde_json::from_str(rest).ok()
}

/// Splits arguments into words at unquoted white space; quotes and escapes stay for
/// [`expand`] to process.
pub fn words(rest: &str, escape: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (_, c) if c == escape && quote != Some('\'') => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (None, '"' | '\'') => {
                quote = Some(c);
                cur.push(c);
            }
            (Some(q), c) if c == q => {
                quote = None;
                cur.push(c);
            }
            (None, c) if c.is_whitespace() => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// One word with quotes removed, escapes applied and variables replaced from `vars`
/// (unset ones are empty), as the classic builder does for ENV, COPY, WORKDIR…
pub fn expand(word: &str, vars: &BTreeMap<String, String>, escape: char) -> Result<String, String> {
    let chars: Vec<char> = word.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let mut quote: Option<char> = None;
    while i < chars.len() {
        let c = chars[i];
        if c == escape && quote != Some('\'') {
            if let Some(&n) = chars.get(i + 1) {
                // Inside double quotes only the special characters are escaped.
                if quote == Some('"') && !matches!(n, '"' | '$') && n != escape {
                    out.push(c);
                }
                out.push(n);
            }
            i += 2;
            continue;
        }
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (q, '$') if q != Some('\'') => {
                let (value, used) = variable(&chars[i + 1..], vars, escape)?;
                out.push_str(&value);
                i += used;
            }
            _ => out.push(c),
        }
        i += 1;
    }
    if let Some(q) = quote {
        return Err(format!(
            "unexpected end of statement while looking for matching {q}"
        ));
    }
    Ok(out)
}

/// The value of the variable reference after a `$`, and how many characters it took.
fn variable(
    s: &[char],
    vars: &BTreeMap<String, String>,
    escape: char,
) -> Result<(String, usize), String> {
    let get = |name: &str| vars.get(name).cloned().unwrap_or_default();
    if s.first() == Some(&'{') {
        let end = s
            .iter()
            .position(|c| *c == '}')
            .ok_or_else(|| "missing '}' in a ${…} variable".to_string())?;
        let inner: String = s[1..end].iter().collect();
        let value = match inner.split_once(':') {
            Some((name, word)) if word.starts_with('-') => {
                let v = get(name);
                if v.is_empty() {
                    expand(&word[1..], vars, escape)?
                } else {
                    v
                }
            }
            Some((name, word)) if word.starts_with('+') => {
                if get(name).is_empty() {
                    String::new()
                } else {
                    expand(&word[1..], vars, escape)?
                }
            }
            Some((name, _)) => return Err(format!("unsupported modifier in ${{{name}:…}}")),
            None => get(&inner),
        };
        return Ok((value, end + 1));
    }
    let len = s
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
        .count();
    if len == 0 {
        return Ok(("$".to_string(), 0));
    }
    let name: String = s[..len].iter().collect();
    Ok((get(&name), len))
}

/// `key=value` words (ENV, LABEL, ARG) or the legacy `KEY value with spaces` form.
pub fn pairs(
    rest: &str,
    vars: &BTreeMap<String, String>,
    escape: char,
) -> Result<Vec<(String, Option<String>)>, String> {
    let ws = words(rest, escape);
    let first_has_eq = ws.first().is_some_and(|w| w.contains('='));
    if !first_has_eq && ws.len() > 1 {
        let key = ws[0].clone();
        let value = rest[key.len()..].trim_start();
        return Ok(vec![(key, Some(expand(value, vars, escape)?))]);
    }
    ws.iter()
        .map(|w| {
            let w = expand(w, vars, escape)?;
            Ok(match w.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (w, None),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_comments_continuations_flags() {
        let (ins, esc) = parse(
            "# syntax=docker/dockerfile:1\n# a comment\nFROM busybox AS base\n\nRUN echo a \\\n  # inside\n  && echo b\ncopy --chown=1:2 --from=base a b\n",
        )
        .unwrap();
        assert_eq!(esc, '\\');
        assert_eq!(ins.len(), 3);
        assert_eq!(ins[0].original, "FROM busybox AS base");
        assert_eq!(ins[1].rest, "echo a && echo b");
        assert_eq!(ins[2].keyword, "COPY");
        assert_eq!(ins[2].flag("chown"), Some("1:2"));
        assert_eq!(ins[2].flag("from"), Some("base"));
        assert_eq!(ins[2].rest, "a b");
        let (ins, esc) = parse("# escape=`\nFROM x\nRUN a `\n b\n").unwrap();
        assert_eq!(esc, '`');
        assert_eq!(ins[1].rest, "a b");
        assert!(parse("FR-OM x").is_err());
    }

    #[test]
    fn forms_and_expansion() {
        assert_eq!(
            exec_form(r#"["a", "b c"]"#),
            Some(vec!["a".into(), "b c".into()])
        );
        assert_eq!(exec_form("echo [x]"), None);
        let vars = BTreeMap::from([("A".to_string(), "1".to_string())]);
        let e = |s: &str| expand(s, &vars, '\\').unwrap();
        assert_eq!(e("$A/${A}x"), "1/1x");
        assert_eq!(e("'$A'\"$A\""), "$A1");
        assert_eq!(e("${B:-d}${A:+s}${B:+t}"), "ds");
        assert_eq!(e("\\$A"), "$A");
        assert_eq!(e("a$"), "a$");
        let p = pairs(r#"K=v "Q=a b" X"#, &vars, '\\').unwrap();
        assert_eq!(p[0], ("K".into(), Some("v".into())));
        assert_eq!(p[1], ("Q".into(), Some("a b".into())));
        assert_eq!(p[2], ("X".into(), None));
        let p = pairs("KEY some value $A", &vars, '\\').unwrap();
        assert_eq!(p, vec![("KEY".into(), Some("some value 1".into()))]);
        assert_eq!(
            words(r#"a "b c" d\ e"#, '\\'),
            vec!["a", "\"b c\"", "d\\ e"]
        );
    }
}
