//! The bench at a glance: which routers need the operator (and why, and what to do), where
//! each one is in the workflow (step k of n), its hostname, and the timeline of its steps.
//!
//! Pure functions over a device record, shared by `status`, the JSON API and the dashboard so
//! the three cannot disagree. Times are shown in one convention everywhere ([`utc`]).

use chrono::{DateTime, Local, Utc};
use serde::{Deserialize, Serialize};

use super::device::{Device, State};

/// A time as every operator-facing surface shows it: UTC, RFC 3339, zone written
/// (`2026-12-01T20:38:49Z`). The logs use the same; a fleet spans benches and zones.
pub(crate) fn utc(t: DateTime<Local>) -> String {
    t.with_timezone(&Utc)
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// `n` bytes for people: `193 MB`, `1.0 GB` (powers of 1024, as IOS `dir` counts).
pub(crate) fn human_bytes(n: u64) -> String {
    const MB: u64 = 1 << 20;
    if n >= 1 << 30 {
        format!("{:.1} GB", n as f64 / (1u64 << 30) as f64)
    } else if n >= MB {
        format!("{} MB", n / MB)
    } else {
        format!("{} KB", n.div_ceil(1024))
    }
}

/// The workflow's phases as the operator sees them, in order (README "What a router goes
/// through"); FINISHED is the end of the last.
pub(crate) const PHASES: [&str; 8] = [
    "config-register",
    "image",
    "files",
    "day-0 config",
    "bootflash",
    "guestshell",
    "script",
    "verify",
];

/// The phase a state belongs to (index into [`PHASES`]); `None` for FINISHED and FAILED.
pub(crate) fn phase_of(s: State) -> Option<usize> {
    use State::*;
    Some(match s {
        NewDevice | IdentityUnproven | ConfigReg => 0,
        CheckImageVer | UpgradeNeeded | ImageCleanup | ImageNoSpace | UpgradeInProgress
        | UpgradeReloadNeeded | UpgradeReloading | UpgradeDone => 1,
        GsTarballTransfer | PyScriptTransfer => 2,
        ConfigStart | ConfigSaveStartup => 3,
        CheckBootflashSize | BootflashNoSpace => 4,
        RunEventManager | WaitForGuestshell | CheckGuestshell | InstallGuestshell
        | EnableGuestshell => 5,
        RunPyScript => 6,
        Verify => 7,
        Finished | Failed => return None,
    })
}

/// Which of the three piles a router is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Group {
    /// Failed, parked for space, a stalled download, a refused claim: nothing moves until
    /// someone acts (or, for a stalled download, looks).
    NeedsYou,
    /// Moving by itself.
    InProgress,
    /// FINISHED.
    Finished,
}

/// Where a router is: step `step` of `of` (`name`), `done` once FINISHED.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Progress {
    /// 1-based; `of` when FINISHED.
    pub(crate) step: usize,
    /// Number of phases.
    pub(crate) of: usize,
    /// The phase's name.
    pub(crate) name: String,
    /// FINISHED.
    pub(crate) done: bool,
}

/// Step k of n for `dev` (a FAILED router: the step it failed in).
pub(crate) fn progress(dev: &Device) -> Progress {
    let of = PHASES.len();
    let at = match dev.state {
        State::Finished => {
            return Progress {
                step: of,
                of,
                name: "finished".into(),
                done: true,
            };
        }
        State::Failed => dev.failed_in.and_then(phase_of).unwrap_or(0),
        s => phase_of(s).unwrap_or(0),
    };
    Progress {
        step: at + 1,
        of,
        name: PHASES[at].into(),
        done: false,
    }
}

/// Why a router needs the operator, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Attention {
    /// What is wrong, in the router's or the workflow's words.
    pub(crate) reason: String,
    /// What to do about it.
    pub(crate) fix: String,
}

