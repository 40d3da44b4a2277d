//! The process: argv by the Kubernetes command/args rule, the environment, the cwd.

use super::SpecError;
use super::config::{ContainerConfig, ImageConfig};

/// containerd's default PATH (oci.defaultUnixEnv).
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// argv, as Kubernetes defines it (containerd's WithProcessArgs): `command` replaces the
/// image Entrypoint and `args` its Cmd; a command without args drops the image Cmd.
/// An image Entrypoint of `[""]` counts as no entrypoint (Docker's way of resetting it).
pub fn args(config: &ContainerConfig, image: &ImageConfig) -> Result<Vec<String>, SpecError> {
    let mut command = config.command.clone();
    let mut args = config.args.clone();
    if command.is_empty() {
        if args.is_empty() {
            args = image.cmd.clone();
        }
        if !(image.entrypoint.len() == 1 && image.entrypoint[0].is_empty()) {
            command = image.entrypoint.clone();
        }
    }
    command.extend(args);
    if command.is_empty() {
        return Err(SpecError::NoCommand);
    }
    Ok(command)
}

/// The environment, built the way containerd's CRI does: the default PATH, `TERM=xterm`
/// with a tty, `HOSTNAME`, then the image's Env, then the config's envs. A later value
/// replaces an earlier one of the same key in place (order of first appearance is kept);
/// an entry without `=` unsets the key.
pub fn env(config: &ContainerConfig, image: &ImageConfig, hostname: &str) -> Vec<String> {
    let mut base = vec![DEFAULT_PATH.to_string()];
    if config.tty {
        base.push("TERM=xterm".into());
    }
    let mut overrides = vec![format!("HOSTNAME={hostname}")];
    overrides.extend(image.env.iter().cloned());
    overrides.extend(
        config
            .envs
            .iter()
            .filter(|(k, _)| !k.is_empty())
            .map(|(k, v)| format!("{k}={v}")),
    );
    replace_or_append(base, &overrides)
}

/// containerd's replaceOrAppendEnvValues.
fn replace_or_append(defaults: Vec<String>, overrides: &[String]) -> Vec<String> {
    let mut results: Vec<Option<String>> = Vec::new();
    let mut index: Vec<(String, usize)> = Vec::new();
    let key_of = |e: &str| e.split_once('=').map(|(k, _)| k.to_string());
    let find = |index: &[(String, usize)], k: &str| {
        index.iter().find(|(key, _)| key == k).map(|(_, i)| *i)
    };
    for e in defaults {
        let k = key_of(&e).unwrap_or_else(|| e.clone());
        match find(&index, &k) {
            Some(i) => results[i] = Some(e),
            None => {
                index.push((k, results.len()));
                results.push(Some(e));
            }
        }
    }
    for e in overrides {
        match key_of(e) {
            None => {
                if let Some(i) = find(&index, e) {
                    results[i] = None;
                }
            }
            Some(k) => match find(&index, &k) {
                Some(i) => results[i] = Some(e.clone()),
                None => {
                    index.push((k, results.len()));
                    results.push(Some(e.clone()));
                }
            },
        }
    }
    results.into_iter().flatten().collect()
}

/// config.working_dir, else the image's WorkingDir, else `/`; it must be absolute.
pub fn cwd(config: &ContainerConfig, image: &ImageConfig) -> Result<String, SpecError> {
    let (field, dir) = if !config.working_dir.is_empty() {
        ("working_dir", config.working_dir.as_str())
    } else if !image.working_dir.is_empty() {
        ("image WorkingDir", image.working_dir.as_str())
    } else {
        return Ok("/".into());
    };
    if !dir.starts_with('/') {
        return Err(SpecError::Invalid {
            field,
            value: dir.into(),
            reason: "the working directory must be an absolute path".into(),
        });
    }
    Ok(dir.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    fn image(ep: &[&str], cmd: &[&str]) -> ImageConfig {
        ImageConfig {
            entrypoint: v(ep),
            cmd: v(cmd),
            ..Default::default()
        }
    }

    fn config(command: &[&str], args: &[&str]) -> ContainerConfig {
        ContainerConfig {
            command: v(command),
            args: v(args),
            ..Default::default()
        }
    }

    #[test]
    fn neither_uses_entrypoint_and_cmd() {
        let a = args(&config(&[], &[]), &image(&["/ep", "-x"], &["c1", "c2"])).unwrap();
        assert_eq!(a, v(&["/ep", "-x", "c1", "c2"]));
    }

    #[test]
    fn args_replace_cmd_only() {
        let a = args(&config(&[], &["a1"]), &image(&["/ep"], &["c1"])).unwrap();
        assert_eq!(a, v(&["/ep", "a1"]));
    }

    #[test]
    fn command_replaces_entrypoint_and_drops_cmd() {
        let a = args(&config(&["/bin/sh"], &[]), &image(&["/ep"], &["c1"])).unwrap();
        assert_eq!(a, v(&["/bin/sh"]));
    }

    #[test]
    fn command_and_args_replace_both() {
        let a = args(
            &config(&["/bin/sh"], &["-c", "x"]),
            &image(&["/ep"], &["c"]),
        )
        .unwrap();
        assert_eq!(a, v(&["/bin/sh", "-c", "x"]));
    }

    #[test]
    fn empty_entrypoint_string_is_reset() {
        let a = args(&config(&[], &[]), &image(&[""], &["sh"])).unwrap();
        assert_eq!(a, v(&["sh"]));
    }

    #[test]
    fn nothing_is_an_error() {
        let e = args(&config(&[], &[]), &image(&[], &[])).unwrap_err();
        assert_eq!(e.to_string(), "no command specified");
    }

    #[test]
    fn env_merge_order_and_override() {
        let img = ImageConfig {
            env: v(&["PATH=/img/bin", "A=1", "B=2"]),
            ..Default::default()
        };
        let mut c = config(&[], &[]);
        c.envs = vec![("B".into(), "3".into()), ("C".into(), "4".into())];
        assert_eq!(
            env(&c, &img, "web"),
            v(&["PATH=/img/bin", "HOSTNAME=web", "A=1", "B=3", "C=4"])
        );
    }

    #[test]
    fn env_default_path_tty_and_unset() {
        let img = ImageConfig {
            env: v(&["A=1", "A"]),
            ..Default::default()
        };
        let mut c = config(&[], &[]);
        c.tty = true;
        c.envs = vec![("HOSTNAME".into(), "mine".into())];
        assert_eq!(
            env(&c, &img, "h"),
            v(&[DEFAULT_PATH, "TERM=xterm", "HOSTNAME=mine"])
        );
    }

    #[test]
    fn cwd_precedence() {
        let mut img = ImageConfig::default();
        let mut c = config(&[], &[]);
        assert_eq!(cwd(&c, &img).unwrap(), "/");
        img.working_dir = "/img".into();
        assert_eq!(cwd(&c, &img).unwrap(), "/img");
        c.working_dir = "/cfg".into();
        assert_eq!(cwd(&c, &img).unwrap(), "/cfg");
        c.working_dir = "rel".into();
        let e = cwd(&c, &img).unwrap_err().to_string();
        assert!(e.contains("working_dir") && e.contains("rel"), "{e}");
    }
}
