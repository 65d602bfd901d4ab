//! Operator commands on device records: `pnp-appliance device resume SERIAL`.
//!
//! Owns the two paths of an operator action: ask the running server (HTTP on this host), or,
//! when no server answers, change the persisted record directly through the registry (the same
//! atomic write the server uses) and rewrite the status table.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::config::Config;
use crate::pnp::workflow;
use crate::state::Registry;

/// Where a local client reaches the configured listener.
pub fn local_url(cfg: &Config) -> String {
    let ip = match cfg.listen.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, cfg.listen.port()))
}

/// Resumes `serial`; returns the message to print.
pub async fn resume(cfg: &Config, serial: &str) -> anyhow::Result<String> {
    let url = format!("{}/api/devices/{serial}/resume", local_url(cfg));
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()?;
    match client.post(&url).send().await {
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
            let (registry, _) = Registry::open(&cfg.state_dir, &cfg.status_csv)?;
            let now = chrono::Local::now();
            match registry
                .update(serial, || None, |d| workflow::resume(d, now))
                .await
            {
                None => anyhow::bail!(
                    "no device with serial {serial} in {} (`ls {}/devices` lists known serials)",
                    cfg.state_dir.display(),
                    cfg.state_dir.display()
                ),
                Some(Err(msg)) => anyhow::bail!("{msg}"),
                Some(Ok(msg)) => {
                    registry.flush().await;
                    Ok(format!("server not running; state changed on disk: {msg}"))
                }
            }
        }
        Err(e) => anyhow::bail!("cannot reach the server at {url}: {e}"),
    }
}
