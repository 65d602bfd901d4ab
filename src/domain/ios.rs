//! Readers of what IOS-XE prints: version strings, `show app-hosting list`, CLI error lines.
//!
//! Pure functions over the text a router returns, tested on real output
//! (`docs/pnp-protocol.md` §6.1, §6.3, the ianz94 reference workflow).

/// Normalises an IOS-XE version: `17.12.03a` → `17.12.3a` (device-info reports it unpadded,
/// file names pad it; §6.1). Finds the first `N.N.N[suffix]` token in `s`.
pub(crate) fn normalize_version(s: &str) -> Option<String> {
    let tokens = s.split(|c: char| c.is_whitespace() || c == ',' || c == '-' || c == '_');
    for token in tokens {
        let parts: Vec<&str> = token.split('.').collect();
        for w in parts.windows(3) {
            let (a, b, c) = (w[0], w[1], w[2]);
            let digits = |p: &str| !p.is_empty() && p.bytes().all(|x| x.is_ascii_digit());
            let lead = c.bytes().take_while(u8::is_ascii_digit).count();
            if digits(a) && digits(b) && lead > 0 {
                let num = |p: &str| p.trim_start_matches('0').parse::<u64>().unwrap_or(0);
                let suffix = &c[lead..];
                if !suffix.bytes().all(|x| x.is_ascii_alphanumeric()) {
                    continue;
                }
                return Some(format!(
                    "{}.{}.{}{}",
                    num(a),
                    num(b),
                    num(&c[..lead]),
                    suffix.to_ascii_lowercase()
                ));
            }
        }
    }
    None
}

/// Guestshell state read from `show app-hosting list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Guestshell {
    /// `RUNNING`.
    Running,
    /// Installed but not running (`DEPLOYED`, `ACTIVATED`, `STOPPED`).
    Installed,
    /// `No App found`, or no guestshell line.
    Missing,
    /// Something else (e.g. in transition): check again later.
    Other,
}

/// Reads `show app-hosting list` output (ianz94 looks for `RUNNING`, `DEPLOYED`, `No App found`).
pub(crate) fn guestshell_state(output: &str) -> Guestshell {
    for line in output.lines() {
        let mut words = line.split_whitespace();
        if words
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case("guestshell"))
        {
            return match words.next().map(str::to_ascii_uppercase).as_deref() {
                Some("RUNNING") => Guestshell::Running,
                Some("DEPLOYED" | "ACTIVATED" | "STOPPED") => Guestshell::Installed,
                _ => Guestshell::Other,
            };
        }
    }
    Guestshell::Missing
}

/// How IOS-XE starts a line that reports a command it did not carry out. The PnP agent may
/// still answer `success="1"` (`docs/pnp-protocol.md` §8.1), so every CLI result is read for
/// these. From IOS-XE's own messages: the parser's (`% Invalid input detected at '^' marker.`,
/// `% Incomplete command.`, `% Ambiguous command: "..."`, `% Unknown command or computer name`,
/// `% Unrecognized command`), file system and feature errors (`%Error opening ...`,
/// `%Error copying ...`, `% Error: Not enough storage space available for installing
/// guestshell`), AAA (`% Authorization failed.`, `Command authorization failed.`), and the
/// rejections of `% Bad ...`, `% Permission denied`, `% Not enough ...`, `% Failed ...`.
const IOS_ERROR_STARTS: [&str; 16] = [
    "% Invalid",
    "%Invalid",
    "% Incomplete",
    "% Ambiguous",
    "% Unknown command",
    "% Unrecognized command",
    "%Error",
    "% Error",
    "%ERROR",
    "% Bad ",
    "% Permission denied",
    "% Not enough",
    "% Failed",
    "% Authorization failed",
    "Command authorization failed",
    "% Command rejected",
];

/// An IOS error in CLI output: the first line that reports a command IOS did not carry out,
/// even though the PnP agent answered success.
pub(crate) fn cli_error(output: &str) -> Option<String> {
    output
        .lines()
        .map(str::trim)
        .find(|l| IOS_ERROR_STARTS.iter().any(|p| l.starts_with(p)))
        .map(str::to_string)
}

/// What `guestshell run python3 <script>` prints when the script did not run to its end, from
/// CPython and Guestshell themselves: an uncaught exception (`Traceback (most recent call
/// last):`), a script that does not parse (`SyntaxError:`, printed without a traceback), a
/// missing script (`python3: can't open file '...': [Errno 2] No such file or directory`), no
/// interpreter (`python3: command not found`), and Guestshell not up (`Guestshell not enabled`,
/// `guestshell is not running`). `guestshell run` reports no exit status (IOS prints only the
/// command's output), so the output is all there is to judge.
const SCRIPT_FAILURES: [&str; 6] = [
    "Traceback (most recent call last)",
    "SyntaxError:",
    "can't open file",
    "command not found",
    "Guestshell not enabled",
    "guestshell is not running",
];

