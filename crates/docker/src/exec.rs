//! `POST /containers/{id}/exec`, `POST /exec/{id}/start` (hijacked, see [`crate::hijack`]),
//! `GET /exec/{id}/json` and `POST /exec/{id}/resize`. Exec records live in memory, as
//! dockerd's do: they are forgotten when berthd restarts.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};

use berth_core::container::record::ContainerState;
use berth_core::stream::{ExecStreamRequest, TtyResizer};
use berth_engine::containers::process::{exec_process, exec_user};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::DockerApi;
use crate::containers::{attach::size, find_synced, from_engine};
use crate::error::ApiError;
use crate::hijack::{self, DEFAULT_DETACH_KEYS};
use crate::http::{Reply, json as json_reply, no_content, ok_json};
use crate::router::Call;

/// The exec records of this daemon's life.
#[derive(Default)]
pub struct Execs {
    map: Mutex<HashMap<String, Arc<Mutex<Exec>>>>,
}

/// What `docker exec` asked for (the create body, as the API names it).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecConfig {
    #[serde(deserialize_with = "nullable")]
    pub cmd: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub env: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub working_dir: String,
    #[serde(deserialize_with = "nullable")]
    pub user: String,
    #[serde(deserialize_with = "nullable")]
    pub tty: bool,
    #[serde(deserialize_with = "nullable")]
    pub attach_stdin: bool,
    #[serde(deserialize_with = "nullable")]
    pub attach_stdout: bool,
    #[serde(deserialize_with = "nullable")]
    pub attach_stderr: bool,
    #[serde(deserialize_with = "nullable")]
    pub privileged: bool,
    #[serde(deserialize_with = "nullable")]
    pub detach_keys: String,
}

/// The CLI sends `null` for what it leaves unset.
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

struct Exec {
    container_id: String,
    pod_id: String,
    config: ExecConfig,
    process: Value,
    running: bool,
    started: bool,
    exit_code: Option<i32>,
    resizer: Option<Arc<dyn TtyResizer>>,
}

impl Execs {
    /// Drops the exec records of a removed container, as dockerd does.
    pub fn forget_container(&self, container_id: &str) {
        if let Ok(mut m) = self.map.lock() {
            m.retain(|_, e| e.lock().map_or(true, |e| e.container_id != container_id));
        }
    }

    fn get(&self, id: &str) -> Result<Arc<Mutex<Exec>>, ApiError> {
        self.map
            .lock()
            .ok()
            .and_then(|m| m.get(id).cloned())
            .ok_or_else(|| ApiError::not_found(format!("No such exec instance: {id}")))
    }
}

fn new_id() -> String {
    (0..4)
        .map(|i| {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_usize(i);
            format!("{:016x}", h.finish())
        })
        .collect()
}

pub async fn create(
    _call: &Call,
    api: &DockerApi,
    key: &str,
    body: &[u8],
) -> Result<Reply, ApiError> {
    let config: ExecConfig = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid exec config: {e}")))?;
    if config.cmd.is_empty() {
        return Err(ApiError::bad_request("No exec command specified"));
    }
    if config.privileged {
        return Err(ApiError::bad_request(
            "privileged exec is not supported by berth: run the container with --privileged instead",
        ));
    }
    if !config.detach_keys.is_empty() {
        hijack::parse_detach_keys(&config.detach_keys)?;
    }
    let rec = find_synced(api, key).await?;
    if rec.state != ContainerState::Running {
        return Err(ApiError::conflict(format!(
            "Container {} is not running",
            rec.id
        )));
    }
    let mut process = exec_process(&rec, &config.cmd, config.tty).map_err(from_engine)?;
    let user = match config.user.as_str() {
        "" => None,
        u => Some(exec_user(&rec, u).map_err(from_engine)?),
    };
    apply(&mut process, &config, user)?;
    let id = new_id();
    let cmdline = config.cmd.join(" ");
    crate::events::container_event(
        api,
        &rec,
        &format!("exec_create: {cmdline}"),
        vec![("execID", id.clone())],
    );
    let exec = Exec {
        container_id: rec.id.clone(),
        pod_id: rec.pod_id.clone(),
        config,
        process,
        running: false,
        started: false,
        exit_code: None,
        resizer: None,
    };
    if let Ok(mut m) = api.execs.map.lock() {
        m.insert(id.clone(), Arc::new(Mutex::new(exec)));
    }
    Ok(json_reply(StatusCode::CREATED, &json!({ "Id": id })))
}

