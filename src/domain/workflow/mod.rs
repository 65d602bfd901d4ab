//! The provisioning workflow as pure functions: what to send next, what a response means.
//!
//! Owns every state transition of a router. [`on_work_request`] picks the job for the device's
//! state (skipping steps with nothing configured) and [`on_work_response`] reads the device's
//! answer. Both take the record, the [`Plan`] and a [`Ctx`] (time, config lookup) and touch
//! nothing else, so they are tested as tables. The order is the reference ISR1k workflow
//! (`docs/pnp-protocol.md` §10) with its known mistakes fixed (§6.1, §6.5, §8, §11).

use std::sync::Arc;

use chrono::{DateTime, Local};

mod action;
mod prove;
mod transport;

use super::ios::{Guestshell, cli_error, guestshell_state, normalize_version};
pub(crate) use super::plan::Plan;
pub(crate) use action::{Action, mark_interrupted, operator, set_state};
pub(crate) use transport::Transport;

use crate::domain::bench::human_bytes;
use crate::domain::device::{Day0, Device, Evidence, Pending, State};
use crate::domain::ios::{bootflash_images, config_errors, has_line, script_failure};
use crate::domain::job::{DeviceInfo, ErrorInfo, Job, JobResult, Output, WorkRequest};
use crate::domain::plan::{Cleanup, ImageTarget};

/// What the pure functions may know of the world.
pub(crate) struct Ctx<'a> {
    /// Now.
    pub(crate) now: DateTime<Local>,
    /// Base URL devices download images and files from, e.g. `http://198.51.100.1:8080`.
    pub(crate) base_url: &'a str,
    /// Base URL of what must not cross plain HTTP with `[http] https` on (the HTTPS one then):
    /// day-0 configs, and files (file-transfer carries no checksum, §6.6, and the script runs
    /// on the router).
    pub(crate) secure_base: &'a str,
    /// This exchange's transport, with `[http] https` on; `None`: plain HTTP only.
    pub(crate) tls: Option<Transport<'a>>,
    /// The router's day-0 config rendered for it (`<SERIAL>.cfg` else `default.cfg`), or why
    /// there is none: prepared by the caller, outside the record's lock, when [`needs_day0`]
    /// says this exchange can need it; `None` otherwise.
    pub(crate) day0: Option<&'a Result<Day0, String>>,
    /// A fresh unguessable token (random, 128 bits) for the URL of a config-upgrade job sent
    /// in this exchange, written in hex only when one is: the config is served only through it
    /// (see [`crate::domain::identity::may_fetch_config`]).
    pub(crate) config_token: [u8; 16],
}

/// The log's WARN line for a router that just went FAILED or parked for space: its serial,
/// state, and the reason and fix every view shows ([`crate::domain::bench::attention`]).
pub(crate) fn attention(dev: &Device) -> Option<String> {
    let what = match dev.state {
        State::Failed => "is FAILED".to_string(),
        State::BootflashNoSpace | State::ImageNoSpace | State::IdentityUnproven => {
            format!("is parked in {}", dev.state)
        }
        _ => return None,
    };
    let a = super::bench::attention(dev, None)?;
    Some(format!(
        "{} {what}: {}; fix: {}",
        dev.serial, a.reason, a.fix
    ))
}

/// Whether a work request from this router can need its day-0 config rendered: at its first
/// contact (NEW_DEVICE: a router that cannot get its config fails before any file moves), and,
/// for a record that has none yet, on the way to CONFIG_START.
pub(crate) fn needs_day0(dev: &Device, plan: &Plan) -> bool {
    plan.renders_day0()
        && dev.day0.is_none()
        && (dev.state == State::NewDevice
            || may_reach_config_start(dev.state)
            || (dev.state == State::Verify && !plan.verify.is_empty()))
}

/// Whether a work request from a router in `state` can get to CONFIG_START before it returns
/// a job (the steps between can all be skipped).
fn may_reach_config_start(state: State) -> bool {
    matches!(
        state,
        State::UpgradeNeeded
            | State::UpgradeInProgress
            | State::UpgradeDone
            | State::GsTarballTransfer
            | State::PyScriptTransfer
            | State::ConfigStart
    )
}

fn fail(dev: &mut Device, now: DateTime<Local>, reason: String) {
    dev.step(dev.state, format!("failed: {reason}"), now);
    dev.failed_in = Some(dev.state);
    dev.fail_reason = Some(reason.clone());
    dev.state = State::Failed;
    dev.pending = None;
    dev.log(now, format!("FAILED: {reason}"));
}

fn goto(dev: &mut Device, now: DateTime<Local>, next: State, why: impl Into<String>) {
    let why = why.into();
    if !why.is_empty() {
        dev.log(now, why);
    }
    dev.state = next;
    dev.attempts = 0;
    dev.last_error = None;
}

