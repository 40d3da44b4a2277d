//! ImageService over berthd's socket, against real registries on 127.0.0.1.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use berth_tests::client::{self, auth};
use berth_tests::{Berthd, BerthdOptions, Registry, SlowProxy, TestImage, finish, images, skip};

/// Declares a test that needs root, docker-registry and skopeo, and runs `body`.
macro_rules! image_test {
    ($name:ident, $body:ident) => {
        #[tokio::test]
        async fn $name() {
            if skip::skip_unless(
                stringify!($name),
                &["docker-registry", "skopeo", "htpasswd"],
                true,
            ) {
                return;
            }
            finish($body().await);
        }
    };
}

fn push(reg: &Registry, kind: TestImage) -> Result<berth_tests::PushedImage> {
    reg.push(&images::build(kind)?)
}

/// Registry + pushed image + berthd with `extra` config.
async fn setup(
    kind: TestImage,
    extra: &str,
) -> Result<(Registry, berth_tests::PushedImage, Berthd)> {
    let reg = Registry::start()?;
    let img = push(&reg, kind)?;
    let d = Berthd::start_with(BerthdOptions::toml(extra)).await?;
    Ok((reg, img, d))
}

image_test!(pull_by_tag_and_by_digest, pull_by_tag_and_by_digest_body);
async fn pull_by_tag_and_by_digest_body() -> Result<()> {
    let (_reg, img, d) = setup(TestImage::Busybox, "").await?;
    let mut c = d.images().await?;
    ensure!(
        client::list(&mut c, None).await?.is_empty(),
        "fresh berthd lists images"
    );
    let id = client::pull(&mut c, &img.reference, None).await?;
    ensure!(id == img.id, "pull answered {id}, image id is {}", img.id);
    let st = client::find(&mut c, &img.reference)
        .await?
        .context("no status after pull")?;
    ensure!(st.id == img.id);
    ensure!(
        st.repo_tags.contains(&img.reference),
        "repo_tags {:?}",
        st.repo_tags
    );
    ensure!(
        st.repo_digests.contains(&img.by_digest()),
        "repo_digests {:?} lack {}",
        st.repo_digests,
        img.by_digest()
    );
    ensure!(st.size > 0);
    ensure!(
        st.uid.is_none() && st.username.is_empty(),
        "image without User has uid {:?}",
        st.uid
    );

    let id2 = client::pull(&mut c, &img.by_digest(), None).await?;
    ensure!(id2 == img.id, "pull by digest answered {id2}");
    let by_digest = client::find(&mut c, &img.by_digest())
        .await?
        .context("no status by digest")?;
    ensure!(by_digest.id == img.id);
    let by_id = client::find(&mut c, &img.id)
        .await?
        .context("no status by id")?;
    ensure!(by_id.id == img.id);
    let all = client::list(&mut c, None).await?;
    ensure!(all.len() == 1, "one image expected, got {all:?}");
    // A second pull of a complete image is a no-op answering the same id.
    ensure!(client::pull(&mut c, &img.reference, None).await? == img.id);
    Ok(())
}

image_test!(pull_zstd_image, pull_zstd_image_body);
async fn pull_zstd_image_body() -> Result<()> {
    let (_reg, img, d) = setup(TestImage::Zstd, "").await?;
    let mut c = d.images().await?;
    let id = client::pull(&mut c, &img.reference, None).await?;
    ensure!(id == img.id, "pull answered {id}, image id is {}", img.id);
    let resp = client::status(&mut c, &img.reference, true).await?;
    let info = client::verbose_info(&resp).context("verbose info missing")?;
    let want: Vec<&String> = img.built.amd64()?.diff_ids.iter().collect();
    let got: Vec<String> = serde_json::from_value(info["diffIDs"].clone()).context("diffIDs")?;
    ensure!(
        got.iter().collect::<Vec<_>>() == want,
        "diffIDs {got:?} vs {want:?}"
    );
    Ok(())
}

image_test!(multiarch_picks_amd64, multiarch_picks_amd64_body);
async fn multiarch_picks_amd64_body() -> Result<()> {
    let (_reg, img, d) = setup(TestImage::Multiarch, "").await?;
    let amd = img.built.platform("amd64").context("amd64")?;
    let arm = img.built.platform("arm64").context("arm64")?;
    let mut c = d.images().await?;
    let id = client::pull(&mut c, &img.reference, None).await?;
    ensure!(
        id == amd.config_digest,
        "picked {id}; amd64 is {}, arm64 is {}",
        amd.config_digest,
        arm.config_digest
    );
    let resp = client::status(&mut c, &img.reference, true).await?;
    let st = resp.image.clone().context("no status")?;
    ensure!(st.id != arm.config_digest);
    let info = client::verbose_info(&resp).context("verbose info missing")?;
    ensure!(
        info["imageSpec"]["architecture"] == "amd64",
        "config: {}",
        info["imageSpec"]
    );
    Ok(())
}

