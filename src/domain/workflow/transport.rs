//! The move to HTTPS (`[http] https`): certificate-install once the router's identity is
//! settled, then PnP jobs only over HTTPS (the URLs the jobs name are chosen by the shell:
//! `Ctx::secure_base` for configs and files).
//!
//! As Catalyst Center does it (`docs/identity.md` §3: a Cat9300 17.x log): the router first
//! speaks plain HTTP (option 43 `K4`; `K5` would need a Cisco-signed trustpool), takes the bench
//! CA as trustpoint `pnplabel` with the clock set in the same job, and reconnects to the HTTPS
//! port. A router that asks over plain HTTP after that gets no job: a short backoff while it
//! should be switching, and after `[http] https-timeout` the certificate-install again with the
//! record saying what to check. After a reload it comes back over HTTP by its DHCP profile and
//! is sent the certificate-install again.

use chrono::{DateTime, Local};

use super::{Ctx, parked};
use crate::domain::device::{Device, TlsMove};
use crate::domain::job::Job;

/// What the shell knows of this exchange's transport, with `[http] https` on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Transport<'a> {
    /// The request came over HTTPS.
    pub(crate) over_tls: bool,
    /// Where the router fetches the CA, e.g. `http://198.51.100.1:8080/pnp-info/ca.pem`.
    pub(crate) ca_url: &'a str,
    /// The address it reconnects to (the one it reached, or `[http] advertise`).
    pub(crate) host: &'a str,
    /// The HTTPS port.
    pub(crate) port: u16,
    /// `[http] https-timeout`: how long a router has to come back over HTTPS.
    pub(crate) timeout: std::time::Duration,
}

/// The job this exchange's transport calls for, or `None` to go on with the workflow.
pub(super) fn step(dev: &mut Device, ctx: &Ctx<'_>) -> Option<Option<Job>> {
    let t = ctx.tls?;
    let now = ctx.now;
    if t.over_tls {
        match dev.tls.as_mut() {
            Some(m) if m.back.is_none() => {
                m.back = Some(now);
                m.late = None;
                let secs = (now - m.taken).num_seconds();
                dev.log(
                    now,
                    format!("came back over HTTPS {secs} s after taking the trustpoint"),
                );
            }
            Some(_) => {}
            None => {
                dev.tls = Some(TlsMove {
                    taken: now,
                    back: Some(now),
                    late: None,
                });
                dev.log(
                    now,
                    "speaks HTTPS already (it trusts this appliance's certificate)",
                );
            }
        }
        return None;
    }
    if parked(dev.state) {
        return None;
    }
    let install = || {
        Some(Some(Job::CertificateInstall {
            ca_url: t.ca_url.to_string(),
            clock: now.to_utc(),
            host: t.host.to_string(),
            port: t.port,
        }))
    };
    let timeout = t.timeout;
    match dev.tls.as_mut() {
        None => install(),
        // Back over HTTP after it was on HTTPS: a reload starts PnP again from its DHCP
        // profile.
        Some(m) if m.back.is_some() => {
            dev.log(
                now,
                "asks over plain HTTP again (reloaded?): certificate-install again",
            );
            install()
        }
        Some(m) if waited(m, now) < timeout => Some(Some(Job::Backoff {
            seconds: (timeout.as_secs() / 10).clamp(5, 60),
            reason: "reconnect over HTTPS".into(),
        })),
        Some(m) => {
            let why = format!(
                "took the trustpoint {} s ago and has not come back over HTTPS ([http] https-timeout {} s); certificate-install sent again",
                waited(m, now).as_secs(),
                timeout.as_secs()
            );
            let first = m.late.is_none();
            m.late = Some(why.clone());
            if first {
                dev.log(now, format!("not back over HTTPS: {why}"));
            }
            install()
        }
    }
}

fn waited(m: &TlsMove, now: DateTime<Local>) -> std::time::Duration {
    (now - m.taken).to_std().unwrap_or_default()
}

/// A certificate-install answered with success: the router took the trustpoint.
pub(super) fn taken(dev: &mut Device, job: &Job, now: DateTime<Local>) {
    let Job::CertificateInstall { host, port, .. } = job else {
        return;
    };
    let late = dev.tls.as_ref().and_then(|m| m.late.clone());
    dev.tls = Some(TlsMove {
        taken: now,
        back: None,
        late,
    });
    dev.log(
        now,
        format!("took the bench CA as trustpoint pnplabel, clock set: reconnecting to https://{host}:{port}"),
    );
}
