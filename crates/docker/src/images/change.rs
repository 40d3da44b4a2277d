//! `--change` of `docker commit` and `docker import`: Dockerfile instructions (CMD,
//! ENTRYPOINT, ENV, EXPOSE, LABEL, USER, WORKDIR, VOLUME, STOPSIGNAL) applied to an image's
//! run config (the `config` object of an image config, Docker's field names).

use serde_json::{Map, Value, json};

use crate::error::ApiError;

/// Applies each change in order to `config` (an object).
pub fn apply(config: &mut Value, changes: &[&str]) -> Result<(), ApiError> {
    if !config.is_object() {
        *config = json!({});
    }
    for c in changes {
        for line in c.lines().map(str::trim).filter(|l| !l.is_empty()) {
            apply_one(config, line)?;
        }
    }
    Ok(())
}

fn bad(line: &str, why: &str) -> ApiError {
    ApiError::bad_request(format!("invalid change {line:?}: {why}"))
}

fn apply_one(config: &mut Value, line: &str) -> Result<(), ApiError> {
    let (word, rest) = line
        .split_once(char::is_whitespace)
        .map(|(w, r)| (w, r.trim()))
        .unwrap_or((line, ""));
    let instr = word.to_ascii_uppercase();
    let needs_args = |rest: &str| {
        if rest.is_empty() {
            Err(bad(
                line,
                &format!("{instr} requires at least one argument"),
            ))
        } else {
            Ok(())
        }
    };
    match instr.as_str() {
        "CMD" | "ENTRYPOINT" => {
            needs_args(rest)?;
            let key = if instr == "CMD" { "Cmd" } else { "Entrypoint" };
            config[key] = json!(command(rest));
        }
        "ENV" | "LABEL" => {
            needs_args(rest)?;
            let pairs = pairs(rest).ok_or_else(|| bad(line, "expected key=value"))?;
            if instr == "ENV" {
                let mut env: Vec<String> = strings(&config["Env"]);
                for (k, v) in pairs {
                    env.retain(|e| e.split('=').next() != Some(k.as_str()));
                    env.push(format!("{k}={v}"));
                }
                config["Env"] = json!(env);
            } else {
                with_object(config, "Labels", |labels| {
                    for (k, v) in pairs {
                        labels.insert(k, json!(v));
                    }
                    Ok(())
                })?;
            }
        }
        "EXPOSE" => {
            needs_args(rest)?;
            with_object(config, "ExposedPorts", |ports| {
                for p in rest.split_whitespace() {
                    let key = if p.contains('/') {
                        p.to_ascii_lowercase()
                    } else {
                        format!("{p}/tcp")
                    };
                    let number = key.split('/').next().unwrap_or_default();
                    if number.parse::<u16>().is_err() {
                        return Err(bad(line, &format!("invalid port {p:?}")));
                    }
                    ports.insert(key, json!({}));
                }
                Ok(())
            })?;
        }
        "VOLUME" => {
            needs_args(rest)?;
            with_object(config, "Volumes", |vols| {
                for v in list(rest) {
                    vols.insert(v, json!({}));
                }
                Ok(())
            })?;
        }
        "USER" => {
            needs_args(rest)?;
            config["User"] = json!(rest);
        }
        "WORKDIR" => {
            needs_args(rest)?;
            let dir = if rest.starts_with('/') {
                rest.to_string()
            } else {
                let base = config["WorkingDir"].as_str().unwrap_or("/").to_string();
                format!("{}/{rest}", base.trim_end_matches('/'))
            };
            config["WorkingDir"] = json!(dir);
        }
        "STOPSIGNAL" => {
            needs_args(rest)?;
            config["StopSignal"] = json!(rest);
        }
        _ => {
            return Err(ApiError::bad_request(format!(
                "{word} is not a valid change command"
            )));
        }
    }
    Ok(())
}

/// JSON form (`["a","b"]`) or shell form (`a b` → `/bin/sh -c "a b"`).
fn command(rest: &str) -> Vec<String> {
    if rest.starts_with('[')
        && let Ok(v) = serde_json::from_str::<Vec<String>>(rest)
    {
        return v;
    }
    vec!["/bin/sh".into(), "-c".into(), rest.into()]
}

/// JSON form or whitespace-separated words.
fn list(rest: &str) -> Vec<String> {
    if rest.starts_with('[')
        && let Ok(v) = serde_json::from_str::<Vec<String>>(rest)
    {
        return v;
    }
    rest.split_whitespace().map(str::to_string).collect()
}

fn unquote(s: &str) -> String {
    let t = s.trim();
    for q in ['"', '\''] {
        if t.len() >= 2 && t.starts_with(q) && t.ends_with(q) {
            return t[1..t.len() - 1].to_string();
        }
    }
    t.to_string()
}

/// `k=v k2="v 2"` or the legacy `k v w` (one pair, the value the rest).
fn pairs(rest: &str) -> Option<Vec<(String, String)>> {
    let first = rest.split_whitespace().next()?;
    if !first.contains('=') {
        let (k, v) = rest.split_once(char::is_whitespace)?;
        return Some(vec![(k.to_string(), unquote(v))]);
    }
    let mut out = Vec::new();
    let mut chars = rest.chars().peekable();
    while chars.peek().is_some() {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        for c in chars.by_ref() {
            match (quote, c) {
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (None, c) if c.is_whitespace() => break,
                (_, c) => word.push(c),
            }
        }
        if word.is_empty() {
            continue;
        }
        let (k, v) = word.split_once('=')?;
        if k.is_empty() {
            return None;
        }
        out.push((k.to_string(), v.to_string()));
    }
    Some(out)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `f` on the object at `key` (made when missing or not an object).
fn with_object(
    config: &mut Value,
    key: &str,
    f: impl FnOnce(&mut Map<String, Value>) -> Result<(), ApiError>,
) -> Result<(), ApiError> {
    let mut m = match config[key].take() {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let res = f(&mut m);
    config[key] = Value::Object(m);
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerfile_changes() {
        let mut c = json!({"Env": ["PATH=/bin", "A=1"], "WorkingDir": "/app"});
        apply(
            &mut c,
            &[
                r#"CMD ["cat","/hello"]"#,
                "ENTRYPOINT echo hi",
                r#"ENV A=2 B="x y""#,
                "ENV C some value",
                "EXPOSE 80 53/udp",
                "LABEL a=b",
                "USER 1000",
                "WORKDIR sub",
                "VOLUME /data /logs",
            ],
        )
        .unwrap();
        assert_eq!(c["Cmd"], json!(["cat", "/hello"]));
        assert_eq!(c["Entrypoint"], json!(["/bin/sh", "-c", "echo hi"]));
        assert_eq!(
            c["Env"],
            json!(["PATH=/bin", "A=2", "B=x y", "C=some value"])
        );
        assert_eq!(c["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
        assert_eq!(c["Labels"], json!({"a": "b"}));
        assert_eq!(c["User"], "1000");
        assert_eq!(c["WorkingDir"], "/app/sub");
        assert_eq!(c["Volumes"], json!({"/data": {}, "/logs": {}}));
        let e = apply(&mut c, &["RUN make"]).unwrap_err();
        assert_eq!(e.message, "RUN is not a valid change command");
        assert!(apply(&mut c, &["EXPOSE http"]).is_err());
        assert!(apply(&mut c, &["CMD"]).is_err());
    }
}