image_test!(
    multiarch_follows_configured_platform,
    multiarch_follows_configured_platform_body
);
async fn multiarch_follows_configured_platform_body() -> Result<()> {
    let (_reg, img, d) = setup(
        TestImage::Multiarch,
        "[image]\nplatform = \"linux/arm64/v8\"\n",
    )
    .await?;
    let arm = img.built.platform("arm64").context("arm64")?;
    let mut c = d.images().await?;
    let id = client::pull(&mut c, &img.reference, None).await?;
    ensure!(
        id == arm.config_digest,
        "picked {id}; arm64 is {}",
        arm.config_digest
    );
    Ok(())
}

image_test!(whiteout_image_pulls, whiteout_image_pulls_body);
async fn whiteout_image_pulls_body() -> Result<()> {
    let (_reg, img, d) = setup(TestImage::Whiteout, "").await?;
    let mut c = d.images().await?;
    ensure!(client::pull(&mut c, &img.reference, None).await? == img.id);
    let resp = client::status(&mut c, &img.reference, true).await?;
    let info = client::verbose_info(&resp).context("verbose info missing")?;
    let n = info["diffIDs"].as_array().map(|a| a.len()).unwrap_or(0);
    ensure!(
        n == 4,
        "whiteout image has 4 layers, status shows {n}: {info}"
    );
    Ok(())
}

image_test!(mirror_serves_unreachable_registry, mirror_body);
async fn mirror_body() -> Result<()> {
    let reg = Registry::start()?;
    let img = push(&reg, TestImage::Busybox)?;
    let dead = berth_tests::free_port()?;
    let extra = format!(
        "[registries.\"127.0.0.1:{dead}\"]\nmirrors = [\"http://{}\"]\n",
        reg.host
    );
    let d = Berthd::start_with(BerthdOptions::toml(extra)).await?;
    let mut c = d.images().await?;
    let name = format!("127.0.0.1:{dead}/busybox:1");
    let id = client::pull(&mut c, &name, None).await?;
    ensure!(id == img.id, "mirror pull answered {id}, want {}", img.id);
    let st = client::find(&mut c, &name).await?.context("no status")?;
    ensure!(
        st.repo_tags.contains(&name),
        "repo_tags {:?} lack {name}",
        st.repo_tags
    );
    Ok(())
}

fn secure_config(reg: &Registry) -> Result<String> {
    let ca = reg.ca_pem.as_ref().context("registry without CA")?;
    Ok(format!(
        "[registries.\"{}\"]\nca_file = {:?}\n",
        reg.host,
        ca.display().to_string()
    ))
}

image_test!(auth_tls_registry_checks_credentials, auth_tls_body);
async fn auth_tls_body() -> Result<()> {
    let reg = Registry::start_secure()?;
    let img = push(&reg, TestImage::Busybox)?;
    let (user, pass) = reg.creds.clone().context("creds")?;
    let d = Berthd::start_with(BerthdOptions::toml(secure_config(&reg)?)).await?;
    let mut c = d.images().await?;

    let wrong = client::pull(
        &mut c,
        &img.reference,
        Some(auth(&reg.host, &user, "wrong-password")),
    )
    .await;
    let e = match wrong {
        Ok(id) => bail!("pull with a wrong password succeeded ({id})"),
        Err(e) => e,
    };
    eprintln!("wrong password -> {:?}: {}", e.code(), e.message());
    let msg = e.message().to_lowercase();
    ensure!(
        msg.contains("unauthorized") || msg.contains("credential") || msg.contains("authenticat"),
        "wrong-password error does not say so: {:?} {}",
        e.code(),
        e.message()
    );
    ensure!(
        client::list(&mut c, None).await?.is_empty(),
        "failed pull left an image"
    );

    let none = client::pull(&mut c, &img.reference, None).await;
    match &none {
        Ok(id) => bail!("pull without credentials succeeded ({id})"),
        Err(e) => eprintln!("no credentials -> {:?}: {}", e.code(), e.message()),
    }
    ensure!(
        client::list(&mut c, None).await?.is_empty(),
        "failed pull left an image"
    );

    let id = client::pull(&mut c, &img.reference, Some(auth(&reg.host, &user, &pass)))
        .await
        .context("pull with the right credentials over TLS")?;
    ensure!(id == img.id);
    ensure!(client::find(&mut c, &img.reference).await?.is_some());
    Ok(())
}

