//! The process user: CRI run_as_* or the image's `User`, resolved through the image's own
//! /etc/passwd and /etc/group (contents passed in), as containerd's WithUser and
//! WithAdditionalGIDs do.

use std::collections::BTreeSet;

use oci_spec::runtime::User;

use super::SpecError;
use super::config::{SecurityContext, SupplementalGroupsPolicy};

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

/// `name:password:uid:gid:...` lines; comments and malformed lines are skipped.
fn passwd_entries(text: Option<&str>) -> impl Iterator<Item = PasswdEntry<'_>> {
    text.unwrap_or("").lines().filter_map(|line| {
        let line = line.trim();
        if line.starts_with('#') {
            return None;
        }
        let mut f = line.split(':');
        let name = f.next()?;
        let _pw = f.next()?;
        let uid = f.next()?.parse().ok()?;
        let gid = f.next()?.parse().ok()?;
        (!name.is_empty()).then_some(PasswdEntry { name, uid, gid })
    })
}

/// `name:password:gid:member,member` lines.
fn group_entries(text: Option<&str>) -> impl Iterator<Item = GroupEntry<'_>> {
    text.unwrap_or("").lines().filter_map(|line| {
        let line = line.trim();
        if line.starts_with('#') {
            return None;
        }
        let mut f = line.split(':');
        let name = f.next()?;
        let _pw = f.next()?;
        let gid = f.next()?.parse().ok()?;
        let members = f
            .next()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .collect();
        (!name.is_empty()).then_some(GroupEntry { name, gid, members })
    })
}

fn id_field(field: &'static str, value: i64) -> Result<u32, SpecError> {
    u32::try_from(value).map_err(|_| SpecError::Invalid {
        field,
        value: value.to_string(),
        reason: "an id must be between 0 and 4294967295".into(),
    })
}

/// containerd's generateUserString: `user[:group]` from the security context, "" if unset.
fn cri_user_string(sc: &SecurityContext) -> Result<String, SpecError> {
    let mut user = String::new();
    if let Some(uid) = sc.run_as_user {
        user = id_field("run_as_user", uid)?.to_string();
    }
    if !sc.run_as_username.is_empty() {
        user = sc.run_as_username.clone();
    }
    let group = match sc.run_as_group {
        Some(g) => Some(id_field("run_as_group", g)?),
        None => None,
    };
    match (user.is_empty(), group) {
        (true, Some(g)) => Err(SpecError::Invalid {
            field: "run_as_group",
            value: g.to_string(),
            reason: "a group is specified without a user (run_as_user or run_as_username)".into(),
        }),
        (true, None) => Ok(String::new()),
        (false, Some(g)) => Ok(format!("{user}:{g}")),
        (false, None) => Ok(user),
    }
}

/// Resolves `user[:group]` (names or ids) to (uid, gid) like containerd's WithUser: a
/// numeric uid unknown to passwd gets gid 0; an unknown name is an error; an empty user is
/// root. An empty group part (`user:`) keeps the user's passwd gid.
pub fn resolve(
    spec: &str,
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<(u32, u32), SpecError> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (user, grp) = match parts.as_slice() {
        [u] => (*u, ""),
        [u, g] => (*u, *g),
        _ => {
            return Err(SpecError::Invalid {
                field: "user",
                value: spec.into(),
                reason: "expected user or user:group".into(),
            });
        }
    };
    let (uid, mut gid) = match user.parse::<u32>() {
        Ok(uid) => {
            let gid = passwd_entries(passwd)
                .find(|e| e.uid == uid)
                .map_or(0, |e| e.gid);
            (uid, gid)
        }
        Err(_) if user.is_empty() => (0, 0),
        Err(_) => {
            let e = passwd_entries(passwd)
                .find(|e| e.name == user)
                .ok_or_else(|| SpecError::UnknownUser(user.into()))?;
            (e.uid, e.gid)
        }
    };
    if !grp.is_empty() {
        gid = match grp.parse::<u32>() {
            Ok(g) => g,
            Err(_) => group_entries(group)
                .find(|e| e.name == grp)
                .map(|e| e.gid)
                .ok_or_else(|| SpecError::UnknownGroup(grp.into()))?,
        };
    }
    Ok((uid, gid))
}