/// Why the script's output says it failed, or `None` when it ran: an IOS error, one of the
/// failure forms above, a line matching `failure` (the operator's pattern), or, when the
/// operator gave a `success` pattern, no line matching it (a script that dies before its last
/// line cannot print its success marker: that is as good as an exit status).
pub(crate) fn script_failure(
    output: &str,
    success: Option<&regex::Regex>,
    failure: Option<&regex::Regex>,
) -> Option<String> {
    if let Some(e) = cli_error(output) {
        return Some(e);
    }
    let line = |pred: &dyn Fn(&str) -> bool| output.lines().map(str::trim).find(|l| pred(l));
    if let Some(l) = line(&|l| SCRIPT_FAILURES.iter().any(|f| l.contains(f))) {
        // The last line of a traceback names the exception: more use than its first.
        if l.starts_with("Traceback") {
            let last = output.lines().map(str::trim).rfind(|l| !l.is_empty());
            return Some(last.unwrap_or(l).to_string());
        }
        return Some(l.to_string());
    }
    if let Some(re) = failure
        && let Some(l) = line(&|l| re.is_match(l))
    {
        return Some(format!("output matches the failure pattern: {l}"));
    }
    if let Some(re) = success
        && line(&|l| re.is_match(l)).is_none()
    {
        return Some(format!(
            "no line of the output matches the success pattern {:?}",
            re.as_str()
        ));
    }
    None
}

/// The lines of a cli-config that did not take: reported as failed, invalid or not executed
/// (§6.2), or reported as a success whose CLI text holds an IOS error.
pub(crate) fn config_errors(lines: &[crate::domain::job::ConfigLine]) -> Vec<String> {
    use crate::domain::job::LineResult;
    lines
        .iter()
        .filter_map(|l| {
            let what = match l.result {
                LineResult::Failure => "failed",
                LineResult::Invalid => "invalid",
                LineResult::NotExecuted => "not executed",
                LineResult::Success => {
                    return cli_error(&l.text).map(|e| format!("{}: {e}", l.line));
                }
            };
            Some(match l.text.trim() {
                "" => format!("{}: {what}", l.line),
                t => format!("{}: {what}: {t}", l.line),
            })
        })
        .collect()
}

/// The image files (`*.bin`) a `dir bootflash:` listing shows, with their sizes. IOS-XE prints
/// one line per file: `  12  -rw-   706422748  Jan 1 2024 00:00:00 +00:00  <name>` (index,
/// permissions, size in bytes, date, name last).
pub(crate) fn bootflash_images(listing: &str) -> Vec<(String, u64)> {
    listing
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let name = *words.last()?;
            let perms = words.get(1)?;
            let size = words.get(2)?.parse::<u64>().ok()?;
            (words.first()?.parse::<u64>().is_ok()
                && perms.starts_with('-')
                && name.ends_with(".bin")
                && !name.contains('/'))
            .then(|| (name.to_string(), size))
        })
        .collect()
}