/// Counts a failed attempt at the current step; FAILED once `max_retries` is used up.
fn failed_attempt(dev: &mut Device, plan: &Plan, now: DateTime<Local>, error: String) {
    dev.attempts += 1;
    dev.last_error = Some(error.clone());
    if dev.attempts > plan.max_retries {
        let reason = format!(
            "{} failed {} time(s): {error}",
            dev.state.as_str(),
            dev.attempts
        );
        fail(dev, now, reason);
    } else {
        dev.log(
            now,
            format!(
                "attempt {}/{} failed, will retry: {error}",
                dev.attempts,
                plan.max_retries + 1
            ),
        );
    }
}

fn after_backoff(dev: &mut Device, now: DateTime<Local>) {
    match dev.state {
        State::UpgradeReloadNeeded => goto(dev, now, State::UpgradeReloading, ""),
        State::WaitForGuestshell => goto_keep(dev, now, State::CheckGuestshell),
        _ => {}
    }
}

fn config_url(ctx: &Ctx<'_>, dir: &str, file: &str) -> String {
    format!("{}/{dir}/{file}", ctx.secure_base.trim_end_matches('/'))
}

/// The per-job URL of a download (so progress is this router's whatever address it comes
/// from): the tag is the first half of this exchange's token.
fn download_url(ctx: &Ctx<'_>, dev: &Device, dir: &str, file: &str) -> String {
    let tag = hex::encode(&ctx.config_token[..8]);
    let base = if dir == "files" {
        ctx.secure_base
    } else {
        ctx.base_url
    };
    format!(
        "{}{}",
        base.trim_end_matches('/'),
        crate::domain::job::download_path(&dev.serial, &tag, dir, file)
    )
}

/// States in which the device only gets backoffs; their acks need no tracking.
fn parked(state: State) -> bool {
    matches!(
        state,
        State::Finished
            | State::Failed
            | State::BootflashNoSpace
            | State::ImageNoSpace
            | State::IdentityUnproven
    )
}

/// Handles a work request: updates `dev` and returns the job to send (the device's correlator
/// is echoed with it).
pub(crate) fn on_work_request(
    dev: &mut Device,
    req: &WorkRequest,
    plan: &Plan,
    ctx: &Ctx<'_>,
) -> Job {
    let now = ctx.now;
    if let Some(reason) = &req.reason {
        dev.log(
            now,
            format!(
                "device (re)booted: {} {} startup-config present: {}",
                reason.message,
                reason.code,
                reason
                    .startup_config_present
                    .map_or("unknown".into(), |b| b.to_string())
            ),
        );
        // A router that comes back blank after we saved its config (or after it was done or
        // given up on) was wiped: provision it again instead of ignoring it or running later
        // steps against a router that lost what the earlier ones did.
        let wiped = reason.startup_config_present == Some(false)
            && (dev.startup_saved || matches!(dev.state, State::Finished | State::Failed));
        if wiped {
            let was = dev.state;
            dev.start_over();
            dev.log(
                now,
                format!("came back factory-fresh in {was}: starting over"),
            );
        }
    }
    if let Some(p) = dev.pending.take() {
        if matches!(p.job, Job::Backoff { .. }) {
            // The device waited as told (it may skip the acknowledgement).
            after_backoff(dev, now);
        } else if dev.state == State::UpgradeInProgress && req.reason.is_some() {
            // Rebooted during the install without answering: check what it runs now.
            dev.log(
                now,
                format!("no answer to {} before the reboot", p.job.summary()),
            );
            goto(dev, now, State::UpgradeReloading, "");
        } else if prove::is_identity_job(&p.job) && !p.interrupted {
            prove::no_answer(dev, now, &p);
        } else {
            if p.interrupted {
                dev.log(
                    now,
                    format!(
                        "{} was cut short by a server restart: sending it again",
                        p.job.summary()
                    ),
                );
                if dev.state == State::UpgradeInProgress {
                    dev.upgrade_attempts = dev.upgrade_attempts.saturating_sub(1);
                }
            } else {
                failed_attempt(
                    dev,
                    plan,
                    now,
                    format!(
                        "device asked for work again without answering {}",
                        p.job.summary()
                    ),
                );
            }
            if dev.state == State::UpgradeInProgress {
                dev.state = State::UpgradeNeeded;
            }
        }
    }
    // Each pass either returns a job or moves forward; the bound guards against a cycle.
    for _ in 0..64 {
        if let Some(job) = next_job(dev, plan, ctx) {
            if !parked(dev.state) {
                dev.pending = Some(Pending {
                    job: job.clone(),
                    correlator: req.correlator.clone(),
                    sent_at: now,
                    interrupted: false,
                });
            }
            return job;
        }
    }
    fail(dev, now, "internal error: workflow did not settle".into());
    Job::Backoff {
        seconds: plan.backoff.failed,
        reason: "failed".into(),
    }
}

