//! Table-driven tests of the pure workflow: conversations with a scripted device.

use super::*;
use crate::domain::device::Day0;
use crate::domain::device::{Device, State};
use crate::domain::job::{Job, ReloadReason, WorkRequest};
use crate::domain::plan::{Backoffs, Cleanup, FileCopy, ImageTarget, Pattern, VerifyCheck};
use crate::pnp::message::{self, DeviceMessage};
use std::sync::Arc;

const UDI: &str = "PID:C1131-8PWB,VID:V01,SN:FGL1";
/// The config URL token the tests pass in (the server draws a random one per exchange).
const TOKEN: [u8; 16] = [0x01, 0x23, 0xab, 0xcd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

fn plan() -> Plan {
    Plan {
        config_register: Some("0x2102".into()),
        images: vec![ImageTarget {
            pid_prefix: "C11".into(),
            file: "c1100-universalk9.17.12.03a.SPA.bin".into(),
            version: "17.12.3a".into(),
            md5: Some("0123456789abcdef0123456789abcdef".into()),
            size: Some(IMAGE_BYTES),
        }],
        image_destination: "bootflash:".into(),
        tarball: Some(FileCopy {
            file: "guestshell.tar".into(),
            destination: "bootflash:".into(),
            present: true,
        }),
        script: Some(FileCopy {
            file: "s.py".into(),
            destination: "bootflash:guest-share/".into(),
            present: true,
        }),
        script_command: "guestshell run python3 /bootflash/guest-share/{file}".into(),
        script_success: None,
        script_failure: None,
        image_margin: 100 << 20,
        image_cleanup: Cleanup::Auto,
        verify: Vec::new(),
        day0_config: true,
        min_bootflash_free: 1 << 30,
        eem_applet: Some("InstallGuestShell".into()),
        max_retries: 2,
        guestshell_max_checks: 4,
        terminate_when_finished: false,
        backoff: Backoffs {
            after_image_install: 120,
            wait_for_guestshell: 60,
            no_space: 600,
            finished: 1200,
            failed: 600,
        },
        identity: crate::domain::plan::IdentityPolicy {
            device_auth: false,
            require_sudi: false,
            trust: Arc::new(crate::domain::sudi::Trust::new(&[]).unwrap()),
        },
    }
}

/// A device under test and its conversation counter.
struct Conv {
    dev: Device,
    plan: Plan,
    n: u32,
    config: Result<Day0, String>,
    /// With `[http] https` on: whether the next request comes over HTTPS.
    over_tls: Option<bool>,
}

impl Conv {
    fn new(plan: Plan) -> Conv {
        let now = Local::now();
        Conv {
            dev: Device::new("FGL1", UDI, "C1131-8PWB", "V01", now),
            plan,
            n: 0,
            config: Ok(day0()),
            over_tls: None,
        }
    }

    fn request_with(&mut self, reason: Option<ReloadReason>) -> Job {
        self.n += 1;
        let req = WorkRequest {
            correlator: format!("C{}", self.n),
            reason,
        };
        // Prepared as the HTTP layer prepares it: only when the exchange can need it.
        let prepared = needs_day0(&self.dev, &self.plan).then(|| self.config.clone());
        let ctx = Ctx {
            now: Local::now(),
            base_url: "http://198.51.100.1:8080",
            secure_base: "http://198.51.100.1:8080",
            tls: self.over_tls.map(|over_tls| Transport {
                over_tls,
                ca_url: "http://198.51.100.1:8080/pnp-info/ca.pem",
                host: "198.51.100.1",
                port: 8443,
                timeout: std::time::Duration::from_secs(600),
            }),
            day0: prepared.as_ref(),
            config_token: TOKEN,
        };
        on_work_request(&mut self.dev, &req, &self.plan, &ctx)
    }

    fn request(&mut self) -> Job {
        self.request_with(None)
    }

    /// Answers the pending job with `inner` XML inside `<response>`.
    fn answer(&mut self, service: &str, ok: bool, inner: &str) -> ResponseOutcome {
        let correlator = format!("C{}", self.n);
        self.answer_corr(service, ok, inner, &correlator)
    }

    fn answer_corr(&mut self, service: &str, ok: bool, inner: &str, corr: &str) -> ResponseOutcome {
        let xml = format!(
            "<pnp xmlns=\"urn:cisco:pnp\" version=\"1.0\" udi=\"{UDI}\"><response xmlns=\"urn:cisco:pnp:{service}\" correlator=\"{corr}\" success=\"{}\">{inner}</response></pnp>",
            u8::from(ok)
        );
        let DeviceMessage::Response { result: resp, .. } =
            message::parse_device_message(xml.as_bytes()).unwrap()
        else {
            panic!("not a response")
        };
        on_work_response(&mut self.dev, &resp, &self.plan, Local::now())
    }

    fn ok(&mut self, service: &str) {
        assert_eq!(self.answer(service, true, ""), ResponseOutcome::Applied);
    }

    fn exec(&mut self, output: &str) {
        let inner = format!(
            "<execLog><dialogueLog><sent>x</sent><received><text>{}</text></received></dialogueLog></execLog>",
            crate::pnp::xml::escape(output)
        );
        assert_eq!(
            self.answer("cli-exec", true, &inner),
            ResponseOutcome::Applied
        );
    }

    fn info(&mut self, version: &str, free: i64) {
        let inner = device_info_xml(version, free);
        assert_eq!(
            self.answer("device-info", true, &inner),
            ResponseOutcome::Applied
        );
    }

    fn fail(&mut self, service: &str, code: u32, msg: &str) {
        let inner = format!(
            "<errorInfo><errorSeverity>XSVC_ERROR</errorSeverity><errorCode>PnP Service Error {code}</errorCode><errorMessage>{msg}</errorMessage></errorInfo>"
        );
        assert_eq!(
            self.answer(service, false, &inner),
            ResponseOutcome::Applied
        );
    }
}

/// The day-0 config the tests' routers get.
fn day0() -> Day0 {
    Day0 {
        file: "default.cfg".into(),
        hostname: Some("hostname r1".into()),
        expects: Vec::new(),
    }
}

/// Bytes of the tests' target image.
const IMAGE_BYTES: u64 = 706_422_748;

/// Answers the last checks of [`plan`] as a router provisioned right would.
fn verify_all(c: &mut Conv) {
    assert_eq!(c.request(), Job::DeviceInfo, "running version");
    c.info("17.12.3a", GB2);
    assert_eq!(c.request(), Job::DeviceInfo, "config-register");
    c.info("17.12.3a", GB2);
    assert_eq!(
        c.request(),
        Job::Check {
            command: "show startup-config | include ^hostname".into()
        }
    );
    c.exec("hostname r1");
    assert_eq!(
        c.request(),
        Job::Check {
            command: "show app-hosting list".into()
        }
    );
    c.exec(RUNNING);
    assert!(c.dev.evidence.iter().all(|e| e.ok), "{:?}", c.dev.evidence);
    assert_eq!(c.dev.evidence.len(), 4);
}

fn device_info_xml(version: &str, free: i64) -> String {
    format!(
        "<imageInfo><versionString>{version}</versionString><imageFile>bootflash:packages.conf</imageFile><configReg>0x2102</configReg></imageInfo><fileSystemList><fileSystem name=\"webui\" type=\"disk\" size=\"0\" freespace=\"0\"/><fileSystem name=\"bootflash\" type=\"disk\" size=\"7605936128\" freespace=\"{free}\"/><fileSystem name=\"nvram\" type=\"nvram\" size=\"33554432\" freespace=\"33000000\"/></fileSystemList>"
    )
}

fn reboot(message: &str, startup: bool) -> Option<ReloadReason> {
    Some(ReloadReason {
        message: message.into(),
        code: "PnP Service Info 2408".into(),
        startup_config_present: Some(startup),
    })
}

const RUNNING: &str = "App id   State\n------\nguestshell   RUNNING";
const GB2: i64 = 2 << 30;

/// Drives a conversation from NEW_DEVICE to the upgrade decision.
fn to_image_check(c: &mut Conv) {
    assert_eq!(
        c.request_with(reboot("factory-reset", false)),
        Job::SetConfigRegister {
            value: "0x2102".into()
        }
    );
    c.ok("cli-config");
    assert_eq!(c.request(), Job::WriteMemory);
    c.exec("[OK]");
    assert_eq!(c.dev.state, State::CheckImageVer);
    assert_eq!(c.request(), Job::DeviceInfo);
}

#[test]
fn full_workflow_in_reference_order() {
    let mut c = Conv::new(plan());
    to_image_check(&mut c);
    c.info("17.9.4a", GB2);
    assert_eq!(c.dev.state, State::UpgradeNeeded);
    // (expected job, answer, state after the answer)
    let image = c.request();
    assert_eq!(
        image,
        Job::ImageInstall {
            file: "c1100-universalk9.17.12.03a.SPA.bin".into(),
            url: "http://198.51.100.1:8080/dl/FGL1/0123abcd00000000/images/c1100-universalk9.17.12.03a.SPA.bin".into(),
            md5: "0123456789abcdef0123456789abcdef".into(),
            destination: "bootflash:c1100-universalk9.17.12.03a.SPA.bin".into(),
        }
    );
    assert_eq!(c.dev.state, State::UpgradeInProgress);
    c.ok("image-install");
    assert_eq!(c.dev.state, State::UpgradeReloadNeeded);
    // The poll right after a successful install gets a backoff, never device-info (§8).
    assert!(matches!(c.request(), Job::Backoff { seconds: 120, .. }));
    c.ok("backoff");
    assert_eq!(c.dev.state, State::UpgradeReloading);
    assert_eq!(c.request_with(reboot("reload", true)), Job::DeviceInfo);
    c.info("17.12.3a", GB2);
    assert_eq!(c.dev.state, State::UpgradeDone);
    assert_eq!(
        c.request(),
        Job::FileTransfer {
            file: "guestshell.tar".into(),
            url: "http://198.51.100.1:8080/dl/FGL1/0123abcd00000000/files/guestshell.tar".into(),
            destination: "bootflash:guestshell.tar".into()
        }
    );
    assert_eq!(c.dev.state, State::GsTarballTransfer);
    c.ok("file-transfer");
    assert_eq!(
        c.request(),
        Job::FileTransfer {
            file: "s.py".into(),
            url: "http://198.51.100.1:8080/dl/FGL1/0123abcd00000000/files/s.py".into(),
            destination: "bootflash:guest-share/s.py".into()
        }
    );
    c.ok("file-transfer");
    assert_eq!(c.dev.state, State::ConfigStart);
    assert_eq!(
        c.request(),
        Job::ConfigUpgrade {
            file: "default.cfg".into(),
            url: "http://198.51.100.1:8080/day0/FGL1/0123abcd000000000000000000000000/default.cfg"
                .into()
        }
    );
    c.ok("config-upgrade");
    assert_eq!(c.dev.config_file.as_deref(), Some("default.cfg"));
    assert_eq!(c.request(), Job::WriteMemory);
    assert_eq!(c.dev.state, State::ConfigSaveStartup);
    c.exec("Building configuration...\n[OK]");
    assert_eq!(c.request(), Job::DeviceInfo);
    c.info("17.12.3a", GB2);
    assert_eq!(c.dev.state, State::RunEventManager);
    assert_eq!(
        c.request(),
        Job::RunEemApplet {
            applet: "InstallGuestShell".into()
        }
    );
    c.exec("");
    assert!(matches!(c.request(), Job::Backoff { seconds: 60, .. }));
    assert_eq!(c.dev.state, State::WaitForGuestshell);
    c.ok("backoff");
    assert_eq!(c.request(), Job::ShowAppHosting);
    c.exec(RUNNING);
    assert_eq!(
        c.request(),
        Job::RunScript {
            command: "guestshell run python3 /bootflash/guest-share/s.py".into()
        }
    );
    c.exec("hello from the script");
    assert_eq!(c.dev.state, State::Verify);
    verify_all(&mut c);
    assert_eq!(
        c.dev.script_output.as_deref(),
        Some("hello from the script")
    );
    assert!(c.dev.tarball_done && c.dev.script_done);
    assert!(matches!(c.request(), Job::Backoff { seconds: 1200, .. }));
    // Finished routers' backoffs are not tracked: the ack changes nothing.
    assert!(c.dev.pending.is_none());
    c.ok("backoff");
    assert_eq!(c.dev.state, State::Finished);
}

#[test]
fn steps_with_nothing_configured_are_skipped() {
    let mut p = plan();
    p.config_register = None;
    p.images.clear();
    p.tarball = None;
    p.script = None;
    p.eem_applet = None;
    let mut c = Conv::new(p);
    assert_eq!(c.request(), Job::DeviceInfo);
    assert_eq!(c.dev.state, State::CheckImageVer);
    c.info("17.9.4a", GB2);
    assert_eq!(c.dev.state, State::UpgradeDone);
    assert!(matches!(c.request(), Job::ConfigUpgrade { .. }));
    c.ok("config-upgrade");
    assert_eq!(c.request(), Job::WriteMemory);
    c.exec("[OK]");
    // No applet, no script: no space check, no guestshell; of the last checks only the
    // startup config's hostname.
    assert_eq!(
        c.request(),
        Job::Check {
            command: "show startup-config | include ^hostname".into()
        }
    );
    c.exec("hostname r1");
    assert!(matches!(c.request(), Job::Backoff { seconds: 1200, .. }));
    assert_eq!(c.dev.state, State::Finished);
    assert_eq!(c.dev.evidence.len(), 1);
}

#[test]
fn terminate_when_finished_is_sent_when_configured() {
    let mut p = plan();
    p.terminate_when_finished = true;
    let mut c = Conv::new(p);
    c.dev.state = State::Finished;
    assert!(matches!(c.request(), Job::Terminate { .. }));
}

#[test]
fn upgrade_decided_by_version_not_file_name() {
    // (versionString reported, upgrade needed?)
    let table = [
        ("17.12.3a", false),
        ("17.12.03a", false),
        ("Cisco IOS XE Software, Version 17.12.03a", false),
        ("17.12.3", true),
        ("17.9.4a", true),
        ("17.12.3b", true),
    ];
    for (reported, upgrade) in table {
        let mut c = Conv::new(plan());
        to_image_check(&mut c);
        c.info(reported, GB2);
        let expected = if upgrade {
            State::UpgradeNeeded
        } else {
            State::UpgradeDone
        };
        assert_eq!(c.dev.state, expected, "{reported}");
    }
}

#[test]
fn normalize_version_table() {
    let table = [
        ("c1100-universalk9.17.12.03a.SPA.bin", Some("17.12.3a")),
        ("c1100-universalk9.17.14.01a.SPA.bin", Some("17.14.1a")),
        ("17.3.4a", Some("17.3.4a")),
        ("isr1100be-universalk9.17.09.04.SPA.bin", Some("17.9.4")),
        ("packages.conf", None),
        ("15.5(20140930:030825)", None),
        ("", None),
    ];
    for (input, want) in table {
        assert_eq!(normalize_version(input).as_deref(), want, "{input}");
    }
}

#[test]
fn image_error_1817_means_already_running() {
    let mut c = Conv::new(plan());
    to_image_check(&mut c);
    c.info("17.12.03", GB2); // unusual string: upgrade attempted
    assert!(matches!(c.request(), Job::ImageInstall { .. }));
    c.fail(
        "image-install",
        1817,
        "Running Image checksum same as provided checksum. Upgrade not needed",
    );
    assert_eq!(c.dev.state, State::CheckImageVer);
    assert_eq!(c.request(), Job::DeviceInfo);
    c.info("17.12.3a", GB2);
    assert_eq!(c.dev.state, State::UpgradeDone);
}

#[test]
fn image_checksum_failure_is_retried_then_failed_with_device_text() {
    let mut c = Conv::new(plan());
    to_image_check(&mut c);
    c.info("17.9.4a", GB2);
    for _ in 0..3 {
        assert!(matches!(c.request(), Job::ImageInstall { .. }));
        c.fail("image-install", 1816, "Error verifying checksum");
        assert_eq!(c.request(), Job::DeviceInfo);
        c.info("17.9.4a", GB2);
        assert_eq!(c.dev.state, State::UpgradeNeeded);
    }
    // 1 try + max_retries (2) used up.
    assert!(matches!(c.request(), Job::Backoff { seconds: 600, .. }));
    assert_eq!(c.dev.state, State::Failed);
    let reason = c.dev.fail_reason.clone().unwrap();
    assert!(
        reason.contains("PnP Service Error 1816: Error verifying checksum"),
        "{reason}"
    );
    assert_eq!(c.dev.upgrade_attempts, 3);
}

#[test]
fn still_old_version_after_reload_reinstalls_then_fails() {
    let mut c = Conv::new(plan());
    to_image_check(&mut c);
    c.info("17.9.4a", GB2);
    for _ in 0..3 {
        assert!(matches!(c.request(), Job::ImageInstall { .. }));
        c.ok("image-install");
        assert!(matches!(c.request(), Job::Backoff { .. }));
        c.ok("backoff");
        assert_eq!(c.request_with(reboot("reload", true)), Job::DeviceInfo);
        c.info("17.9.4a", GB2);
    }
    c.request();
    assert_eq!(c.dev.state, State::Failed);
    assert!(
        c.dev
            .fail_reason
            .clone()
            .unwrap()
            .contains("still runs 17.9.4a")
    );
}

#[test]
fn missing_backoff_ack_still_moves_on() {
    // NSO-emulator style device: waits but never acknowledges the backoff.
    let mut c = Conv::new(plan());
    c.dev.state = State::UpgradeReloadNeeded;
    assert!(matches!(c.request(), Job::Backoff { .. }));
    assert_eq!(c.request_with(reboot("reload", true)), Job::DeviceInfo);
    assert_eq!(c.dev.state, State::UpgradeReloading);
}

#[test]
fn bootflash_space_reads_the_bootflash_entry_and_parks() {
    let mut c = Conv::new(plan());
    c.dev.state = State::CheckBootflashSize;
    assert_eq!(c.request(), Job::DeviceInfo);
    c.info("17.12.3a", 500_000_000);
    assert_eq!(c.dev.state, State::BootflashNoSpace);
    assert_eq!(c.dev.bootflash_free, Some(500_000_000));
    for _ in 0..3 {
        assert!(matches!(c.request(), Job::Backoff { seconds: 600, .. }));
        c.ok("backoff");
        assert_eq!(c.dev.state, State::BootflashNoSpace);
    }
    let msg = action::resume(&mut c.dev, Local::now()).unwrap();
    assert!(msg.contains("RUN_EVENT_MANAGER"), "{msg}");
    assert_eq!(
        c.request(),
        Job::RunEemApplet {
            applet: "InstallGuestShell".into()
        }
    );
    assert!(action::resume(&mut c.dev, Local::now()).is_err());
}

#[test]
fn no_bootflash_entry_is_a_failed_attempt() {
    let mut c = Conv::new(plan());
    c.dev.state = State::CheckBootflashSize;
    c.request();
    c.answer(
        "device-info",
        true,
        "<fileSystemList><fileSystem name=\"nvram\" size=\"1\" freespace=\"1\"/></fileSystemList>",
    );
    assert_eq!(c.dev.attempts, 1);
    assert!(c.dev.last_error.clone().unwrap().contains("nvram"));
}

#[test]
fn guestshell_missing_installed_running() {
    // (output of show app-hosting list, expected next command)
    let table = [
        (
            "No App found",
            "app-hosting install appid guestshell package bootflash:guestshell.tar",
        ),
        ("App id   State\nguestshell   DEPLOYED", "guestshell enable"),
        ("App id   State\nguestshell   STOPPED", "guestshell enable"),
    ];
    for (output, next) in table {
        let mut c = Conv::new(plan());
        c.dev.state = State::CheckGuestshell;
        assert_eq!(c.request(), Job::ShowAppHosting);
        c.exec(output);
        assert_eq!(
            c.request().exec_command().as_deref(),
            Some(next),
            "{output}"
        );
        c.exec("ok");
        assert_eq!(c.dev.state, State::WaitForGuestshell);
        assert!(matches!(c.request(), Job::Backoff { seconds: 60, .. }));
        c.ok("backoff");
        assert_eq!(c.request(), Job::ShowAppHosting);
        c.exec(RUNNING);
        assert_eq!(c.dev.state, State::RunPyScript);
    }
}

#[test]
fn guestshell_that_never_runs_fails_after_max_checks() {
    let mut c = Conv::new(plan());
    c.dev.state = State::CheckGuestshell;
    for _ in 0..4 {
        assert_eq!(c.request(), Job::ShowAppHosting);
        c.exec("App id   State\nguestshell   ACTIVATING");
        assert!(matches!(c.request(), Job::Backoff { .. }));
        c.ok("backoff");
    }
    c.request();
    assert_eq!(c.dev.state, State::Failed);
    assert!(c.dev.fail_reason.clone().unwrap().contains("ACTIVATING"));
}

#[test]
fn failed_job_retried_then_failed_with_device_error() {
    let mut c = Conv::new(plan());
    c.dev.state = State::GsTarballTransfer;
    for attempt in 1..=3 {
        assert!(matches!(c.request(), Job::FileTransfer { .. }));
        c.fail("file-transfer", 1702, "copy failed: HTTP 404");
        assert_eq!(c.dev.attempts, attempt);
    }
    assert_eq!(c.dev.state, State::Failed);
    assert_eq!(c.dev.failed_in, Some(State::GsTarballTransfer));
    assert!(
        c.dev
            .fail_reason
            .clone()
            .unwrap()
            .contains("PnP Service Error 1702: copy failed: HTTP 404")
    );
    // Resume retries the step that failed, with a fresh budget.
    action::resume(&mut c.dev, Local::now()).unwrap();
    assert_eq!(c.dev.state, State::GsTarballTransfer);
    assert!(matches!(c.request(), Job::FileTransfer { .. }));
    c.ok("file-transfer");
    assert_eq!(c.dev.state, State::PyScriptTransfer);
}

#[test]
fn cli_errors_in_output_count_as_failures() {
    let mut c = Conv::new(plan());
    c.dev.state = State::RunEventManager;
    c.request();
    c.exec(
        "EEM policy InstallGuestShell not registered with event manager\n%Error: applet not found",
    );
    assert_eq!(c.dev.attempts, 1);
    assert_eq!(c.dev.state, State::RunEventManager);
    let table = [
        ("% Invalid input detected at '^' marker.", true),
        ("%Error opening bootflash:x (No such file)", true),
        ("Building configuration...\n[OK]", false),
        ("100% done", false),
    ];
    for (out, is_err) in table {
        assert_eq!(cli_error(out).is_some(), is_err, "{out}");
    }
}

#[test]
fn stale_or_foreign_correlator_changes_nothing() {
    let mut c = Conv::new(plan());
    c.dev.state = State::ConfigStart;
    c.request();
    let before = c.dev.clone();
    let out = c.answer_corr("config-upgrade", true, "", "NOT-OURS");
    assert!(matches!(out, ResponseOutcome::Unexpected(_)));
    assert_eq!(c.dev, before);
    // A response when nothing is pending is ignored too.
    c.ok("config-upgrade");
    let before = c.dev.clone();
    assert!(matches!(
        c.answer("config-upgrade", true, ""),
        ResponseOutcome::Unexpected(_)
    ));
    assert_eq!(c.dev, before);
}

#[test]
fn wrong_service_for_the_pending_job_is_a_failed_attempt() {
    let mut c = Conv::new(plan());
    c.dev.state = State::ConfigStart;
    c.request();
    c.ok("cli-exec");
    assert_eq!(c.dev.attempts, 1);
    assert_eq!(c.dev.state, State::ConfigStart);
}

#[test]
fn asking_again_without_answering_is_bounded() {
    let mut c = Conv::new(plan());
    c.dev.state = State::ConfigStart;
    for _ in 0..3 {
        assert!(matches!(c.request(), Job::ConfigUpgrade { .. }));
    }
    c.request();
    assert_eq!(c.dev.state, State::Failed);
    assert!(
        c.dev
            .fail_reason
            .clone()
            .unwrap()
            .contains("without answering")
    );
}

#[test]
fn factory_fresh_return_starts_over() {
    // (state, startup config saved, reboot says startup present, starts over?)
    let table = [
        (State::Finished, true, false, true),
        (State::Failed, false, false, true),
        (State::RunEventManager, true, false, true),
        (State::Finished, true, true, false),
        (State::UpgradeReloading, false, false, false),
    ];
    for (state, saved, present, over) in table {
        let mut c = Conv::new(plan());
        c.dev.state = state;
        c.dev.startup_saved = saved;
        c.dev.tarball_done = true;
        // It got its day-0 config at its first contact; a wipe does not change which.
        c.dev.day0 = Some(Arc::new(day0()));
        let job = c.request_with(reboot("factory-reset", present));
        if over {
            assert_eq!(
                job,
                Job::SetConfigRegister {
                    value: "0x2102".into()
                },
                "{state}"
            );
            assert!(!c.dev.tarball_done);
            assert!(
                c.dev
                    .history
                    .iter()
                    .any(|e| e.text.contains("starting over"))
            );
        } else {
            assert_ne!(c.dev.state, State::ConfigReg, "{state}");
        }
    }
}

#[test]
fn missing_image_file_or_config_fails_with_the_reason() {
    let mut p = plan();
    p.images[0].md5 = None;
    let mut c = Conv::new(p);
    c.dev.state = State::UpgradeNeeded;
    c.request();
    assert_eq!(c.dev.state, State::Failed);
    assert!(
        c.dev
            .fail_reason
            .clone()
            .unwrap()
            .contains("images/c1100-universalk9.17.12.03a.SPA.bin is missing")
    );

    let mut c = Conv::new(plan());
    c.config = Err("no day-0 config for FGL1".into());
    c.dev.state = State::ConfigStart;
    c.dev.day0 = None;
    c.request();
    assert_eq!(c.dev.state, State::Failed);
    assert_eq!(
        c.dev.fail_reason.as_deref(),
        Some("no day-0 config for FGL1")
    );

    let mut p = plan();
    if let Some(t) = p.tarball.as_mut() {
        t.present = false;
    }
    let mut c = Conv::new(p);
    c.dev.state = State::UpgradeDone;
    c.request();
    assert_eq!(c.dev.state, State::Failed);
    assert!(
        c.dev
            .fail_reason
            .clone()
            .unwrap()
            .contains("files/guestshell.tar is missing")
    );
}

#[test]
fn image_is_chosen_by_longest_pid_prefix() {
    let mut p = plan();
    p.images.push(ImageTarget {
        size: Some(IMAGE_BYTES),
        pid_prefix: "C1161".into(),
        file: "other.17.15.01.bin".into(),
        version: "17.15.1".into(),
        md5: Some("x".into()),
    });
    assert_eq!(p.image_for("C1161X-8P").unwrap().version, "17.15.1");
    assert_eq!(p.image_for("C1131-8PWB").unwrap().version, "17.12.3a");
    assert!(p.image_for("C9300-24").is_none());
}

#[test]
fn operator_actions_table() {
    let now = Local::now();
    // (state before, action, ok?, state after)
    let cases = [
        (
            State::BootflashNoSpace,
            Action::Resume,
            true,
            State::RunEventManager,
        ),
        (
            State::BootflashNoSpace,
            Action::Retry,
            true,
            State::CheckBootflashSize,
        ),
        (State::Finished, Action::Retry, false, State::Finished),
        (State::Finished, Action::Resume, false, State::Finished),
        (State::Finished, Action::Reset, true, State::NewDevice),
        (State::ConfigStart, Action::Retry, true, State::ConfigStart),
        (State::RunPyScript, Action::Reset, true, State::NewDevice),
    ];
    for (before, action, ok, after) in cases {
        let mut c = Conv::new(plan());
        c.dev.state = before;
        c.dev.tarball_done = true;
        c.dev.attempts = 2;
        let r = operator(&mut c.dev, action, now);
        assert_eq!(r.is_ok(), ok, "{before} {action:?}: {r:?}");
        assert_eq!(c.dev.state, after, "{before} {action:?}");
        if ok {
            assert_eq!(c.dev.attempts, 0);
        }
        if action == Action::Reset && ok {
            assert!(!c.dev.tarball_done);
            assert!(
                c.dev
                    .history
                    .iter()
                    .any(|e| e.text.contains("reset by operator"))
            );
        }
    }
    // A FAILED router retries its failed step with a fresh budget.
    let mut c = Conv::new(plan());
    c.dev.state = State::RunEventManager;
    for _ in 0..3 {
        c.request();
        c.exec("%Error: applet not found");
    }
    assert_eq!(c.dev.state, State::Failed);
    operator(&mut c.dev, Action::Retry, now).unwrap();
    assert_eq!(c.dev.state, State::RunEventManager);
    assert!(
        c.dev.steps["RUN_EVENT_MANAGER"]
            .result
            .starts_with("failed")
    );
}

#[test]
fn set_state_from_csv_edit_clears_the_pending_job() {
    let mut c = Conv::new(plan());
    c.dev.state = State::BootflashNoSpace;
    c.request();
    set_state(
        &mut c.dev,
        State::RunEventManager,
        Local::now(),
        "DEVICE_STATUS.csv edit",
    );
    assert!(c.dev.pending.is_none());
    assert_eq!(
        c.request(),
        Job::RunEemApplet {
            applet: "InstallGuestShell".into()
        }
    );
}

#[test]
fn report_steps_are_recorded() {
    let mut c = Conv::new(plan());
    to_image_check(&mut c);
    c.info("17.12.3a", GB2);
    assert_eq!(c.dev.initial_version, "17.12.3a");
    assert_eq!(c.dev.steps["CONFIG_REG"].result, "done");
    assert_eq!(c.dev.steps["CHECK_IMAGE_VER"].result, "on target");
    let mut p = plan();
    p.tarball = None;
    let mut c = Conv::new(p);
    c.dev.state = State::UpgradeDone;
    c.request();
    assert_eq!(c.dev.steps["GS_TARBALL_TRANSFER"].result, "skipped");
}

#[test]
fn jobs_cut_by_a_restart_do_not_count_against_the_router() {
    // Unanswered after the restart: sent again, no attempt counted.
    let mut c = Conv::new(plan());
    c.dev.state = State::GsTarballTransfer;
    c.request();
    assert!(mark_interrupted(&mut c.dev));
    assert!(matches!(c.request(), Job::FileTransfer { .. }));
    assert_eq!(c.dev.attempts, 0);
    // Failed because the download was cut: not counted either.
    assert!(mark_interrupted(&mut c.dev));
    c.fail("file-transfer", 1702, "copy failed: connection reset");
    assert_eq!(c.dev.attempts, 0);
    assert_eq!(c.dev.state, State::GsTarballTransfer);
    // An answer that arrives after the restart is still applied.
    c.request();
    assert!(mark_interrupted(&mut c.dev));
    c.ok("file-transfer");
    assert_eq!(c.dev.state, State::PyScriptTransfer);
    // Image install cut short: the install budget is given back.
    let mut c = Conv::new(plan());
    c.dev.state = State::UpgradeNeeded;
    c.request();
    assert_eq!(c.dev.upgrade_attempts, 1);
    mark_interrupted(&mut c.dev);
    c.fail("image-install", 1829, "copy failed");
    assert_eq!(
        (c.dev.upgrade_attempts, c.dev.state),
        (0, State::CheckImageVer)
    );
}

/// The HTTP layer prepares the day-0 config only when [`needs_day0`] says the exchange can
/// need it: from every other state, with every skippable step skipped, a work request must not
/// get to the config; from those states it does, and without a prepared config it waits a
/// second instead of failing or sending a config it does not have.
#[test]
fn day0_is_needed_only_from_the_states_that_say_so() {
    let mut bare = plan();
    bare.config_register = None;
    bare.images.clear();
    bare.tarball = None;
    bare.script = None;
    for state in State::ALL {
        let mut dev = Device::new("FGL1", UDI, "C1131-8PWB", "V01", Local::now());
        dev.state = state;
        let req = WorkRequest {
            correlator: "C1".into(),
            reason: None,
        };
        let ctx = Ctx {
            now: Local::now(),
            base_url: "http://198.51.100.1:8080",
            secure_base: "http://198.51.100.1:8080",
            tls: None,
            day0: None,
            config_token: TOKEN,
        };
        let needed = needs_day0(&dev, &bare);
        let job = on_work_request(&mut dev, &req, &bare, &ctx);
        let waited =
            matches!(&job, Job::Backoff { seconds: 1, reason } if reason.contains("day-0"));
        assert_eq!(waited, needed, "{state}: {job:?} (now {})", dev.state);
        assert!(!matches!(job, Job::ConfigUpgrade { .. }), "{state}");
        assert_eq!(dev.fail_reason, None, "{state}");
        // With the day-0 config taken already, nothing needs it.
        dev.day0 = Some(Arc::new(day0()));
        assert!(!needs_day0(&dev, &bare), "{state}");
    }
}

#[test]
fn a_config_line_that_ios_refused_is_a_failed_attempt_despite_success() {
    let mut c = Conv::new(plan());
    c.dev.state = State::ConfigReg;
    c.dev.day0 = Some(Arc::new(day0()));
    assert!(matches!(c.request(), Job::SetConfigRegister { .. }));
    let inner = "<resultEntry lineNumber=\"1\" cliString=\"config-register 0x2102\"><success change=\"NO_CHANGE\"/><text>% Invalid input detected at '^' marker.</text></resultEntry>";
    assert_eq!(
        c.answer("cli-config", true, inner),
        ResponseOutcome::Applied
    );
    assert_eq!(c.dev.attempts, 1);
    assert!(!c.dev.config_reg_applied);
    assert!(
        c.dev
            .last_error
            .as_deref()
            .unwrap()
            .contains("% Invalid input detected"),
        "{:?}",
        c.dev.last_error
    );
}

/// Space before the image: (free bytes, cleanup setting, boot image) → what happens.
#[test]
fn an_image_that_does_not_fit_is_never_sent() {
    const SMALL: i64 = 193 << 20;
    let bundle = "bootflash:c1100-universalk9.17.09.04a.SPA.bin";
    let listing = "Directory of bootflash:/\n   12  -rw-        706422748  Mar 3 2024 10:11:12 +00:00  c1100-universalk9.17.09.04a.SPA.bin\n   13  -rw-        655970456  Mar 3 2023 10:11:12 +00:00  c1100-universalk9.17.03.04a.SPA.bin\n   14  -rw-            6379  Mar 3 2024 10:11:12 +00:00  packages.conf\n";
    let start = |cleanup: Cleanup, image_file: &str| {
        let mut p = plan();
        p.image_cleanup = cleanup;
        let mut c = Conv::new(p);
        c.dev.day0 = Some(Arc::new(day0()));
        c.dev.state = State::CheckImageVer;
        c.dev.image_file = image_file.into();
        assert_eq!(c.request(), Job::DeviceInfo);
        c
    };
    let info = |c: &mut Conv, free: i64, image: &str| {
        let inner = device_info_xml("17.9.4a", free).replace("bootflash:packages.conf", image);
        assert_eq!(
            c.answer("device-info", true, &inner),
            ResponseOutcome::Applied
        );
    };

    // Bundle mode, auto: list bootflash, delete the old image (never the running one), read
    // the space again; now it fits and the image goes.
    let mut c = start(Cleanup::Auto, bundle);
    info(&mut c, SMALL, bundle);
    assert_eq!(c.dev.state, State::ImageCleanup);
    assert_eq!(c.request(), Job::ListBootflash);
    c.exec(listing);
    let delete = c.request();
    assert_eq!(
        delete,
        Job::Cleanup {
            command: "delete /force bootflash:c1100-universalk9.17.03.04a.SPA.bin".into()
        }
    );
    c.exec("");
    assert_eq!(c.request(), Job::DeviceInfo);
    assert_eq!(c.dev.state, State::CheckImageVer);
    info(&mut c, SMALL + 655_970_456, bundle);
    assert!(matches!(c.request(), Job::ImageInstall { .. }));

    // Still short after the cleanup: parked with what is needed and what to do; a resume reads
    // the space again, and the cleanup does not run a second time.
    let mut c = start(Cleanup::Auto, bundle);
    info(&mut c, SMALL, bundle);
    assert_eq!(c.request(), Job::ListBootflash);
    c.exec("Directory of bootflash:/\n");
    assert_eq!(c.request(), Job::DeviceInfo);
    info(&mut c, SMALL, bundle);
    assert_eq!(c.dev.state, State::ImageNoSpace);
    let why = c.dev.last_error.clone().unwrap();
    assert!(
        why.contains("193 MB free") && why.contains("needs 773 MB"),
        "{why}"
    );
    // The fix is in the history line and in what the operator's views show.
    let line = &c.dev.history.last().unwrap().text;
    assert!(line.contains("device resume FGL1"), "{line}");
    let a = crate::domain::bench::attention(&c.dev, None).unwrap();
    assert!(
        a.reason == why && a.fix.contains("device resume FGL1"),
        "{a:?}"
    );
    assert!(matches!(c.request(), Job::Backoff { seconds: 600, .. }));
    action::resume(&mut c.dev, Local::now()).unwrap();
    assert_eq!(c.request(), Job::DeviceInfo);
    info(&mut c, SMALL, bundle);
    assert_eq!(c.dev.state, State::ImageNoSpace);
    assert!(
        !c.dev
            .history
            .iter()
            .any(|e| e.text.contains("cleaning up first")
                && e.at > c.dev.history[c.dev.history.len() - 3].at)
    );

    // Install mode: `install remove inactive`, answering its [y/n].
    let mut c = start(Cleanup::Auto, "bootflash:packages.conf");
    info(&mut c, SMALL, "bootflash:packages.conf");
    let job = c.request();
    assert_eq!(
        job,
        Job::Cleanup {
            command: "install remove inactive".into()
        }
    );
    assert_eq!(job.dialogue(), Some(("[y/n]", "y")));
    let delete = Job::Cleanup {
        command: "delete /force bootflash:x.bin".into(),
    };
    assert_eq!(delete.dialogue(), None);

    // Cleanup off: parked at once; a refused cleanup command does not stop the others.
    let mut c = start(Cleanup::Off, bundle);
    info(&mut c, SMALL, bundle);
    assert_eq!(c.dev.state, State::ImageNoSpace);
    let mut c = start(
        Cleanup::Commands(vec![
            "delete /force bootflash:a.bin".into(),
            "delete /force bootflash:b.bin".into(),
        ]),
        bundle,
    );
    info(&mut c, SMALL, bundle);
    assert!(matches!(c.request(), Job::Cleanup { .. }));
    c.fail("cli-exec", 1301, "command failed");
    assert_eq!(
        c.request(),
        Job::Cleanup {
            command: "delete /force bootflash:b.bin".into()
        }
    );
    c.exec("%Error deleting bootflash:b.bin (No such file or directory)");
    assert_eq!(c.request(), Job::DeviceInfo);
    assert_ne!(c.dev.state, State::Failed);
}

#[test]
fn a_script_that_dies_fails_the_router_with_its_output() {
    let to_script = |p: Plan| {
        let mut c = Conv::new(p);
        c.dev.day0 = Some(Arc::new(day0()));
        c.dev.state = State::RunPyScript;
        assert!(matches!(c.request(), Job::RunScript { .. }));
        c
    };
    let trace = "Traceback (most recent call last):\n  File \"/bootflash/guest-share/s.py\", line 1, in <module>\n    import cli\nModuleNotFoundError: No module named 'cli'";
    let mut c = to_script(plan());
    c.exec(trace);
    assert_eq!(c.dev.state, State::Failed);
    assert_eq!(c.dev.failed_in, Some(State::RunPyScript));
    assert_eq!(c.dev.script_output.as_deref(), Some(trace));
    let why = c.dev.fail_reason.clone().unwrap();
    assert!(
        why.contains("python script failed: ModuleNotFoundError: No module named 'cli'"),
        "{why}"
    );
    assert!(c.dev.steps["RUN_PY_SCRIPT"].result.starts_with("failed"));
    // Not retried on its own: a resume runs it again.
    assert!(matches!(c.request(), Job::Backoff { seconds: 600, .. }));
    action::resume(&mut c.dev, Local::now()).unwrap();
    assert!(matches!(c.request(), Job::RunScript { .. }));

    // With a success marker configured, output without it is a failure.
    let mut p = plan();
    p.script_success = Some(Pattern(regex::Regex::new("^PNP-OK$").unwrap()));
    let mut c = to_script(p.clone());
    c.exec("configured half of it");
    assert_eq!(c.dev.state, State::Failed);
    let mut c = to_script(p);
    c.exec("configured it all\nPNP-OK");
    assert_eq!(c.dev.state, State::Verify);
}

#[test]
fn finished_only_once_verified_on_the_device() {
    let mut p = plan();
    p.verify = vec![VerifyCheck {
        command: "show running-config | include ^hostname".into(),
        expect: "hostname {{ hostname }}".into(),
    }];
    let verifying = |p: &Plan| {
        let mut c = Conv::new(p.clone());
        c.dev.day0 = Some(Arc::new(Day0 {
            expects: vec!["hostname branch-7".into()],
            ..day0()
        }));
        c.dev.state = State::Verify;
        c
    };
    // Every check holds: FINISHED, with the evidence kept.
    let mut c = verifying(&p);
    assert_eq!(c.request(), Job::DeviceInfo);
    c.info("17.12.3a", GB2);
    assert_eq!(c.request(), Job::DeviceInfo);
    c.info("17.12.3a", GB2);
    assert!(matches!(c.request(), Job::Check { .. }));
    c.exec("hostname r1");
    assert!(matches!(c.request(), Job::Check { .. }));
    c.exec(RUNNING);
    assert_eq!(
        c.request(),
        Job::Check {
            command: "show running-config | include ^hostname".into()
        }
    );
    c.exec("hostname branch-7");
    assert!(matches!(c.request(), Job::Backoff { seconds: 1200, .. }));
    assert_eq!(c.dev.state, State::Finished);
    assert_eq!(c.dev.evidence.len(), 5);
    assert_eq!(c.dev.evidence[4].expect, "hostname branch-7");
    assert_eq!(c.dev.evidence[4].seen, "hostname branch-7");
    assert!(c.dev.steps["VERIFY"].result.starts_with("ok"));

    // (which check, what the router answers) → FAILED with expected vs seen.
    let mut c = verifying(&p);
    c.request();
    c.info("17.9.4a", GB2);
    assert_eq!(c.dev.state, State::Failed);
    let why = c.dev.fail_reason.clone().unwrap();
    assert!(
        why.contains("running version: expected \"17.12.3a\", the router shows \"17.9.4a\""),
        "{why}"
    );
    assert!(!c.dev.evidence[0].ok);

    let mut c = verifying(&p);
    for _ in 0..2 {
        c.request();
        c.info("17.12.3a", GB2);
    }
    c.request();
    c.exec("");
    assert_eq!(c.dev.state, State::Failed);
    assert!(
        c.dev
            .fail_reason
            .clone()
            .unwrap()
            .contains("startup config saved after the day-0 config: expected \"hostname r1\"")
    );
    // A resume checks again from the start.
    action::resume(&mut c.dev, Local::now()).unwrap();
    assert_eq!(c.dev.state, State::Verify);
    assert!(c.dev.evidence.is_empty());
    assert_eq!(c.request(), Job::DeviceInfo);
}

#[test]
fn a_router_whose_day0_config_cannot_render_fails_at_first_contact() {
    let mut c = Conv::new(plan());
    c.config = Err("day-0 template default.cfg for FGL1: missing variable(s) hostname (FGL1 has no row in the inventory: add one, then `pnp-appliance device resume FGL1`)".into());
    let job = c.request_with(reboot("factory-reset", false));
    assert!(matches!(job, Job::Backoff { seconds: 600, .. }), "{job:?}");
    assert_eq!(c.dev.state, State::Failed);
    assert_eq!(c.dev.failed_in, Some(State::NewDevice));
    assert!(
        c.dev
            .fail_reason
            .clone()
            .unwrap()
            .contains("no row in the inventory")
    );
    // Nothing was sent but the backoff: no step besides the failed first contact, no file.
    assert_eq!(c.dev.steps.keys().collect::<Vec<_>>(), ["NEW_DEVICE"]);
    assert!(!c.dev.tarball_done && !c.dev.script_done && c.dev.config_file.is_none());
    // Fixed and resumed: rendered again, and on it goes.
    c.config = Ok(day0());
    action::resume(&mut c.dev, Local::now()).unwrap();
    assert_eq!(c.dev.state, State::NewDevice);
    assert!(matches!(c.request(), Job::SetConfigRegister { .. }));
    assert_eq!(c.dev.day0.as_deref(), Some(&day0()));
}

/// A plan that asks for the SUDI, trusting a new test PKI.
fn sudi_plan(require: bool) -> (Plan, crate::domain::sudi::test_pki::TestPki) {
    let (pki, pem) = crate::domain::sudi::test_pki::TestPki::generate().unwrap();
    let roots = pem.roots.into_bytes();
    let mut p = plan();
    p.identity = crate::domain::plan::IdentityPolicy {
        device_auth: true,
        require_sudi: require,
        trust: Arc::new(crate::domain::sudi::Trust::new(&[("roots".into(), roots)]).unwrap()),
    };
    (p, pki)
}

const CAPS_WITH_AUTH: &str = "<supportedCapabilities><capability>cisco:pnp:cli-exec</capability><capability>cisco:pnp:device-auth</capability></supportedCapabilities>";
const CAPS_WITHOUT: &str =
    "<supportedCapabilities><capability>cisco:pnp:cli-exec</capability></supportedCapabilities>";

fn auth_xml(sig: &str, cert: &str) -> String {
    format!(
        "<auth><challenge-response>{sig}</challenge-response><sudi-cert>{cert}</sudi-cert><encryption-method>ECDSA</encryption-method><hashing-method>SHA256</hashing-method></auth>"
    )
}

#[test]
fn identity_step_table() {
    // (case, capabilities answer, device-auth answer by the router: serial of its certificate
    // and whether it forges the signature, require-sudi) -> identity, state after the step.
    type Case = (
        &'static str,
        Option<&'static str>,
        Option<(&'static str, bool)>,
        bool,
        &'static str,
        State,
    );
    let cases: [Case; 8] = [
        (
            "verified",
            Some(CAPS_WITH_AUTH),
            Some(("FGL1", false)),
            false,
            "sudi-verified",
            State::ConfigReg,
        ),
        (
            "verified, required",
            Some(CAPS_WITH_AUTH),
            Some(("FGL1", false)),
            true,
            "sudi-verified",
            State::ConfigReg,
        ),
        (
            "forged signature",
            Some(CAPS_WITH_AUTH),
            Some(("FGL1", true)),
            false,
            "sudi-failed",
            State::ConfigReg,
        ),
        (
            "forged, required",
            Some(CAPS_WITH_AUTH),
            Some(("FGL1", true)),
            true,
            "sudi-failed",
            State::IdentityUnproven,
        ),
        (
            "another serial's certificate",
            Some(CAPS_WITH_AUTH),
            Some(("FGL2", false)),
            false,
            "sudi-failed",
            State::ConfigReg,
        ),
        (
            "no device-auth offered",
            Some(CAPS_WITHOUT),
            None,
            false,
            "address-bound",
            State::ConfigReg,
        ),
        (
            "not offered, required",
            Some(CAPS_WITHOUT),
            None,
            true,
            "address-bound",
            State::IdentityUnproven,
        ),
        (
            "capability unanswered (a fault)",
            None,
            None,
            false,
            "address-bound",
            State::ConfigReg,
        ),
    ];
    for (what, caps, auth, require, identity, after) in cases {
        let (p, pki) = sudi_plan(require);
        let mut c = Conv::new(p);
        assert_eq!(c.request(), Job::Capability, "{what}");
        // None: the agent answered with a fault (no correlator); the next request moves on.
        if let Some(xml) = caps {
            assert_eq!(c.answer("capability", true, xml), ResponseOutcome::Applied);
        }
        if let Some((sn, forge)) = auth {
            let Job::DeviceAuth { challenge } = c.request() else {
                panic!("{what}: no device-auth")
            };
            assert_eq!(
                challenge,
                hex::encode(TOKEN),
                "{what}: this exchange's random token"
            );
            let sudi = pki.device("C1131-8PWB", sn, false).unwrap();
            let (sig, cert, _) = sudi.answer(&challenge, forge).unwrap();
            assert_eq!(
                c.answer("device-auth", true, &auth_xml(&sig, &cert)),
                ResponseOutcome::Applied
            );
        }
        let job = c.request();
        let (id, detail) = crate::domain::identity::identity(&c.dev);
        assert_eq!(id, identity, "{what}: {detail}");
        assert_eq!(c.dev.state, after, "{what}: {detail}");
        match after {
            State::ConfigReg => assert_eq!(
                job,
                Job::SetConfigRegister {
                    value: "0x2102".into()
                },
                "{what}"
            ),
            _ => {
                assert!(matches!(job, Job::Backoff { .. }), "{what}: {job:?}");
                let a = crate::domain::bench::attention(&c.dev, None).unwrap();
                assert!(a.reason.contains("require-sudi"), "{what}: {a:?}");
                // The operator vouches: it goes on, bound to its address.
                crate::domain::workflow::operator(&mut c.dev, Action::Resume, Local::now())
                    .unwrap();
                assert_eq!(
                    c.request(),
                    Job::SetConfigRegister {
                        value: "0x2102".into()
                    },
                    "{what}"
                );
                assert!(
                    crate::domain::identity::identity(&c.dev)
                        .1
                        .contains("vouched for by the operator"),
                    "{what}"
                );
            }
        }
        if what == "another serial's certificate" {
            assert!(
                detail.contains("SN:FGL2, the router says PID:C1131-8PWB SN:FGL1"),
                "{detail}"
            );
        }
        if what == "forged signature" {
            assert!(
                detail.contains("not signed by the key of this SUDI"),
                "{detail}"
            );
        }
    }
}

#[test]
fn a_verified_router_moves_only_by_proving_the_same_sudi() {
    use crate::domain::identity::{self, Admission, ClaimProof};
    let (p, pki) = sudi_plan(false);
    let trust = p.identity.trust.clone();
    let mut c = Conv::new(p);
    let now = Local::now();
    let home: std::net::IpAddr = "198.51.100.10".parse().unwrap();
    let new: std::net::IpAddr = "198.51.100.11".parse().unwrap();
    // Its own lease's MAC at the new address would move an unproven record; not a proven one.
    let mac = Some("00:11:22:33:44:55");
    assert_eq!(
        identity::admit(&mut c.dev, home, mac, now),
        Admission::Admitted
    );
    c.request();
    c.answer("capability", true, CAPS_WITH_AUTH);
    let Job::DeviceAuth { challenge } = c.request() else {
        panic!()
    };
    let sudi = pki.device("C1131-8PWB", "FGL1", false).unwrap();
    let (sig, cert, _) = sudi.answer(&challenge, false).unwrap();
    c.answer("device-auth", true, &auth_xml(&sig, &cert));
    assert!(c.dev.sudi.as_ref().unwrap().verified());
    assert!(matches!(
        identity::admit(&mut c.dev, new, mac, now),
        Admission::Refused { .. }
    ));
    // The operator cannot hand a proven record to a host that has not proved it.
    let err = identity::accept_move(&mut c.dev, now).unwrap_err();
    assert!(err.contains("proved its serial by its SUDI"), "{err}");
    let check = |dev: &mut Device, sig: &str, cert: &str, corr: &str| {
        identity::answer_claim(dev, new, corr, now, |ch| {
            let a = crate::domain::job::SudiAnswer {
                signature: sig.into(),
                cert: cert.into(),
                hashing: None,
            };
            trust.verify(ch, &a, "C1131-8PWB", "FGL1", now.timestamp())
        })
    };
    // A claimant gets one challenge a minute.
    let ch = identity::challenge_claimant(&mut c.dev, new, "aa11", "K1", now).unwrap();
    assert_eq!(
        ch,
        Job::DeviceAuth {
            challenge: "aa11".into()
        }
    );
    assert_eq!(
        identity::challenge_claimant(&mut c.dev, new, "bb22", "K2", now),
        None
    );
    // Another router's valid SUDI for this serial (another certificate) does not move it.
    let impostor = pki.device("C1131-8PWB", "FGL1", false).unwrap();
    let (isig, icert, _) = impostor.answer("aa11", false).unwrap();
    assert_eq!(
        check(&mut c.dev, &isig, &icert, "K9"),
        ClaimProof::NotAsked,
        "not its correlator"
    );
    let ClaimProof::Refused { why } = check(&mut c.dev, &isig, &icert, "K1") else {
        panic!()
    };
    assert!(why.contains("another SUDI certificate"), "{why}");
    assert_eq!(c.dev.binding.as_ref().unwrap().ip, home);
    // The challenge was used up; the next one, a minute on, answered with its own SUDI.
    let before = c.dev.state;
    let later = now + chrono::Duration::seconds(61);
    identity::challenge_claimant(&mut c.dev, new, "cc33", "K3", later).unwrap();
    let (sig, cert, _) = sudi.answer("cc33", false).unwrap();
    assert_eq!(
        check(&mut c.dev, &sig, &cert, "K3"),
        ClaimProof::Moved { from: Some(home) }
    );
    assert_eq!(c.dev.binding.as_ref().unwrap().ip, new);
    assert_eq!(c.dev.state, before, "it goes on where it was");
    assert!(c.dev.sudi.as_ref().unwrap().verified());
}

#[test]
fn a_proof_takes_a_record_bound_by_address_only_and_starts_it_over() {
    use crate::domain::identity::{self, ClaimProof};
    let (p, pki) = sudi_plan(false);
    let trust = p.identity.trust.clone();
    let mut c = Conv::new(p);
    let now = Local::now();
    let spoofer: std::net::IpAddr = "198.51.100.66".parse().unwrap();
    let real: std::net::IpAddr = "198.51.100.12".parse().unwrap();
    identity::admit(&mut c.dev, spoofer, None, now);
    c.request();
    c.answer("capability", true, CAPS_WITHOUT);
    assert_eq!(
        c.request(),
        Job::SetConfigRegister {
            value: "0x2102".into()
        }
    );
    identity::admit(&mut c.dev, real, None, now);
    identity::challenge_claimant(&mut c.dev, real, "dd44", "R1", now).unwrap();
    let (sig, cert, _) = pki
        .device("C1131-8PWB", "FGL1", false)
        .unwrap()
        .answer("dd44", false)
        .unwrap();
    let got = identity::answer_claim(&mut c.dev, real, "R1", now, |ch| {
        let a = crate::domain::job::SudiAnswer {
            signature: sig.clone(),
            cert: cert.clone(),
            hashing: None,
        };
        trust.verify(ch, &a, "C1131-8PWB", "FGL1", now.timestamp())
    });
    assert_eq!(
        got,
        ClaimProof::TookOver {
            from: Some(spoofer)
        }
    );
    assert_eq!(c.dev.binding.as_ref().unwrap().ip, real);
    assert_eq!(
        c.dev.state,
        State::NewDevice,
        "starts over for the proven router"
    );
    assert_eq!(identity::identity(&c.dev).0, "sudi-verified");
    assert!(c.dev.claim.is_none() && c.dev.pending.is_none());
}

#[test]
fn routers_move_to_https_and_get_no_job_over_plain_http_after() {
    let mut c = Conv::new(plan());
    c.over_tls = Some(false);
    let Job::CertificateInstall {
        ca_url,
        clock,
        host,
        port,
    } = c.request()
    else {
        panic!("no certificate-install: {:?}", c.dev.pending)
    };
    assert_eq!(
        (ca_url.as_str(), host.as_str(), port),
        (
            "http://198.51.100.1:8080/pnp-info/ca.pem",
            "198.51.100.1",
            8443
        )
    );
    assert!(
        (chrono::Utc::now() - clock).num_seconds().abs() < 5,
        "the clock is now, UTC"
    );
    c.ok("certificate-install");
    assert!(c.dev.tls.as_ref().is_some_and(|m| m.back.is_none()));
    // Still on plain HTTP: no job, a short backoff while it switches.
    let job = c.request();
    assert_eq!(
        job,
        Job::Backoff {
            seconds: 60,
            reason: "reconnect over HTTPS".into()
        }
    );
    assert_eq!(c.dev.state, State::NewDevice);
    c.ok("backoff");
    // Over HTTPS: the workflow goes on.
    c.over_tls = Some(true);
    assert_eq!(
        c.request(),
        Job::SetConfigRegister {
            value: "0x2102".into()
        }
    );
    assert!(c.dev.tls.as_ref().unwrap().back.is_some());
    assert!(
        c.dev
            .history
            .iter()
            .any(|e| e.text.starts_with("came back over HTTPS"))
    );
    c.answer("cli-config", true, "");
    // After a reload it asks over plain HTTP again (its DHCP profile): the trustpoint again,
    // not the next job.
    c.over_tls = Some(false);
    assert!(matches!(c.request(), Job::CertificateInstall { .. }));
    c.ok("certificate-install");
    // Not back within the timeout: said, with what to check, and the job sent again.
    let m = c.dev.tls.as_mut().unwrap();
    m.taken -= chrono::Duration::seconds(700);
    assert!(matches!(c.request(), Job::CertificateInstall { .. }));
    let a = crate::domain::bench::attention(&c.dev, None).unwrap();
    assert!(a.reason.contains("has not come back over HTTPS"), "{a:?}");
    assert!(
        a.fix.contains("show crypto pki trustpoints pnplabel"),
        "{a:?}"
    );
    c.ok("certificate-install");
    c.over_tls = Some(true);
    c.request();
    assert!(
        crate::domain::bench::attention(&c.dev, None).is_none(),
        "back: nothing to check"
    );
    // The certificate-install renders as the schema has it.
    let job = Job::CertificateInstall {
        ca_url: "http://198.51.100.1:8080/pnp-info/ca.pem".into(),
        clock: "2026-12-02T03:04:05Z".parse().unwrap(),
        host: "198.51.100.1".into(),
        port: 8443,
    };
    let xml = message::render_request(UDI, "C9", &job);
    for part in [
        "<request xmlns=\"urn:cisco:pnp:certificate-install\" correlator=\"C9\">",
        "<clock><year>2026</year><month>12</month><day>2</day><hour>3</hour><min>4</min><sec>5</sec></clock>",
        "<label>pnplabel</label>",
        "<uri>http://198.51.100.1:8080/pnp-info/ca.pem</uri>",
        "<protocol>https</protocol>",
        "<server-address><ipv4>198.51.100.1</ipv4><port>8443</port></server-address>",
    ] {
        assert!(xml.contains(part), "{part} not in {xml}");
    }
    crate::pnp::xml::parse(xml.as_bytes()).unwrap();
}
