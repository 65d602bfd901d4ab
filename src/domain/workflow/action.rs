//! Operator actions on a record (`device resume|retry|reset|forget|accept-move`, an edited state cell of
//! `DEVICE_STATUS.csv`) and the restart mark: state transitions the operator or a server
//! restart causes, beside the ones the router causes in the parent module.

use std::sync::Arc;

use chrono::{DateTime, Local};

use super::goto;
use crate::domain::device::{Device, State};

/// Operator action `resume`: continues a router parked in BOOTFLASH_NO_SPACE with the next step,
/// re-reads the free space of one parked in IMAGE_NO_SPACE, or retries the step a FAILED router
/// stopped at (a day-0 config is rendered again, verification starts over). Returns what was
/// done.
pub(crate) fn resume(dev: &mut Device, now: DateTime<Local>) -> Result<String, String> {
    match dev.state {
        State::BootflashNoSpace => {
            goto(dev, now, State::RunEventManager, "resumed by operator");
            Ok(format!(
                "{}: BOOTFLASH_NO_SPACE -> RUN_EVENT_MANAGER (continues at its next poll)",
                dev.serial
            ))
        }
        State::ImageNoSpace => {
            goto(
                dev,
                now,
                State::CheckImageVer,
                "resumed by operator: reading the free space again",
            );
            Ok(format!(
                "{}: IMAGE_NO_SPACE -> CHECK_IMAGE_VER (reads the free space again at its next poll)",
                dev.serial
            ))
        }
        State::IdentityUnproven => {
            if let Some(s) = dev.sudi.as_mut() {
                s.vouched = true;
            }
            goto(
                dev,
                now,
                State::NewDevice,
                "resumed by operator, who vouched for its identity: it goes on bound to its address",
            );
            Ok(format!(
                "{}: IDENTITY_UNPROVEN -> NEW_DEVICE (vouched for; continues at its next poll, bound to its address)",
                dev.serial
            ))
        }
        State::Failed => {
            let back = match dev.failed_in {
                Some(State::UpgradeInProgress | State::ImageCleanup) | None => State::CheckImageVer,
                Some(s) => s,
            };
            match back {
                // Rendered again: the operator may have fixed the inventory or the template.
                State::NewDevice | State::ConfigStart => dev.day0 = None,
                State::Verify => Arc::make_mut(&mut dev.evidence).clear(),
                _ => {}
            }
            dev.fail_reason = None;
            dev.failed_in = None;
            dev.upgrade_attempts = 0;
            dev.guestshell_checks = 0;
            dev.pending = None;
            goto(dev, now, back, "resumed by operator: retrying");
            Ok(format!(
                "{}: FAILED -> {back} (retried at its next poll)",
                dev.serial
            ))
        }
        other => Err(format!(
            "{} is in {other}, not BOOTFLASH_NO_SPACE, IMAGE_NO_SPACE, IDENTITY_UNPROVEN or FAILED: nothing to resume",
            dev.serial
        )),
    }
}

/// At start-up: a job in flight when the server stopped is marked interrupted (its answer is
/// still accepted; a failure or no answer does not count against the router).
pub(crate) fn mark_interrupted(dev: &mut Device) -> bool {
    match dev.pending.as_mut() {
        Some(p) if !p.interrupted => {
            p.interrupted = true;
            true
        }
        _ => false,
    }
}

/// Operator actions on a device record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Action {
    /// Continue from BOOTFLASH_NO_SPACE, or retry the step a FAILED router stopped at.
    Resume,
    /// Send the current step's job again (a FAILED router retries its failed step; a parked
    /// one re-checks its free space).
    Retry,
    /// Provision the router again from the start.
    Reset,
    /// Delete the record (done by the registry, not here).
    Forget,
    /// Bind the serial to the address that claimed it (the router really moved).
    AcceptMove,
}

impl Action {
    /// Every action, for help texts and errors.
    pub(crate) const ALL: [Action; 5] = [
        Action::Resume,
        Action::Retry,
        Action::Reset,
        Action::Forget,
        Action::AcceptMove,
    ];

    /// The action's name in URLs and on the command line.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Action::Resume => "resume",
            Action::Retry => "retry",
            Action::Reset => "reset",
            Action::Forget => "forget",
            Action::AcceptMove => "accept-move",
        }
    }
}

impl std::str::FromStr for Action {
    type Err = String;

    fn from_str(s: &str) -> Result<Action, String> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                format!("unknown action {s:?}: resume, retry, reset, forget or accept-move")
            })
    }
}

/// Applies `action` (not `Forget`) to `dev`; returns what was done.
pub(crate) fn operator(
    dev: &mut Device,
    action: Action,
    now: DateTime<Local>,
) -> Result<String, String> {
    match action {
        Action::Resume => resume(dev, now),
        Action::AcceptMove => crate::domain::identity::accept_move(dev, now),
        Action::Forget => Err("forget is done by the registry".into()),
        Action::Retry => match dev.state {
            State::Failed => resume(dev, now),
            State::Finished => Err(format!(
                "{} is FINISHED: use `reset` to provision it again",
                dev.serial
            )),
            State::ImageNoSpace | State::IdentityUnproven => resume(dev, now),
            State::BootflashNoSpace => {
                goto(
                    dev,
                    now,
                    State::CheckBootflashSize,
                    "retry by operator: checking free space again",
                );
                Ok(format!(
                    "{}: BOOTFLASH_NO_SPACE -> CHECK_BOOTFLASH_SIZE",
                    dev.serial
                ))
            }
            st => {
                dev.pending = None;
                dev.attempts = 0;
                dev.log(now, "retry by operator: the current job is sent again");
                Ok(format!(
                    "{}: {st} job sent again at its next poll",
                    dev.serial
                ))
            }
        },
        Action::Reset => {
            let was = dev.state;
            dev.start_over();
            // Rendered again at its next contact: the operator may have changed the inventory.
            dev.day0 = None;
            dev.log(now, format!("reset by operator in {was}: starting over"));
            Ok(format!(
                "{}: {was} -> NEW_DEVICE (starts over at its next poll)",
                dev.serial
            ))
        }
    }
}

/// An operator's direct choice of state (the reference's way out of BOOTFLASH_NO_SPACE: editing
/// "Device State" in DEVICE_STATUS.csv). The router continues from `state` at its next poll.
pub(crate) fn set_state(dev: &mut Device, state: State, now: DateTime<Local>, how: &str) {
    let was = dev.state;
    dev.pending = None;
    dev.attempts = 0;
    if state != State::Failed {
        dev.fail_reason = None;
        dev.failed_in = None;
    }
    if matches!(state, State::UpgradeNeeded | State::CheckImageVer) {
        dev.upgrade_attempts = 0;
    }
    if matches!(
        state,
        State::CheckGuestshell | State::RunEventManager | State::WaitForGuestshell
    ) {
        dev.guestshell_checks = 0;
    }
    match state {
        State::Verify => Arc::make_mut(&mut dev.evidence).clear(),
        State::NewDevice => dev.day0 = None,
        State::CheckImageVer | State::UpgradeNeeded => dev.cleanup_done = false,
        _ => {}
    }
    dev.log(now, format!("operator set state {was} -> {state} ({how})"));
    dev.state = state;
}
