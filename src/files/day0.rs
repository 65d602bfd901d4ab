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
use crate::domain::device::Device;

/// Built-in template variables of one router.
#[derive(Debug, Clone, Default)]
pub(crate) struct Builtins {
    /// Serial number.
    pub(crate) serial: String,
    /// PID.
    pub(crate) pid: String,
    /// VID.
    pub(crate) vid: String,
    /// Address it talks from.
    pub(crate) ip: String,
}

impl Builtins {
    /// The built-ins of `d`.
    pub(crate) fn of(d: &Device) -> Builtins {
        Builtins {
            serial: d.serial.clone(),
            pid: d.pid.clone(),
            vid: d.vid.clone(),
            ip: d.ip.map(|ip| ip.to_string()).unwrap_or_default(),
        }
    }
}

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

/// Whether `text` is a template.
pub(crate) fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%") || text.contains("{#")
}

/// Renders `text` (from `name`) for a router; plain configs come back unchanged.
pub(crate) fn render_text(
    name: &str,
    text: &str,
    row: Option<&BTreeMap<String, String>>,
    b: &Builtins,
) -> Result<String, String> {
    if !is_template(text) {
        return Ok(text.to_string());
    }
    let mut vars: BTreeMap<String, String> = row.cloned().unwrap_or_default();
    vars.insert("serial".into(), b.serial.clone());
    vars.insert("pid".into(), b.pid.clone());
    vars.insert("vid".into(), b.vid.clone());
    vars.insert("ip".into(), b.ip.clone());
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    // Keep the config's own line breaks exactly.
    env.set_keep_trailing_newline(true);
    let fail = |e: String| {
        let hint = if row.is_none() {
            format!("{} has no row in the inventory", b.serial)
        } else {
            "add the column to the inventory".to_string()
        };
        format!("day-0 template {name} for {}: {e} ({hint})", b.serial)
    };
    let tpl = env
        .template_from_named_str(name, text)
        .map_err(|e| fail(e.to_string()))?;
    // Name the missing variables (strict mode alone only says "undefined value").
    let mut missing: Vec<String> = tpl
        .undeclared_variables(false)
        .into_iter()
        .filter(|v| !vars.contains_key(v))
        .collect();
    missing.sort();
    if !missing.is_empty() {
        return Err(fail(format!("missing variable(s) {}", missing.join(", "))));
    }
    tpl.render(&vars).map_err(|e| fail(e.to_string()))
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
    let file = choose(cfg, &b.serial)?;
    let path = cfg.configs_dir.join(&file);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !is_template(&text) {
        return Ok((file, text));
    }
    let inv = inventory(&cfg.configs_dir.join(&cfg.inventory))?;
    let out = render_text(&file, &text, inv.get(&b.serial), b)?;
    Ok((file, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b() -> Builtins {
        Builtins {
            serial: "FGL1".into(),
            pid: "C1131-8PWB".into(),
            vid: "V01".into(),
            ip: "198.51.100.100".into(),
        }
    }

    #[test]
    fn render_table() {
        let row: BTreeMap<String, String> = [
            ("serial".into(), "FGL1".into()),
            ("hostname".into(), "branch-7".into()),
        ]
        .into();
        // (template, inventory row?, expected Ok text or Err fragment)
        let cases: Vec<(&str, bool, Result<&str, &str>)> = vec![
            ("hostname X\n", false, Ok("hostname X\n")),
            (
                "hostname {{ hostname }}\n! {{ pid }} {{ ip }}\n",
                true,
                Ok("hostname branch-7\n! C1131-8PWB 198.51.100.100\n"),
            ),
            (
                "hostname {{ hostname }}\n",
                false,
                Err("missing variable(s) hostname (FGL1 has no row in the inventory)"),
            ),
            (
                "snmp {{ community }} {{ x.y }}\n",
                true,
                Err("missing variable(s) community, x (add the column"),
            ),
            (
                "{% if pid is startingwith('C11') %}isr{% endif %}\n",
                false,
                Ok("isr\n"),
            ),
            ("hostname {{ oops\n", true, Err("day-0 template")),
        ];
        for (tpl, with_row, want) in cases {
            let got = render_text("default.cfg", tpl, with_row.then_some(&row), &b());
            match (want, &got) {
                (Ok(w), Ok(g)) => assert_eq!(g, w, "{tpl}"),
                (Err(w), Err(g)) => assert!(g.contains(w), "{tpl}: {g}"),
                _ => panic!("{tpl}: {got:?}"),
            }
        }
    }

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
