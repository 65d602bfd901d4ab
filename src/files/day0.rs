//! Day-0 configs: which file a router gets, and rendering it as a template.
//!
//! Owns the choice (`<SERIAL>.cfg`, else the default config) and the rendering: a config that
//! holds `{{`, `{%` or `{#` is a minijinja template, filled from the inventory CSV row of the
//! router (`serial,hostname,...`, in the configs directory) plus the built-ins `serial`, `pid`,
//! `vid` and `ip`. Undefined variables are errors (strict mode), so a half-rendered config never
//! reaches a router.

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::Config;
use crate::domain::device::Day0;
pub(crate) use crate::domain::template::Builtins;
use crate::domain::template::{is_template, render_text};

/// The inventory: serial → column → value. Missing file: empty.
pub(crate) fn inventory(path: &Path) -> Result<BTreeMap<String, BTreeMap<String, String>>, String> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let mut rd = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(file);
    let headers = rd
        .headers()
        .map_err(|e| format!("{}: {e}", path.display()))?
        .clone();
    if headers.get(0) != Some("serial") {
        return Err(format!(
            "{}: the first column must be `serial` (header line `serial,hostname,...`)",
            path.display()
        ));
    }
    let mut out = BTreeMap::new();
    for (i, rec) in rd.records().enumerate() {
        let rec = rec.map_err(|e| format!("{}: line {}: {e}", path.display(), i + 2))?;
        let row: BTreeMap<String, String> = headers
            .iter()
            .zip(rec.iter())
            .map(|(h, v)| (h.to_string(), v.to_string()))
            .collect();
        if let Some(serial) = row.get("serial").filter(|s| !s.is_empty()) {
            out.insert(serial.clone(), row);
        }
    }
    Ok(out)
}

/// The config file `serial` gets, or why none.
pub(crate) fn choose(cfg: &Config, serial: &str) -> Result<String, String> {
    let own = format!("{serial}.cfg");
    if cfg.configs_dir.join(&own).is_file() {
        return Ok(own);
    }
    if cfg.configs_dir.join(&cfg.default_config).is_file() {
        return Ok(cfg.default_config.clone());
    }
    Err(format!(
        "no day-0 config: neither {0}/{own} nor {0}/{1} exists; add one, then `pnp-appliance device resume {serial}`",
        cfg.configs_dir.display(),
        cfg.default_config
    ))
}

/// Chooses and renders the day-0 config of a router: (file name, text).
pub(crate) fn render(cfg: &Config, b: &Builtins) -> Result<(String, String), String> {
    let (file, text, _) = render_with_row(cfg, b)?;
    Ok((file, text))
}

/// One inventory row: column → value.
type Row = BTreeMap<String, String>;

/// [`render`], plus the router's inventory row (read only when something is a template).
fn render_with_row(cfg: &Config, b: &Builtins) -> Result<(String, String, Option<Row>), String> {
    let file = choose(cfg, &b.serial)?;
    let path = cfg.configs_dir.join(&file);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let templated = is_template(&text) || cfg.plan.verify.iter().any(|v| is_template(&v.expect));
    let row = if templated {
        inventory(&cfg.configs_dir.join(&cfg.inventory))?.remove(&b.serial)
    } else {
        None
    };
    let out = render_text(&file, &text, row.as_ref(), b)?;
    Ok((file, out, row))
}

/// What a router's day-0 config is, rendered for it now: at its first contact, so that a
/// router missing from the inventory (or with an empty cell) fails before any file moves. The
/// hostname line and each `[[workflow.verify]]` expectation are kept for the last checks.
pub(crate) fn prepare(cfg: &Config, b: &Builtins) -> Result<Day0, String> {
    let (file, text, row) = if cfg.plan.day0_config {
        render_with_row(cfg, b)?
    } else {
        // No config is pushed: only the checks' expectations are rendered.
        let row = inventory(&cfg.configs_dir.join(&cfg.inventory))?.remove(&b.serial);
        (String::new(), String::new(), row)
    };
    let hostname = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("hostname "))
        .map(str::to_string);
    let expects = cfg
        .plan
        .verify
        .iter()
        .enumerate()
        .map(|(i, v)| {
            render_text(
                &format!("[[workflow.verify]] {}", i + 1),
                &v.expect,
                row.as_ref(),
                b,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Day0 {
        file,
        hostname,
        expects,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inventory_reading() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("inventory.csv");
        assert!(inventory(&p).unwrap().is_empty());
        std::fs::write(&p, "serial, hostname\nFGL1, a\n,skip\nFGL2,b\n").unwrap();
        let inv = inventory(&p).unwrap();
        assert_eq!(inv["FGL1"]["hostname"], "a");
        assert_eq!(inv.len(), 2);
        std::fs::write(&p, "hostname,serial\na,FGL1\n").unwrap();
        assert!(
            inventory(&p)
                .unwrap_err()
                .contains("first column must be `serial`")
        );
    }
}
