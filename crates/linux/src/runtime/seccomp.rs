//! Seccomp: the spec's `linux.seccomp` compiled by hand into a classic BPF program.
//!
//! Hand-built rather than seccompiler because seccompiler gives a whole filter one match
//! action, while OCI profiles mix actions per rule (allow lists next to ERRNO/ENOSYS rules
//! with their own errno). Syscall numbers come from the `syscalls` crate's tables.
//!
//! Semantics: rules are tried in spec order and the first match wins; conditions of one
//! rule are ANDed, except when two conditions name the same argument, which (as in runc)
//! turns them into one rule per condition. Unknown syscall names are skipped (runc does the
//! same). Only the native architecture gets rules: other architectures listed in the
//! profile (e.g. x86 next to x86_64) and x32 syscalls get the default action (ENOSYS when
//! the default allows). SCMP_ACT_NOTIFY (user notification) is not supported.

use std::str::FromStr;

use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

use super::error::{InitError, Result};

#[cfg(target_arch = "x86_64")]
const NATIVE_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const NATIVE_ARCH: u32 = 0xC000_00B7;

/// x32 syscalls are x86_64 syscalls with this bit set.
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

const BPF_MAXINSNS: usize = 4096;

// Classic BPF opcodes (linux/bpf_common.h).
const LD_W_ABS: u16 = 0x20; // BPF_LD (0) | BPF_W (0) | BPF_ABS (0x20)
const JMP_JEQ_K: u16 = 0x05 | 0x10; // BPF_JMP | BPF_JEQ | BPF_K
const JMP_JGT_K: u16 = 0x05 | 0x20;
const JMP_JGE_K: u16 = 0x05 | 0x30;
const ALU_AND_K: u16 = 0x04 | 0x50;
const RET_K: u16 = 0x06;

// struct seccomp_data offsets.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
fn off_arg_lo(i: usize) -> u32 {
    16 + 8 * i as u32
}
fn off_arg_hi(i: usize) -> u32 {
    off_arg_lo(i) + 4
}

const RET_KILL_THREAD: u32 = 0x0000_0000;
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_TRAP: u32 = 0x0003_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_TRACE: u32 = 0x7ff0_0000;
const RET_LOG: u32 = 0x7ffc_0000;
const RET_ALLOW: u32 = 0x7fff_0000;

/// A compiled filter, ready for [`load`].
#[derive(Debug, Clone)]
pub struct Filter {
    prog: Vec<libc::sock_filter>,
    flags: libc::c_ulong,
}

impl Filter {
    pub fn len(&self) -> usize {
        self.prog.len()
    }

    pub fn is_empty(&self) -> bool {
        self.prog.is_empty()
    }
}

/// Where a jump goes, resolved once the block is complete.
#[derive(Clone, Copy)]
enum To {
    /// The next instruction.
    Next,
    /// The first instruction after the current condition (it holds).
    Pass,
    /// The first instruction after the current rule (it does not match).
    Fail,
}

struct Ins {
    code: u16,
    k: u32,
    jt: To,
    jf: To,
}

fn stmt(code: u16, k: u32) -> Ins {
    Ins {
        code,
        k,
        jt: To::Next,
        jf: To::Next,
    }
}

fn jump(code: u16, k: u32, jt: To, jf: To) -> Ins {
    Ins { code, k, jt, jf }
}

