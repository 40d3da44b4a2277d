//! berthd's Docker networks, driven by the docker CLIs against a real berthd: named
//! networks (create, ls with filters, inspect, rm, prune), name resolution by container
//! name, alias and short id through the network's name server, isolation between networks,
//! the default bridge (no names, but links), `container:<x>`, connect/disconnect of a
//! running container, and nothing left behind (bridges, veths, nft tables).

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use berth_tests::docker::{CLI_20, Docker, busybox_env, http_get, leak_free, track_pod, unix_host};
use berth_tests::pods::PodTest;
use berth_tests::pods::leaks::{link_exists, nft_table_exists};
use berth_tests::{Registry, TestImage, free_port, images};
use berth_tests::{docker_cli_tests, docker_test};
/// The bridge of a named network: `bthn` + the id's first 11 characters.
fn bridge_of(id: &str) -> String {
    format!("bthn{}", &id[..11])
}

/// The network is gone from the host: no bridge, no nft table.
fn network_gone(id: &str) -> Result<()> {
    let br = bridge_of(id);
    ensure!(!link_exists(&br), "bridge {br} left behind");
    let table = format!("berth-{br}");
    ensure!(!nft_table_exists(&table), "nft table {table} left behind");
    Ok(())
}

/// `docker exec` until it succeeds (a server in the other container may still be starting).
fn exec_ok(docker: &Docker, args: &[&str]) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut full = vec!["exec"];
    full.extend_from_slice(args);
    loop {
        match docker.ok(&full) {
            Ok(out) => return Ok(out),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

fn ip_on(docker: &Docker, name: &str, net: &str) -> Result<String> {
    let ip = docker.ok(&[
        "inspect",
        "-f",
        &format!("{{{{.NetworkSettings.Networks.{net}.IPAddress}}}}"),
        name,
    ])?;
    let ip = ip.trim().to_string();
    ensure!(
        ip.parse::<std::net::Ipv4Addr>().is_ok(),
        "{name} on {net}: {ip:?}"
    );
    Ok(ip)
}

/// The exit code of `wget http://ip/` in container `from`, cut short after 3 seconds
/// (a dropped packet never answers).
fn wget_rc(docker: &Docker, from: &str, ip: &str) -> Result<String> {
    let script = format!("timeout 3 wget -q -O /dev/null http://{ip}/ >/dev/null 2>&1; echo $?");
    let out = docker.ok(&["exec", from, "sh", "-c", &script])?;
    Ok(out.trim().to_string())
}

/// A busybox httpd serving `text` on port 80.
fn web_cmd(text: &str) -> String {
    format!("mkdir -p /www && echo {text} > /www/index.html && exec httpd -f -p 80 -h /www")
}

docker_cli_tests!(walk, cli_28_networks, cli_20_networks);

/// Everything a person types about networks, with one CLI.
async fn walk(bin: &str) -> Result<()> {
    let (_reg, t, docker, repo) = busybox_env(bin).await?;
    docker.ok(&["pull", &repo])?;

    let ls = docker.ok(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"])?;
    for want in ["bridge bridge", "host host", "none null"] {
        ensure!(ls.lines().any(|l| l == want), "network ls: {ls:?}");
    }
    // An explicit subnet (this test's own), a label.
    let subnet = t.net.other_subnet();
    let id = docker.ok(&[
        "network", "create", "--subnet", &subnet, "--label", "team=a", "net1",
    ])?;
    let id = id.trim().to_string();
    ensure!(id.len() == 64, "network create printed {id:?}");
    let e = docker.fails(&["network", "create", "net1"])?;
    ensure!(e.contains("already exists"), "duplicate name: {e:?}");
    let i = docker.ok(&[
        "network",
        "inspect",
        "-f",
        "{{.Id}} {{.Driver}} {{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}} {{.Labels.team}}",
        "net1",
    ])?;
    let gw = subnet.replace(".0/24", ".1");
    ensure!(
        i.trim() == format!("{id} bridge {subnet} {gw} a"),
        "network inspect: {i:?}"
    );
    ensure!(link_exists(&bridge_of(&id)), "no bridge for net1");
    for f in ["label=team=a", "type=custom", "name=net", "driver=bridge"] {
        let ls = docker.ok(&["network", "ls", "--filter", f, "--format", "{{.Name}}"])?;
        ensure!(
            ls.lines().any(|l| l == "net1") && (f == "driver=bridge" || ls.lines().count() == 1),
            "network ls --filter {f}: {ls:?}"
        );
    }
    let ls = docker.ok(&["network", "ls", "--filter", "type=builtin", "-q"])?;
    ensure!(ls.lines().count() == 3, "builtin networks: {ls:?}");

    // Two containers on net1 find each other by name, alias and short id.
    let port = free_port()?;
    let publish = format!("{port}:80");
    let web = docker.ok(&[
        "run",
        "-d",
        "--network",
        "net1",
        "--network-alias",
        "www",
        "-p",
        &publish,
        "--name",
        "web",
        &repo,
        "sh",
        "-c",
        &web_cmd("hello-net1"),
    ])?;
    track_pod(&t, &docker, "web")?;
    docker.ok(&[
        "run",
        "-d",
        "--network",
        "net1",
        "--name",
        "client",
        &repo,
        "sleep",
        "1000",
    ])?;
    track_pod(&t, &docker, "client")?;
    let web_ip = ip_on(&docker, "web", "net1")?;
    let resolv = exec_ok(&docker, &["client", "cat", "/etc/resolv.conf"])?;
    ensure!(
        resolv.contains(&format!("nameserver {gw}")),
        "resolv.conf on net1: {resolv:?}"
    );
    let short = &web.trim()[..12];
    for name in ["web", "www", short] {
        let out = exec_ok(&docker, &["client", "nslookup", name])?;
        ensure!(out.contains(&web_ip), "nslookup {name}: {out:?}");
    }
    let page = exec_ok(&docker, &["client", "wget", "-q", "-O-", "http://www/"])?;
    ensure!(page.trim() == "hello-net1", "wget by alias: {page:?}");
    ensure!(
        http_get(port)?.contains("hello-net1"),
        "published port on net1"
    );
    // A link on a named network: one more name, for the linking container only.
    docker.ok(&[
        "run",
        "-d",
        "--network",
        "net1",
        "--link",
        "web:webby",
        "--name",
        "lk",
        &repo,
        "sleep",
        "1000",
    ])?;
    track_pod(&t, &docker, "lk")?;
    let page = exec_ok(&docker, &["lk", "wget", "-q", "-O-", "http://webby/"])?;
    ensure!(page.trim() == "hello-net1", "a link on net1: {page:?}");
    docker.ok(&["rm", "-f", "lk"])?;
    // Other names go to the node's resolvers: an answer (NXDOMAIN or SERVFAIL when the
    // node has none), not silence.
    let out = docker.output(&["exec", "client", "nslookup", "no-such-name.invalid"])?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(text.contains("can't find"), "a forwarded name: {text:?}");
    let i = docker.ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.net1.Gateway}} {{.NetworkSettings.Networks.net1.NetworkID}} {{.NetworkSettings.Networks.net1.MacAddress}}",
        "web",
    ])?;
    ensure!(
        i.trim().starts_with(&format!("{gw} {id} 02:42:")),
        "container inspect on net1: {i:?}"
    );
    let members = docker.ok(&[
        "network",
        "inspect",
        "-f",
        "{{range .Containers}}{{.Name}} {{end}}",
        "net1",
    ])?;
    ensure!(
        members.contains("web") && members.contains("client"),
        "net1's containers: {members:?}"
    );
    let ps = docker.ok(&["ps", "--filter", "network=net1", "--format", "{{.Names}}"])?;
    let mut ps: Vec<&str> = ps.lines().collect();
    ps.sort();
    ensure!(ps == ["client", "web"], "ps --filter network=net1: {ps:?}");
    let e = docker.fails(&["network", "rm", "net1"])?;
    ensure!(
        e.contains("has active endpoints"),
        "rm with endpoints: {e:?}"
    );

    // The default bridge: no names, but links; and isolated from net1.
    docker.ok(&[
        "run",
        "-d",
        "--name",
        "b1",
        &repo,
        "sh",
        "-c",
        &web_cmd("hello-bridge"),
    ])?;
    track_pod(&t, &docker, "b1")?;
    docker.ok(&["run", "-d", "--name", "b2", &repo, "sleep", "1000"])?;
    track_pod(&t, &docker, "b2")?;
    let b1_ip = ip_on(&docker, "b1", "bridge")?;
    let out = docker.output(&["exec", "b2", "nslookup", "b1"])?;
    ensure!(
        !String::from_utf8_lossy(&out.stdout).contains(&b1_ip),
        "the default bridge resolved b1: {out:?}"
    );
    docker.ok(&[
        "run",
        "-d",
        "--link",
        "b1:linked",
        "--name",
        "b3",
        &repo,
        "sleep",
        "1000",
    ])?;
    track_pod(&t, &docker, "b3")?;
    let hosts = exec_ok(&docker, &["b3", "cat", "/etc/hosts"])?;
    ensure!(
        hosts
            .lines()
            .any(|l| l.starts_with(&b1_ip) && l.contains("linked") && l.contains("b1")),
        "hosts with a link: {hosts:?}"
    );
    let page = exec_ok(&docker, &["b3", "wget", "-q", "-O-", "http://linked/"])?;
    ensure!(
        page.trim() == "hello-bridge",
        "wget through a link: {page:?}"
    );
    let rc = wget_rc(&docker, "client", &b1_ip)?;
    ensure!(rc != "0", "net1 reached the default bridge: {rc}");

    // connect/disconnect a running container: eth1 comes and goes.
    docker.ok(&["network", "connect", "--alias", "third", "net1", "b3"])?;
    let b3_ip = ip_on(&docker, "b3", "net1")?;
    let addrs = exec_ok(&docker, &["b3", "ip", "-o", "-4", "addr", "show", "eth1"])?;
    ensure!(addrs.contains(&b3_ip), "eth1 after connect: {addrs:?}");
    let page = exec_ok(
        &docker,
        &["b3", "wget", "-q", "-O-", &format!("http://{web_ip}/")],
    )?;
    ensure!(page.trim() == "hello-net1", "b3 on net1: {page:?}");
    let out = exec_ok(&docker, &["client", "nslookup", "third"])?;
    ensure!(out.contains(&b3_ip), "alias given at connect: {out:?}");
    docker.ok(&["network", "disconnect", "net1", "b3"])?;
    let out = docker.output(&["exec", "b3", "ip", "link", "show", "eth1"])?;
    ensure!(!out.status.success(), "eth1 after disconnect: {out:?}");
    let nets = docker.ok(&[
        "inspect",
        "-f",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
        "b3",
    ])?;
    ensure!(nets.trim() == "bridge", "b3's networks: {nets:?}");

    // container:<x> shares x's interfaces; x must be running.
    docker.ok(&[
        "run",
        "-d",
        "--net",
        "container:web",
        "--name",
        "side",
        &repo,
        "sleep",
        "1000",
    ])?;
    track_pod(&t, &docker, "side")?;
    let addrs = exec_ok(&docker, &["side", "ip", "-o", "-4", "addr", "show", "eth0"])?;
    ensure!(addrs.contains(&web_ip), "container:web's eth0: {addrs:?}");
    let page = exec_ok(&docker, &["side", "wget", "-q", "-O-", "http://127.0.0.1/"])?;
    ensure!(
        page.trim() == "hello-net1",
        "web's server on side's loopback: {page:?}"
    );
    docker.ok(&["create", "--name", "idle", &repo, "true"])?;
    let out = docker.output(&[
        "run",
        "-d",
        "--net",
        "container:idle",
        "--name",
        "nope",
        &repo,
        "true",
    ])?;
    ensure!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("non running container"),
        "container:<stopped>: {out:?}"
    );

    // A subnet picked by berth; an internal network, isolated from the others.
    let id2 = docker.ok(&["network", "create", "--internal", "net2"])?;
    let id2 = id2.trim().to_string();
    let s = docker.ok(&[
        "network",
        "inspect",
        "-f",
        "{{range .IPAM.Config}}{{.Subnet}}{{end}} {{.Internal}}",
        "net2",
    ])?;
    ensure!(
        (s.starts_with("172.") || s.starts_with("192.168.")) && s.trim().ends_with("true"),
        "picked subnet: {s:?}"
    );
    docker.ok(&[
        "run",
        "-d",
        "--network",
        "net2",
        "--name",
        "iso",
        &repo,
        "sleep",
        "1000",
    ])?;
    track_pod(&t, &docker, "iso")?;
    for target in [&web_ip, &b1_ip] {
        let rc = wget_rc(&docker, "iso", target)?;
        ensure!(rc != "0", "net2 reached {target}: {rc}");
    }
    let dangling = docker.ok(&[
        "network",
        "ls",
        "--filter",
        "dangling=true",
        "--format",
        "{{.Name}}",
    ])?;
    ensure!(
        dangling.trim().is_empty(),
        "dangling while used: {dangling:?}"
    );

    docker.ok(&[
        "rm", "-f", "side", "web", "client", "b1", "b2", "b3", "idle", "iso",
    ])?;
    docker.ok(&["network", "rm", "net1"])?;
    network_gone(&id)?;
    let dangling = docker.ok(&[
        "network",
        "ls",
        "--filter",
        "dangling=true",
        "--format",
        "{{.Name}}",
    ])?;
    ensure!(dangling.trim() == "net2", "dangling: {dangling:?}");
    let pruned = docker.ok(&["network", "prune", "-f"])?;
    ensure!(pruned.contains("net2"), "prune: {pruned:?}");
    network_gone(&id2)?;
    let ls = docker.ok(&["network", "ls", "-q"])?;
    ensure!(ls.lines().count() == 3, "after prune: {ls:?}");
    leak_free(t).await
}

