//! Which names the dashboard and API answer under, and the same-site proof actions need.
//!
//! DNS rebinding points a name the attacker controls at the appliance, so the operator's
//! browser treats the appliance as that site: the `Host` header then carries the attacker's
//! name. Address literals cannot be rebound, `localhost` resolves here, and any other name must
//! be listed in `[http] server-names` (or be the advertised name). A cross-site form or
//! `no-cors` fetch carries its page's `Origin`, which must be this very host and port.

use axum::extract::ConnectInfo;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::App;
use super::error::HttpError;
use crate::config::Config;

/// The host part of an authority (`host`, `host:port`, `[v6]:port`), lower case.
fn host_of(authority: &str) -> String {
    let a = authority.trim();
    let host = if let Some(rest) = a.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        match a.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => a,
        }
    };
    host.to_ascii_lowercase()
}

/// At most `n` characters of a header value, for a message (shown with `{:?}`: escaped).
fn clip(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// Whether the dashboard and API answer under `authority`.
pub(crate) fn serves(cfg: &Config, authority: &str) -> bool {
    let host = host_of(authority);
    let host = host.trim_end_matches('.');
    !host.is_empty()
        && (host.parse::<std::net::IpAddr>().is_ok()
            || host == "localhost"
            || cfg.server_names.iter().any(|n| n == host)
            || cfg
                .advertise
                .as_ref()
                .is_some_and(|a| a.host.eq_ignore_ascii_case(host)))
}

/// Refuses a request whose `Host` is not one of ours, or whose `Origin` is another site.
pub(crate) fn same_site(cfg: &Config, headers: &HeaderMap) -> Result<(), HttpError> {
    // No Host at all (HTTP/1.0, an in-process call) is no rebinding: browsers always send it.
    let host = headers
        .get(header::HOST)
        .map(|v| v.to_str().unwrap_or("(not text)"));
    if let Some(host) = host
        && !serves(cfg, host)
    {
        return Err(HttpError::Forbidden(format!(
            "this appliance does not answer under the name {:?}: open it by its address, or add the name to [http] server-names",
            clip(host, 80)
        )));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("null");
        let authority = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        let host = host.unwrap_or_default();
        let same = authority.is_some_and(|a| a.eq_ignore_ascii_case(host));
        if !same {
            return Err(HttpError::Forbidden(format!(
                "cross-site request refused (Origin {:?} is not this appliance, {host:?}): use the dashboard or the CLI",
                clip(origin, 80)
            )));
        }
    }
    Ok(())
}

/// Middleware for the dashboard and API: `Host` must be one of ours (DNS rebinding).
pub(super) async fn check_host(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<super::Peer>,
    req: Request,
    next: Next,
) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .map(|v| v.to_str().unwrap_or("(not text)"));
    if let Some(host) = host
        && !serves(&app.cfg, host)
    {
        let host = clip(host, 80);
        tracing::warn!(
            host = host.as_str(),
            "request under a foreign Host name refused (DNS rebinding?)"
        );
        return HttpError::Forbidden(format!(
            "this appliance does not answer under the name {host:?}: open it by its address, or add the name to [http] server-names"
        ))
        .into_response();
    }
    // With HTTPS on, the admin token and the dashboard stay off the bench's wire: plain HTTP
    // from another host is sent to HTTPS (the CLI on this host keeps loopback HTTP).
    if let Some(h) = app.cfg.https.as_ref()
        && !peer.tls
        && !peer.remote.ip().is_loopback()
    {
        let name = host.unwrap_or_default();
        let name = match name.rsplit_once(':') {
            Some((n, p)) if p.chars().all(|c| c.is_ascii_digit()) && !n.ends_with(':') => n,
            _ => name,
        };
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let to = format!("https://{name}:{}{path}", h.listen.port());
        return (
            axum::http::StatusCode::PERMANENT_REDIRECT,
            [(header::LOCATION, to.clone())],
            format!("HTTPS is on ([http] https): use {to}\n"),
        )
            .into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_origins() {
        let cfg = Config::parse(
            "[http]\nserver-names = [\"Pnp.Bench.Example\"]\n",
            std::path::Path::new("/tmp/appliance.toml"),
            &Default::default(),
        )
        .unwrap();
        for (host, ok) in [
            ("198.51.100.1:8080", true),
            ("[::1]:8080", true),
            ("localhost:8080", true),
            ("pnp.bench.example", true),
            ("PNP.BENCH.EXAMPLE.:8080", true),
            ("rebind.attacker.example:8080", false),
            ("", false),
        ] {
            assert_eq!(serves(&cfg, host), ok, "{host}");
        }
        let h = |host: &str, origin: Option<&str>| {
            let mut m = HeaderMap::new();
            m.insert(header::HOST, host.parse().unwrap());
            if let Some(o) = origin {
                m.insert(header::ORIGIN, o.parse().unwrap());
            }
            same_site(&cfg, &m).is_ok()
        };
        assert!(h("198.51.100.1:8080", None));
        assert!(h("198.51.100.1:8080", Some("http://198.51.100.1:8080")));
        assert!(!h("198.51.100.1:8080", Some("http://evil.example")));
        assert!(!h("198.51.100.1:8080", Some("http://198.51.100.1:3000")));
        assert!(!h("198.51.100.1:8080", Some("null")));
        assert!(!h("evil.example:8080", Some("http://evil.example:8080")));
    }
}
