//! `docker cp` both ways against berthd, with both docker CLIs: files and directories into
//! and out of a running container, into a bind-mounted directory, into a stopped
//! container, tar streams through `-`, and the errors for paths that are not there.

use anyhow::{Result, ensure};
use berth_tests::docker::{busybox_env, leak_free, track_pod};
use berth_tests::docker_cli_tests;

docker_cli_tests!(cp_walk, cli_28_cp, cli_20_cp);

async fn cp_walk(bin: &str) -> Result<()> {
    let (_reg, t, docker, repo) = busybox_env(bin).await?;
    let host = tempfile::tempdir()?;
    let mnt = tempfile::tempdir()?;
    let bind = format!("{}:/mnt", mnt.path().display());
    docker.ok(&[
        "run", "-d", "--name", "box", "-v", &bind, &repo, "sleep", "1000",
    ])?;
    track_pod(&t, &docker, "box")?;

    // A file into an existing directory, then a directory under a new name.
    let f = host.path().join("note.txt");
    std::fs::write(&f, "written on the node\n")?;
    docker.ok(&["cp", &f.display().to_string(), "box:/tmp/"])?;
    let got = docker.ok(&["exec", "box", "cat", "/tmp/note.txt"])?;
    ensure!(got == "written on the node\n", "file copied in: {got:?}");
    let d = host.path().join("tree");
    std::fs::create_dir_all(d.join("sub"))?;
    std::fs::write(d.join("sub/deep.txt"), "deep\n")?;
    docker.ok(&["cp", &d.display().to_string(), "box:/tmp/copied"])?;
    let got = docker.ok(&["exec", "box", "cat", "/tmp/copied/sub/deep.txt"])?;
    ensure!(
        got == "deep\n",
        "directory copied in under a new name: {got:?}"
    );

    // Into the bind mount: the node directory gets it.
    docker.ok(&["cp", &f.display().to_string(), "box:/mnt/in-mount.txt"])?;
    ensure!(
        std::fs::read_to_string(mnt.path().join("in-mount.txt"))? == "written on the node\n",
        "a copy into a mounted directory lands in its source"
    );

    // Out: a file, a directory, through a symlink's directory.
    docker.ok(&[
        "exec",
        "box",
        "sh",
        "-c",
        "mkdir -p /srv/out/a && echo made > /srv/out/a/f && ln -s /srv/out /srv/link",
    ])?;
    let dest = host.path().join("hostname");
    docker.ok(&["cp", "box:/etc/hostname", &dest.display().to_string()])?;
    let want = docker.ok(&["exec", "box", "cat", "/etc/hostname"])?;
    ensure!(
        std::fs::read_to_string(&dest)? == want,
        "hostname copied out"
    );
    let out = host.path().join("outdir");
    docker.ok(&["cp", "box:/srv/out", &out.display().to_string()])?;
    ensure!(
        std::fs::read_to_string(out.join("a/f"))? == "made\n",
        "directory copied out"
    );
    let via = host.path().join("via");
    docker.ok(&["cp", "box:/srv/link/a/f", &via.display().to_string()])?;
    ensure!(
        std::fs::read_to_string(&via)? == "made\n",
        "through a symlinked dir"
    );

    // A tar stream on stdin and stdout.
    let mut tar_bytes = Vec::new();
    {
        let mut b = tar::Builder::new(&mut tar_bytes);
        let mut h = tar::Header::new_gnu();
        h.set_size(6);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "streamed.txt", &b"piped\n"[..])?;
        b.finish()?;
    }
    let o = docker.output_stdin(&["cp", "-", "box:/tmp"], &tar_bytes)?;
    ensure!(o.status.success(), "cp - box:/tmp: {o:?}");
    let got = docker.ok(&["exec", "box", "cat", "/tmp/streamed.txt"])?;
    ensure!(got == "piped\n", "tar from stdin: {got:?}");
    let o = docker.output(&["cp", "box:/tmp/streamed.txt", "-"])?;
    let mut a = tar::Archive::new(&o.stdout[..]);
    let names: Vec<String> = a
        .entries()?
        .filter_map(|e| e.ok()?.path().ok().map(|p| p.display().to_string()))
        .collect();
    ensure!(names == ["streamed.txt"], "tar to stdout: {names:?}");

    // A stopped container still takes and gives files.
    docker.ok(&["stop", "-t", "1", "box"])?;
    docker.ok(&[
        "cp",
        &f.display().to_string(),
        "box:/root/while-stopped.txt",
    ])?;
    let back = host.path().join("back.txt");
    docker.ok(&[
        "cp",
        "box:/root/while-stopped.txt",
        &back.display().to_string(),
    ])?;
    ensure!(
        std::fs::read_to_string(&back)? == "written on the node\n",
        "stopped container"
    );
    docker.ok(&["start", "box"])?;
    let got = docker.ok(&["exec", "box", "cat", "/root/while-stopped.txt"])?;
    ensure!(
        got == "written on the node\n",
        "kept after the start: {got:?}"
    );

    // Errors.
    let e = docker.fails(&["cp", "box:/nope", &host.path().display().to_string()])?;
    ensure!(
        e.contains("Could not find the file /nope in container box")
            || e.contains("No such container:path"),
        "missing source: {e:?}"
    );
    let e = docker.fails(&["cp", &f.display().to_string(), "ghost:/tmp"])?;
    ensure!(e.contains("No such container"), "unknown container: {e:?}");

    docker.ok(&["rm", "-f", "box"])?;
    leak_free(t).await
}