fn plain(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn action(act: LinuxSeccompAction, errno: Option<u32>) -> Result<u32> {
    let errno = errno.unwrap_or(libc::EPERM as u32) & 0xffff;
    Ok(match act {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => RET_KILL_THREAD,
        LinuxSeccompAction::ScmpActKillProcess => RET_KILL_PROCESS,
        LinuxSeccompAction::ScmpActTrap => RET_TRAP,
        LinuxSeccompAction::ScmpActErrno => RET_ERRNO | errno,
        LinuxSeccompAction::ScmpActTrace => RET_TRACE | errno,
        LinuxSeccompAction::ScmpActLog => RET_LOG,
        LinuxSeccompAction::ScmpActAllow => RET_ALLOW,
        LinuxSeccompAction::ScmpActNotify => {
            return Err(InitError::new(
                "seccomp",
                "SCMP_ACT_NOTIFY (user notification) is not supported",
            ));
        }
    })
}

/// One argument condition; jumps to Pass when it holds, Fail when not.
fn condition(arg: &LinuxSeccompArg) -> Result<Vec<Ins>> {
    use LinuxSeccompOperator as Op;
    let i = arg.index();
    if i > 5 {
        return Err(InitError::new(
            "seccomp",
            format!("argument index {i} is out of range (0-5)"),
        ));
    }
    let (hi, lo) = (arg.value() >> 32, arg.value() & 0xffff_ffff);
    let (hi, lo) = (hi as u32, lo as u32);
    let ld_hi = stmt(LD_W_ABS, off_arg_hi(i));
    let ld_lo = stmt(LD_W_ABS, off_arg_lo(i));
    Ok(match arg.op() {
        Op::ScmpCmpEq => vec![
            ld_hi,
            jump(JMP_JEQ_K, hi, To::Next, To::Fail),
            ld_lo,
            jump(JMP_JEQ_K, lo, To::Next, To::Fail),
        ],
        Op::ScmpCmpNe => vec![
            ld_hi,
            jump(JMP_JEQ_K, hi, To::Next, To::Pass),
            ld_lo,
            jump(JMP_JEQ_K, lo, To::Fail, To::Next),
        ],
        Op::ScmpCmpMaskedEq => {
            // OCI: `value` is the mask, `valueTwo` the value compared with.
            let want = arg.value_two().unwrap_or(0);
            let (whi, wlo) = ((want >> 32) as u32, (want & 0xffff_ffff) as u32);
            vec![
                ld_hi,
                stmt(ALU_AND_K, hi),
                jump(JMP_JEQ_K, whi, To::Next, To::Fail),
                ld_lo,
                stmt(ALU_AND_K, lo),
                jump(JMP_JEQ_K, wlo, To::Next, To::Fail),
            ]
        }
        Op::ScmpCmpGt | Op::ScmpCmpGe => {
            let last = if arg.op() == Op::ScmpCmpGt {
                JMP_JGT_K
            } else {
                JMP_JGE_K
            };
            vec![
                ld_hi,
                jump(JMP_JGT_K, hi, To::Pass, To::Next),
                jump(JMP_JEQ_K, hi, To::Next, To::Fail),
                ld_lo,
                jump(last, lo, To::Next, To::Fail),
            ]
        }
        Op::ScmpCmpLt | Op::ScmpCmpLe => {
            // a < v  <=>  !(a >= v);  a <= v  <=>  !(a > v)
            let last = if arg.op() == Op::ScmpCmpLt {
                JMP_JGE_K
            } else {
                JMP_JGT_K
            };
            vec![
                ld_hi,
                jump(JMP_JGT_K, hi, To::Fail, To::Next),
                jump(JMP_JEQ_K, hi, To::Next, To::Pass),
                ld_lo,
                jump(last, lo, To::Fail, To::Next),
            ]
        }
    })
}

/// Resolves a block's symbolic jumps. `cond_ends[i]`: index just past the condition that
/// instruction i belongs to.
fn assemble(block: &[Ins], cond_ends: &[usize], out: &mut Vec<libc::sock_filter>) -> Result<()> {
    let end = block.len();
    for (i, ins) in block.iter().enumerate() {
        let off = |to: To| -> Result<u8> {
            let target = match to {
                To::Next => i + 1,
                To::Pass => cond_ends[i],
                To::Fail => end,
            };
            u8::try_from(target - (i + 1))
                .map_err(|_| InitError::new("seccomp", "a rule has too many conditions"))
        };
        out.push(libc::sock_filter {
            code: ins.code,
            jt: off(ins.jt)?,
            jf: off(ins.jf)?,
            k: ins.k,
        });
    }
    Ok(())
}

/// runc's rule splitting: conditions on distinct arguments form one rule; if any argument
/// is named twice, every condition becomes a rule of its own.
fn condition_sets(args: &[LinuxSeccompArg]) -> Vec<Vec<&LinuxSeccompArg>> {
    if args.is_empty() {
        return vec![vec![]];
    }
    let mut seen = [0usize; 6];
    for a in args {
        if a.index() < 6 {
            seen[a.index()] += 1;
        }
    }
    if seen.iter().any(|&n| n > 1) {
        args.iter().map(|a| vec![a]).collect()
    } else {
        vec![args.iter().collect()]
    }
}

/// Compiles the profile. Errors name the offending field.
pub fn compile(spec: &LinuxSeccomp) -> Result<Filter> {
    let default = action(spec.default_action(), spec.default_errno_ret())?;
    let mut prog = vec![
        plain(LD_W_ABS, OFF_ARCH),
        libc::sock_filter {
            code: JMP_JEQ_K,
            jt: 1,
            jf: 0,
            k: NATIVE_ARCH,
        },
        plain(RET_K, default),
        plain(LD_W_ABS, OFF_NR),
    ];
    #[cfg(target_arch = "x86_64")]
    {
        let x32 = if default == RET_ALLOW || default == RET_LOG {
            RET_ERRNO | libc::ENOSYS as u32
        } else {
            default
        };
        prog.push(libc::sock_filter {
            code: JMP_JGE_K,
            jt: 0,
            jf: 1,
            k: X32_SYSCALL_BIT,
        });
        prog.push(plain(RET_K, x32));
    }
    // Whether the accumulator still holds the syscall number at the next rule.
    let mut a_is_nr = true;
    for rule in spec.syscalls().iter().flatten() {
        let ret = action(rule.action(), rule.errno_ret())?;
        let args = rule.args().clone().unwrap_or_default();
        for name in rule.names() {
            let Ok(sysno) = syscalls::Sysno::from_str(name) else {
                continue; // unknown here (other arch or newer kernel): runc skips it too
            };
            for conds in condition_sets(&args) {
                let mut block = Vec::new();
                let mut ends = Vec::new();
                if !a_is_nr {
                    block.push(stmt(LD_W_ABS, OFF_NR));
                    ends.push(1);
                }
                block.push(jump(JMP_JEQ_K, sysno.id() as u32, To::Next, To::Fail));
                ends.push(block.len());
                for c in &conds {
                    let ins = condition(c)?;
                    let end = block.len() + ins.len();
                    ends.extend(std::iter::repeat_n(end, ins.len()));
                    block.extend(ins);
                }
                block.push(stmt(RET_K, ret));
                ends.push(block.len());
                assemble(&block, &ends, &mut prog)?;
                a_is_nr = conds.is_empty();
            }
        }
    }
    prog.push(plain(RET_K, default));
    if prog.len() > BPF_MAXINSNS {
        return Err(InitError::new(
            "seccomp",
            format!(
                "the filter has {} instructions, more than the kernel's {BPF_MAXINSNS}",
                prog.len()
            ),
        ));
    }
    let mut flags: libc::c_ulong = 0;
    for f in spec.flags().iter().flatten() {
        flags |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => 1,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => 2,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => 4,
        };
    }
    Ok(Filter { prog, flags })
}

