//! Operator commands on device records: `device resume|retry|reset|forget|show`, `status`,
//! `report`.
//!
//! Owns the two paths of every operator command: ask the running server (HTTP on this host,
//! with the admin token when configured), or, when no server answers, read or change the saved
//! records directly through the registry (the same atomic writes the server uses) and rewrite
//! the status table.

pub(crate) mod check;
pub(crate) mod status;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::config::Config;
use crate::domain::device::Device;
use crate::domain::workflow::{self, Action};
use crate::store::Registry;

/// Where a local client reaches the configured listener.
pub(crate) fn local_url(cfg: &Config) -> String {
    let ip = match cfg.listen.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, cfg.listen.port()))
}

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()?)
}

/// GET `path` from the running server: `Ok(None)` when no server answers.
pub(crate) async fn fetch(cfg: &Config, path: &str) -> anyhow::Result<Option<(u16, String)>> {
    match client()?
        .get(format!("{}{path}", local_url(cfg)))
        .send()
        .await
    {
        Ok(r) => {
            let status = r.status().as_u16();
            Ok(Some((status, r.text().await.unwrap_or_default())))
        }
        Err(e) if e.is_connect() => Ok(None),
        Err(e) => Err(anyhow::anyhow!(
            "cannot reach the server at {}: {e}",
            local_url(cfg)
        )),
    }
}

fn offline(cfg: &Config) -> anyhow::Result<Registry> {
    Ok(Registry::open(&cfg.state_dir, &cfg.status_csv)?.0)
}

/// The saved records, newest contact first (server not running); writes nothing.
pub(crate) async fn offline_devices(cfg: &Config) -> anyhow::Result<Vec<Device>> {
    crate::store::read_saved(&cfg.state_dir)
}

/// Applies `action` to `serial`; returns the message to print.
pub(crate) async fn act(cfg: &Config, serial: &str, action: Action) -> anyhow::Result<String> {
    let url = format!(
        "{}/api/devices/{serial}/{}",
        local_url(cfg),
        action.as_str()
    );
    let mut req = client()?.post(&url);
    if let Some(t) = &cfg.admin_token {
        req = req.header("X-Admin-Token", t);
    }
    match req.send().await {
        Ok(resp) => {
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            if status.is_success() {
                Ok(format!("server: {}", text.trim()))
            } else {
                anyhow::bail!("server refused ({status}): {}", text.trim())
            }
        }
        Err(e) if e.is_connect() => {
            let registry = offline(cfg)?;
            let unknown = || {
                anyhow::anyhow!(
                    "no device with serial {serial} in {} (`pnp-appliance status` lists them)",
                    cfg.state_dir.display()
                )
            };
            let msg = if action == Action::Forget {
                if !registry.remove(serial).await {
                    return Err(unknown());
                }
                format!("{serial}: record deleted")
            } else {
                let now = chrono::Local::now();
                registry
                    .update(serial, || None, |d| workflow::operator(d, action, now))
                    .await
                    .ok_or_else(unknown)?
                    .map_err(anyhow::Error::msg)?
            };
            registry.close().await;
            Ok(format!("server not running; state changed on disk: {msg}"))
        }
        Err(e) => anyhow::bail!("cannot reach the server at {url}: {e}"),
    }
}