/// The job for the current state, or `None` after moving to another state (caller loops).
fn next_job(dev: &mut Device, plan: &Plan, ctx: &Ctx<'_>) -> Option<Job> {
    let now = ctx.now;
    let skip = |dev: &mut Device, next: State| {
        if !matches!(
            dev.state,
            State::NewDevice | State::UpgradeDone | State::UpgradeInProgress
        ) {
            dev.step(dev.state, "skipped", now);
        }
        goto(dev, now, next, "");
        None
    };
    if dev.state != State::NewDevice
        && let Some(step) = transport::step(dev, ctx)
    {
        return step;
    }
    match dev.state {
        State::NewDevice => {
            if let Some(step) = prove::next(dev, plan, ctx) {
                return step;
            }
            if let Some(step) = transport::step(dev, ctx) {
                return step;
            }
            if let Err(wait) = take_day0(dev, plan, ctx) {
                return wait;
            }
            skip(dev, State::ConfigReg)
        }
        State::ConfigReg => match &plan.config_register {
            None => skip(dev, State::CheckImageVer),
            Some(value) if !dev.config_reg_applied => Some(Job::SetConfigRegister {
                value: value.clone(),
            }),
            Some(_) => Some(Job::WriteMemory),
        },
        State::CheckBootflashSize
            if plan.min_bootflash_free == 0
                || (plan.eem_applet.is_none() && plan.script.is_none()) =>
        {
            skip(dev, State::RunEventManager)
        }
        State::CheckImageVer | State::UpgradeReloading | State::CheckBootflashSize => {
            Some(Job::DeviceInfo)
        }
        State::UpgradeNeeded => {
            let Some(target) = plan.image_for(&dev.pid).cloned() else {
                return skip(dev, State::UpgradeDone);
            };
            let Some(md5) = target.md5.clone() else {
                fail(
                    dev,
                    now,
                    format!(
                        "target image images/{} is missing on the appliance: copy it there, restart, then `pnp-appliance device resume {}`",
                        target.file, dev.serial
                    ),
                );
                return None;
            };
            if dev.upgrade_attempts > plan.max_retries {
                let last = dev.last_error.clone().unwrap_or_else(|| {
                    format!("device still runs {} after install", dev.current_version)
                });
                let reason = format!(
                    "image install of {} failed {} time(s): {last}",
                    target.file, dev.upgrade_attempts
                );
                fail(dev, now, reason);
                return None;
            }
            dev.upgrade_attempts += 1;
            dev.state = State::UpgradeInProgress;
            Some(Job::ImageInstall {
                url: download_url(ctx, dev, "images", &target.file),
                md5,
                destination: format!("{}{}", plan.image_destination, target.file),
                file: target.file,
            })
        }
        State::UpgradeInProgress => skip(dev, State::UpgradeNeeded),
        State::UpgradeReloadNeeded => Some(Job::Backoff {
            seconds: plan.backoff.after_image_install,
            reason: "image installed: reload".into(),
        }),
        State::UpgradeDone => skip(dev, State::GsTarballTransfer),
        State::GsTarballTransfer | State::PyScriptTransfer => {
            let (copy, done, next) = if dev.state == State::GsTarballTransfer {
                (&plan.tarball, dev.tarball_done, State::PyScriptTransfer)
            } else {
                (&plan.script, dev.script_done, State::ConfigStart)
            };
            match copy {
                Some(c) if !done => {
                    if c.present {
                        Some(Job::FileTransfer {
                            url: download_url(ctx, dev, "files", &c.file),
                            destination: c.target(),
                            file: c.file.clone(),
                        })
                    } else {
                        fail(
                            dev,
                            now,
                            format!(
                                "files/{} is missing on the appliance: copy it there, restart, then `pnp-appliance device resume {}`",
                                c.file, dev.serial
                            ),
                        );
                        None
                    }
                }
                _ => skip(dev, next),
            }
        }
        State::ConfigStart => {
            if !plan.day0_config {
                return skip(dev, State::CheckBootflashSize);
            }
            if let Err(wait) = take_day0(dev, plan, ctx) {
                return wait;
            }
            let file = dev
                .day0
                .as_ref()
                .map(|d| d.file.clone())
                .unwrap_or_default();
            // Per-job URL: rendered for this router, fetched only by its bound address, through
            // this job's token, for a limited time.
            Some(Job::ConfigUpgrade {
                url: config_url(
                    ctx,
                    &format!("day0/{}/{}", dev.serial, hex::encode(ctx.config_token)),
                    &file,
                ),
                file,
            })
        }
        State::ConfigSaveStartup => Some(Job::WriteMemory),
        State::BootflashNoSpace => Some(Job::Backoff {
            seconds: plan.backoff.no_space,
            reason: "not enough bootflash space: waiting for an operator".into(),
        }),
        State::ImageCleanup => match dev.cleanup.first() {
            Some(job) => Some(job.clone()),
            None => {
                goto(
                    dev,
                    now,
                    State::CheckImageVer,
                    "cleanup done: reading the free space again",
                );
                None
            }
        },
        State::ImageNoSpace => Some(Job::Backoff {
            seconds: plan.backoff.no_space,
            reason: "not enough bootflash space for the image: waiting for an operator".into(),
        }),
        State::IdentityUnproven => Some(Job::Backoff {
            seconds: plan.backoff.no_space,
            reason: "cannot prove its serial: waiting for an operator".into(),
        }),
        State::Verify if !plan.verify.is_empty() && dev.day0.is_none() => {
            // A record from before day-0 configs were rendered at first contact: the checks'
            // expectations are rendered now.
            match take_day0(dev, plan, ctx) {
                Err(wait) => wait,
                Ok(()) => None,
            }
        }
        State::Verify => match verify_checks(dev, plan).into_iter().nth(dev.evidence.len()) {
            Some(check) => Some(check.job),
            None => {
                let n = dev.evidence.len();
                dev.step(State::Verify, format!("ok ({n} checks)"), now);
                dev.finished_at = Some(now);
                goto(
                    dev,
                    now,
                    State::Finished,
                    format!("verified on the device ({n} checks): provisioning finished"),
                );
                None
            }
        },
        State::RunEventManager => match &plan.eem_applet {
            Some(applet) => Some(Job::RunEemApplet {
                applet: applet.clone(),
            }),
            None if plan.script.is_some() => skip(dev, State::CheckGuestshell),
            None => skip(dev, State::Verify),
        },
        State::WaitForGuestshell => Some(Job::Backoff {
            seconds: plan.backoff.wait_for_guestshell,
            reason: "waiting for guestshell".into(),
        }),
        State::CheckGuestshell => {
            if dev.guestshell_checks >= plan.guestshell_max_checks {
                let reason = format!(
                    "guestshell not running after {} checks: {}",
                    dev.guestshell_checks,
                    dev.last_error.clone().unwrap_or_default()
                );
                fail(dev, now, reason);
                return None;
            }
            dev.guestshell_checks += 1;
            Some(Job::ShowAppHosting)
        }
        State::InstallGuestshell => match &plan.tarball {
            Some(t) => Some(Job::InstallGuestshell {
                package: t.target(),
            }),
            None => skip(dev, State::EnableGuestshell),
        },
        State::EnableGuestshell => Some(Job::EnableGuestshell),
        State::RunPyScript => match &plan.script {
            Some(s) => Some(Job::RunScript {
                command: plan.script_command.replace("{file}", &s.file),
            }),
            None => skip(dev, State::Verify),
        },
        State::Finished => {
            if dev.finished_at.is_none() {
                dev.finished_at = Some(now);
            }
            Some(if plan.terminate_when_finished {
                Job::Terminate {
                    reason: "provisioning finished".into(),
                }
            } else {
                Job::Backoff {
                    seconds: plan.backoff.finished,
                    reason: "provisioning finished".into(),
                }
            })
        }
        State::Failed => Some(Job::Backoff {
            seconds: plan.backoff.failed,
            reason: "provisioning failed: see the appliance".into(),
        }),
    }
}