/// Whether `output` holds `expect` as one of its lines (surrounding blanks ignored): how a
/// verification check's command output is judged, so `hostname branch-7` is not taken for
/// `hostname branch-70`.
pub(crate) fn has_line(output: &str, expect: &str) -> bool {
    let want = expect.trim();
    output.lines().any(|l| l.trim() == want)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::job::{ConfigLine, LineResult};

    #[test]
    fn ios_errors_are_found_whatever_the_agent_said() {
        // (output, error line found)
        let table = [
            (
                "show app-hostin lst\n                 ^\n% Invalid input detected at '^' marker.",
                Some("% Invalid input detected at '^' marker."),
            ),
            ("% Incomplete command.", Some("% Incomplete command.")),
            (
                "% Ambiguous command:  \"sh ip\"",
                Some("% Ambiguous command:  \"sh ip\""),
            ),
            (
                "%Error opening bootflash:guestshell.tar (No such file or directory)",
                Some("%Error opening bootflash:guestshell.tar (No such file or directory)"),
            ),
            (
                "Installing package...\n% Error: Not enough storage space available for installing guestshell",
                Some("% Error: Not enough storage space available for installing guestshell"),
            ),
            (
                "% Unknown command or computer name, or unable to find computer address",
                Some("% Unknown command or computer name, or unable to find computer address"),
            ),
            (
                "Command authorization failed.",
                Some("Command authorization failed."),
            ),
            ("% Authorization failed.", Some("% Authorization failed.")),
            ("Building configuration...\n[OK]", None),
            ("100% done", None),
            ("App id   State\nguestshell   RUNNING", None),
            (
                "*Dec  1 10:00:00.000: %SYS-5-CONFIG_I: Configured from console by vty0",
                None,
            ),
        ];
        for (out, want) in table {
            assert_eq!(cli_error(out).as_deref(), want, "{out}");
        }
    }

    #[test]
    fn script_outcomes() {
        let ok = regex::Regex::new("^PNP-OK$").unwrap();
        let bad = regex::Regex::new("^ERROR:").unwrap();
        // (output, success pattern?, failure pattern?, failed because)
        let table: [(&str, bool, bool, Option<&str>); 9] = [
            ("hostname configured, done", false, false, None),
            (
                "Traceback (most recent call last):\n  File \"/bootflash/guest-share/s.py\", line 1, in <module>\n    import cli\nModuleNotFoundError: No module named 'cli'",
                false,
                false,
                Some("ModuleNotFoundError: No module named 'cli'"),
            ),
            (
                "python3: can't open file '/bootflash/guest-share/s.py': [Errno 2] No such file or directory",
                false,
                false,
                Some(
                    "python3: can't open file '/bootflash/guest-share/s.py': [Errno 2] No such file or directory",
                ),
            ),
            (
                "  File \"s.py\", line 3\n    print(\n         ^\nSyntaxError: unexpected EOF while parsing",
                false,
                false,
                Some("SyntaxError: unexpected EOF while parsing"),
            ),
            (
                "Guestshell not enabled",
                false,
                false,
                Some("Guestshell not enabled"),
            ),
            (
                "% Error: guestshell is not running",
                false,
                false,
                Some("% Error: guestshell is not running"),
            ),
            ("step 1\nPNP-OK", true, false, None),
            (
                "step 1\nkilled",
                true,
                false,
                Some("no line of the output matches the success pattern \"^PNP-OK$\""),
            ),
            (
                "ERROR: license not found\nPNP-OK",
                true,
                true,
                Some("output matches the failure pattern: ERROR: license not found"),
            ),
        ];
        for (out, with_ok, with_bad, want) in table {
            let got = script_failure(out, with_ok.then_some(&ok), with_bad.then_some(&bad));
            assert_eq!(got.as_deref(), want, "{out}");
        }
    }

    #[test]
    fn config_lines_are_judged_by_result_and_text() {
        let line = |result, text: &str| ConfigLine {
            line: "config-register 0x2102".into(),
            result,
            text: text.into(),
        };
        assert!(config_errors(&[line(LineResult::Success, "")]).is_empty());
        assert_eq!(
            config_errors(&[line(
                LineResult::Success,
                "% Invalid input detected at '^' marker."
            )]),
            ["config-register 0x2102: % Invalid input detected at '^' marker."]
        );
        assert_eq!(
            config_errors(&[line(LineResult::Invalid, "")]),
            ["config-register 0x2102: invalid"]
        );
        assert_eq!(
            config_errors(&[line(LineResult::Failure, "**CLI Line # 1: bad")]),
            ["config-register 0x2102: failed: **CLI Line # 1: bad"]
        );
        assert_eq!(config_errors(&[line(LineResult::NotExecuted, "")]).len(), 1);
    }

    #[test]
    fn dir_listing_gives_image_files_and_sizes() {
        let listing = "Directory of bootflash:/\n\n   11  drwx            16384  Jan 1 2024 00:00:00 +00:00  lost+found\n   12  -rw-        706422748  Mar 3 2024 10:11:12 +00:00  c1100-universalk9.17.06.03a.SPA.bin\n   13  -rw-        355970456  Mar 3 2023 10:11:12 +00:00  c1100-universalk9.16.06.04.SPA.bin\n   14  -rw-             6379  Mar 3 2024 10:11:12 +00:00  packages.conf\n   15  -rw-        300000000  Mar 3 2024 10:11:12 +00:00  guestshell.17.12.03a.tar\n\n2863103 kbytes total (197652 kbytes free)";
        assert_eq!(
            bootflash_images(listing),
            [
                (
                    "c1100-universalk9.17.06.03a.SPA.bin".to_string(),
                    706_422_748
                ),
                (
                    "c1100-universalk9.16.06.04.SPA.bin".to_string(),
                    355_970_456
                ),
            ]
        );
        assert!(bootflash_images("% Invalid input").is_empty());
    }

    #[test]
    fn checks_match_whole_lines() {
        assert!(has_line("hostname branch-7\n", "hostname branch-7"));
        assert!(has_line(
            "x\n  hostname branch-7  \ny",
            " hostname branch-7"
        ));
        assert!(!has_line("hostname branch-70", "hostname branch-7"));
        assert!(!has_line("", "hostname branch-7"));
    }
}