docker_test!(networks_survive_restart, survive_restart, [CLI_20]);

/// A network and its containers outlive a berthd restart: names still resolve.
async fn survive_restart() -> Result<()> {
    let reg = Registry::start()?;
    reg.push_as(&images::build(TestImage::Busybox)?, "busybox", "latest")?;
    let mut t = PodTest::start().await?;
    let docker = Docker::new(CLI_20, unix_host(&t.d))?;
    let repo = format!("{}/busybox", reg.host);
    docker.ok(&["pull", &repo])?;
    let subnet = t.net.other_subnet();
    let id = docker.ok(&["network", "create", "--subnet", &subnet, "keepnet"])?;
    let id = id.trim().to_string();
    docker.ok(&[
        "run",
        "-d",
        "--network",
        "keepnet",
        "--name",
        "web",
        &repo,
        "sh",
        "-c",
        &web_cmd("still-here"),
    ])?;
    track_pod(&t, &docker, "web")?;
    docker.ok(&[
        "run",
        "-d",
        "--network",
        "keepnet",
        "--name",
        "client",
        &repo,
        "sleep",
        "1000",
    ])?;
    track_pod(&t, &docker, "client")?;
    exec_ok(&docker, &["client", "wget", "-q", "-O-", "http://web/"])?;

    t.d.restart().await?;
    let docker = Docker::new(CLI_20, unix_host(&t.d))?;
    let ls = docker.ok(&[
        "network",
        "ls",
        "--filter",
        "name=keepnet",
        "-q",
        "--no-trunc",
    ])?;
    ensure!(ls.trim() == id, "network after the restart: {ls:?}");
    let page = exec_ok(&docker, &["client", "wget", "-q", "-O-", "http://web/"])?;
    ensure!(
        page.trim() == "still-here",
        "by name after the restart: {page:?}"
    );
    // A stopped container has no endpoint: its name is unknown until it runs again.
    docker.ok(&["stop", "-t", "1", "web"])?;
    let out = docker.output(&["exec", "client", "nslookup", "web"])?;
    ensure!(
        !out.status.success(),
        "a stopped container resolved: {out:?}"
    );
    docker.ok(&["start", "web"])?;
    let page = exec_ok(&docker, &["client", "wget", "-q", "-O-", "http://web/"])?;
    ensure!(page.trim() == "still-here", "started again: {page:?}");
    docker.ok(&["rm", "-f", "web", "client"])?;
    docker.ok(&["network", "rm", "keepnet"])?;
    network_gone(&id)?;
    leak_free(t).await
}

