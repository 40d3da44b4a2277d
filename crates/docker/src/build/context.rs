//! The build context: the request body (a tar, plain or gzip'd) unpacked into a directory
//! of its own under `<root>/build/`, gone when the build ends; `.dockerignore` (moby's
//! pattern rules: `*`, `?`, `**`, `!` exceptions, a match on a parent directory counts) and
//! the sources a COPY or ADD names, never outside the context.

use std::io::{BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};

use regex::Regex;

use crate::error::ApiError;

/// A build's working directory: the unpacked context in `ctx/`, scratch files beside it.
pub struct Context {
    pub root: PathBuf,
    pub ctx: PathBuf,
    pub ignore: Ignore,
}

/// The `.dockerignore` patterns: (pattern, is an `!` exception), in order.
#[derive(Clone, Default)]
pub struct Ignore(Vec<(Regex, bool)>);

impl Ignore {
    /// Whether the context path `rel` (`a/b`) is excluded: the last pattern that matches
    /// it or a parent directory decides.
    pub fn ignored(&self, rel: &str) -> bool {
        let mut out = false;
        for (re, exception) in &self.0 {
            if matches_or_parent(re, rel) {
                out = !exception;
            }
        }
        out
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.root) {
            tracing::warn!(dir = %self.root.display(), error = %e, "removing a build context");
        }
    }
}

fn failed(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("{what}: {e}"))
}

/// Removes what builds interrupted by a stop of berthd left under `dir` (`<root>/build`).
pub fn clean_stale(dir: &Path) {
    if !dir.is_absolute() {
        return;
    }
    if let Err(e) = std::fs::remove_dir_all(dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %dir.display(), error = %e, "removing stale build directories");
    }
}

/// Unpacks the context read from `input` under `root` (created): a tar (plain or gzip'd),
/// or a Dockerfile alone. Blocking.
pub fn receive(input: impl Read, root: PathBuf) -> Result<Context, ApiError> {
    let ctx = root.join("ctx");
    std::fs::create_dir_all(&ctx).map_err(|e| failed("creating the build directory", e))?;
    let mut c = Context {
        root,
        ctx,
        ignore: Ignore::default(),
    };
    let mut input = BufReader::new(input);
    let gz = input
        .fill_buf()
        .map(|b| b.starts_with(&[0x1f, 0x8b]))
        .map_err(|e| ApiError::bad_request(format!("reading the build context: {e}")))?;
    let mut reader: Box<dyn Read> = if gz {
        Box::new(flate2::read::GzDecoder::new(input))
    } else {
        Box::new(input)
    };
    // `docker build - < Dockerfile` sends the Dockerfile alone: no tar header.
    let mut head = Vec::with_capacity(512);
    (&mut reader)
        .take(512)
        .read_to_end(&mut head)
        .map_err(|e| ApiError::bad_request(format!("reading the build context: {e}")))?;
    let is_tar = head.len() >= 262 && &head[257..262] == b"ustar";
    let mut whole = std::io::Cursor::new(head).chain(reader);
    if !is_tar {
        let mut f = std::fs::File::create(c.ctx.join("Dockerfile"))
            .map_err(|e| failed("writing the Dockerfile", e))?;
        std::io::copy(&mut whole, &mut f).map_err(|e| failed("receiving the Dockerfile", e))?;
        return Ok(c);
    }
    let mut archive = tar::Archive::new(whole);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive
        .unpack(&c.ctx)
        .map_err(|e| ApiError::bad_request(format!("unpacking the build context (a tar): {e}")))?;
    if let Ok(text) = std::fs::read_to_string(c.ctx.join(".dockerignore")) {
        c.ignore = Ignore(ignore_patterns(&text)?);
    }
    Ok(c)
}

impl Context {
    /// The Dockerfile's text.
    pub fn dockerfile(&self, name: &str) -> Result<String, ApiError> {
        let rel = clean_relative(name)?;
        std::fs::read_to_string(self.ctx.join(&rel)).map_err(|e| {
            ApiError::internal(format!("Cannot locate specified Dockerfile: {name} ({e})"))
        })
    }

    pub fn ignored(&self, rel: &str) -> bool {
        self.ignore.ignored(rel)
    }

    /// The context paths (relative, `a/b`) a COPY source names: one, or those a wildcard
    /// matches; none is an error.
    pub fn sources(&self, src: &str) -> Result<Vec<String>, ApiError> {
        let rel = clean_relative(src)?;
        let rel_text = rel.to_string_lossy().into_owned();
        let not_found = || {
            ApiError::internal(format!(
                "COPY failed: file not found in build context or excluded by .dockerignore: stat {src}: file does not exist"
            ))
        };
        if !src.contains(['*', '?', '[']) {
            let path = self.ctx.join(&rel);
            // A link among the parents must not lead out of the context (the source
            // itself, if a link, is copied as a link).
            let parent = rel.parent().map(|p| self.ctx.join(p).canonicalize());
            let inside = match (parent, self.ctx.canonicalize()) {
                (Some(Ok(p)), Ok(root)) => p.starts_with(root),
                _ => true,
            };
            if !inside {
                return Err(ApiError::bad_request(format!(
                    "forbidden path outside the build context: {src}"
                )));
            }
            if std::fs::symlink_metadata(&path).is_err()
                || (!rel_text.is_empty() && self.ignored(&rel_text))
            {
                return Err(not_found());
            }
            return Ok(vec![rel_text]);
        }
        let re = pattern_regex(&rel_text)?;
        let mut all = Vec::new();
        walk(&self.ctx, "", &mut all);
        let found: Vec<String> = all
            .into_iter()
            .filter(|p| re.is_match(p) && !self.ignored(p))
            .collect();
        if found.is_empty() {
            return Err(not_found());
        }
        Ok(found)
    }
}

