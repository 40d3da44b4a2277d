//! berth image records → CRI messages.

use berth_api::cri;
use berth_core::image::Image;

/// The CRI `Image` for a record. The image's `User` gives a uid when it is numeric
/// (`1000`, `1000:1000`), else a username; no User leaves both empty, as containerd does.
pub fn image(img: &Image) -> cri::Image {
    let (uid, username) = user_of(&img.user);
    cri::Image {
        id: img.id.to_string(),
        repo_tags: img.repo_tags.clone(),
        repo_digests: img.repo_digests.clone(),
        size: img.size,
        uid: uid.map(|value| cri::Int64Value { value }),
        username,
        spec: Some(cri::ImageSpec {
            image: img.id.to_string(),
            ..Default::default()
        }),
        pinned: img.pinned,
    }
}

fn user_of(user: &str) -> (Option<i64>, String) {
    let name = user.split(':').next().unwrap_or_default();
    if name.is_empty() {
        return (None, String::new());
    }
    match name.parse::<i64>() {
        Ok(uid) => (Some(uid), String::new()),
        Err(_) => (None, name.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::user_of;

    #[test]
    fn users() {
        assert_eq!(user_of(""), (None, String::new()));
        assert_eq!(user_of("1000"), (Some(1000), String::new()));
        assert_eq!(user_of("1000:50"), (Some(1000), String::new()));
        assert_eq!(user_of("app:app"), (None, "app".to_string()));
        assert_eq!(user_of("0"), (Some(0), String::new()));
    }
}
