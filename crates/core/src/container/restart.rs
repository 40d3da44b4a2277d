//! Restart policies of containers that start again after they exit (Docker's containers;
//! a CRI container never does: the kubelet makes a new one). Pure decisions: whether an
//! exited container is started again, and after how long (Docker's restart manager:
//! 100 ms, doubling up to one minute, back to 100 ms once a run lasted 10 s).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// First back-off delay.
pub const BACKOFF_FIRST: Duration = Duration::from_millis(100);
/// Longest back-off delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// A run at least this long resets the back-off.
pub const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Never restarted automatically (it may still be started again by hand).
    #[default]
    No,
    /// Restarted when it exits non-zero, at most `max_retries` times (0: no limit).
    OnFailure {
        #[serde(default)]
        max_retries: u32,
    },
    /// Always restarted, unless stopped by hand (then again at the next daemon start).
    Always,
    /// Always restarted, unless stopped by hand (also across daemon restarts).
    UnlessStopped,
}

/// Why a decision is asked for: an exit seen while running, or a daemon (re)start finding
/// the container exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Occasion {
    Exit,
    DaemonStart,
}

impl RestartPolicy {
    /// Whether a container that exited with `exit_code` is started again. `restarts` is how
    /// often the policy restarted it so far; `manually_stopped`: a person stopped or killed
    /// it and has not started it since.
    pub fn should_restart(
        self,
        exit_code: i32,
        restarts: u32,
        manually_stopped: bool,
        occasion: Occasion,
    ) -> bool {
        match self {
            RestartPolicy::No => false,
            // Docker: a container stopped by hand comes back with the daemon.
            RestartPolicy::Always => !manually_stopped || occasion == Occasion::DaemonStart,
            RestartPolicy::UnlessStopped => !manually_stopped,
            RestartPolicy::OnFailure { max_retries } => {
                !manually_stopped && exit_code != 0 && (max_retries == 0 || restarts < max_retries)
            }
        }
    }
}

/// `no`, `always`, `unless-stopped`, `on-failure`, `on-failure:N` (what `--restart` takes).
impl FromStr for RestartPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, count) = match s.split_once(':') {
            Some((n, c)) => (n, Some(c)),
            None => (s, None),
        };
        let policy = match name {
            "" | "no" => RestartPolicy::No,
            "always" => RestartPolicy::Always,
            "unless-stopped" => RestartPolicy::UnlessStopped,
            "on-failure" => {
                let max_retries = match count {
                    None => 0,
                    Some(c) => c.parse().map_err(|_| {
                        format!("restart policy {s:?}: the retry count {c:?} is not a number")
                    })?,
                };
                return Ok(RestartPolicy::OnFailure { max_retries });
            }
            _ => {
                return Err(format!(
                    "restart policy {s:?} is unknown: use no, always, unless-stopped or on-failure[:N]"
                ));
            }
        };
        match count {
            Some(_) => Err(format!(
                "restart policy {s:?}: only on-failure takes a maximum retry count"
            )),
            None => Ok(policy),
        }
    }
}

impl fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestartPolicy::No => f.write_str("no"),
            RestartPolicy::Always => f.write_str("always"),
            RestartPolicy::UnlessStopped => f.write_str("unless-stopped"),
            RestartPolicy::OnFailure { max_retries: 0 } => f.write_str("on-failure"),
            RestartPolicy::OnFailure { max_retries } => write!(f, "on-failure:{max_retries}"),
        }
    }
}

/// The delay before the next restart of one container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backoff {
    last: Option<Duration>,
}

impl Backoff {
    /// The delay before restarting a container whose last run lasted `ran`.
    pub fn next(&mut self, ran: Duration) -> Duration {
        let delay = match self.last {
            Some(d) if ran < BACKOFF_RESET_AFTER => (d * 2).min(BACKOFF_MAX),
            _ => BACKOFF_FIRST,
        };
        self.last = Some(delay);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for (s, p) in [
            ("no", RestartPolicy::No),
            ("always", RestartPolicy::Always),
            ("unless-stopped", RestartPolicy::UnlessStopped),
            ("on-failure", RestartPolicy::OnFailure { max_retries: 0 }),
            ("on-failure:3", RestartPolicy::OnFailure { max_retries: 3 }),
        ] {
            assert_eq!(s.parse::<RestartPolicy>().unwrap(), p);
            assert_eq!(p.to_string(), s);
        }
        assert!(
            "sometimes"
                .parse::<RestartPolicy>()
                .unwrap_err()
                .contains("unknown")
        );
        assert!("always:2".parse::<RestartPolicy>().is_err());
        assert!("on-failure:x".parse::<RestartPolicy>().is_err());
        let j = serde_json::to_string(&RestartPolicy::OnFailure { max_retries: 2 }).unwrap();
        assert_eq!(j, r#"{"name":"on-failure","max_retries":2}"#);
        assert_eq!(
            serde_json::from_str::<RestartPolicy>(&j).unwrap(),
            RestartPolicy::OnFailure { max_retries: 2 }
        );
    }

    #[test]
    fn decisions_follow_docker() {
        use Occasion::*;
        use RestartPolicy::*;
        assert!(!No.should_restart(1, 0, false, Exit));
        assert!(Always.should_restart(0, 9, false, Exit));
        assert!(!Always.should_restart(0, 0, true, Exit));
        assert!(Always.should_restart(0, 0, true, DaemonStart));
        assert!(UnlessStopped.should_restart(0, 0, false, DaemonStart));
        assert!(!UnlessStopped.should_restart(0, 0, true, DaemonStart));
        let f = OnFailure { max_retries: 2 };
        assert!(!f.should_restart(0, 0, false, Exit));
        assert!(f.should_restart(1, 1, false, Exit));
        assert!(!f.should_restart(1, 2, false, Exit));
        assert!(!f.should_restart(1, 0, true, Exit));
        assert!(OnFailure { max_retries: 0 }.should_restart(1, 1000, false, Exit));
    }

    #[test]
    fn backoff_doubles_to_a_minute_and_resets_after_ten_seconds() {
        let mut b = Backoff::default();
        let quick = Duration::from_millis(5);
        let delays: Vec<u64> = (0..12).map(|_| b.next(quick).as_millis() as u64).collect();
        assert_eq!(
            delays,
            [
                100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200, 60000, 60000
            ]
        );
        assert_eq!(b.next(Duration::from_secs(10)), BACKOFF_FIRST);
        assert_eq!(b.next(quick), Duration::from_millis(200));
    }
}
