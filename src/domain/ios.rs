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

/// An IOS error in CLI output (`% Invalid input`, `%Error ...`): the command did not work even
/// though cli-exec reports success.
pub(crate) fn cli_error(output: &str) -> Option<String> {
    output
        .lines()
        .map(str::trim)
        .find(|l| {
            l.starts_with("% Invalid")
                || l.starts_with("% Incomplete")
                || l.starts_with("% Ambiguous")
                || l.starts_with("%Error")
                || l.starts_with("% Error")
        })
        .map(str::to_string)
}