/// Why `dev` needs the operator, if it does; `stalled` names a download of it that stopped
/// moving.
pub(crate) fn attention(dev: &Device, stalled: Option<&str>) -> Option<Attention> {
    let resume = format!("`pnp-appliance device resume {}`", dev.serial);
    let last_line = || {
        dev.history
            .last()
            .map(|e| e.text.clone())
            .unwrap_or_default()
    };
    match dev.state {
        State::Failed => {
            return Some(Attention {
                reason: dev
                    .fail_reason
                    .clone()
                    .unwrap_or_else(|| "no reason recorded".into()),
                fix: format!("fix what the reason says, then {resume} (Resume on its page)"),
            });
        }
        State::BootflashNoSpace => {
            return Some(Attention {
                reason: dev.last_error.clone().unwrap_or_else(last_line),
                fix: format!(
                    "free space on the router (`dir bootflash:`, then `delete /force bootflash:<file>`), then {resume}"
                ),
            });
        }
        State::IdentityUnproven => {
            return Some(Attention {
                reason: dev.last_error.clone().unwrap_or_else(last_line),
                fix: format!(
                    "check the router is the one you expect (`show version`, the serial on its label); if you vouch for it, {resume} (it goes on, bound to its address); a router whose SUDI check failed may not be genuine"
                ),
            });
        }
        State::ImageNoSpace => {
            return Some(Attention {
                reason: dev.last_error.clone().unwrap_or_else(last_line),
                fix: format!(
                    "delete old images on the router (`install remove inactive` in install mode, else `delete /force bootflash:<old image>`), then {resume}"
                ),
            });
        }
        _ => {}
    }
    if let Some(m) = &dev.tls
        && m.back.is_none()
        && let Some(why) = &m.late
    {
        return Some(Attention {
            reason: why.clone(),
            fix: "on the router: `show clock` (the job sets it; the PKI needs it) and `show crypto pki trustpoints pnplabel`; check it reaches the appliance's HTTPS port (ACLs, firewall) at the address `pnp-appliance check` lists in the certificate; HTTPS needs a crypto (k9) image. It is sent the certificate-install again at its next plain-HTTP poll".into(),
        });
    }
    if let Some(claim) = super::identity::claim_text(dev) {
        return Some(Attention {
            reason: claim,
            fix: format!(
                "if the router really moved: `pnp-appliance device accept-move {}`; else find the host that claims it",
                dev.serial
            ),
        });
    }
    stalled.map(|file| Attention {
        reason: format!("download of {file} stalled: no byte for 30 s"),
        fix: "check the router's link to the appliance; its job times out and is retried".into(),
    })
}

/// The pile `dev` is in, given its [`attention`].
pub(crate) fn group(dev: &Device, attention: Option<&Attention>) -> Group {
    if attention.is_some() {
        Group::NeedsYou
    } else if dev.state == State::Finished {
        Group::Finished
    } else {
        Group::InProgress
    }
}

/// The router's hostname, from its day-0 config (rendered from the inventory).
pub(crate) fn hostname(dev: &Device) -> Option<String> {
    let line = dev.day0.as_ref()?.hostname.as_deref()?;
    let name = line.strip_prefix("hostname")?.trim();
    (!name.is_empty()).then(|| name.to_string())
}

/// One phase on a router's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Span {
    /// The phase ([`PHASES`]).
    pub(crate) name: String,
    /// When it began (`utc`).
    pub(crate) start: String,
    /// Seconds it took, or has taken so far.
    pub(crate) secs: i64,
    /// `done`, `skipped`, `running`, `waiting for you`, `failed: …`, or the step's own outcome.
    pub(crate) result: String,
}