/// Env, WorkingDir and the user (resolved: uid, gid) on top of the container's process.
fn apply(process: &mut Value, c: &ExecConfig, user: Option<(u32, u32)>) -> Result<(), ApiError> {
    if !c.env.is_empty() {
        let mut env: Vec<String> = process["env"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        for kv in &c.env {
            let name = kv.split_once('=').map_or(kv.as_str(), |(k, _)| k);
            env.retain(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) != name);
            env.push(kv.clone());
        }
        process["env"] = json!(env);
    }
    if !c.working_dir.is_empty() {
        if !c.working_dir.starts_with('/') {
            return Err(ApiError::bad_request(format!(
                "the working directory '{}' is invalid, it needs to be an absolute path",
                c.working_dir
            )));
        }
        process["cwd"] = json!(c.working_dir);
    }
    if let Some((uid, gid)) = user {
        // The container's additional groups are its user's, not this one's.
        process["user"] = json!({ "uid": uid, "gid": gid });
    }
    Ok(())
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct StartBody {
    detach: bool,
}

pub async fn start(call: &Call, api: &DockerApi, id: &str, body: &[u8]) -> Result<Reply, ApiError> {
    let start: StartBody = if body.iter().all(u8::is_ascii_whitespace) {
        StartBody::default()
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid exec start body: {e}")))?
    };
    let exec = api.execs.get(id)?;
    let (req, pod_id, tty, detach_keys) = {
        let mut e = exec
            .lock()
            .map_err(|_| ApiError::internal("exec record lock poisoned"))?;
        if e.started {
            return Err(ApiError::conflict(format!(
                "Error: Exec command {id} has already run"
            )));
        }
        e.started = true;
        let c = &e.config;
        let tty = c.tty;
        let detach = start.detach;
        let req = ExecStreamRequest {
            container_id: e.container_id.clone(),
            process: e.process.clone(),
            tty,
            stdin: !detach && c.attach_stdin,
            // A detached exec's output goes nowhere, but the session needs one stream.
            stdout: detach || c.attach_stdout || !(c.attach_stdin || c.attach_stderr),
            stderr: !detach && c.attach_stderr && !tty,
        };
        let keys = match c.detach_keys.as_str() {
            "" => DEFAULT_DETACH_KEYS.to_vec(),
            k => hijack::parse_detach_keys(k)?,
        };
        if let Ok(rec) = crate::containers::find(api, &e.container_id) {
            crate::events::container_event(
                api,
                &rec,
                &format!("exec_start: {}", c.cmd.join(" ")),
                vec![("execID", id.to_string())],
            );
        }
        (req, e.pod_id.clone(), tty, keys)
    };
    let runtime = api.runtime.containers.ports.runtime.clone();
    let opened = exec.clone();
    let stdin_wanted = req.stdin;
    let open: hijack::Opener = Box::pin(async move {
        let mut session = runtime
            .exec_stream(&pod_id, &req)
            .await
            .map_err(|e| from_engine(e.into()))?;
        if let Ok(mut e) = opened.lock() {
            e.running = true;
            e.resizer = session.resize.take().map(Arc::from);
        }
        Ok(session)
    });
    let record = exec.clone();
    let on_end: hijack::OnEnd = Box::new(move |code| {
        if let Ok(mut e) = record.lock() {
            e.running = false;
            // A session ended by the client (detach) kills the process: dockerd's -1.
            e.exit_code = Some(code.unwrap_or(-1));
            e.resizer = None;
        }
    });
    if start.detach {
        let mut session = open.await?;
        let (ours, mut theirs) = tokio::io::duplex(64 << 10);
        session.stdin = None;
        // Nobody reads a detached exec's output: it is discarded as it comes.
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut theirs, &mut tokio::io::sink()).await;
        });
        tokio::spawn(hijack::pump(
            ours,
            session,
            tty,
            None,
            Vec::new(),
            true,
            on_end,
        ));
        return Ok(no_content(StatusCode::OK));
    }
    hijack::respond_later(
        call.take_upgrade(),
        open,
        tty,
        stdin_wanted.then_some(detach_keys),
        on_end,
    )
    .await
}
pub fn inspect(api: &DockerApi, id: &str) -> Result<Reply, ApiError> {
    let exec = api.execs.get(id)?;
    let e = exec
        .lock()
        .map_err(|_| ApiError::internal("exec record lock poisoned"))?;
    let c = &e.config;
    let (entrypoint, args) = c
        .cmd
        .split_first()
        .map_or(("", &[][..]), |(a, b)| (a.as_str(), b));
    Ok(ok_json(&json!({
        "ID": id,
        "Running": e.running,
        "ExitCode": e.exit_code,
        "ProcessConfig": {
            "tty": c.tty,
            "entrypoint": entrypoint,
            "arguments": args,
            "privileged": false,
            "user": c.user,
        },
        "OpenStdin": c.attach_stdin,
        "OpenStderr": c.attach_stderr,
        "OpenStdout": c.attach_stdout,
        "CanRemove": false,
        "ContainerID": e.container_id,
        "DetachKeys": c.detach_keys,
        // The session's process is the monitor's child, its pid not reported back.
        "Pid": 0,
    })))
}

