//! Day-0 templates as text: a config or an expectation holding `{{`, `{%` or `{#` is a
//! minijinja template, filled from the router's inventory row plus the built-ins `serial`,
//! `pid`, `vid` and `ip`. Undefined variables are errors (strict mode), and so is a variable
//! whose inventory cell is empty, so a half-rendered config never reaches a router. Pure: the
//! file and inventory reading is the `files` layer's.

use std::collections::BTreeMap;

use super::device::Device;

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

/// Whether `text` is a template.
pub(crate) fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%") || text.contains("{#")
}

fn env() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    // Keep the config's own line breaks exactly.
    env.set_keep_trailing_newline(true);
    env
}

/// Whether `text` parses as a template (for the configuration's own templates).
pub(crate) fn check_template(text: &str) -> Result<(), String> {
    env()
        .template_from_str(text)
        .map(|_| ())
        .map_err(|e| format!("not a valid template: {e}"))
}

/// Renders `text` (from `name`) for a router; plain text comes back unchanged.
pub(crate) fn render_text(
    name: &str,
    text: &str,
    row: Option<&BTreeMap<String, String>>,
    b: &Builtins,
) -> Result<String, String> {
    if !is_template(text) {
        return Ok(text.to_string());
    }
    // An empty cell is no value: `hostname ` would reach the router otherwise.
    let mut vars: BTreeMap<String, String> = row
        .into_iter()
        .flatten()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    vars.insert("serial".into(), b.serial.clone());
    vars.insert("pid".into(), b.pid.clone());
    vars.insert("vid".into(), b.vid.clone());
    vars.insert("ip".into(), b.ip.clone());
    let env = env();
    let fail = |e: String| format!("day-0 template {name} for {}: {e}", b.serial);
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
        let hint = match row {
            None => format!(
                "{} has no row in the inventory: add one, then `pnp-appliance device resume {}`",
                b.serial, b.serial
            ),
            Some(r) if missing.iter().all(|m| r.contains_key(m)) => format!(
                "its inventory row leaves them empty: fill them in, then `pnp-appliance device resume {}`",
                b.serial
            ),
            Some(_) => "add the column to the inventory".to_string(),
        };
        return Err(fail(format!(
            "missing variable(s) {} ({hint})",
            missing.join(", ")
        )));
    }
    tpl.render(&vars).map_err(|e| fail(e.to_string()))
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
                Err("missing variable(s) hostname (FGL1 has no row in the inventory"),
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
    fn an_empty_inventory_cell_is_a_missing_variable() {
        let row: BTreeMap<String, String> = [
            ("serial".into(), "FGL1".into()),
            ("hostname".into(), " ".into()),
        ]
        .into();
        let e =
            render_text("default.cfg", "hostname {{ hostname }}\n", Some(&row), &b()).unwrap_err();
        assert!(
            e.contains("missing variable(s) hostname (its inventory row leaves them empty"),
            "{e}"
        );
        assert!(check_template("hostname {{ hostname }}").is_ok());
        assert!(check_template("hostname {{ hostname").is_err());
    }
}