const COMPOSE: &str = "/usr/bin/docker-compose";

docker_test!(compose_project_network, compose_project, [COMPOSE]);

/// docker-compose 1.29 (Debian's): two services on the project's network reach each other
/// by service name; `down` removes the containers and the network.
async fn compose_project() -> Result<()> {
    let (_reg, t, docker, repo) = busybox_env(CLI_20).await?;
    docker.ok(&["pull", &repo])?;
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("docker-compose.yml"),
        format!(
            "version: \"2.4\"\nservices:\n  web:\n    image: {repo}\n    command: [\"sh\", \"-c\", \"{}\"]\n  client:\n    image: {repo}\n    command: [\"sleep\", \"1000\"]\n    depends_on: [web]\n",
            web_cmd("hello-compose")
        ),
    )?;
    let compose = |args: &[&str]| -> Result<String> {
        let out = std::process::Command::new(COMPOSE)
            .args(["-p", "bnet"])
            .args(args)
            .current_dir(dir.path())
            .env("DOCKER_HOST", unix_host(&t.d))
            .stdin(std::process::Stdio::null())
            .output()?;
        ensure!(
            out.status.success(),
            "docker-compose {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    compose(&["up", "-d"])?;
    track_pod(&t, &docker, "bnet_web_1")?;
    track_pod(&t, &docker, "bnet_client_1")?;
    let id = docker.ok(&["network", "inspect", "-f", "{{.Id}}", "bnet_default"])?;
    let id = id.trim().to_string();
    let label = docker.ok(&[
        "network",
        "inspect",
        "-f",
        "{{index .Labels \"com.docker.compose.project\"}}",
        "bnet_default",
    ])?;
    ensure!(label.trim() == "bnet", "project label: {label:?}");
    let page = exec_ok(
        &docker,
        &["bnet_client_1", "wget", "-q", "-O-", "http://web/"],
    )?;
    ensure!(page.trim() == "hello-compose", "client → web: {page:?}");
    let out = exec_ok(&docker, &["bnet_web_1", "nslookup", "client"])?;
    let client_ip = ip_on(&docker, "bnet_client_1", "bnet_default")?;
    ensure!(out.contains(&client_ip), "web → client: {out:?}");
    compose(&["down"])?;
    network_gone(&id)?;
    let ls = docker.ok(&["network", "ls", "-q"])?;
    ensure!(ls.lines().count() == 3, "after down: {ls:?}");
    leak_free(t).await
}

docker_test!(python_sdk_networks, python_sdk_networks_body, ["python3"]);

/// The Python SDK (PyPI docker 7.x) on the network endpoints (sdk_networks.py).
async fn python_sdk_networks_body() -> Result<()> {
    if !berth_tests::docker::python_sdk_present()? {
        println!("SKIP python_sdk_networks: PyPI docker 7.x missing (run scripts/install-deps.sh)");
        return Ok(());
    }
    let reg = Registry::start()?;
    reg.push_as(&images::build(TestImage::Busybox)?, "busybox", "latest")?;
    let t = PodTest::start().await?;
    let repo = format!("{}/busybox", reg.host);
    let docker = Docker::new(CLI_20, unix_host(&t.d))?;
    docker.ok(&["pull", &repo])?;
    let subnet = t.net.other_subnet();
    let v = berth_tests::docker::run_sdk_script(
        "sdk_networks.py",
        &[&unix_host(&t.d), &format!("{repo}:latest"), &subnet],
    )?;
    for p in v["pods"].as_array().into_iter().flatten() {
        if let Some(p) = p.as_str() {
            t.track(p);
        }
    }
    let want = serde_json::json!({
        "id_len": 64,
        "subnet": subnet,
        "by_label": ["sdknet"],
        "duplicate": 409,
        "members": ["sdkother", "sdkserver"],
        "other_networks": ["bridge", "sdknet"],
        "other_aliases_have_buddy": true,
        "buddy_resolves": true,
        "remove_in_use": 403,
        "other_networks_after": ["bridge"],
        "pruned": ["sdkspare"],
        "left": ["bridge", "host", "none"],
    });
    for (k, w) in want.as_object().into_iter().flatten() {
        ensure!(&v[k] == w, "{k}: got {}, want {w} (all: {v})", v[k]);
    }
    leak_free(t).await
}