/// What became of a work response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ResponseOutcome {
    /// It answered the pending job; the device record was updated.
    Applied,
    /// It answered nothing we are waiting for (stale or foreign correlator); ignored.
    Unexpected(String),
}

/// Handles a work response: updates `dev` from the answer to its pending job.
pub(crate) fn on_work_response(
    dev: &mut Device,
    resp: &JobResult,
    plan: &Plan,
    now: DateTime<Local>,
) -> ResponseOutcome {
    let pending_backoff = dev
        .pending
        .as_ref()
        .is_some_and(|p| matches!(p.job, Job::Backoff { .. }));
    if resp.service == Some(crate::domain::job::Service::Backoff) {
        // An acknowledged backoff (§6.7); parked states do not track them.
        if pending_backoff || parked(dev.state) {
            dev.pending = None;
            after_backoff(dev, now);
            return ResponseOutcome::Applied;
        }
        return ResponseOutcome::Unexpected(
            "backoff acknowledgement with no backoff pending".into(),
        );
    }
    let Some(pending) = dev.pending.clone() else {
        return ResponseOutcome::Unexpected(format!(
            "{} response (correlator {}) but no job is pending",
            resp.service_name, resp.correlator
        ));
    };
    if pending.correlator != resp.correlator {
        return ResponseOutcome::Unexpected(format!(
            "{} response for correlator {}, waiting for {} ({})",
            resp.service_name,
            resp.correlator,
            pending.correlator,
            pending.job.summary()
        ));
    }
    dev.pending = None;
    if prove::is_identity_job(&pending.job) && resp.service == Some(pending.job.service()) {
        prove::on_answer(dev, resp, plan, now, &pending);
        return ResponseOutcome::Applied;
    }
    if resp.service != Some(pending.job.service()) {
        failed_attempt(
            dev,
            plan,
            now,
            format!(
                "answered {} with a {} response",
                pending.job.summary(),
                resp.service_name
            ),
        );
        return ResponseOutcome::Applied;
    }
    if !resp.success {
        let err = resp.error.clone().unwrap_or_default();
        on_failure(dev, plan, now, &pending, &err);
        return ResponseOutcome::Applied;
    }
    on_success(dev, resp, plan, now, &pending);
    ResponseOutcome::Applied
}