/// Every path under `dir` (relative, `a/b`), parents before children.
pub fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut names: Vec<_> = entries.flatten().collect();
    names.sort_by_key(|e| e.file_name());
    for e in names {
        let name = e.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        out.push(rel.clone());
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&e.path(), &rel, out);
        }
    }
}

/// `src` as a path inside the context: `.` and leading `/` dropped, `..` refused.
fn clean_relative(src: &str) -> Result<PathBuf, ApiError> {
    let mut out = PathBuf::new();
    for c in Path::new(src).components() {
        match c {
            Component::Normal(n) => out.push(n),
            // `..` climbs (the guard pops); above the context root it is refused.
            Component::ParentDir if !out.pop() => {
                return Err(ApiError::bad_request(format!(
                    "forbidden path outside the build context: {src}"
                )));
            }
            _ => {}
        }
    }
    Ok(out)
}

fn ignore_patterns(text: &str) -> Result<Vec<(Regex, bool)>, ApiError> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (exception, pat) = match line.strip_prefix('!') {
            Some(p) => (true, p.trim()),
            None => (false, line),
        };
        let cleaned = clean_relative(pat).map_err(|_| {
            ApiError::bad_request(format!("invalid .dockerignore pattern {line:?}"))
        })?;
        out.push((pattern_regex(&cleaned.to_string_lossy())?, exception));
    }
    Ok(out)
}

fn matches_or_parent(re: &Regex, rel: &str) -> bool {
    if re.is_match(rel) {
        return true;
    }
    rel.match_indices('/').any(|(i, _)| re.is_match(&rel[..i]))
}

/// A Go `filepath.Match` pattern with moby's `**` as an anchored regex.
fn pattern_regex(pat: &str) -> Result<Regex, ApiError> {
    let mut re = String::from("^");
    let chars: Vec<char> = pat.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' if chars.get(i + 1) == Some(&'*') => {
                if chars.get(i + 2) == Some(&'/') {
                    re.push_str("(.*/)?");
                    i += 1;
                } else {
                    re.push_str(".*");
                }
                i += 1;
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '[' => {
                let end = chars[i..].iter().position(|c| *c == ']').ok_or_else(|| {
                    ApiError::bad_request(format!("syntax error in pattern {pat:?}"))
                })?;
                let class: String = chars[i + 1..i + end].iter().collect();
                let class = class
                    .strip_prefix('^')
                    .map_or(class.clone(), |c| format!("^{c}"));
                re.push('[');
                re.push_str(&class.replace('\\', "\\\\"));
                re.push(']');
                i += end;
            }
            '\\' if i + 1 < chars.len() => {
                re.push_str(&regex::escape(&chars[i + 1].to_string()));
                i += 1;
            }
            c => re.push_str(&regex::escape(&c.to_string())),
        }
        i += 1;
    }
    re.push('$');
    Regex::new(&re).map_err(|e| ApiError::bad_request(format!("invalid pattern {pat:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(ignore: &str) -> Context {
        Context {
            root: PathBuf::from("/nonexistent-build-test"),
            ctx: PathBuf::from("/nonexistent-build-test/ctx"),
            ignore: Ignore(ignore_patterns(ignore).unwrap()),
        }
    }

    #[test]
    fn dockerignore_rules() {
        let c = ctx("# comment\n*.log\n!keep.log\nsecret\n**/*.tmp\n/build/out\n");
        assert!(c.ignored("a.log"));
        assert!(!c.ignored("keep.log"));
        assert!(!c.ignored("dir/a.log"));
        assert!(c.ignored("secret"));
        assert!(c.ignored("secret/inner/file"));
        assert!(c.ignored("x.tmp"));
        assert!(c.ignored("deep/er/x.tmp"));
        assert!(c.ignored("build/out/bin"));
        assert!(!c.ignored("build/other"));
        std::mem::forget(c);
    }

    #[test]
    fn paths_stay_inside() {
        assert_eq!(clean_relative("./a/../b/").unwrap(), PathBuf::from("b"));
        assert_eq!(clean_relative("/x").unwrap(), PathBuf::from("x"));
        assert!(clean_relative("../etc").is_err());
        assert!(pattern_regex("a/[bc]?.txt").unwrap().is_match("a/cd.txt"));
    }
}
