//! CNI network configuration: finding and loading the file, and building each plugin's
//! stdin document the way libcni does (name, cniVersion, prevResult, runtimeConfig).

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

/// A network configuration list (a `.conf` file is read as a list of one plugin).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ConfList {
    pub name: String,
    pub cni_version: String,
    pub plugins: Vec<Map<String, Value>>,
    /// The file it came from (for messages).
    pub source: PathBuf,
}

/// The lexicographically first `*.conflist`, `*.conf` or `*.json` file of `dir`, loaded.
pub(crate) fn load_dir(dir: &Path) -> Result<ConfList, String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("reading CNI config directory {}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|x| x.to_str())
                    .is_some_and(|x| matches!(x, "conflist" | "conf" | "json"))
        })
        .collect();
    files.sort();
    let first = files.first().ok_or_else(|| {
        format!(
            "no CNI network config (*.conflist, *.conf) in {}",
            dir.display()
        )
    })?;
    let bytes = std::fs::read(first).map_err(|e| format!("reading {}: {e}", first.display()))?;
    parse(&bytes, first)
}

pub(crate) fn parse(bytes: &[u8], source: &Path) -> Result<ConfList, String> {
    let bad = |m: &str| format!("{}: {m}", source.display());
    let v: Value = serde_json::from_slice(bytes).map_err(|e| bad(&e.to_string()))?;
    let obj = v.as_object().ok_or_else(|| bad("not a JSON object"))?;
    let name = obj
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("missing \"name\""))?;
    let cni_version = obj
        .get("cniVersion")
        .and_then(Value::as_str)
        .unwrap_or("0.2.0");
    let plugins = match obj.get("plugins") {
        Some(Value::Array(list)) => list
            .iter()
            .map(|p| {
                p.as_object()
                    .cloned()
                    .ok_or_else(|| bad("a plugin is not an object"))
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(bad("\"plugins\" is not a list")),
        // A single-plugin .conf file.
        None => vec![obj.clone()],
    };
    if plugins.is_empty() {
        return Err(bad("no plugins"));
    }
    for p in &plugins {
        if !p
            .get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| !t.is_empty() && !t.contains('/'))
        {
            return Err(bad("a plugin has no valid \"type\""));
        }
    }
    Ok(ConfList {
        name: name.to_string(),
        cni_version: cni_version.to_string(),
        plugins,
        source: source.to_path_buf(),
    })
}

impl ConfList {
    /// The whole list as JSON (cached with the ADD result, so DEL uses what ADD used).
    pub fn to_json(&self) -> Value {
        json!({"name": self.name, "cniVersion": self.cni_version, "plugins": self.plugins})
    }

    pub fn from_json(v: &Value) -> Result<Self, String> {
        parse(v.to_string().as_bytes(), Path::new("<cached CNI config>"))
    }

    /// Plugin `i`'s stdin: its own keys plus the list's name and version, the previous
    /// plugin's result, and the runtime values of the capabilities it declares.
    pub fn plugin_config(
        &self,
        i: usize,
        prev_result: Option<&Value>,
        runtime: &Map<String, Value>,
    ) -> Value {
        let mut conf = self.plugins[i].clone();
        conf.insert("name".into(), json!(self.name));
        conf.insert("cniVersion".into(), json!(self.cni_version));
        if let Some(prev) = prev_result {
            conf.insert("prevResult".into(), prev.clone());
        }
        let caps = conf
            .get("capabilities")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut rc = Map::new();
        for (cap, on) in caps {
            if on.as_bool() == Some(true)
                && let Some(v) = runtime.get(&cap)
            {
                rc.insert(cap, v.clone());
            }
        }
        if !rc.is_empty() {
            conf.insert("runtimeConfig".into(), Value::Object(rc));
        }
        Value::Object(conf)
    }

    pub fn plugin_type(&self, i: usize) -> &str {
        self.plugins[i]
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// CHECK and prevResult on DEL exist from spec 0.4.0 on.
    pub fn supports_check(&self) -> bool {
        let v: Vec<u32> = self
            .cni_version
            .split('.')
            .filter_map(|p| p.parse().ok())
            .collect();
        v.as_slice() >= [0, 4, 0].as_slice()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_plugin_config_with_capabilities() {
        let list = parse(
            br#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge"},{"type":"portmap","capabilities":{"portMappings":true}}]}"#,
            Path::new("x"),
        )
        .unwrap();
        let mut rt = Map::new();
        rt.insert("portMappings".into(), json!([{"hostPort": 1}]));
        let prev = json!({"ips": []});
        let c0 = list.plugin_config(0, None, &rt);
        assert_eq!(
            c0,
            json!({"type": "bridge", "name": "n", "cniVersion": "1.0.0"})
        );
        let c1 = list.plugin_config(1, Some(&prev), &rt);
        assert_eq!(c1["runtimeConfig"]["portMappings"][0]["hostPort"], 1);
        assert_eq!(c1["prevResult"], prev);
        assert!(list.supports_check());
        let single = parse(
            br#"{"cniVersion":"0.3.1","name":"s","type":"bridge"}"#,
            Path::new("y"),
        )
        .unwrap();
        assert_eq!(single.plugins.len(), 1);
        assert!(!single.supports_check());
        assert!(
            parse(
                br#"{"name":"s","plugins":[{"type":"../x"}]}"#,
                Path::new("z")
            )
            .is_err()
        );
    }
}
