//! What operators read: the status rows (`status`, `/api/status`), one router's full record
//! (`device show`) and the provisioning report (`report`).
//!
//! Owns the report's stable JSON shape ([`ReportRow`], documented in README.md) and the text
//! renderings of status rows and records. Everything here is derived from device records and the transfer
//! table; nothing is stored.

use serde::{Deserialize, Serialize};

use crate::domain::bench::Group;
use crate::domain::device::{Device, State};
use crate::files::transfers::{TransferState, TransferView};
use crate::http::api::StatusRow;

/// A transfer in full for `device show`: `x.bin 42% 11 MB/s eta 36s, 301 MB of 716 MB, running`.
pub(crate) fn progress(t: &TransferView) -> String {
    let h = crate::domain::bench::human_bytes;
    let total = t.total.map(|x| format!(" of {}", h(x))).unwrap_or_default();
    format!(
        "{}, {}{total}, {}",
        compact_download(t),
        h(t.bytes),
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

/// The size `status` lays itself out for: columns and lines, `None` for no limit (output
/// that goes to a pipe or a file keeps every row at full length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Screen {
    /// Characters per line.
    pub(crate) width: Option<usize>,
    /// Lines.
    pub(crate) height: Option<usize>,
}

#[cfg(test)]
impl Screen {
    /// No limit.
    pub(crate) const FULL: Screen = Screen {
        width: None,
        height: None,
    };
}

/// A row's one detail: why it needs you, else its download, else its last error or step.
fn detail(r: &StatusRow) -> String {
    if let Some(reason) = &r.reason {
        return reason.clone();
    }
    if let Some(t) = &r.transfer
        && matches!(t.state, TransferState::Running | TransferState::Stalled)
    {
        return compact_download(t);
    }
    match r.group {
        Group::Finished => format!("runs {}", r.current_version),
        _ => match &r.last_error {
            Some(e) => format!("retrying: {e}"),
            None => r.progress.name.clone(),
        },
    }
}

/// `image 45% 612 KB/s eta 9m12s`: the one download bar of a row, without its URL.
pub(crate) fn compact_download(t: &TransferView) -> String {
    let name = t.path.rsplit('/').next().unwrap_or_default();
    let pct = t
        .total
        .filter(|x| *x > 0)
        .map(|x| format!(" {}%", t.bytes * 100 / x))
        .unwrap_or_default();
    let rate = crate::domain::bench::human_bytes(t.rate_bps);
    let eta = match (t.state, t.eta_secs) {
        (TransferState::Stalled, _) => " stalled".to_string(),
        (_, Some(e)) => format!(" eta {}", duration(e)),
        _ => String::new(),
    };
    format!("{name}{pct} {rate}/s{eta}")
}

/// `9m12s`, `1h04m`, `45s`.
pub(crate) fn duration(secs: u64) -> String {
    match secs {
        s if s >= 3600 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        s if s >= 60 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

/// `s` cut to `width` characters (no limit: as is).
fn fit(s: &str, width: Option<usize>) -> String {
    match width {
        Some(w) => cut(s, w),
        None => s.replace('\n', " "),
    }
}

/// The terminal table of `status`: a summary line, then the routers that need you (each with
/// the fix on a line of its own), those in progress and the finished ones, in the API's order;
/// then the routers leased by our DHCP that have not spoken PnP yet. Laid out for `screen`: at
/// 80 columns serial, hostname, state, step and one detail; from 120 also PID, address and last
/// contact. Rows that do not fit the height are counted in a last line, the needing-you ones
/// kept first. Full URLs are for `device show`.
pub(crate) fn table(
    rows: &[StatusRow],
    waiting: &[crate::http::api::Waiting],
    screen: Screen,
    live: bool,
) -> String {
    let count = |g: Group| rows.iter().filter(|r| r.group == g).count();
    let (need, moving, done) = (
        count(Group::NeedsYou),
        count(Group::InProgress),
        count(Group::Finished),
    );
    let mut lines: Vec<String> = Vec::new();
    let mut summary = format!(
        "{} routers: {need} need you · {moving} in progress · {done} finished · times UTC",
        rows.len()
    );
    if !waiting.is_empty() {
        summary.push_str(&format!(" · {} leased, waiting for PnP", waiting.len()));
    }
    if !live {
        summary.push_str(" · server not running: saved state, no downloads");
    }
    lines.push(summary);
    if rows.is_empty() && waiting.is_empty() {
        lines.push("no router yet: power one on, cabled to this bench (`pnp-appliance check` says what routers are told)".into());
    }
    let wide = screen.width.is_none_or(|w| w >= 120);
    let hosts = rows.iter().any(|r| r.hostname.is_some());
    // A fleet's table names each router's bench.
    let fleet = rows
        .iter()
        .map(|r| r.bench.as_str())
        .collect::<std::collections::HashSet<_>>()
        .len()
        > 1;
    let head = |bench: &str,
                serial: &str,
                host: &str,
                state: &str,
                step: &str,
                pid: &str,
                ip: &str,
                id: &str,
                last: &str| {
        let mut l = String::new();
        if fleet {
            l.push_str(&format!("{bench:<10} "));
        }
        l.push_str(&format!("{serial:<14} "));
        if hosts {
            l.push_str(&format!("{host:<14} "));
        }
        l.push_str(&format!("{state:<20} {step:<4} "));
        if wide {
            l.push_str(&format!("{pid:<12} {ip:<15} {id:<13} {last:<9} "));
        }
        l
    };
    if !rows.is_empty() {
        let h = head(
            "BENCH", "SERIAL", "HOSTNAME", "STATE", "STEP", "PID", "IP", "IDENTITY", "LAST",
        );
        lines.push(fit(&format!("{h}DETAIL"), screen.width));
    }
    // Each row: its line, and for a router that needs you the fix under it.
    let mut blocks: Vec<Vec<String>> = Vec::new();
    for r in rows {
        let last = r.last_contact.get(11..).unwrap_or_default();
        let h = head(
            &cut(&r.bench, 10),
            &cut(&r.serial, 14),
            &cut(r.hostname.as_deref().unwrap_or("-"), 14),
            &cut(&r.state, 20),
            &format!("{}/{}", r.progress.step, r.progress.of),
            &cut(&r.platform, 12),
            &r.ip,
            &r.identity,
            last,
        );
        let mut block = vec![fit(&format!("{h}{}", detail(r)), screen.width)];
        if let Some(fix) = &r.fix {
            block.push(fit(&format!("    fix: {fix}"), screen.width));
        }
        blocks.push(block);
    }
    let tail: Vec<String> = waiting
        .iter()
        .map(|w| {
            fit(
                &format!(
                    "leased, waiting for PnP: {} {} {} since {} (no PnP yet: check option 43 reaches it)",
                    w.ip,
                    w.mac,
                    cut(&w.pid, 24),
                    w.since
                ),
                screen.width,
            )
        })
        .collect();
    // What fits: the header lines and a line for what is left out.
    let room = screen.height.map(|h| h.saturating_sub(lines.len() + 1));
    let mut used = 0;
    let mut shown = 0;
    for b in &blocks {
        if room.is_some_and(|r| used + b.len() > r) {
            break;
        }
        used += b.len();
        shown += 1;
    }
    for b in &blocks[..shown] {
        lines.extend(b.iter().cloned());
    }
    let left = rows.len() - shown;
    let tail_fits = room.is_none_or(|r| used + tail.len() <= r);
    if tail_fits {
        lines.extend(tail);
    }
    if left > 0 || !tail_fits {
        let mut more = Vec::new();
        if left > 0 {
            more.push(format!("{left} more routers"));
        }
        if !tail_fits {
            more.push(format!("{} leased, waiting for PnP", waiting.len()));
        }
        lines.push(fit(
            &format!(
                "… {} (a taller terminal, `status | less` or the dashboard shows all)",
                more.join(", ")
            ),
            screen.width,
        ));
    }
    let mut out = lines.join("\n");
    out.push('\n');
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
        crate::domain::bench::utc(d.first_seen),
        crate::domain::bench::utc(d.last_contact),
        d.current_version,
        d.initial_version,
        d.target_image,
        d.bootflash_free
            .map(|b| format!(
                "{} free",
                crate::domain::bench::human_bytes(u64::try_from(b).unwrap_or(0))
            ))
            .unwrap_or_default(),
        d.config_file.clone().unwrap_or_default(),
    );
    if let Some(l) = &d.lease {
        s.push_str(&format!(
            "dhcp lease    {} {} until {}\n",
            l.ip,
            l.mac,
            crate::domain::bench::utc(l.expires)
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
            crate::domain::bench::utc(b.since)
        ));
    }
    let (id, rests_on) = crate::domain::identity::identity(d);
    s.push_str(&format!("identity      {id}: {rests_on}\n"));
    if let Some(m) = &d.tls {
        s.push_str(&match m.back {
            Some(at) => format!(
                "transport     HTTPS since {}\n",
                crate::domain::bench::utc(at)
            ),
            None => format!(
                "transport     took the trustpoint at {}, not back over HTTPS yet\n",
                crate::domain::bench::utc(m.taken)
            ),
        });
    }
    let p = crate::domain::bench::progress(d);
    s.push_str(&format!(
        "step          {} of {}: {}\n",
        p.step, p.of, p.name
    ));
    if let Some(h) = crate::domain::bench::hostname(d) {
        s.push_str(&format!("hostname      {h}\n"));
    }
    if !d.bench.is_empty() {
        s.push_str(&format!("bench         {}\n", d.bench));
    }
    if let Some(a) = crate::domain::bench::attention(d, None) {
        s.push_str(&format!(
            "NEEDS YOU     {}\n  fix         {}\n",
            a.reason, a.fix
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
            crate::domain::bench::utc(p.sent_at)
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
                crate::domain::bench::utc(e.at),
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
            crate::domain::bench::utc(e.at),
            e.state.as_str(),
            lines.next().unwrap_or_default()
        ));
        for more in lines {
            s.push_str(&format!("  {:<20}  {:<21} {more}\n", "", ""));
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
    /// The bench that drives it (after the steps: the columns before keep their places).
    #[serde(default)]
    pub(crate) bench: String,
    /// `sudi-verified`, `sudi-failed` or `address-bound` (last column).
    #[serde(default)]
    pub(crate) identity: String,
}

/// Report rows, sorted by serial.
pub(crate) fn report(devices: &[Device]) -> Vec<ReportRow> {
    let mut rows: Vec<ReportRow> = devices
        .iter()
        .map(|d| ReportRow {
            serial: d.serial.clone(),
            pid: d.pid.clone(),
            first_seen: crate::domain::bench::utc(d.first_seen),
            finished: d
                .finished_at
                .map(crate::domain::bench::utc)
                .unwrap_or_default(),
            state: d.state.as_str().to_string(),
            version_before: d.initial_version.clone(),
            version_after: d.current_version.clone(),
            bench: d.bench.clone(),
            identity: crate::domain::identity::identity(d).0.to_string(),
            steps: REPORT_STEPS
                .iter()
                .map(|s| {
                    let r = d.steps.get(s.as_str());
                    (
                        s.as_str().to_string(),
                        r.map(|r| r.result.clone()).unwrap_or_default(),
                        r.map(|r| crate::domain::bench::utc(r.at))
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
    header.push("bench".into());
    header.push("identity".into());
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
        rec.push(r.bench.clone());
        rec.push(r.identity.clone());
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
        d.bench = "bench-2".into();
        d.initial_version = "17.9.4a".into();
        d.current_version = "17.12.3a".into();
        d.step(State::ConfigReg, "done", now);
        d.step(State::GsTarballTransfer, "skipped", now);
        let csv = report_csv(&report(&[d]));
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let row: Vec<&str> = lines.next().unwrap().split(',').collect();
        assert_eq!(header.len(), 7 + 2 * REPORT_STEPS.len() + 2);
        assert_eq!(header[header.len() - 2..], ["bench", "identity"]);
        assert_eq!(header.len(), row.len());
        let col = |name: &str| row[header.iter().position(|h| *h == name).unwrap()];
        assert_eq!(col("version_before"), "17.9.4a");
        assert_eq!(col("config_reg_result"), "done");
        assert_eq!(col("gs_tarball_transfer_result"), "skipped");
        assert_eq!(col("run_py_script_result"), "");
        assert_eq!(col("config_reg_time"), crate::domain::bench::utc(now));
        assert_eq!(col("bench"), "bench-2");
        assert_eq!(col("identity"), "address-bound");
    }

    fn row(serial: &str, state: State, fail: Option<&str>) -> StatusRow {
        let now = chrono::Local::now();
        let mut d = Device::new(serial, "u", "C1131-8PWB", "V01", now);
        d.state = state;
        d.fail_reason = fail.map(str::to_string);
        d.failed_in = Some(State::UpgradeInProgress);
        crate::http::api::rows(&[d], None).remove(0)
    }

    #[test]
    fn table_shows_progress_reasons_and_fixes() {
        let mut r = vec![row(
            "S1",
            State::Failed,
            Some("image install failed: PnP Service Error 1816"),
        )];
        let mut moving = row("S2", State::UpgradeInProgress, None);
        moving.transfer = Some(TransferView {
            path: "/images/x.bin".into(),
            bytes: 50_000_000,
            total: Some(100_000_000),
            rate_bps: 612 << 10,
            eta_secs: Some(552),
            elapsed_secs: 5,
            state: TransferState::Running,
        });
        r.push(moving);
        let waiting = [crate::http::api::Waiting {
            ip: "198.51.100.107".into(),
            mac: "52:54:00:12:34:56".into(),
            pid: "C1131-8PWB".into(),
            since: "2026-12-01T10:00:00Z".into(),
        }];
        let t = table(&r, &waiting, Screen::FULL, true);
        assert!(t.contains("x.bin 50% 612 KB/s eta 9m12s"), "{t}");
        assert!(!t.contains("/images/"), "no URL or path in the table: {t}");
        assert!(
            t.contains("leased, waiting for PnP: 198.51.100.107 52:54:00:12:34:56 C1131-8PWB since 2026-12-01T10:00:00Z"),
            "{t}"
        );
        assert!(t.contains("image install failed"), "{t}");
        assert!(
            t.contains("fix: fix what the reason says, then `pnp-appliance device resume S1`"),
            "{t}"
        );
        assert!(
            t.starts_with("2 routers: 1 need you · 1 in progress · 0 finished · times UTC · 1 leased, waiting for PnP\n"),
            "{t}"
        );
        assert!(t.contains(" 2/8 "), "step k of n: {t}");
    }

    #[test]
    fn at_80_by_24_forty_routers_fit_with_the_ones_needing_you_first() {
        let mut devices = Vec::new();
        let now = chrono::Local::now();
        for i in 0..40 {
            let mut d = Device::new(&format!("FGL2548L{i:03}"), "u", "C1131-8PWB", "V01", now);
            d.state = match i {
                7 => State::BootflashNoSpace,
                23 => State::Failed,
                0..=19 => State::Finished,
                _ => State::GsTarballTransfer,
            };
            d.fail_reason = Some("files/guestshell.tar is missing on the appliance: copy it there, restart, then `pnp-appliance device resume FGL2548L023`".into());
            if i == 7 {
                d.last_error = Some("bootflash has 193 MB free, 1.0 GB needed".into());
            }
            devices.push(d);
        }
        let rows = crate::http::api::rows(&devices, None);
        let screen = Screen {
            width: Some(80),
            height: Some(24),
        };
        let t = table(&rows, &[], screen, true);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines.len() <= 24, "{} lines:\n{t}", lines.len());
        assert!(lines.iter().all(|l| l.chars().count() <= 80), "{t}");
        assert!(
            lines[0].starts_with("40 routers: 2 need you · 19 in progress · 19 finished"),
            "{t}"
        );
        // The two that need you come right after the header, each with its fix.
        assert!(
            lines[2].starts_with("FGL2548L007") && lines[2].contains("BOOTFLASH_NO_SPACE"),
            "{t}"
        );
        assert!(lines[3].trim_start().starts_with("fix: free space"), "{t}");
        assert!(
            lines[4].starts_with("FGL2548L023") && lines[4].contains("FAILED"),
            "{t}"
        );
        assert!(lines.last().unwrap().contains("more routers"), "{t}");
        // Wide: every row, with PID and address.
        let wide = table(&rows, &[], Screen::FULL, true);
        assert_eq!(wide.lines().count(), 2 + 40 + 2, "{wide}");
        assert!(wide.lines().nth(1).unwrap().contains("PID"), "{wide}");
    }
}