pub async fn resize(call: &Call, api: &DockerApi, id: &str) -> Result<Reply, ApiError> {
    let (width, height) = size(call)?;
    let exec = api.execs.get(id)?;
    let resizer = exec
        .lock()
        .map_err(|_| ApiError::internal("exec record lock poisoned"))?
        .resizer
        .clone();
    let Some(resizer) = resizer else {
        return Err(ApiError::conflict(format!(
            "exec {id} is not running with a tty"
        )));
    };
    resizer
        .resize(width, height)
        .await
        .map_err(|e| from_engine(e.into()))?;
    Ok(no_content(StatusCode::OK))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_cwd_user_over_the_container_process() {
        let mut p = json!({"args": ["sh"], "env": ["PATH=/bin", "A=1"], "cwd": "/",
            "user": {"uid": 0, "gid": 0, "additionalGids": [0, 10]}});
        let c: ExecConfig = serde_json::from_str(
            r#"{"Cmd": ["id"], "Env": ["A=2", "B=3"], "WorkingDir": "/tmp", "User": null,
                "DetachKeys": null, "Tty": false}"#,
        )
        .unwrap();
        apply(&mut p, &c, Some((1000, 1001))).unwrap();
        assert_eq!(p["env"], json!(["PATH=/bin", "A=2", "B=3"]));
        assert_eq!(p["cwd"], "/tmp");
        assert_eq!(p["user"], json!({"uid": 1000, "gid": 1001}));
        let rel = ExecConfig {
            working_dir: "tmp".into(),
            ..Default::default()
        };
        let e = apply(&mut p, &rel, None).unwrap_err();
        assert!(e.message.contains("absolute path"), "{}", e.message);
    }

    #[test]
    fn forgotten_with_their_container() {
        let execs = Execs::default();
        let exec = |cid: &str| Exec {
            container_id: cid.into(),
            pod_id: String::new(),
            config: ExecConfig::default(),
            process: Value::Null,
            running: false,
            started: false,
            exit_code: None,
            resizer: None,
        };
        let mut m = execs.map.lock().unwrap();
        m.insert("e1".into(), Arc::new(Mutex::new(exec("c1"))));
        m.insert("e2".into(), Arc::new(Mutex::new(exec("c2"))));
        drop(m);
        execs.forget_container("c1");
        assert!(execs.get("e1").is_err());
        assert!(execs.get("e2").is_ok());
        assert_eq!(new_id().len(), 64);
    }
}