/// Installs the filter on the calling thread. Needs no_new_privs or CAP_SYS_ADMIN.
pub fn load(filter: &Filter) -> Result<()> {
    let fprog = libc::sock_fprog {
        len: filter.prog.len() as u16,
        filter: filter.prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: fprog points at a live, correctly sized instruction array for the duration of
    // the call; the kernel copies it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            1 as libc::c_ulong, // SECCOMP_SET_MODE_FILTER
            filter.flags,
            &fprog as *const libc::sock_fprog,
        )
    };
    if rc != 0 {
        return Err(InitError::new(
            "seccomp",
            format!("loading the filter: {}", std::io::Error::last_os_error()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn compiles_allow_list_with_args_and_skips_unknown_names() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64"],
            "syscalls":[{"names":["read","write","no_such_call"],"action":"SCMP_ACT_ALLOW"},
            {"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]},
            {"names":["clone"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":2114060288,"valueTwo":0,"op":"SCMP_CMP_MASKED_EQ"}]},
            {"names":["clone3"],"action":"SCMP_ACT_ERRNO","errnoRet":38}]}"#,
        );
        let f = compile(&p).unwrap();
        // header (6 on x86_64) + read/write (2+2) + personality (1+4+1+1... ) etc.
        assert!(f.len() > 10 && f.len() < 60, "{}", f.len());
        // The last instruction returns the default action, EPERM.
        let last = f.prog.last().unwrap();
        assert_eq!((last.code, last.k), (RET_K, RET_ERRNO | libc::EPERM as u32));
    }

    #[test]
    fn same_argument_twice_splits_rules() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["personality"],"action":"SCMP_ACT_ERRNO",
            "args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"},{"index":0,"value":2,"op":"SCMP_CMP_EQ"}]}]}"#,
        );
        let args = p.syscalls().as_ref().unwrap()[0].args().clone().unwrap();
        assert_eq!(condition_sets(&args).len(), 2);
        compile(&p).unwrap();
    }

    #[test]
    fn notify_is_refused() {
        let p = profile(r#"{"defaultAction":"SCMP_ACT_NOTIFY"}"#);
        assert!(compile(&p).unwrap_err().to_string().contains("NOTIFY"));
    }
}