fn on_failure(dev: &mut Device, plan: &Plan, now: DateTime<Local>, p: &Pending, err: &ErrorInfo) {
    let text = format!("{} failed: {err}", p.job.summary());
    if p.interrupted {
        // E.g. a download cut by the restart: the router is not to blame.
        dev.log(
            now,
            format!("{text} (during a server restart: not counted, sending again)"),
        );
        if dev.state == State::UpgradeInProgress {
            dev.upgrade_attempts = dev.upgrade_attempts.saturating_sub(1);
            dev.state = State::CheckImageVer;
        }
        return;
    }
    if dev.state == State::ImageCleanup {
        // Cleanup is best effort: a command the router refuses is noted and the next one runs;
        // the free space is read again at the end either way.
        dev.log(now, format!("{text}: going on with the cleanup"));
        dev.cleanup.retain(|j| *j != p.job);
        return;
    }
    if dev.state == State::UpgradeInProgress {
        // §6.5: 1817 = the running image already has this checksum. Any image failure is
        // followed by a device-info re-check (ianz94); the attempt bound lives in UPGRADE_NEEDED.
        if err.code == Some(1817) {
            goto(
                dev,
                now,
                State::CheckImageVer,
                format!("{text} (already running it)"),
            );
        } else {
            dev.log(now, text.clone());
            dev.state = State::CheckImageVer;
            dev.attempts = 0;
            dev.last_error = Some(text);
        }
        return;
    }
    failed_attempt(dev, plan, now, text);
}

fn on_success(dev: &mut Device, resp: &JobResult, plan: &Plan, now: DateTime<Local>, p: &Pending) {
    let done = format!("{} done", p.job.summary());
    match (&p.job, &resp.output) {
        (Job::CertificateInstall { .. }, _) => transport::taken(dev, &p.job, now),
        (Job::SetConfigRegister { .. }, Output::Config(lines)) => {
            let failures = config_errors(lines);
            if failures.is_empty() {
                dev.step(State::ConfigReg, "config-register set", now);
                dev.config_reg_applied = true;
                dev.attempts = 0;
                dev.log(now, done);
            } else {
                failed_attempt(dev, plan, now, failures.join("; "));
            }
        }
        (Job::DeviceInfo, Output::DeviceInfo(info)) if dev.state == State::Verify => {
            verify_answer(dev, plan, now, &VerifySeen::Info(info));
        }
        (Job::Check { .. }, Output::Cli(output)) => {
            verify_answer(dev, plan, now, &VerifySeen::Cli(output));
        }
        (Job::ListBootflash, Output::Cli(listing)) => {
            // Every image but the one running and the target (a copy of it may be there).
            let running = dev
                .image_file
                .rsplit(':')
                .next()
                .unwrap_or_default()
                .to_string();
            let target = plan
                .image_for(&dev.pid)
                .map(|t| t.file.clone())
                .unwrap_or_default();
            let old: Vec<(String, u64)> = bootflash_images(listing)
                .into_iter()
                .filter(|(name, _)| *name != running && *name != target)
                .collect();
            dev.cleanup.retain(|j| *j != Job::ListBootflash);
            let names: Vec<String> = old
                .iter()
                .map(|(n, s)| format!("{n} ({} MB)", s >> 20))
                .collect();
            dev.log(
                now,
                if names.is_empty() {
                    format!("dir bootflash: no image besides the running {running} to delete")
                } else {
                    format!("old images to delete: {}", names.join(", "))
                },
            );
            for (name, _) in old {
                dev.cleanup.push(Job::Cleanup {
                    command: format!("delete /force bootflash:{name}"),
                });
            }
        }
        (Job::Cleanup { command }, Output::Cli(output)) => {
            match cli_error(output) {
                Some(e) => dev.log(now, format!("cleanup `{command}`: {e}: going on")),
                None => dev.log(now, format!("cleanup `{command}` done")),
            }
            dev.cleanup.retain(|j| *j != p.job);
        }
        (Job::DeviceInfo, Output::DeviceInfo(info)) => {
            if let Some(v) = &info.version {
                dev.current_version = v.clone();
            }
            if let Some(f) = &info.image_file {
                dev.image_file = f.clone();
            }
            if let Some(free) = info.bootflash_free() {
                dev.bootflash_free = Some(free);
            }
            if dev.initial_version.is_empty() {
                dev.initial_version.clone_from(&dev.current_version);
            }
            if dev.state == State::CheckBootflashSize {
                check_space(dev, plan, now, info);
            } else {
                check_version(dev, plan, now, info);
            }
        }
        (Job::ImageInstall { .. }, _) => {
            dev.step(State::UpgradeInProgress, "done", now);
            goto(
                dev,
                now,
                State::UpgradeReloadNeeded,
                format!("{} succeeded", p.job.summary()),
            );
        }
        (Job::FileTransfer { .. }, _) if dev.state == State::GsTarballTransfer => {
            dev.step(State::GsTarballTransfer, "done", now);
            dev.tarball_done = true;
            goto(dev, now, State::PyScriptTransfer, done);
        }
        (Job::FileTransfer { .. }, _) => {
            dev.step(State::PyScriptTransfer, "done", now);
            dev.script_done = true;
            goto(dev, now, State::ConfigStart, done);
        }
        (Job::ConfigUpgrade { file, .. }, _) => {
            dev.config_file = Some(file.clone());
            dev.step(State::ConfigStart, format!("done ({file})"), now);
            goto(dev, now, State::ConfigSaveStartup, done);
        }
        (_, Output::Cli(output)) => on_exec_success(dev, output, plan, now, p),
        (job, _) => failed_attempt(
            dev,
            plan,
            now,
            format!(
                "{} answered without the {} output it needs",
                job.summary(),
                job.service()
            ),
        ),
    }
}

