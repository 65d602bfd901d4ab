//! The web dashboard in headless Chromium (Debian's chromium + chromium-driver, driven over the
//! WebDriver protocol): the page loads with no outside assets, a simulated router's state
//! changes on it without a page reload, and an action works with the admin token and is refused
//! without it. Needs the browser, so it is `#[ignore]`d; `.ci/run` runs it, and run without the
//! browser it fails saying what to install.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Bench;
use serde_json::{Value, json};

const TOKEN: &str = "dashboard-token-0123";

struct Driver {
    child: Child,
    base: String,
    session: String,
    client: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Driver {
    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.client.request(method.clone(), &url);
        if method != reqwest::Method::GET {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        let v: Value = resp.json().await.unwrap();
        assert!(v["value"]["error"].is_null(), "webdriver {path}: {v}");
        v["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await;
    }

    /// Runs JavaScript in the page (the page's own code does the work; this only reads it or
    /// clicks like a user).
    async fn js(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({ "script": script, "args": [] }),
        )
        .await
    }

    async fn wait_js(&self, script: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let v = self.js(script).await;
            if pred(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: last {v}"
            );
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn driver() -> Driver {
    let (chromium, chromedriver) = ("/usr/bin/chromium", "/usr/bin/chromedriver");
    assert!(
        std::path::Path::new(chromium).exists() && std::path::Path::new(chromedriver).exists(),
        "the dashboard browser test needs Debian's chromium and chromium-driver: `sudo ./scripts/install-deps.sh`"
    );
    let port = common::free_port();
    let child = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while client.get(format!("{base}/status")).send().await.is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let profile = tempfile::tempdir().unwrap();
    let caps = json!({ "capabilities": { "alwaysMatch": { "goog:chromeOptions": {
        "binary": chromium,
        "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--window-size=1400,900", "--hide-scrollbars",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 format!("--user-data-dir={}", profile.path().display())]
    }}}});
    let v: Value = client
        .post(format!("{base}/session"))
        .json(&caps)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let session = v["value"]["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("no session: {v}"))
        .to_string();
    Driver {
        child,
        base,
        session,
        client,
        _profile: profile,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromium-driver: run by .ci/run"]
async fn dashboard_live_table_and_guarded_actions() {
    let d = driver().await;
    let mut b = Bench::new("");
    b.patch_config("[http]\n", &format!("[http]\nadmin-token = \"{TOKEN}\"\n"));
    b.start();

    d.goto(&format!("{}/", b.url())).await;
    let title = d.js("return document.title").await;
    assert_eq!(title, "pnp-appliance");
    let outside = d
        .js("return [...document.querySelectorAll('script[src],link[href],img[src]')].length")
        .await;
    assert_eq!(outside, 0, "the dashboard loads nothing from outside");
    d.js("window.__noReload = 42; return 1").await;

    // A router provisioned while the page is open: its state changes in place.
    let mut sim = b
        // Each job takes 0.8 s (scaled), as a router's CLI takes a moment: the page, which
        // refreshes every second, sees the state move through several steps.
        .simulate(1, &["--serial-prefix", "DASH", "--command-secs", "80"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let row_state = "const r = document.querySelector('tr[data-serial=\"DASH00001\"] .state'); return r ? r.textContent : null";
    let mut seen: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(s) = d.js(row_state).await.as_str() {
            if seen.last().map(String::as_str) != Some(s) {
                seen.push(s.to_string());
            }
            if s == "FINISHED" {
                break;
            }
        }
        assert!(Instant::now() < deadline, "states seen: {seen:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        seen.len() >= 3,
        "the page showed the state changing: {seen:?}"
    );
    assert_eq!(
        d.js("return window.__noReload").await,
        42,
        "no full-page reload"
    );
    let summary = d
        .js("return document.getElementById('summary').textContent")
        .await;
    assert!(
        summary
            .as_str()
            .unwrap()
            .contains("1 routers:0 need you0 in progress1 finished"),
        "{summary}"
    );
    assert!(sim.wait().unwrap().success());

    // The router's page: history, script output, actions.
    d.goto(&format!("{}/device/DASH00001", b.url())).await;
    d.wait_js(
        "return document.querySelector('#state .state')?.textContent",
        "state",
        |v| v == "FINISHED",
    )
    .await;
    let history = d
        .js("return document.querySelector('#history tbody').innerText")
        .await;
    assert!(
        history.as_str().unwrap().contains("image-install"),
        "{history}"
    );
    let output = d
        .js("return document.getElementById('output').textContent")
        .await;
    assert!(
        output.as_str().unwrap().contains("ran on DASH00001"),
        "{output}"
    );

    d.js("const t = document.getElementById('token'); t.value = ''; t.dispatchEvent(new Event('input')); document.querySelector('button[data-action=reset]').click(); document.getElementById('confirm-yes').click(); return 1").await;
    let refused = d
        .wait_js(
            "return document.getElementById('result').textContent",
            "refusal",
            |v| v.as_str().is_some_and(|s| s.starts_with("refused")),
        )
        .await;
    assert!(
        refused.as_str().unwrap().contains("401")
            && refused
                .as_str()
                .unwrap()
                .contains("enter the admin token in the box"),
        "a missing token says where to put it: {refused}"
    );
    assert_eq!(b.device("DASH00001").unwrap()["state"], "FINISHED");

    // Another host claims the router: the page says so and offers to accept the move.
    let udi = b.device("DASH00001").unwrap()["udi"]
        .as_str()
        .unwrap()
        .to_string();
    let wr = format!(
        "<pnp xmlns=\"urn:cisco:pnp\" version=\"1.0\" udi=\"{udi}\"><info xmlns=\"urn:cisco:pnp:work-info\" correlator=\"S1\"><deviceId><udi>{udi}</udi></deviceId></info></pnp>"
    );
    let (status, body) = common::http_from(
        "127.0.0.2",
        b.port,
        "POST",
        "/pnp/WORK-REQUEST",
        &[("Host", "127.0.0.1")],
        &wr,
    )
    .unwrap();
    // A claim gets no job: only a SUDI challenge (it takes the record only by proof).
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 200);
    assert!(
        body.contains("urn:cisco:pnp:device-auth") && !body.contains("config"),
        "a claim gets no job: {body}"
    );
    let claim = d
        .wait_js(
            "const c = document.getElementById('claim'); return c.hidden ? null : c.textContent",
            "claim",
            |v| {
                v.as_str()
                    .is_some_and(|s| s.contains("claimed from 127.0.0.2"))
            },
        )
        .await;
    assert!(
        claim.as_str().unwrap().contains("bound to 127.1.0.2"),
        "{claim}"
    );
    d.js(&format!("const t = document.getElementById('token'); t.value = '{TOKEN}'; t.dispatchEvent(new Event('input')); document.getElementById('accept-move').click(); return 1")).await;
    let moved = d
        .wait_js(
            "return document.getElementById('result').textContent",
            "accept-move result",
            |v| v.as_str().is_some_and(|s| s.starts_with("done")),
        )
        .await;
    assert!(
        moved.as_str().unwrap().contains("now bound to 127.0.0.2"),
        "{moved}"
    );
    assert_eq!(b.device("DASH00001").unwrap()["binding"]["ip"], "127.0.0.2");

    // Reset asks first: the record is untouched until the operator confirms.
    d.js(&format!("const t = document.getElementById('token'); t.value = '{TOKEN}'; t.dispatchEvent(new Event('input')); document.querySelector('button[data-action=reset]').click(); return 1")).await;
    let ask = d
        .js("const c = document.getElementById('confirm'); return c.hidden ? null : c.textContent")
        .await;
    assert!(
        ask.as_str()
            .is_some_and(|s| s.contains("Reset DASH00001?") && s.contains("starts over")),
        "{ask}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(b.device("DASH00001").unwrap()["state"], "FINISHED");
    d.js("document.getElementById('confirm-no').click(); return 1")
        .await;
    assert_eq!(
        d.js("return document.getElementById('confirm').hidden")
            .await,
        true
    );
    d.js("document.querySelector('button[data-action=reset]').click(); document.getElementById('confirm-yes').click(); return 1").await;
    let done = d
        .wait_js(
            "return document.getElementById('result').textContent",
            "action result",
            |v| v.as_str().is_some_and(|s| s.starts_with("done")),
        )
        .await;
    assert!(done.as_str().unwrap().contains("NEW_DEVICE"), "{done}");
    assert_eq!(b.device("DASH00001").unwrap()["state"], "NEW_DEVICE");
    d.call(reqwest::Method::DELETE, "", json!({})).await;
}

/// Saves what the browser shows as `name` in `PNP_SCREENSHOT_DIR`, when that is set (how the
/// README's pictures are made).
async fn screenshot(d: &Driver, name: &str) {
    let Ok(dir) = std::env::var("PNP_SCREENSHOT_DIR") else {
        return;
    };
    let png = d
        .call(reqwest::Method::GET, "/screenshot", json!(null))
        .await;
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(png.as_str().unwrap())
        .unwrap();
    std::fs::write(std::path::Path::new(&dir).join(name), bytes).unwrap();
}

/// Sets the page's viewport through the DevTools protocol (a phone's, or back to the desk's).
async fn viewport(d: &Driver, width: u32, height: u32, mobile: bool) {
    d.call(
        reqwest::Method::POST,
        "/goog/cdp/execute",
        json!({ "cmd": "Emulation.setDeviceMetricsOverride", "params": {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile } }),
    )
    .await;
}

/// What a cell of the row of `serial` occupies: `[left, right, top, bottom]`, or null when
/// it is not displayed.
fn rect_js(serial: &str, class: &str) -> String {
    format!(
        "const c = document.querySelector('tr[data-serial=\"{serial}\"] .{class}'); if (!c || c.offsetParent === null) return null; const r = c.getBoundingClientRect(); return [r.left, r.right, r.top, r.bottom]"
    )
}

/// A bench of forty: two parked for space, one whose script died, the rest finished. At
/// 1400x900 every row fits, the three that need you come first with the reason and the fix,
/// the header counts them apart, filter and search narrow the table; on a 390-wide phone the
/// serial, state and progress of a row stay in view; a router's page shows its timeline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromium-driver: run by .ci/run"]
async fn forty_routers_at_a_glance_on_a_desk_and_a_phone() {
    let d = driver().await;
    let mut b = Bench::new("");
    let default = std::fs::read_to_string(b.path("configs/default.cfg")).unwrap();
    std::fs::write(
        b.path("configs/default.cfg"),
        default.replace("hostname ISR1K-STAGED", "hostname {{ hostname }}"),
    )
    .unwrap();
    let mut inventory = String::from("serial,hostname\n");
    for i in 1..=40 {
        inventory.push_str(&format!("BENCH{i:05},branch-{i:03}\n"));
    }
    std::fs::write(b.path("configs/inventory.csv"), inventory).unwrap();
    b.start();

    // Empty, the bench says what to do next.
    d.goto(&format!("{}/", b.url())).await;
    let hint = d
        .wait_js(
            "const e = document.getElementById('empty'); return e.hidden ? null : e.textContent",
            "empty-bench hint",
            |v| v.is_string(),
        )
        .await;
    assert!(
        hint.as_str().unwrap().contains("Power a router on")
            && hint.as_str().unwrap().contains("pnp-appliance dhcp-config"),
        "{hint}"
    );

    let mut sim = b
        .simulate(
            40,
            &[
                "--serial-prefix",
                "BENCH",
                "--low-bootflash",
                "2",
                "--failing-script",
                "1",
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let settled = common::wait_for(Duration::from_secs(180), || {
        let (_, body) = common::http_get(b.port, "/api/status")?;
        let rows: Value = serde_json::from_slice(&body).ok()?;
        let n = |g: &str| {
            rows.as_array()
                .map_or(0, |a| a.iter().filter(|r| r["group"] == g).count())
        };
        (n("finished") == 37 && n("needs_you") == 3).then_some(rows)
    });
    let _ = sim.kill();
    let _ = sim.wait();
    let rows = settled.expect("40 routers did not settle as 37 finished and 3 needing you");
    assert_eq!(rows.as_array().unwrap().len(), 40);

    viewport(&d, 1400, 900, false).await;
    d.wait_js(
        "return [innerWidth, innerHeight]",
        "a 1400x900 screen",
        |v| *v == json!([1400, 900]),
    )
    .await;
    d.wait_js(
        "return document.querySelectorAll('#devices tbody tr').length",
        "40 rows",
        |v| v == 40,
    )
    .await;
    // The header counts the piles apart (once the page has fetched the settled bench).
    d.wait_js(
        "return [...document.querySelectorAll('#summary .pile')].map(b => b.textContent)",
        "the piles counted",
        |v| *v == json!(["3 need you", "0 in progress", "37 finished"]),
    )
    .await;
    // Needing you first, each with the reason and the fix; then the rest by serial.
    let order = d
        .js("return [...document.querySelectorAll('#devices tbody tr')].map(r => r.dataset.serial)")
        .await;
    let order: Vec<String> = serde_json::from_value(order).unwrap();
    let mut first: Vec<String> = order[..3].to_vec();
    first.sort();
    assert_eq!(
        first,
        ["BENCH00001", "BENCH00002", "BENCH00040"],
        "{order:?}"
    );
    let mut rest = order[3..].to_vec();
    rest.sort();
    assert_eq!(rest, order[3..], "stable order by serial");
    let why = d
        .js("return document.querySelector('tr[data-serial=\"BENCH00001\"] .c-why').textContent")
        .await;
    assert!(
        why.as_str()
            .is_some_and(|s| s.contains("bootflash has") && s.contains("free space on the router")),
        "{why}"
    );
    let why = d
        .js("return document.querySelector('tr[data-serial=\"BENCH00040\"] .c-why').textContent")
        .await;
    assert!(
        why.as_str().is_some_and(
            |s| s.contains("python script failed") && s.contains("device resume BENCH00040")
        ),
        "{why}"
    );
    let host = d
        .js("return document.querySelector('tr[data-serial=\"BENCH00017\"] .c-host').textContent")
        .await;
    assert_eq!(host, "branch-017");
    let step = d
        .js("return document.querySelector('tr[data-serial=\"BENCH00017\"] .c-prog').textContent")
        .await;
    assert!(step.as_str().is_some_and(|s| s.contains("8/8")), "{step}");
    // How each router proved its serial: these simulated routers offer no device-auth.
    let id = d
        .js("const c = document.querySelector('tr[data-serial=\"BENCH00017\"] .c-id'); return [c.textContent, c.title]")
        .await;
    assert_eq!(id[0], "address", "{id}");
    assert!(
        id[1].as_str().is_some_and(
            |t| t.starts_with("address-bound: its PnP agent does not offer device-auth")
        ),
        "{id}"
    );
    screenshot(&d, "dashboard.png").await;

    // Forty rows on one screen, no URL anywhere in the table.
    let bottom = d.js(&rect_js(&order[39], "c-serial")).await;
    assert!(
        bottom[3].as_f64().unwrap() <= 900.0,
        "the 40th row ends at {bottom}"
    );
    let table = d
        .js("return document.getElementById('devices').innerText")
        .await;
    assert!(!table.as_str().unwrap().contains("http://"), "{table}");
    // Filter by pile or state, search by serial or hostname.
    d.js("document.querySelector('#summary .pile.needs_you').click(); return 1")
        .await;
    assert_eq!(
        d.js("return document.querySelectorAll('#devices tbody tr').length")
            .await,
        3
    );
    d.js("const f = document.getElementById('filter'); f.value = 'BOOTFLASH_NO_SPACE'; f.dispatchEvent(new Event('change')); return 1").await;
    assert_eq!(
        d.js("return document.querySelectorAll('#devices tbody tr').length")
            .await,
        2
    );
    d.js("const f = document.getElementById('filter'); f.value = ''; f.dispatchEvent(new Event('change')); const s = document.getElementById('search'); s.value = 'branch-02'; s.dispatchEvent(new Event('input')); return 1").await;
    let found = d
        .js("return [...document.querySelectorAll('#devices tbody tr')].map(r => r.dataset.serial)")
        .await;
    assert_eq!(
        found.as_array().unwrap().len(),
        10,
        "branch-020..029: {found}"
    );
    d.js("const s = document.getElementById('search'); s.value = ''; s.dispatchEvent(new Event('input')); return 1").await;

    // A phone: serial, state and progress of each row in view, nothing wider than the screen.
    viewport(&d, 390, 844, true).await;
    d.wait_js("return innerWidth", "phone width", |v| v == 390)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for serial in ["BENCH00001", "BENCH00040", "BENCH00017"] {
        for class in ["c-serial", "c-state", "c-prog"] {
            let r = d.js(&rect_js(serial, class)).await;
            assert!(
                r.is_array() && r[0].as_f64().unwrap() >= 0.0 && r[1].as_f64().unwrap() <= 390.0,
                "{serial} {class} at {r} on a 390-wide screen"
            );
        }
        let state = d
            .js(&format!("const c = document.querySelector('tr[data-serial=\"{serial}\"] .c-state'); return c.scrollWidth <= c.clientWidth ? true : [c.scrollWidth, c.clientWidth]"))
            .await;
        assert_eq!(state, true, "{serial}'s state is not cut");
    }
    screenshot(&d, "dashboard-phone.png").await;
    let wide = d.js("return document.documentElement.scrollWidth").await;
    assert!(wide.as_u64().unwrap() <= 390, "the page is {wide} wide");
    viewport(&d, 1400, 900, false).await;

    // A router's page: the timeline as a picture and a table, the reason and the fix.
    d.goto(&format!("{}/device/BENCH00040", b.url())).await;
    let spans = d
        .wait_js(
            "return [...document.querySelectorAll('#timeline .seg')].map(s => [s.textContent, s.className])",
            "timeline",
            |v| v.as_array().is_some_and(|a| a.len() >= 6),
        )
        .await;
    let spans = spans.as_array().unwrap();
    assert_eq!(spans[0][0], "config-register", "{spans:?}");
    let last = spans.last().unwrap();
    assert_eq!(
        (last[0].as_str(), last[1].as_str()),
        (Some("script"), Some("seg bad")),
        "{spans:?}"
    );
    let rows = d
        .js("return document.querySelectorAll('#timeline tbody tr').length")
        .await;
    assert_eq!(rows.as_u64(), Some(spans.len() as u64));
    let start = d
        .js("return document.querySelector('#timeline tbody td:nth-child(2)').textContent")
        .await;
    assert!(
        start
            .as_str()
            .is_some_and(|s| s.ends_with('Z') && s.len() == 20),
        "{start}"
    );
    screenshot(&d, "dashboard-router.png").await;
    let alert = d
        .js("return document.getElementById('attention').innerText")
        .await;
    assert!(
        alert
            .as_str()
            .is_some_and(|s| s.contains("python script failed") && s.contains("fix:")),
        "{alert}"
    );

    // Forget asks first too, then the record is gone.
    d.js(&format!("const t = document.getElementById('token'); t.value = '{}'; t.dispatchEvent(new Event('input')); document.querySelector('button[data-action=forget]').click(); return 1", b.admin_token())).await;
    let ask = d
        .js("return document.getElementById('confirm-text').textContent")
        .await;
    assert!(
        ask.as_str()
            .is_some_and(|s| s.starts_with("Forget BENCH00040?")),
        "{ask}"
    );
    assert!(b.device("BENCH00040").is_some());
    d.js("document.getElementById('confirm-yes').click(); return 1")
        .await;
    d.wait_js(
        "return document.getElementById('result').textContent",
        "forget",
        |v| v.as_str().is_some_and(|s| s.starts_with("done")),
    )
    .await;
    assert!(b.device("BENCH00040").is_none());
    d.call(reqwest::Method::DELETE, "", json!({})).await;
}
