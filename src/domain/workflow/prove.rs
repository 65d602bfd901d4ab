//! The identity step at a router's first contact: capability, then device-auth where offered,
//! then (with `[identity] require-sudi`) IDENTITY_UNPROVEN for a router that cannot prove its
//! serial. Runs in NEW_DEVICE, before anything is sent that changes the router.
//!
//! Which IOS-XE releases answer device-auth is not documented (`docs/identity.md` §1), so the
//! router's capability list decides (§6.10: names are `cisco:pnp:<service>`); an agent that
//! does not answer capability at all is taken as not offering it.

use chrono::{DateTime, Local};

use super::{Ctx, goto};
use crate::domain::device::{Device, Pending, State};
use crate::domain::identity::{Sudi, Verdict};
use crate::domain::job::{Job, JobResult, Output};
use crate::domain::plan::Plan;

/// The capability a SUDI router lists (XSD `pnp_capability_body`: "for SUDI device use only").
const DEVICE_AUTH: &str = "cisco:pnp:device-auth";

/// The identity job due for `dev`, `Some(None)` after parking it, `None` once its identity is
/// settled (the workflow goes on).
pub(super) fn next(dev: &mut Device, plan: &Plan, ctx: &Ctx<'_>) -> Option<Option<Job>> {
    let policy = &plan.identity;
    if dev.sudi.as_ref().is_some_and(|s| s.verified() || s.vouched) {
        return None;
    }
    if !policy.device_auth {
        // Not asked: the record keeps no SUDI verdict (views say address-bound), and
        // require-sudi cannot be set without device-auth (the config refuses it).
        return None;
    }
    let Some(caps) = &dev.capabilities else {
        return Some(Some(Job::Capability));
    };
    if dev.sudi.is_none() {
        if offers_device_auth(caps) {
            return Some(Some(Job::DeviceAuth {
                challenge: hex::encode(ctx.config_token),
            }));
        }
        unproven(
            dev,
            ctx.now,
            Verdict::NotOffered,
            "its PnP agent does not offer device-auth".into(),
        );
    }
    if !policy.require_sudi {
        return None;
    }
    let why = dev
        .sudi
        .as_ref()
        .map_or_else(String::new, |s| s.detail.clone());
    let reason =
        format!("cannot prove its serial by its SUDI ({why}) and [identity] require-sudi is set");
    dev.step(State::NewDevice, format!("parked: {reason}"), ctx.now);
    let now = ctx.now;
    goto(
        dev,
        now,
        State::IdentityUnproven,
        format!("IDENTITY_UNPROVEN: {reason}"),
    );
    dev.last_error = Some(reason);
    Some(None)
}

fn offers_device_auth(caps: &[String]) -> bool {
    caps.iter().any(|c| c.trim() == DEVICE_AUTH)
}

/// Records the SUDI verdict, with its history line.
fn settle(dev: &mut Device, sudi: Sudi) {
    let d = &sudi.detail;
    let line = match sudi.verdict {
        Verdict::Verified => format!("SUDI verified: {d}"),
        Verdict::Failed => format!("SUDI check failed: {d}; identity rests on its address"),
        Verdict::NotOffered => format!("no SUDI check: {d}; identity rests on its address"),
    };
    dev.log(sudi.at, line);
    dev.sudi = Some(sudi);
}

/// [`settle`] on a serial not proven.
fn unproven(dev: &mut Device, now: DateTime<Local>, verdict: Verdict, detail: String) {
    settle(dev, Sudi::unproven(verdict, detail, now));
}

/// Reads the answer to an identity job (`p`).
pub(super) fn on_answer(
    dev: &mut Device,
    resp: &JobResult,
    plan: &Plan,
    now: DateTime<Local>,
    p: &Pending,
) {
    match (&p.job, &resp.output) {
        (Job::Capability, Output::Capabilities(caps)) if resp.success => {
            dev.log(
                now,
                format!(
                    "capability: {} services; device-auth {}",
                    caps.len(),
                    if offers_device_auth(caps) {
                        "offered"
                    } else {
                        "not offered"
                    }
                ),
            );
            dev.capabilities = Some(std::sync::Arc::new(caps.clone()));
        }
        (Job::Capability, _) => {
            let err = resp.error.clone().unwrap_or_default();
            dev.log(
                now,
                format!("capability failed: {err}: taken as no device-auth"),
            );
            dev.capabilities = Some(std::sync::Arc::default());
        }
        (Job::DeviceAuth { challenge }, Output::DeviceAuth(a)) if resp.success => {
            let checked =
                plan.identity
                    .trust
                    .verify(challenge, a, &dev.pid, &dev.serial, now.timestamp());
            match checked {
                Ok(proof) => {
                    dev.step(State::NewDevice, "SUDI verified", now);
                    settle(dev, Sudi::proven(proof, now));
                }
                Err(why) => unproven(dev, now, Verdict::Failed, why),
            }
        }
        (Job::DeviceAuth { .. }, _) => {
            let err = resp.error.clone().unwrap_or_default();
            unproven(
                dev,
                now,
                Verdict::Failed,
                format!("device-auth failed on the router: {err}"),
            );
        }
        _ => {}
    }
}

/// An identity job the router asked past without answering (an agent that does not know the
/// service answers with a fault, which carries no correlator): not offered, not a failure.
pub(super) fn no_answer(dev: &mut Device, now: DateTime<Local>, p: &Pending) {
    match p.job {
        Job::Capability => {
            dev.log(now, "no answer to capability: taken as no device-auth");
            dev.capabilities = Some(std::sync::Arc::default());
        }
        Job::DeviceAuth { .. } => unproven(
            dev,
            now,
            Verdict::Failed,
            "it offers device-auth but did not answer the challenge".into(),
        ),
        _ => {}
    }
}

/// Whether `job` is one of the identity step's.
pub(super) fn is_identity_job(job: &Job) -> bool {
    matches!(job, Job::Capability | Job::DeviceAuth { .. })
}
