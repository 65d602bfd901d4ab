//! What operators read: the status rows (`status`, `/api/status`), one router's full record
//! (`device show`) and the provisioning report (`report`).
//!
//! Owns the report's stable JSON shape ([`ReportRow`], documented in README.md) and the text
//! renderings of status rows and records. Everything here is derived from device records and the transfer
//! table; nothing is stored.

use serde::{Deserialize, Serialize};

use crate::domain::device::{Device, State};
use crate::files::transfers::{TransferState, TransferView};
use crate::http::api::StatusRow;
use crate::store::TIME_FORMAT;

fn mb(b: u64) -> String {
    format!("{:.1}MB", b as f64 / 1e6)
}

/// Short text for a transfer: `42% 301.2MB/716.7MB 11.3MB/s eta 36s`.
pub(crate) fn progress(t: &TransferView) -> String {
    let name = t.path.rsplit('/').next().unwrap_or_default();
    let pct = t
        .total
        .filter(|x| *x > 0)
        .map(|x| format!("{}% ", t.bytes * 100 / x))
        .unwrap_or_default();
    let total = t.total.map(|x| format!("/{}", mb(x))).unwrap_or_default();
    let eta = t.eta_secs.map(|e| format!(" eta {e}s")).unwrap_or_default();
    format!(
        "{name} {pct}{}{total} {}/s{eta} {}",
        mb(t.bytes),
        mb(t.rate_bps),
        t.state
    )
}

/// `s` with every control character but newline shown as `\u{..}` text: what a router sent
/// (a PID, an error, script output) cannot move the cursor, clear the screen or retitle the
/// terminal of the operator reading `status` or `device show`.
pub(crate) fn terminal_safe(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '\n'
            || !(c.is_control()
                || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}'))
        {
            out.push(c);
        } else {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
    }
    out
}

fn cut(s: &str, n: usize) -> String {
    let s = s.replace('\n', " ");
    if s.chars().count() <= n {
        s
    } else {
        let t: String = s.chars().take(n.saturating_sub(1)).collect();
        format!("{t}…")
    }
}

/// The terminal table of `status`, then the routers leased by our DHCP that have not spoken
/// PnP yet.
pub(crate) fn table(rows: &[StatusRow], waiting: &[crate::http::api::Waiting]) -> String {
    let yn = |b: bool| if b { "Done" } else { "-" };
    let mut out = format!(
        "{:<14} {:<12} {:<5} {:<15} {:<19} {:<19} {:<9} {:<22} {:<4} {:<4} {:<4} {:<21} {}\n",
        "SERIAL",
        "PLATFORM",
        "HW",
        "IP",
        "FIRST SEEN",
        "LAST CONTACT",
        "VERSION",
        "TARGET",
        "GS",
        "PY",
        "CFG",
        "STATE",
        "STEP / PROGRESS / LAST ERROR"
    );
    for r in rows {
        let mut detail = Vec::new();
        if let Some(s) = &r.step {
            detail.push(cut(s, 50));
        }
        if let Some(t) = &r.transfer
            && t.state != TransferState::Done
        {
            detail.push(progress(t));
        }
        if let Some(e) = r.fail_reason.as_ref().or(r.last_error.as_ref()) {
            detail.push(format!("error: {}", cut(e, 90)));
        }
        out.push_str(&format!(
            "{:<14} {:<12} {:<5} {:<15} {:<19} {:<19} {:<9} {:<22} {:<4} {:<4} {:<4} {:<21} {}\n",
            cut(&r.serial, 14),
            cut(&r.platform, 12),
            cut(&r.hw_rev, 5),
            r.ip,
            r.first_seen,
            r.last_contact,
            cut(&r.current_version, 9),
            cut(&r.target_image, 22),
            yn(r.guestshell_tarball),
            yn(r.python_script),
            yn(r.config_update),
            r.state,
            detail.join(" | ")
        ));
    }
    let finished = rows.iter().filter(|r| r.state == "FINISHED").count();
    let failed = rows.iter().filter(|r| r.state == "FAILED").count();
    out.push_str(&format!(
        "{} routers: {finished} FINISHED, {failed} FAILED, {} in progress\n",
        rows.len(),
        rows.len() - finished - failed
    ));
    for w in waiting {
        out.push_str(&format!(
            "leased, waiting for PnP: {} {} {} since {} (no PnP contact yet: check option 43 and that it reaches this server)\n",
            w.ip,
            w.mac,
            cut(&w.pid, 24),
            w.since
        ));
    }
    for c in rows.iter().filter_map(|r| r.claim.as_ref()) {
        out.push_str(&format!(
            "! {} (`pnp-appliance device accept-move SERIAL` if the router really moved)\n",
            cut(c, 160)
        ));
    }
    terminal_safe(&out)
}