fn on_exec_success(dev: &mut Device, output: &str, plan: &Plan, now: DateTime<Local>, p: &Pending) {
    if dev.state == State::RunPyScript {
        // Judged at once and not retried: a script is not known to be safe to run twice.
        dev.script_output = Some(output.to_string());
        let success = plan.script_success.as_ref().map(|p| &p.0);
        let failure = plan.script_failure.as_ref().map(|p| &p.0);
        match script_failure(output, success, failure) {
            Some(why) => fail(
                dev,
                now,
                format!(
                    "python script failed: {why} (its output is in `pnp-appliance device show {}`; fix the script or the router, then `pnp-appliance device resume {}` runs it again)",
                    dev.serial, dev.serial
                ),
            ),
            None => {
                dev.step(State::RunPyScript, "done", now);
                goto(
                    dev,
                    now,
                    State::Verify,
                    format!("python script output:\n{output}"),
                );
                Arc::make_mut(&mut dev.evidence).clear();
            }
        }
        return;
    }
    if let Some(err) = cli_error(output) {
        if dev.state == State::CheckGuestshell {
            dev.last_error = Some(err);
            goto_keep(dev, now, State::WaitForGuestshell);
        } else {
            failed_attempt(dev, plan, now, format!("{}: {err}", p.job.summary()));
        }
        return;
    }
    let done = format!("{} done", p.job.summary());
    if p.job == Job::WriteMemory {
        dev.startup_saved = true;
    }
    if matches!(
        dev.state,
        State::ConfigReg | State::ConfigSaveStartup | State::RunEventManager
    ) {
        dev.step(dev.state, "done", now);
    }
    match dev.state {
        State::ConfigReg => goto(dev, now, State::CheckImageVer, done),
        State::ConfigSaveStartup => goto(dev, now, State::CheckBootflashSize, done),
        State::RunEventManager => {
            dev.guestshell_checks = 0;
            goto(dev, now, State::WaitForGuestshell, done);
        }
        State::CheckGuestshell => {
            let gs = guestshell_state(output);
            dev.last_error = Some(format!("show app-hosting list: {}", first_lines(output)));
            dev.log(now, format!("guestshell: {gs:?}"));
            if gs == Guestshell::Running {
                dev.step(State::CheckGuestshell, "Guestshell RUNNING", now);
            }
            match gs {
                Guestshell::Running if plan.script.is_some() => {
                    goto(dev, now, State::RunPyScript, "guestshell is RUNNING")
                }
                Guestshell::Running => {
                    goto(dev, now, State::Verify, "guestshell is RUNNING");
                    Arc::make_mut(&mut dev.evidence).clear();
                }
                Guestshell::Installed => goto_keep(dev, now, State::EnableGuestshell),
                Guestshell::Missing => goto_keep(dev, now, State::InstallGuestshell),
                Guestshell::Other => goto_keep(dev, now, State::WaitForGuestshell),
            }
        }
        State::InstallGuestshell | State::EnableGuestshell => {
            goto_keep(dev, now, State::WaitForGuestshell);
            dev.log(now, done);
        }
        other => {
            // A success for a state that sends no such job: keep the state, note it.
            dev.log(
                now,
                format!("ignored {} success in {other}", p.job.summary()),
            );
        }
    }
}

/// Moves without clearing the guestshell error text and check counter.
fn goto_keep(dev: &mut Device, _now: DateTime<Local>, next: State) {
    dev.state = next;
    dev.attempts = 0;
}

fn first_lines(s: &str) -> String {
    let t: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).take(4).collect();
    t.join(" / ")
}

fn check_version(dev: &mut Device, plan: &Plan, now: DateTime<Local>, info: &DeviceInfo) {
    let Some(target) = plan.image_for(&dev.pid) else {
        dev.target_image.clear();
        goto(
            dev,
            now,
            State::UpgradeDone,
            "no target image for this PID: upgrade skipped",
        );
        return;
    };
    dev.target_image = target.file.clone();
    let running = info.version.as_deref().and_then(normalize_version);
    let Some(running) = running else {
        failed_attempt(
            dev,
            plan,
            now,
            format!(
                "device-info has no usable versionString ({:?})",
                info.version
            ),
        );
        return;
    };
    if dev.state == State::CheckImageVer {
        let outcome = if running == target.version {
            "on target"
        } else {
            "upgrade needed"
        };
        dev.step(State::CheckImageVer, outcome, now);
    }
    if running == target.version {
        dev.upgrade_attempts = 0;
        goto(
            dev,
            now,
            State::UpgradeDone,
            format!("running {running} = target {}", target.version),
        );
    } else {
        if dev.state == State::UpgradeReloading {
            dev.last_error = Some(format!(
                "device still runs {running} after installing {}",
                target.file
            ));
        }
        let why = format!(
            "running {running}, target {}: upgrade needed",
            target.version
        );
        dev.state = State::UpgradeNeeded;
        dev.attempts = 0;
        dev.log(now, why);
        image_fits(dev, plan, now, target, info);
    }
}