/// The phases `dev` went through, oldest first, from its history: a phase starts where the
/// previous one ended (the first at first contact) and ends at its last history line; the one
/// it is in runs until `now`. A phase entered twice (after a resume) shows twice.
pub(crate) fn timeline(dev: &Device, now: DateTime<Local>) -> Vec<Span> {
    struct Seg {
        phase: usize,
        start: DateTime<Local>,
        end: DateTime<Local>,
        failed: Option<String>,
    }
    let mut segs: Vec<Seg> = Vec::new();
    for e in &dev.history {
        let Some(p) = phase_of(e.state) else {
            continue;
        };
        match segs.last_mut() {
            Some(s) if s.phase == p => s.end = e.at,
            last => {
                let start = last.map_or(dev.first_seen, |s| s.end);
                segs.push(Seg {
                    phase: p,
                    start,
                    end: e.at,
                    failed: None,
                });
            }
        }
    }
    let current = match dev.state {
        State::Failed => dev.failed_in.and_then(phase_of),
        s => phase_of(s),
    };
    if let Some(p) = current
        && segs.last().is_none_or(|s| s.phase != p)
    {
        let start = segs.last().map_or(dev.first_seen, |s| s.end);
        segs.push(Seg {
            phase: p,
            start,
            end: start,
            failed: None,
        });
    }
    if dev.state == State::Failed
        && let Some(s) = segs.last_mut()
    {
        s.failed = dev.fail_reason.clone();
    }
    let n = segs.len();
    segs.into_iter()
        .enumerate()
        .map(|(i, s)| {
            let open = i + 1 == n && current.is_some() && dev.state != State::Failed;
            let end = if open { now } else { s.end };
            let result = if let Some(why) = s.failed {
                format!("failed: {why}")
            } else if open {
                match dev.state {
                    State::BootflashNoSpace | State::ImageNoSpace | State::IdentityUnproven => {
                        "waiting for you".into()
                    }
                    _ => "running".into(),
                }
            } else {
                outcome(dev, s.phase)
            };
            Span {
                name: PHASES[s.phase].into(),
                start: utc(s.start),
                secs: (end - s.start).num_seconds().max(0),
                result,
            }
        })
        .collect()
}

