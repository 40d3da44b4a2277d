//! What the runtimes leave on the host after a side-by-side run, found and removed: network
//! namespaces that were not there before, containerd's CNI bridge (the bridge plugin never
//! removes it) and the NAT rules and chains of its subnet, berthd's bench bridge, and the
//! bench cgroup parents. One line per action; `LEAK:` marks what should not have been left.

use std::process::{Command, Stdio};

use crate::bench::pods::{BERTHD_BRIDGE, CNI_BRIDGE, CNI_SUBNET};
use crate::pods::leaks;

/// The names in /run/netns.
pub fn netns_list() -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn run_quiet(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Splits one line of `iptables -S` into arguments: words, or double-quoted strings with
/// backslash escapes (CNI's comments: `"name: \"berth-bench\" id: \"…\""`).
pub fn split_rule(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut in_word) = (false, false);
    let mut chars = line.chars();
    while let Some(ch) = chars.next() {
        match ch {
            '\\' if quoted => cur.extend(chars.next()),
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// containerd's NAT leftovers for the CNI subnet: the POSTROUTING rules that jump to a
/// per-pod `CNI-…` chain, then those chains.
fn clean_nat(out: &mut Vec<String>) {
    let nat = Command::new("iptables")
        .args(["-t", "nat", "-S"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    let prefix = CNI_SUBNET.trim_end_matches("0.0/16");
    let mut chains = Vec::new();
    for rule in nat
        .lines()
        .filter(|l| l.starts_with("-A POSTROUTING ") && l.contains(prefix))
    {
        let mut args = split_rule(rule);
        args[0] = "-D".into();
        if let Some(i) = args.iter().position(|a| a == "-j")
            && let Some(chain) = args.get(i + 1).filter(|c| c.starts_with("CNI-"))
        {
            chains.push(chain.clone());
        }
        let mut cmd = vec!["iptables", "-t", "nat"];
        cmd.extend(args.iter().map(String::as_str));
        let done = if run_quiet(&cmd) {
            "deleted"
        } else {
            "NOT deleted"
        };
        out.push(format!("LEAK: iptables nat rule `{rule}` ({done})"));
    }
    for chain in chains {
        let ok = run_quiet(&["iptables", "-t", "nat", "-F", &chain])
            && run_quiet(&["iptables", "-t", "nat", "-X", &chain]);
        let done = if ok { "deleted" } else { "NOT deleted" };
        out.push(format!("LEAK: iptables nat chain {chain} ({done})"));
    }
}

/// Removes the leftovers; `netns_before` lists the namespaces the run found, and
/// `cgroup_parents` the bench's cgroup parents (removed with whatever is in them).
pub fn clean_host(netns_before: &[String], cgroup_parents: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for ns in netns_list() {
        if !netns_before.contains(&ns) {
            run_quiet(&["ip", "netns", "delete", &ns]);
            out.push(format!("LEAK: netns {ns} (deleted)"));
        }
    }
    if leaks::link_exists(CNI_BRIDGE) {
        run_quiet(&["ip", "link", "delete", CNI_BRIDGE]);
        out.push(format!("deleted containerd's CNI bridge {CNI_BRIDGE}"));
    }
    if leaks::link_exists(BERTHD_BRIDGE) {
        run_quiet(&["ip", "link", "delete", BERTHD_BRIDGE]);
        out.push(format!("LEAK: berthd's bridge {BERTHD_BRIDGE} (deleted)"));
    }
    clean_nat(&mut out);
    for parent in cgroup_parents {
        for dir in leaks::cgroup_dirs(parent) {
            let n = std::fs::read_dir(&dir)
                .map(|rd| rd.flatten().filter(|e| e.path().is_dir()).count())
                .unwrap_or(0);
            if n > 0 {
                out.push(format!("LEAK: {n} cgroups left in {}", dir.display()));
            }
            leaks::remove_cgroup_tree(&dir);
        }
    }
    out.push(format!(
        "removed the cgroup parents {}",
        cgroup_parents.join(" and ")
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::split_rule;

    #[test]
    fn splits_quoted_comments() {
        let r = r#"-A POSTROUTING -s 10.198.0.24/32 -m comment --comment "name: \"berth-bench\" id: \"904b\"" -j CNI-23f6"#;
        assert_eq!(
            split_rule(r),
            [
                "-A",
                "POSTROUTING",
                "-s",
                "10.198.0.24/32",
                "-m",
                "comment",
                "--comment",
                r#"name: "berth-bench" id: "904b""#,
                "-j",
                "CNI-23f6"
            ]
        );
    }
}