/// The OCI user: uid, gid and additional gids (sorted, deduplicated: the primary gid, the
/// groups of /etc/group listing the user as a member unless the policy is Strict, and
/// `supplemental_groups`).
pub fn user(
    sc: &SecurityContext,
    image_user: &str,
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<User, SpecError> {
    let mut spec = cri_user_string(sc)?;
    if spec.is_empty() {
        spec = image_user.to_string();
    }
    let (uid, gid) = resolve(&spec, passwd, group)?;

    // Group membership is by user name: the name given, or the passwd name of the uid.
    let member_key = if !sc.run_as_username.is_empty() {
        sc.run_as_username.clone()
    } else if sc.run_as_user.is_some() {
        uid.to_string()
    } else {
        match image_user.split(':').next() {
            Some(u) if !u.is_empty() => u.to_string(),
            _ => "0".into(),
        }
    };
    let name = match member_key.parse::<u32>() {
        Ok(id) => passwd_entries(passwd)
            .find(|e| e.uid == id)
            .map(|e| e.name.to_string()),
        Err(_) => Some(member_key),
    };
    let mut gids = BTreeSet::from([gid]);
    let merge = sc.supplemental_groups_policy == SupplementalGroupsPolicy::Merge;
    if let Some(name) = name.filter(|_| merge) {
        gids.extend(
            group_entries(group)
                .filter(|g| g.name != name && g.members.contains(&name.as_str()))
                .map(|g| g.gid),
        );
    }
    for g in &sc.supplemental_groups {
        gids.insert(id_field("supplemental_groups", *g)?);
    }

    let mut u = User::default();
    u.set_uid(uid);
    u.set_gid(gid);
    u.set_additional_gids(Some(gids.into_iter().collect()));
    Ok(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n# comment\nbroken line\napp:x:1000:1001::/home/app:/bin/sh\nweb:x:33:33::/var/www:/sbin/nologin\n";
    const GROUP: &str =
        "root:x:0:\nwheel:x:10:root,app\napp:x:1001:app\nstaff:x:50:app, web\nwww:x:33:\n";

    fn run(sc: &SecurityContext, image_user: &str) -> Result<(u32, u32, Vec<u32>), SpecError> {
        let u = user(sc, image_user, Some(PASSWD), Some(GROUP))?;
        Ok((
            u.uid(),
            u.gid(),
            u.additional_gids().clone().unwrap_or_default(),
        ))
    }

    #[test]
    fn default_is_root_with_its_groups() {
        assert_eq!(
            run(&SecurityContext::default(), "").unwrap(),
            (0, 0, vec![0, 10])
        );
    }

    #[test]
    fn image_user_by_name_takes_passwd_gid_and_groups() {
        assert_eq!(
            run(&SecurityContext::default(), "app").unwrap(),
            (1000, 1001, vec![10, 50, 1001])
        );
    }

    #[test]
    fn image_user_uid_and_named_group() {
        assert_eq!(
            run(&SecurityContext::default(), "1000:www").unwrap(),
            (1000, 33, vec![10, 33, 50])
        );
        assert_eq!(
            run(&SecurityContext::default(), "5:6").unwrap(),
            (5, 6, vec![6])
        );
    }

    #[test]
    fn unknown_numeric_uid_gets_gid_zero() {
        assert_eq!(
            run(&SecurityContext::default(), "4242").unwrap(),
            (4242, 0, vec![0])
        );
    }

    #[test]
    fn unknown_names_are_errors() {
        let e = run(&SecurityContext::default(), "nobody").unwrap_err();
        assert_eq!(e, SpecError::UnknownUser("nobody".into()));
        assert!(e.to_string().contains("nobody"));
        let e = run(&SecurityContext::default(), "app:nogroup").unwrap_err();
        assert!(e.to_string().contains("nogroup"));
        // No passwd file at all: names cannot resolve, numbers still do.
        assert!(user(&SecurityContext::default(), "app", None, None).is_err());
        let u = user(&SecurityContext::default(), "7", None, None).unwrap();
        assert_eq!((u.uid(), u.gid()), (7, 0));
        assert!(run(&SecurityContext::default(), "a:b:c").is_err());
    }

    #[test]
    fn cri_user_overrides_image_user() {
        let sc = SecurityContext {
            run_as_user: Some(33),
            ..Default::default()
        };
        assert_eq!(run(&sc, "app").unwrap(), (33, 33, vec![33, 50]));
        let sc = SecurityContext {
            run_as_user: Some(33),
            run_as_username: "app".into(),
            run_as_group: Some(7),
            supplemental_groups: vec![7, 100, 10],
            ..Default::default()
        };
        assert_eq!(run(&sc, "").unwrap(), (1000, 7, vec![7, 10, 50, 100]));
    }

    #[test]
    fn strict_policy_leaves_out_the_image_groups() {
        let mut sc = SecurityContext {
            run_as_user: Some(1000),
            run_as_group: Some(3000),
            supplemental_groups: vec![4000],
            ..Default::default()
        };
        assert_eq!(
            run(&sc, "").unwrap(),
            (1000, 3000, vec![10, 50, 3000, 4000])
        );
        sc.supplemental_groups_policy = SupplementalGroupsPolicy::Strict;
        assert_eq!(run(&sc, "").unwrap(), (1000, 3000, vec![3000, 4000]));
        assert_eq!(
            run(&sc, "app").unwrap(),
            (1000, 3000, vec![3000, 4000]),
            "the image user's memberships are left out too"
        );
    }

    #[test]
    fn run_as_group_needs_a_user_and_ids_are_checked() {
        let sc = SecurityContext {
            run_as_group: Some(5),
            ..Default::default()
        };
        let e = run(&sc, "app").unwrap_err().to_string();
        assert!(e.contains("run_as_group"), "{e}");
        let sc = SecurityContext {
            run_as_user: Some(-1),
            ..Default::default()
        };
        assert!(
            run(&sc, "")
                .unwrap_err()
                .to_string()
                .contains("run_as_user")
        );
        let sc = SecurityContext {
            supplemental_groups: vec![-3],
            ..Default::default()
        };
        assert!(
            run(&sc, "")
                .unwrap_err()
                .to_string()
                .contains("supplemental_groups")
        );
    }
}