/// How a finished phase ended: the newest step outcome recorded for one of its states.
fn outcome(dev: &Device, phase: usize) -> String {
    State::ALL
        .iter()
        .filter(|s| phase_of(**s) == Some(phase))
        .filter_map(|s| dev.steps.get(s.as_str()))
        .max_by_key(|r| r.at)
        .map_or_else(|| "done".into(), |r| r.result.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(secs: i64) -> DateTime<Local> {
        Local.timestamp_opt(1_780_000_000 + secs, 0).unwrap()
    }

    fn dev() -> Device {
        Device::new(
            "FGL1",
            "PID:C1131-8PWB,VID:V01,SN:FGL1",
            "C1131-8PWB",
            "V01",
            t(0),
        )
    }

    #[test]
    fn units_and_times() {
        assert_eq!(human_bytes(193 << 20), "193 MB");
        assert_eq!(human_bytes(1 << 30), "1.0 GB");
        assert_eq!(human_bytes(706_422_748), "673 MB");
        assert_eq!(human_bytes(100), "1 KB");
        assert!(utc(t(0)).ends_with('Z'));
        assert_eq!(utc(t(0)), "2026-05-28T20:26:40Z");
    }

    #[test]
    fn every_state_has_a_step_and_a_pile() {
        // (state, failed in, step, group, reason contains, fix contains)
        type Row = (
            State,
            Option<State>,
            usize,
            Group,
            &'static str,
            &'static str,
        );
        let rows: &[Row] = &[
            (State::NewDevice, None, 1, Group::InProgress, "", ""),
            (State::UpgradeInProgress, None, 2, Group::InProgress, "", ""),
            (State::GsTarballTransfer, None, 3, Group::InProgress, "", ""),
            (State::Verify, None, 8, Group::InProgress, "", ""),
            (State::Finished, None, 8, Group::Finished, "", ""),
            (
                State::Failed,
                Some(State::RunPyScript),
                7,
                Group::NeedsYou,
                "Traceback",
                "device resume FGL1",
            ),
            (
                State::BootflashNoSpace,
                None,
                5,
                Group::NeedsYou,
                "193 MB free",
                "delete /force",
            ),
            (
                State::ImageNoSpace,
                None,
                2,
                Group::NeedsYou,
                "193 MB free",
                "install remove inactive",
            ),
        ];
        for (state, failed_in, step, group_want, reason, fix) in rows {
            let mut d = dev();
            d.state = *state;
            d.failed_in = *failed_in;
            d.fail_reason = Some("script failed: Traceback (most recent call last)".into());
            d.last_error = Some("bootflash has 193 MB free, 1.0 GB needed".into());
            let p = progress(&d);
            assert_eq!((p.step, p.of), (*step, 8), "{state:?}");
            assert_eq!(p.done, *state == State::Finished);
            let a = attention(&d, None);
            assert_eq!(group(&d, a.as_ref()), *group_want, "{state:?}");
            if let Some(a) = a {
                assert!(a.reason.contains(reason), "{state:?}: {a:?}");
                assert!(a.fix.contains(fix), "{state:?}: {a:?}");
            }
        }
        // Every state but the two ends belongs to a phase.
        for s in State::ALL {
            assert_eq!(
                phase_of(s).is_none(),
                matches!(s, State::Finished | State::Failed),
                "{s:?}"
            );
        }
        // A stalled download or a refused claim needs the operator even while in progress.
        let mut d = dev();
        d.state = State::UpgradeInProgress;
        let a = attention(&d, Some("c1100.bin")).unwrap();
        assert!(a.reason.contains("c1100.bin stalled"), "{a:?}");
        assert_eq!(group(&d, Some(&a)), Group::NeedsYou);
        d.claim = Some(crate::domain::identity::Claim {
            ip: "198.51.100.9".parse().unwrap(),
            mac: None,
            first: t(5),
            last: t(5),
            count: 1,
            warned: t(5),
            challenge: None,
        });
        assert!(
            attention(&d, None)
                .unwrap()
                .fix
                .contains("accept-move FGL1")
        );
    }

    #[test]
    fn hostname_from_the_day0_config() {
        let mut d = dev();
        assert_eq!(hostname(&d), None);
        d.day0 = Some(std::sync::Arc::new(crate::domain::device::Day0 {
            file: "FGL1.cfg".into(),
            hostname: Some("hostname  branch-042".into()),
            expects: vec![],
        }));
        assert_eq!(hostname(&d).as_deref(), Some("branch-042"));
    }

    #[test]
    fn timeline_spans_start_where_the_last_ended_and_the_current_one_runs() {
        let mut d = dev();
        let log = |d: &mut Device, at: i64, s: State, text: &str| {
            d.state = s;
            d.log(t(at), text);
        };
        log(&mut d, 0, State::NewDevice, "new device");
        log(&mut d, 10, State::ConfigReg, "config-register set");
        log(&mut d, 20, State::CheckImageVer, "device-info");
        log(&mut d, 620, State::UpgradeReloading, "reloaded");
        log(&mut d, 700, State::GsTarballTransfer, "tarball copied");
        d.step(State::GsTarballTransfer, "done", t(700));
        d.step(State::UpgradeInProgress, "done", t(600));
        d.state = State::ConfigStart;
        let spans = timeline(&d, t(760));
        let got: Vec<(&str, i64, &str)> = spans
            .iter()
            .map(|s| (s.name.as_str(), s.secs, s.result.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("config-register", 10, "done"),
                ("image", 610, "done"),
                ("files", 80, "done"),
                ("day-0 config", 60, "running"),
            ]
        );
        assert_eq!(spans[1].start, utc(t(10)));
        // Failed in the script: its span ends at the failure, with the reason.
        d.state = State::RunPyScript;
        d.log(t(800), "script failed");
        d.state = State::Failed;
        d.failed_in = Some(State::RunPyScript);
        d.fail_reason = Some("Traceback".into());
        let spans = timeline(&d, t(5000));
        let last = spans.last().unwrap();
        assert_eq!(
            (last.name.as_str(), last.secs, last.result.as_str()),
            ("script", 100, "failed: Traceback")
        );
        // Finished: nothing runs on.
        d.state = State::Finished;
        assert!(timeline(&d, t(9999)).iter().all(|s| s.result != "running"));
    }
}