image_test!(auth_from_docker_config_file, auth_file_body);
async fn auth_file_body() -> Result<()> {
    let reg = Registry::start_secure()?;
    let img = push(&reg, TestImage::Busybox)?;
    let auth_file = reg.dir().join("docker-config.json");
    reg.write_docker_config(&auth_file, None)?;
    let extra = format!(
        "{}[image]\nauth_file = {:?}\n",
        secure_config(&reg)?,
        auth_file.display().to_string()
    );
    let d = Berthd::start_with(BerthdOptions::toml(extra)).await?;
    let mut c = d.images().await?;
    let id = client::pull(&mut c, &img.reference, None)
        .await
        .context("pull with auth_file credentials")?;
    ensure!(id == img.id);
    Ok(())
}

image_test!(corrupted_blob_is_rejected, corrupted_blob_body);
async fn corrupted_blob_body() -> Result<()> {
    let (reg, img, d) = setup(TestImage::Busybox, "").await?;
    let bad = img.layers.first().context("no layers")?.clone();
    reg.corrupt_blob(&bad)?;
    let mut c = d.images().await?;
    let e = match client::pull(&mut c, &img.reference, None).await {
        Ok(id) => bail!("pull of a corrupted image succeeded ({id})"),
        Err(e) => e,
    };
    eprintln!("corrupted blob -> {:?}: {}", e.code(), e.message());
    let hex = bad.trim_start_matches("sha256:");
    ensure!(
        e.message().contains(hex),
        "error does not name the bad blob {bad}: {}",
        e.message()
    );
    ensure!(
        client::list(&mut c, None).await?.is_empty(),
        "corrupted image listed"
    );
    ensure!(client::find(&mut c, &img.reference).await?.is_none());
    Ok(())
}

image_test!(list_filter_and_status, list_status_body);
async fn list_status_body() -> Result<()> {
    let reg = Registry::start()?;
    let bb = push(&reg, TestImage::Busybox)?;
    let user = push(&reg, TestImage::User)?;
    let d = Berthd::start().await?;
    let mut c = d.images().await?;
    client::pull(&mut c, &bb.reference, None).await?;
    client::pull(&mut c, &user.reference, None).await?;

    let all = client::list(&mut c, None).await?;
    ensure!(all.len() == 2, "two images expected: {all:?}");
    let only = client::list(&mut c, Some(&user.reference)).await?;
    ensure!(
        only.len() == 1 && only[0].id == user.id,
        "filter by tag: {only:?}"
    );
    let only = client::list(&mut c, Some(&bb.id)).await?;
    ensure!(
        only.len() == 1 && only[0].id == bb.id,
        "filter by id: {only:?}"
    );
    let none = client::list(&mut c, Some(&reg.reference("nothere", "1"))).await?;
    ensure!(none.is_empty(), "filter for an absent image: {none:?}");

    let resp = client::status(&mut c, &user.reference, true).await?;
    let st = resp.image.clone().context("no status for user image")?;
    ensure!(
        st.uid.as_ref().map(|u| u.value) == Some(1000),
        "uid {:?}",
        st.uid
    );
    ensure!(st.size > 0);
    ensure!(
        st.repo_tags == vec![user.reference.clone()],
        "repo_tags {:?}",
        st.repo_tags
    );
    ensure!(
        st.repo_digests.contains(&user.by_digest()),
        "repo_digests {:?}",
        st.repo_digests
    );
    let info = client::verbose_info(&resp).context("verbose info missing")?;
    ensure!(
        info["imageSpec"]["config"]["User"] == "1000:1000",
        "config: {}",
        info["imageSpec"]
    );
    ensure!(info["id"] == user.id.as_str());

    let absent = client::status(&mut c, &reg.reference("nothere", "1"), false).await?;
    ensure!(absent.image.is_none(), "absent image has a status");
    Ok(())
}

image_test!(remove_by_tag_id_and_digest, remove_body);
async fn remove_body() -> Result<()> {
    let reg = Registry::start()?;
    let built = images::build(TestImage::Busybox)?;
    let img = reg.push(&built)?;
    let second = reg.push_as(&built, "busybox", "2")?;
    let d = Berthd::start().await?;
    let mut c = d.images().await?;

    // By tag: the image goes with its last tag.
    client::pull(&mut c, &img.reference, None).await?;
    client::pull(&mut c, &second.reference, None).await?;
    client::remove(&mut c, &img.reference).await?;
    let st = client::find(&mut c, &img.id)
        .await?
        .context("image gone although tag :2 remains")?;
    ensure!(
        st.repo_tags == vec![second.reference.clone()],
        "repo_tags {:?}",
        st.repo_tags
    );
    client::remove(&mut c, &second.reference).await?;
    ensure!(
        client::list(&mut c, None).await?.is_empty(),
        "image listed after removing its tags"
    );

    // By id.
    client::pull(&mut c, &img.reference, None).await?;
    client::remove(&mut c, &img.id).await?;
    ensure!(
        client::list(&mut c, None).await?.is_empty(),
        "image listed after removal by id"
    );

    // By digest.
    client::pull(&mut c, &img.reference, None).await?;
    client::remove(&mut c, &img.by_digest()).await?;
    ensure!(
        client::list(&mut c, None).await?.is_empty(),
        "image listed after removal by digest"
    );

    // Idempotent.
    client::remove(&mut c, &img.reference)
        .await
        .context("removing an absent image")?;
    client::remove(&mut c, &img.id)
        .await
        .context("removing an absent id")?;
    // And the content is really gone: a new pull works.
    ensure!(client::pull(&mut c, &img.reference, None).await? == img.id);
    Ok(())
}