/// `device show`: the record and its whole history.
pub(crate) fn show(d: &Device, transfers: &[TransferView]) -> String {
    let mut s = format!(
        "serial        {}\nudi           {}\nip            {}\nstate         {}\nfirst seen    {}\nlast contact  {}\nversion       {} (was {})\ntarget image  {}\nbootflash     {}\nconfig        {}\n",
        d.serial,
        d.udi,
        d.ip.map(|ip| ip.to_string()).unwrap_or_default(),
        d.state,
        d.first_seen.format(TIME_FORMAT),
        d.last_contact.format(TIME_FORMAT),
        d.current_version,
        d.initial_version,
        d.target_image,
        d.bootflash_free
            .map(|b| format!("{b} bytes free"))
            .unwrap_or_default(),
        d.config_file.clone().unwrap_or_default(),
    );
    if let Some(l) = &d.lease {
        s.push_str(&format!(
            "dhcp lease    {} {} until {}\n",
            l.ip,
            l.mac,
            l.expires.format(TIME_FORMAT)
        ));
    }
    if let Some(b) = &d.binding {
        s.push_str(&format!(
            "bound to      {}{} since {}\n",
            b.ip,
            b.mac
                .as_ref()
                .map(|m| format!(" (MAC {m})"))
                .unwrap_or_default(),
            b.since.format(TIME_FORMAT)
        ));
    }
    if let Some(c) = crate::domain::identity::claim_text(d) {
        s.push_str(&format!(
            "CLAIMED       {c}: `pnp-appliance device accept-move {}` if the router really moved\n",
            d.serial
        ));
    }
    if let Some(r) = &d.fail_reason {
        s.push_str(&format!("FAILED        {r}\n"));
    }
    if let Some(p) = &d.pending {
        s.push_str(&format!(
            "in flight     {} (since {})\n",
            p.job.summary(),
            p.sent_at.format(TIME_FORMAT)
        ));
    }
    for t in transfers {
        s.push_str(&format!("transfer      {}\n", progress(t)));
    }
    if !d.evidence.is_empty() {
        s.push_str("\nverification (checked on the router before FINISHED):\n");
        for e in d.evidence.iter() {
            s.push_str(&format!(
                "  {}  {:<4}  {}\n        command   {}\n        expected  {}\n        seen      {}\n",
                e.at.format(TIME_FORMAT),
                if e.ok { "ok" } else { "FAIL" },
                e.check,
                e.command,
                e.expect,
                e.seen
            ));
        }
    }
    s.push_str("\nhistory:\n");
    for e in &d.history {
        let mut lines = e.text.lines();
        s.push_str(&format!(
            "  {}  {:<21} {}\n",
            e.at.format(TIME_FORMAT),
            e.state.as_str(),
            lines.next().unwrap_or_default()
        ));
        for more in lines {
            s.push_str(&format!("  {:<19}  {:<21} {more}\n", "", ""));
        }
    }
    if let Some(out) = &d.script_output {
        s.push_str("\npython script output:\n");
        for l in out.lines() {
            s.push_str(&format!("  {l}\n"));
        }
    }
    terminal_safe(&s)
}

/// Steps reported, in workflow order.
pub(crate) const REPORT_STEPS: [State; 12] = [
    State::ConfigReg,
    State::CheckImageVer,
    State::UpgradeInProgress,
    State::GsTarballTransfer,
    State::PyScriptTransfer,
    State::ConfigStart,
    State::ConfigSaveStartup,
    State::CheckBootflashSize,
    State::RunEventManager,
    State::CheckGuestshell,
    State::RunPyScript,
    State::Verify,
];

/// One router in `report` (stable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ReportRow {
    /// Serial.
    pub(crate) serial: String,
    /// PID.
    pub(crate) pid: String,
    /// First contact.
    pub(crate) first_seen: String,
    /// When it reached FINISHED, or empty.
    pub(crate) finished: String,
    /// State now.
    pub(crate) state: String,
    /// Version before provisioning.
    pub(crate) version_before: String,
    /// Version now.
    pub(crate) version_after: String,
    /// Per step: (state name, result, time); result empty when not reached.
    pub(crate) steps: Vec<(String, String, String)>,
}

/// Report rows, sorted by serial.
pub(crate) fn report(devices: &[Device]) -> Vec<ReportRow> {
    let mut rows: Vec<ReportRow> = devices
        .iter()
        .map(|d| ReportRow {
            serial: d.serial.clone(),
            pid: d.pid.clone(),
            first_seen: d.first_seen.format(TIME_FORMAT).to_string(),
            finished: d
                .finished_at
                .map(|t| t.format(TIME_FORMAT).to_string())
                .unwrap_or_default(),
            state: d.state.as_str().to_string(),
            version_before: d.initial_version.clone(),
            version_after: d.current_version.clone(),
            steps: REPORT_STEPS
                .iter()
                .map(|s| {
                    let r = d.steps.get(s.as_str());
                    (
                        s.as_str().to_string(),
                        r.map(|r| r.result.clone()).unwrap_or_default(),
                        r.map(|r| r.at.format(TIME_FORMAT).to_string())
                            .unwrap_or_default(),
                    )
                })
                .collect(),
        })
        .collect();
    rows.sort_by(|a, b| a.serial.cmp(&b.serial));
    rows
}