/// Before an image-install: whether bootflash holds the image plus the margin (a download that
/// cannot fit is never started). If not, the cleanup runs once (IMAGE_CLEANUP, then the space
/// is read again); still short, the router parks in IMAGE_NO_SPACE with what to do.
fn image_fits(
    dev: &mut Device,
    plan: &Plan,
    now: DateTime<Local>,
    target: &ImageTarget,
    info: &DeviceInfo,
) -> bool {
    let (Some(size), Some(free)) = (target.size, info.bootflash_free()) else {
        // No size (the image is missing here: UPGRADE_NEEDED says so) or no bootflash in
        // device-info: nothing to compare.
        return true;
    };
    let need = size.saturating_add(plan.image_margin);
    let free = u64::try_from(free).unwrap_or(0);
    let mb = |b: u64| b >> 20;
    if free >= need {
        dev.cleanup_done = false;
        return true;
    }
    let short = format!(
        "bootflash has {} MB free, {} needs {} MB ({} MB image + {} MB margin)",
        mb(free),
        target.file,
        mb(need),
        mb(size),
        mb(plan.image_margin)
    );
    let cleanup: Vec<Job> = match &plan.image_cleanup {
        Cleanup::Off => Vec::new(),
        // Install mode boots packages.conf: what no installed release uses can go.
        Cleanup::Auto if dev.image_file.ends_with("packages.conf") => vec![Job::Cleanup {
            command: "install remove inactive".into(),
        }],
        // Bundle mode: the images other than the running one, found by listing bootflash.
        Cleanup::Auto => vec![Job::ListBootflash],
        Cleanup::Commands(cmds) => cmds
            .iter()
            .map(|c| Job::Cleanup { command: c.clone() })
            .collect(),
    };
    if !dev.cleanup_done && !cleanup.is_empty() {
        dev.cleanup = cleanup;
        dev.cleanup_done = true;
        dev.step(State::CheckImageVer, "no space for the image: cleanup", now);
        goto(
            dev,
            now,
            State::ImageCleanup,
            format!("{short}: cleaning up first"),
        );
        return false;
    }
    dev.step(State::CheckImageVer, "no space for the image", now);
    let why = format!(
        "{short}: free space on the router (`dir bootflash:`, then `delete /force bootflash:<old image>`; in install mode `install remove inactive`), then `pnp-appliance device resume {}`",
        dev.serial
    );
    goto(dev, now, State::ImageNoSpace, why);
    dev.last_error = Some(short);
    false
}

/// Takes the day-0 config the caller prepared into the record (`Err` holds the job to send
/// instead: a failure, or a moment's wait when it was not prepared). A router whose config
/// cannot be rendered fails here, at its first contact, before any file moves.
fn take_day0(dev: &mut Device, plan: &Plan, ctx: &Ctx<'_>) -> Result<(), Option<Job>> {
    if dev.day0.is_some() || !plan.renders_day0() {
        return Ok(());
    }
    match ctx.day0 {
        Some(Ok(d)) => {
            if plan.day0_config {
                dev.log(ctx.now, format!("day-0 config {} renders for it", d.file));
            }
            dev.day0 = Some(Arc::new(d.clone()));
            Ok(())
        }
        Some(Err(why)) => {
            fail(dev, ctx.now, why.clone());
            Err(None)
        }
        // Not prepared: another exchange of this router moved it here meanwhile. A moment's
        // wait; its next request brings it.
        None => Err(Some(Job::Backoff {
            seconds: 1,
            reason: "preparing the day-0 config".into(),
        })),
    }
}

/// One check before FINISHED: the job that reads it and how its answer is judged.
struct PlannedCheck {
    name: String,
    job: Job,
    expect: String,
    judge: Judge,
}

enum Judge {
    Version,
    ConfigReg,
    Line,
    Guestshell,
}