image_test!(image_fs_info_reports_usage, fs_info_body);
async fn fs_info_body() -> Result<()> {
    let (_reg, img, d) = setup(TestImage::Busybox, "").await?;
    let mut c = d.images().await?;
    client::pull(&mut c, &img.reference, None).await?;
    let info = client::fs_info(&mut c).await?;
    let fs = info
        .image_filesystems
        .first()
        .context("no image filesystem")?;
    let bytes = fs.used_bytes.as_ref().map(|v| v.value).unwrap_or(0);
    let inodes = fs.inodes_used.as_ref().map(|v| v.value).unwrap_or(0);
    ensure!(
        bytes > 0 && inodes > 0,
        "usage {bytes} bytes / {inodes} inodes"
    );
    let mp = fs
        .fs_id
        .as_ref()
        .map(|f| f.mountpoint.clone())
        .unwrap_or_default();
    ensure!(!mp.is_empty(), "empty mountpoint");
    Ok(())
}

image_test!(images_survive_restart, restart_body);
async fn restart_body() -> Result<()> {
    let reg = Registry::start()?;
    let bb = push(&reg, TestImage::Busybox)?;
    let zs = push(&reg, TestImage::Zstd)?;
    let mut d = Berthd::start().await?;
    {
        let mut c = d.images().await?;
        client::pull(&mut c, &bb.reference, None).await?;
        client::pull(&mut c, &zs.reference, None).await?;
    }
    d.restart().await?;
    let mut c = d.images().await?;
    let mut ids: Vec<String> = client::list(&mut c, None)
        .await?
        .into_iter()
        .map(|i| i.id)
        .collect();
    ids.sort();
    let mut want = vec![bb.id.clone(), zs.id.clone()];
    want.sort();
    ensure!(ids == want, "after restart: {ids:?}, want {want:?}");
    let st = client::find(&mut c, &bb.reference)
        .await?
        .context("busybox lost its tag")?;
    ensure!(st.repo_digests.contains(&bb.by_digest()));
    Ok(())
}

image_test!(kill9_during_big_pull_leaves_no_half_image, kill9_body);
async fn kill9_body() -> Result<()> {
    let reg = Registry::start()?;
    let big = push(&reg, TestImage::Big)?;
    // ~8 MB/s: the 50 MB image takes several seconds, long enough to kill berthd mid-pull.
    let proxy = SlowProxy::start(([127, 0, 0, 1], reg.port).into(), 8 << 20)?;
    let name = format!("{}/big:1", proxy.host());
    let mut d = Berthd::start_with(BerthdOptions::toml(
        "[image]\nmax_concurrent_downloads = 1\n",
    ))
    .await?;
    let mut c = d.images().await?;
    let pull = {
        let mut c = c.clone();
        let name = name.clone();
        tokio::spawn(async move { client::pull(&mut c, &name, None).await })
    };
    // Wait until a good part of the image has arrived, then kill.
    let start = Instant::now();
    while berth_tests::dir_size(d.dir()) < (15 << 20) {
        if pull.is_finished() || start.elapsed() > Duration::from_secs(60) {
            bail!(
                "pull ended or stalled before berthd could be killed: {:?}",
                pull.await
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    d.kill9()?;
    let r = tokio::time::timeout(Duration::from_secs(10), pull)
        .await
        .context("pull did not fail")??;
    eprintln!(
        "killed at {} bytes on disk; pull -> {r:?}",
        berth_tests::dir_size(d.dir())
    );
    ensure!(r.is_err(), "pull succeeded although berthd was killed");
    drop(c);

    d.start_again().await?;
    c = d.images().await?;
    let listed = client::list(&mut c, None).await?;
    ensure!(
        listed.is_empty(),
        "half-pulled image listed after kill -9: {listed:?}"
    );
    ensure!(client::find(&mut c, &name).await?.is_none());
    // A new pull (now at full speed) completes.
    drop(proxy);
    let id = client::pull(&mut c, &big.reference, None).await?;
    ensure!(id == big.id);
    let st = client::find(&mut c, &big.reference)
        .await?
        .context("no status")?;
    ensure!(st.size >= 50_000_000, "size {}", st.size);
    Ok(())
}
