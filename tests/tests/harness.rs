//! Self-tests of the harness that do not need berthd: image builds, registries, pushes.

use anyhow::{Context, Result, ensure};
use berth_tests::{Registry, TestImage, finish, images, skip};

#[test]
fn images_build_deterministically() {
    if skip::skip_unless("images_build_deterministically", &[], false) {
        return;
    }
    let check = || -> Result<()> {
        for kind in TestImage::ALL {
            let a = images::build(kind)?;
            let b = images::build(kind)?;
            ensure!(a == b, "{kind:?} differs between builds");
            ensure!(a.layout.join("index.json").is_file());
        }
        let multi = images::build(TestImage::Multiarch)?;
        ensure!(multi.is_index && multi.platforms.len() == 2);
        let amd = multi.platform("amd64").context("amd64")?;
        let arm = multi.platform("arm64").context("arm64")?;
        ensure!(amd.config_digest != arm.config_digest);
        ensure!(amd.layer_digests.last() != arm.layer_digests.last());
        let user = images::build(TestImage::User)?;
        ensure!(user.amd64()?.user.as_deref() == Some("1000:1000"));
        let big = images::build(TestImage::Big)?;
        ensure!(
            big.amd64()?.size > 50_000_000,
            "big image is {} bytes",
            big.amd64()?.size
        );
        Ok(())
    };
    finish(check());
}

#[test]
fn plain_registry_takes_every_image() {
    if skip::skip_unless(
        "plain_registry_takes_every_image",
        &["docker-registry", "skopeo"],
        false,
    ) {
        return;
    }
    let check = || -> Result<()> {
        let reg = Registry::start()?;
        for kind in TestImage::ALL {
            let img = images::build(kind)?;
            let pushed = reg.push(&img)?;
            ensure!(pushed.digest.starts_with("sha256:"), "{pushed:?}");
            ensure!(
                pushed.id == img.amd64()?.config_digest,
                "{kind:?}: id {} vs built {}",
                pushed.id,
                img.amd64()?.config_digest
            );
            ensure!(!pushed.layers.is_empty());
            for l in &pushed.layers {
                ensure!(reg.blob_path(l).is_file(), "blob {l} not in storage");
            }
            if kind == TestImage::Busybox {
                let mt = pushed.manifest["mediaType"].as_str().unwrap_or("");
                ensure!(
                    mt.contains("docker"),
                    "busybox should be Docker schema 2, got {mt}"
                );
            } else if kind == TestImage::Multiarch {
                ensure!(pushed.digest == img.digest, "index digest changed on push");
            } else {
                ensure!(
                    pushed.digest == img.digest,
                    "{kind:?} manifest changed on push"
                );
            }
        }
        let bb = reg.push(&images::build(TestImage::Busybox)?)?;
        reg.corrupt_blob(&bb.layers[0])?;
        Ok(())
    };
    finish(check());
}

#[test]
fn secure_registry_requires_credentials() {
    if skip::skip_unless(
        "secure_registry_requires_credentials",
        &["docker-registry", "skopeo", "htpasswd"],
        false,
    ) {
        return;
    }
    let check = || -> Result<()> {
        let reg = Registry::start_secure()?;
        ensure!(reg.host.starts_with("localhost:"));
        ensure!(reg.ca_pem.as_ref().is_some_and(|p| p.is_file()));
        let pushed = reg.push(&images::build(TestImage::Busybox)?)?;
        // Anonymous reads are refused.
        let out = std::process::Command::new("skopeo")
            .args([
                "--insecure-policy",
                "inspect",
                "--raw",
                "--tls-verify=false",
            ])
            .arg(format!("docker://{}", pushed.reference))
            .output()?;
        ensure!(!out.status.success(), "anonymous inspect succeeded");
        // Verified TLS with the test CA works.
        let certs = reg.dir().join("certs.d");
        std::fs::create_dir_all(&certs)?;
        std::fs::copy(reg.ca_pem.as_ref().context("ca")?, certs.join("ca.crt"))?;
        let (u, p) = reg.creds.clone().context("creds")?;
        let out = std::process::Command::new("skopeo")
            .args(["--insecure-policy", "inspect", "--raw"])
            .arg(format!("--cert-dir={}", certs.display()))
            .arg(format!("--creds={u}:{p}"))
            .arg(format!("docker://{}", pushed.reference))
            .output()?;
        ensure!(
            out.status.success(),
            "verified inspect failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    };
    finish(check());
}

#[test]
fn leftover_processes_are_found_by_mark() {
    let check = || -> Result<()> {
        let mark = berth_tests::unique_id("selftest");
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & wait"])
            .env(berth_tests::MARK_VAR, &mark)
            .spawn()?;
        let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
        // sh and its grandchild sleep both carry the mark.
        while berth_tests::procs::marked(&mark).len() < 2 {
            ensure!(
                std::time::Instant::now() < until,
                "marked processes not found"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let err = berth_tests::procs::check_none_left(&mark, "selftest");
        let _ = child.wait();
        ensure!(err.is_err(), "leftovers not reported");
        // SIGKILL is delivered asynchronously: give the kernel a moment.
        ensure!(
            berth_tests::procs::wait_gone(&mark, std::time::Duration::from_secs(5)).is_empty(),
            "leftovers not killed"
        );
        Ok(())
    };
    finish(check());
}