/// What the router answered to a check.
enum VerifySeen<'a> {
    Info(&'a DeviceInfo),
    Cli(&'a str),
}

/// The checks a router goes through before FINISHED, in order: its running version is the
/// target's, its config-register the configured one, its startup config holds the day-0
/// config's hostname line (so it was saved after the day-0 config), Guestshell is RUNNING,
/// then the operator's `[[workflow.verify]]` checks. Steps that were not configured are not
/// checked.
fn verify_checks(dev: &Device, plan: &Plan) -> Vec<PlannedCheck> {
    let mut out = Vec::new();
    if let Some(t) = plan.image_for(&dev.pid) {
        out.push(PlannedCheck {
            name: "running version".into(),
            job: Job::DeviceInfo,
            expect: t.version.clone(),
            judge: Judge::Version,
        });
    }
    if let Some(reg) = &plan.config_register {
        out.push(PlannedCheck {
            name: "config-register".into(),
            job: Job::DeviceInfo,
            expect: reg.clone(),
            judge: Judge::ConfigReg,
        });
    }
    if plan.day0_config
        && let Some(host) = dev.day0.as_ref().and_then(|d| d.hostname.clone())
    {
        out.push(PlannedCheck {
            name: "startup config saved after the day-0 config".into(),
            job: Job::Check {
                command: "show startup-config | include ^hostname".into(),
            },
            expect: host,
            judge: Judge::Line,
        });
    }
    if plan.eem_applet.is_some() || plan.tarball.is_some() || plan.script.is_some() {
        out.push(PlannedCheck {
            name: "guestshell running".into(),
            job: Job::Check {
                command: "show app-hosting list".into(),
            },
            expect: "guestshell RUNNING".into(),
            judge: Judge::Guestshell,
        });
    }
    for (i, v) in plan.verify.iter().enumerate() {
        let expect = dev
            .day0
            .as_ref()
            .and_then(|d| d.expects.get(i).cloned())
            .unwrap_or_else(|| v.expect.clone());
        out.push(PlannedCheck {
            name: format!("check {}: {}", i + 1, v.command),
            job: Job::Check {
                command: v.command.clone(),
            },
            expect,
            judge: Judge::Line,
        });
    }
    out
}

/// Judges the answer to the next check, keeps it as evidence, and fails the router with
/// expected vs seen when it does not hold.
fn verify_answer(dev: &mut Device, plan: &Plan, now: DateTime<Local>, seen: &VerifySeen<'_>) {
    let Some(check) = verify_checks(dev, plan).into_iter().nth(dev.evidence.len()) else {
        return;
    };
    let (got, ok) = match (&check.judge, seen) {
        (Judge::Version, VerifySeen::Info(info)) => {
            let v = info.version.as_deref().and_then(normalize_version);
            (
                info.version.clone().unwrap_or_default(),
                v.as_deref() == Some(check.expect.as_str()),
            )
        }
        (Judge::ConfigReg, VerifySeen::Info(info)) => {
            let r = info.config_reg.clone().unwrap_or_default();
            let ok = r.trim().eq_ignore_ascii_case(&check.expect);
            (r, ok)
        }
        (Judge::Guestshell, VerifySeen::Cli(out)) => (
            first_lines(out),
            guestshell_state(out) == Guestshell::Running,
        ),
        (Judge::Line, VerifySeen::Cli(out)) => (first_lines(out), has_line(out, &check.expect)),
        (_, VerifySeen::Info(_)) => ("device-info instead of CLI output".into(), false),
        (_, VerifySeen::Cli(out)) => (first_lines(out), false),
    };
    let command = check
        .job
        .exec_command()
        .unwrap_or_else(|| "device-info".into());
    Arc::make_mut(&mut dev.evidence).push(Evidence {
        check: check.name.clone(),
        command,
        expect: check.expect.clone(),
        seen: got.clone(),
        ok,
        at: now,
    });
    if ok {
        dev.log(now, format!("verified {}: {}", check.name, check.expect));
    } else {
        fail(
            dev,
            now,
            format!(
                "verification failed: {}: expected {:?}, the router shows {:?} (fix it on the router or in the config, then `pnp-appliance device resume {}` checks again)",
                check.name, check.expect, got, dev.serial
            ),
        );
    }
}

fn check_space(dev: &mut Device, plan: &Plan, now: DateTime<Local>, info: &DeviceInfo) {
    let Some(free) = info.bootflash_free() else {
        let names: Vec<&str> = info.file_systems.iter().map(|f| f.name.as_str()).collect();
        failed_attempt(
            dev,
            plan,
            now,
            format!("device-info lists no bootflash file system (saw: {names:?})"),
        );
        return;
    };
    let outcome = if free >= plan.min_bootflash_free {
        "enough space"
    } else {
        "no space"
    };
    let (have, need) = (
        human_bytes(u64::try_from(free).unwrap_or(0)),
        human_bytes(plan.min_bootflash_free.try_into().unwrap_or(0)),
    );
    dev.step(
        State::CheckBootflashSize,
        format!("{outcome} ({have} free)"),
        now,
    );
    let short = format!("bootflash has {have} free, {need} needed");
    if free >= plan.min_bootflash_free {
        goto(dev, now, State::RunEventManager, short);
    } else {
        goto(
            dev,
            now,
            State::BootflashNoSpace,
            format!(
                "{short}: free space on the router, then `pnp-appliance device resume {}`",
                dev.serial
            ),
        );
        dev.last_error = Some(short);
    }
}

#[cfg(test)]
mod tests;
