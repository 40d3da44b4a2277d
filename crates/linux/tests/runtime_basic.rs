//! berth's OCI runtime, basics: output, exit codes, env, cwd, user, hostname, PID 1, and
//! the errors the monitor sees. Root only (skipped otherwise).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "runtime_support.rs"]
mod runtime_support;

use runtime_support::{Bundle, skip};

#[test]
fn echo_and_exit_codes() {
    if skip() {
        return;
    }
    let b = Bundle::new(&["echo", "hi"]);
    let (code, out, err) = b.run();
    assert_eq!((code, out.as_str()), (0, "hi\n"), "stderr: {err}");

    let b = Bundle::new(&["sh", "-c", "echo oops >&2; exit 3"]);
    let (code, out, err) = b.run();
    assert_eq!((code, out.as_str(), err.as_str()), (3, "", "oops\n"));
}

#[test]
fn env_cwd_user_hostname_pid1() {
    if skip() {
        return;
    }
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "echo $FOO; pwd; id; hostname; echo $$; cat /proc/1/cmdline | head -c 2; echo",
    ]);
    std::fs::create_dir_all(b.rootfs().join("work")).unwrap();
    b.process(|p| {
        p.set_env(Some(vec!["PATH=/bin".into(), "FOO=bar baz".into()]));
        p.set_cwd("/work".into());
        let mut u = p.user().clone();
        u.set_uid(1000);
        u.set_gid(1001);
        u.set_additional_gids(Some(vec![10, 20]));
        p.set_user(u);
    });
    b.spec.set_hostname(Some("berth-rt-host".into()));
    let (code, out, err) = b.run();
    assert_eq!(code, 0, "stderr: {err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "bar baz");
    assert_eq!(lines[1], "/work");
    assert_eq!(lines[2], "uid=1000 gid=1001 groups=10,20");
    assert_eq!(lines[3], "berth-rt-host");
    assert_eq!(
        lines[4], "1",
        "the container process is PID 1 of its namespace"
    );
    assert_eq!(lines[5], "sh");
}

#[test]
fn setup_and_exec_errors_name_the_step() {
    if skip() {
        return;
    }
    // A missing cwd is created (as runc does); one below a regular file cannot be.
    let mut b = Bundle::new(&["true"]);
    b.process(|p| {
        p.set_cwd("/bin/busybox/sub".into());
    });
    let err = b
        .create()
        .err()
        .expect("an impossible cwd fails the creation");
    assert!(err.starts_with("chdir /bin/busybox/sub: "), "{err}");

    let b = Bundle::new(&["no-such-program"]);
    let mut c = b.create().unwrap();
    let err = c.start().unwrap_err();
    assert_eq!(err, "exec \"no-such-program\": No such file or directory");
    let (code, _, _) = c.wait();
    assert_eq!(code, 127);
}

#[test]
fn oom_score_adj_below_current_is_clamped_not_fatal() {
    if skip() {
        return;
    }
    let current: i32 = std::fs::read_to_string("/proc/self/oom_score_adj")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let want = (current - 100).max(-1000);
    let mut b = Bundle::new(&["cat", "/proc/self/oom_score_adj"]);
    b.process(|p| {
        p.set_oom_score_adj(Some(want));
    });
    let (code, out, err) = b.run();
    assert_eq!(code, 0, "stderr: {err}");
    let got: i32 = out.trim().parse().unwrap();
    // Without CAP_SYS_RESOURCE the value stays; with it, it is lowered.
    assert!(
        got == current || got == want,
        "{got} (current {current}, wanted {want})"
    );
    // The note goes to the monitor's log over the sync socket, never to the container's
    // own stderr.
    assert!(
        !err.contains("oom_score_adj"),
        "runtime note in the container's stderr: {err}"
    );
    if got == current && want != current {
        let w = runtime_support::warnings();
        assert!(
            w.iter().any(|m| m.contains("oom_score_adj")),
            "a note for the monitor's log: {w:?}"
        );
    }
}

#[test]
fn terminal_is_the_controlling_tty_and_console() {
    if skip() {
        return;
    }
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "test -t 0 && echo stdin-tty; test -c /dev/console && echo console; \
         echo tty_nr=$(cut -d' ' -f7 /proc/self/stat); echo sid=$(cut -d' ' -f6 /proc/self/stat); \
         t=$(tty); echo tty=$t; echo fd0=$(readlink /proc/self/fd/0); test -c \"$t\" && echo exists; \
         echo dev=$(stat -c %t:%T \"$t\") console=$(stat -c %t:%T /dev/console); \
         echo size=$(stty size)",
    ]);
    b.process(|p| {
        p.set_terminal(Some(true));
        let size = oci_spec::runtime::BoxBuilder::default()
            .height(33u64)
            .width(101u64)
            .build()
            .unwrap();
        p.set_console_size(Some(size));
    });
    let (code, out, err) = b.run();
    assert_eq!(code, 0, "{out} {err}");
    assert!(
        out.contains("stdin-tty") && out.contains("console"),
        "{out}"
    );
    assert!(!out.contains("tty_nr=0"), "a controlling terminal: {out}");
    assert!(out.contains("sid=1"), "its own session: {out}");
    // The pty is the container's own (its devpts), not one of the host's.
    let val = |key: &str| {
        out.lines()
            .find_map(|l| l.trim_end_matches('\r').strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {out}"))
            .to_string()
    };
    let tty = val("tty=");
    assert!(tty.starts_with("/dev/pts/"), "{out}");
    assert_eq!(val("fd0="), tty, "{out}");
    assert!(
        out.contains("exists"),
        "{tty} exists in the container: {out}"
    );
    let dev = val("dev=");
    assert!(dev.contains(" console="), "{out}");
    let (term, console) = dev.split_once(" console=").unwrap();
    assert_eq!(term, console, "/dev/console is the terminal: {out}");
    assert_eq!(val("size="), "33 101", "consoleSize: {out}");
}