/// A cell a spreadsheet would take for a formula (`=`, `+`, `-`, `@`, and tab or CR, which
/// some take as such too: OWASP "CSV Injection") gets a leading `'`, so opening the report can
/// never run what a router sent (a PID cannot hold these, a device's error text can).
fn neutralised(cell: &str) -> String {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}"),
        _ => cell.to_string(),
    }
}

/// The report as CSV: one row per router, a result and a time column per step.
pub(crate) fn report_csv(rows: &[ReportRow]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = [
        "serial",
        "pid",
        "first_seen",
        "finished",
        "state",
        "version_before",
        "version_after",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for s in REPORT_STEPS {
        let n = s.as_str().to_ascii_lowercase();
        header.push(format!("{n}_result"));
        header.push(format!("{n}_time"));
    }
    let _ = w.write_record(&header);
    for r in rows {
        let mut rec = vec![
            r.serial.clone(),
            r.pid.clone(),
            r.first_seen.clone(),
            r.finished.clone(),
            r.state.clone(),
            r.version_before.clone(),
            r.version_after.clone(),
        ];
        for (_, result, at) in &r.steps {
            rec.push(result.clone());
            rec.push(at.clone());
        }
        let _ = w.write_record(rec.iter().map(|c| neutralised(c)));
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn report_cells_that_a_spreadsheet_would_run_are_neutralised() {
        let now = chrono::Local::now();
        // What a router sends: its PID (printable ASCII may start with `=`) and its version.
        let mut d = Device::new("S1", "u", "=HYPERLINK(\"http://x\",\"y\")", "V01", now);
        d.initial_version = "-2+3".into();
        d.current_version = "@SUM(A1)".into();
        d.step(State::RunPyScript, "done", now);
        let csv = report_csv(&report(&[d]));
        let mut rd = csv::Reader::from_reader(csv.as_bytes());
        let headers = rd.headers().unwrap().clone();
        let row = rd.records().next().unwrap().unwrap();
        let col = |name: &str| {
            row.get(headers.iter().position(|h| h == name).unwrap())
                .unwrap()
                .to_string()
        };
        assert_eq!(col("pid"), "'=HYPERLINK(\"http://x\",\"y\")");
        assert_eq!(col("version_before"), "'-2+3");
        assert_eq!(col("version_after"), "'@SUM(A1)");
        assert_eq!(col("run_py_script_result"), "done");
        assert_eq!(col("serial"), "S1");
    }

    use super::*;

    #[test]
    fn report_has_a_result_and_time_per_step() {
        let now = chrono::Local::now();
        let mut d = Device::new("S1", "u", "C1131-8PWB", "V01", now);
        d.initial_version = "17.9.4a".into();
        d.current_version = "17.12.3a".into();
        d.step(State::ConfigReg, "done", now);
        d.step(State::GsTarballTransfer, "skipped", now);
        let csv = report_csv(&report(&[d]));
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let row: Vec<&str> = lines.next().unwrap().split(',').collect();
        assert_eq!(header.len(), 7 + 2 * REPORT_STEPS.len());
        assert_eq!(header.len(), row.len());
        let col = |name: &str| row[header.iter().position(|h| *h == name).unwrap()];
        assert_eq!(col("version_before"), "17.9.4a");
        assert_eq!(col("config_reg_result"), "done");
        assert_eq!(col("gs_tarball_transfer_result"), "skipped");
        assert_eq!(col("run_py_script_result"), "");
        assert_eq!(col("config_reg_time"), now.format(TIME_FORMAT).to_string());
    }

    #[test]
    fn table_shows_progress_and_errors() {
        let now = chrono::Local::now();
        let mut d = Device::new("S1", "u", "C1131-8PWB", "V01", now);
        d.state = State::Failed;
        d.fail_reason = Some("image install failed: PnP Service Error 1816".into());
        let mut r = crate::http::api::rows(&[d], None);
        r[0].transfer = Some(TransferView {
            path: "/images/x.bin".into(),
            bytes: 50_000_000,
            total: Some(100_000_000),
            rate_bps: 10_000_000,
            eta_secs: Some(5),
            elapsed_secs: 5,
            state: TransferState::Stalled,
        });
        let waiting = [crate::http::api::Waiting {
            ip: "198.51.100.107".into(),
            mac: "52:54:00:12:34:56".into(),
            pid: "C1131-8PWB".into(),
            since: "2026-12-01T10:00:00".into(),
        }];
        let t = table(&r, &waiting);
        assert!(
            t.contains("x.bin 50% 50.0MB/100.0MB 10.0MB/s eta 5s stalled"),
            "{t}"
        );
        assert!(
            t.contains("leased, waiting for PnP: 198.51.100.107 52:54:00:12:34:56 C1131-8PWB since 2026-12-01T10:00:00"),
            "{t}"
        );
        assert!(t.contains("error: image install failed"), "{t}");
        assert!(
            t.contains("1 routers: 0 FINISHED, 1 FAILED, 0 in progress"),
            "{t}"
        );
    }
}
