//! The instructions that change only the image's run config: SHELL, CMD, ENTRYPOINT,
//! ENV, LABEL, WORKDIR, USER, EXPOSE, VOLUME, STOPSIGNAL, MAINTAINER and HEALTHCHECK
//! (stored as dockerd stores it; berth does not run health checks).

use serde_json::{Value, json};

use super::dockerfile::{Instruction, exec_form, pairs, words};
use super::steps::Builder;
use crate::error::ApiError;
use crate::images::change;

impl Builder {
    pub(super) fn configure(&mut self, i: &Instruction) -> Result<(), ApiError> {
        match i.keyword.as_str() {
            "SHELL" => {
                self.shell = exec_form(&i.rest)
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| {
                        ApiError::bad_request("SHELL requires the arguments to be in JSON form")
                    })?;
                self.config["Shell"] = json!(self.shell);
                Ok(())
            }
            "CMD" | "ENTRYPOINT" => {
                let argv = match exec_form(&i.rest) {
                    Some(a) => a,
                    None => {
                        let mut a = self.shell.clone();
                        a.push(i.rest.clone());
                        a
                    }
                };
                let key = if i.keyword == "CMD" {
                    "Cmd"
                } else {
                    "Entrypoint"
                };
                self.config[key] = json!(argv);
                // dockerd: an ENTRYPOINT resets the CMD inherited from the base image.
                if key == "Entrypoint" {
                    self.config["Cmd"] = Value::Null;
                }
                Ok(())
            }
            "ENV" | "LABEL" => {
                let ps =
                    pairs(&i.rest, &self.vars(), self.escape).map_err(ApiError::bad_request)?;
                let mut line = i.keyword.clone();
                for (k, v) in ps {
                    let v = v.ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "{}: {k} has no value (key=value)",
                            i.keyword
                        ))
                    })?;
                    line.push_str(&format!(" {}={}", json!(k), json!(v)));
                }
                change::apply(&mut self.config, &[&line])?;
                Ok(())
            }
            "WORKDIR" => {
                let dir = self.expand(&i.rest)?;
                let base = self.config["WorkingDir"]
                    .as_str()
                    .unwrap_or("/")
                    .to_string();
                let full = if dir.starts_with('/') {
                    dir
                } else {
                    format!("{}/{dir}", base.trim_end_matches('/'))
                };
                // The directory appears when a step or the container runs there: the
                // runtime creates a missing working directory.
                self.config["WorkingDir"] = json!(full);
                Ok(())
            }
            "USER" | "EXPOSE" | "VOLUME" | "STOPSIGNAL" => {
                let text = if i.keyword == "VOLUME" && exec_form(&i.rest).is_some() {
                    i.rest.clone()
                } else {
                    let ws: Result<Vec<String>, ApiError> = words(&i.rest, self.escape)
                        .iter()
                        .map(|w| self.expand(w))
                        .collect();
                    ws?.join(" ")
                };
                if text.is_empty() {
                    return Err(ApiError::bad_request(format!(
                        "{} requires at least one argument",
                        i.keyword
                    )));
                }
                change::apply(&mut self.config, &[&format!("{} {text}", i.keyword)])?;
                Ok(())
            }
            "MAINTAINER" => {
                self.author = i.rest.clone();
                Ok(())
            }
            "HEALTHCHECK" => {
                self.config["Healthcheck"] = healthcheck(i)?;
                Ok(())
            }
            other => Err(ApiError::internal(format!(
                "{other} does not change the config"
            ))),
        }
    }
}

/// `HEALTHCHECK NONE` or `HEALTHCHECK [--interval=…] CMD …` as the config's Healthcheck.
fn healthcheck(i: &Instruction) -> Result<Value, ApiError> {
    let bad = |why: String| ApiError::bad_request(format!("HEALTHCHECK: {why}"));
    let (word, rest) = i
        .rest
        .split_once(char::is_whitespace)
        .map(|(w, r)| (w, r.trim()))
        .unwrap_or((i.rest.as_str(), ""));
    if word.eq_ignore_ascii_case("NONE") {
        if !rest.is_empty() || !i.flags.is_empty() {
            return Err(bad("NONE takes no arguments".into()));
        }
        return Ok(json!({"Test": ["NONE"]}));
    }
    if !word.eq_ignore_ascii_case("CMD") || rest.is_empty() {
        return Err(bad("expected NONE or CMD <command>".into()));
    }
    let test = match exec_form(rest) {
        Some(argv) => std::iter::once("CMD".to_string()).chain(argv).collect(),
        None => vec!["CMD-SHELL".to_string(), rest.to_string()],
    };
    let mut hc = json!({"Test": test});
    for (name, value) in &i.flags {
        let key = match name.as_str() {
            "interval" => "Interval",
            "timeout" => "Timeout",
            "start-period" => "StartPeriod",
            "start-interval" => "StartInterval",
            "retries" => {
                let n: i64 = value
                    .parse()
                    .map_err(|_| bad(format!("--retries={value} is not a number")))?;
                hc["Retries"] = json!(n);
                continue;
            }
            other => return Err(bad(format!("unknown flag --{other}"))),
        };
        hc[key] = json!(duration_ns(value).ok_or_else(|| bad(format!(
            "--{name}={value} is not a duration (e.g. 30s, 1m30s)"
        )))?);
    }
    Ok(hc)
}

/// A Go duration (`1m30s`, `500ms`) in nanoseconds.
fn duration_ns(text: &str) -> Option<i64> {
    let mut total = 0f64;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    if rest == "0" {
        return Some(0);
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += n * scale;
        rest = &rest[unit_len..];
    }
    Some(total as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_healthchecks() {
        assert_eq!(duration_ns("1m30s"), Some(90_000_000_000));
        assert_eq!(duration_ns("500ms"), Some(500_000_000));
        assert_eq!(duration_ns("5x"), None);
        let (ins, _) = super::super::dockerfile::parse(
            "HEALTHCHECK --interval=5s --retries=3 CMD wget -q localhost\nHEALTHCHECK NONE\n",
        )
        .unwrap();
        assert_eq!(
            healthcheck(&ins[0]).unwrap(),
            json!({"Test": ["CMD-SHELL", "wget -q localhost"], "Interval": 5_000_000_000i64, "Retries": 3})
        );
        assert_eq!(healthcheck(&ins[1]).unwrap(), json!({"Test": ["NONE"]}));
    }
}
