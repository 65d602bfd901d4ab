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
        let resp = self
            .client
            .request(method, &url)
            .json(&body)
            .send()
            .await
            .unwrap();
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
        summary.as_str().unwrap().contains("1 routers · 1 finished"),
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

    d.js("const t = document.getElementById('token'); t.value = ''; t.dispatchEvent(new Event('input')); document.querySelector('button[data-action=reset]').click(); return 1").await;
    let refused = d
        .wait_js(
            "return document.getElementById('result').textContent",
            "refusal",
            |v| v.as_str().is_some_and(|s| s.starts_with("refused")),
        )
        .await;
    assert!(refused.as_str().unwrap().contains("401"), "{refused}");
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
    assert_eq!((status, body.len()), (200, 0), "a claim gets no job");
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

    d.js(&format!("const t = document.getElementById('token'); t.value = '{TOKEN}'; t.dispatchEvent(new Event('input')); document.querySelector('button[data-action=reset]').click(); return 1")).await;
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
