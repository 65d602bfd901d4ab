//! The HTTP application driven in-process: PnP endpoints, bad input, file routes.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use pnp_appliance::config::Config;
use pnp_appliance::http::{self, App, Peer};
use tower::ServiceExt;

const UDI: &str = "PID:C1131-8PWB,VID:V01,SN:FGL2548L0AW";

struct Fixture {
    dir: tempfile::TempDir,
    app: App,
}

async fn fixture() -> Fixture {
    fixture_with("[[workflow.image]]\nfile = \"c1100-universalk9.17.12.03a.SPA.bin\"\n").await
}

thread_local! {
    /// `[http]` keys the next fixture of this test thread gets (the HTTPS tests set them).
    static HTTPS_KEYS: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// A fixture with `[http] https` on (its listener is not started: the router is called
/// directly, as if over plain HTTP unless `tls` is set on the peer).
async fn https_fixture() -> Fixture {
    HTTPS_KEYS
        .with(|k| *k.borrow_mut() = "https = true\nhttps-listen = \"127.0.0.1:8443\"\n".into());
    let f = fixture().await;
    HTTPS_KEYS.with(|k| k.borrow_mut().clear());
    f
}

/// A fixture whose `appliance.toml` starts with `workflow` (then `[http]`).
async fn fixture_with(workflow: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    for d in ["images", "files", "configs"] {
        std::fs::create_dir_all(dir.path().join(d)).unwrap();
    }
    let image: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(
        dir.path()
            .join("images/c1100-universalk9.17.12.03a.SPA.bin"),
        &image,
    )
    .unwrap();
    std::fs::write(dir.path().join("configs/default.cfg"), "hostname X\n").unwrap();
    std::fs::write(dir.path().join("files/secret.txt"), "s").unwrap();
    // These tests walk the workflow's jobs by hand: without the identity step at first contact
    // (capability, device-auth), which tests/sudi.rs drives with real SUDIs.
    let src = format!(
        "{workflow}[http]\nmax-body-bytes = 8192\n{}[identity]\ndevice-auth = false\n",
        HTTPS_KEYS.with(|k| k.borrow().clone())
    );
    let path = dir.path().join("appliance.toml");
    std::fs::write(&path, src).unwrap();
    let cfg = Config::load(&path, &Default::default()).unwrap();
    let (app, _) = pnp_appliance::serve::prepare(cfg).await.unwrap();
    Fixture { dir, app }
}

impl Fixture {
    /// The application as a client at `ip` reaches it.
    fn router_from(&self, ip: &str) -> axum::Router {
        let peer = Peer {
            remote: SocketAddr::new(ip.parse().unwrap(), 51000),
            local: "198.51.100.1:8080".parse::<SocketAddr>().unwrap(),
            tls: false,
        };
        http::router(self.app.clone()).layer(MockConnectInfo(peer))
    }

    async fn call(&self, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        self.call_from("198.51.100.20", req).await
    }

    async fn call_from(
        &self,
        ip: &str,
        req: Request<Body>,
    ) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let resp = self.router_from(ip).oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        (status, headers, body)
    }

    async fn post(&self, path: &str, ctype: &str, body: impl Into<Body>) -> (StatusCode, String) {
        let req = Request::post(path)
            .header(header::CONTENT_TYPE, ctype)
            .body(body.into())
            .unwrap();
        let (s, _, b) = self.call(req).await;
        (s, String::from_utf8_lossy(&b).to_string())
    }

    /// Serials of the saved records (the state database).
    fn records(&self) -> Vec<String> {
        pnp_appliance::store::read_saved(&self.dir.path().join("state"))
            .unwrap()
            .into_iter()
            .map(|d| d.serial)
            .collect()
    }
}

fn work_request(correlator: &str, prolog: bool) -> String {
    format!(
        "{}<pnp xmlns=\"urn:cisco:pnp\" version=\"1.0\" udi=\"{UDI}\"><info xmlns=\"urn:cisco:pnp:work-info\" correlator=\"{correlator}\"><deviceId><udi>{UDI}</udi><hostname>Router</hostname><authRequired>false</authRequired></deviceId></info></pnp>",
        if prolog {
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
        } else {
            ""
        }
    )
}

#[tokio::test]
async fn hello_answers_get_head_and_post() {
    let f = fixture().await;
    for method in ["GET", "HEAD", "POST"] {
        let req = Request::builder()
            .method(method)
            .uri("/pnp/HELLO")
            .body(Body::from("<info/>"))
            .unwrap();
        assert_eq!(f.call(req).await.0, StatusCode::OK, "{method}");
    }
    // Each exchange is timed inside the server; other routes are not counted.
    f.call(Request::get("/api/status").body(Body::empty()).unwrap())
        .await;
    let (s, _, body) = f
        .call(Request::get("/api/metrics").body(Body::empty()).unwrap())
        .await;
    assert_eq!(s, StatusCode::OK);
    let m: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(m["pnp"]["requests"], 3, "{m}");
    let (p50, max) = (
        m["pnp"]["p50_ms"].as_f64().unwrap(),
        m["pnp"]["max_ms"].as_f64().unwrap(),
    );
    assert!(p50 > 0.0 && p50 <= max, "{m}");
}

#[tokio::test]
async fn work_request_gets_a_job_echoing_udi_and_correlator_and_response_gets_bye() {
    let f = fixture().await;
    for (i, ctype) in ["text/xml; charset=utf-8", "application/octet-stream", ""]
        .iter()
        .enumerate()
    {
        let corr = format!("CiscoPnP-1.0-R33.200930-I1-P592-T4389{i}-2");
        let (s, body) = f
            .post("/pnp/WORK-REQUEST", ctype, work_request(&corr, i % 2 == 0))
            .await;
        assert_eq!(s, StatusCode::OK);
        assert!(body.contains(&format!("udi=\"{UDI}\"")), "{body}");
        assert!(body.contains(&format!("correlator=\"{corr}\"")), "{body}");
        assert!(body.contains("urn:cisco:pnp:cli-config"), "{body}");
        let resp = format!(
            "<pnp xmlns=\"urn:cisco:pnp\" version=\"1.0\" udi=\"{UDI}\"><response xmlns=\"urn:cisco:pnp:cli-config\" correlator=\"{corr}\" success=\"0\" extra=\"x\"><unknown/><errorInfo><errorCode>PnP Service Error 1201</errorCode><errorMessage>boom</errorMessage></errorInfo></response></pnp>"
        );
        let (s, bye) = f.post("/pnp/WORK-RESPONSE", ctype, resp).await;
        assert_eq!(s, StatusCode::OK);
        assert!(
            bye.contains("<bye/>") && bye.contains(&format!("correlator=\"{corr}\"")),
            "{bye}"
        );
    }
    let d = f.app.registry.get("FGL2548L0AW").await.unwrap();
    assert_eq!(d.ip, "198.51.100.20".parse().ok());
    assert_eq!(d.attempts, 3);
    assert!(d.last_error.unwrap().contains("boom"));
    assert_eq!(f.records(), ["FGL2548L0AW"]);
}

#[tokio::test]
async fn urls_use_the_address_the_router_connected_to() {
    let f = fixture().await;
    // Walk to the image install: config-register, write memory, device-info.
    let answers = [
        "<response xmlns=\"urn:cisco:pnp:cli-config\" correlator=\"{c}\" success=\"1\"/>",
        "<response xmlns=\"urn:cisco:pnp:cli-exec\" correlator=\"{c}\" success=\"1\"><execLog><dialogueLog><received><text>[OK]</text></received></dialogueLog></execLog></response>",
        "<response xmlns=\"urn:cisco:pnp:device-info\" correlator=\"{c}\" success=\"1\"><imageInfo><versionString>17.9.4a</versionString></imageInfo></response>",
    ];
    for (n, a) in answers.iter().enumerate() {
        let c = format!("C{n}");
        f.post("/pnp/WORK-REQUEST", "text/xml", work_request(&c, false))
            .await;
        let resp = format!(
            "<pnp xmlns=\"urn:cisco:pnp\" udi=\"{UDI}\">{}</pnp>",
            a.replace("{c}", &c)
        );
        assert_eq!(
            f.post("/pnp/WORK-RESPONSE", "text/xml", resp).await.0,
            StatusCode::OK
        );
    }
    let (_, job) = f
        .post("/pnp/WORK-REQUEST", "text/xml", work_request("C9", false))
        .await;
    // The job's own URL: `/dl/<SERIAL>/<tag>/images/<file>`, served like `/images/<file>`.
    let location = job
        .split("<location>")
        .nth(1)
        .and_then(|l| l.split("</location>").next())
        .unwrap_or_default();
    let path = location
        .strip_prefix("http://198.51.100.1:8080")
        .unwrap_or_else(|| panic!("{job}"));
    let tag = path
        .strip_prefix("/dl/FGL2548L0AW/")
        .and_then(|p| p.strip_suffix("/images/c1100-universalk9.17.12.03a.SPA.bin"))
        .unwrap_or_else(|| panic!("{job}"));
    assert!(
        tag.len() == 16 && tag.bytes().all(|b| b.is_ascii_hexdigit()),
        "{job}"
    );
    let (s, _, body) = f
        .call(Request::get(path).body(Body::empty()).unwrap())
        .await;
    assert_eq!((s, body.len()), (StatusCode::OK, 100_000), "{path}");
    let md5 = pnp_appliance::files::checksum::md5_file(
        &f.dir
            .path()
            .join("images/c1100-universalk9.17.12.03a.SPA.bin"),
        |_| {},
    )
    .unwrap();
    assert!(
        job.contains(&format!("<checksum>{md5}</checksum>")),
        "{job}"
    );
}

#[tokio::test]
async fn fault_is_logged_and_gets_an_empty_200() {
    let f = fixture().await;
    f.post("/pnp/WORK-REQUEST", "text/xml", work_request("C1", false))
        .await;
    let fault = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/vectors/derived/device-response.fault.nso-netsim-emulator.xml"),
    )
    .unwrap();
    let (s, body) = f.post("/pnp/WORK-RESPONSE", "text/xml", fault).await;
    assert_eq!(s, StatusCode::OK);
    assert!(body.is_empty());
}

#[tokio::test]
async fn bad_input_gets_4xx_and_changes_nothing() {
    let f = fixture().await;
    let huge = format!(
        "<pnp udi=\"{UDI}\"><info correlator=\"c\">{}</info></pnp>",
        "x".repeat(10_000)
    );
    let cases: Vec<(&str, Vec<u8>, StatusCode)> = vec![
        ("/pnp/WORK-REQUEST", b"not xml at all".to_vec(), StatusCode::BAD_REQUEST),
        ("/pnp/WORK-REQUEST", format!("<!DOCTYPE pnp [<!ENTITY x \"y\">]>{}", work_request("C", false)).into_bytes(), StatusCode::BAD_REQUEST),
        ("/pnp/WORK-REQUEST", b"<pnp udi=\"PID:X,VID:,SN:\xff\xfe\"><info correlator=\"c\"/></pnp>".to_vec(), StatusCode::BAD_REQUEST),
        ("/pnp/WORK-REQUEST", b"<pnp udi=\"PID:X,SN:../../etc\"><info correlator=\"c\"/></pnp>".to_vec(), StatusCode::BAD_REQUEST),
        ("/pnp/WORK-REQUEST", b"<pnp udi=\"PID:X,SN:A1\"><info/></pnp>".to_vec(), StatusCode::BAD_REQUEST),
        ("/pnp/WORK-REQUEST", b"<other/>".to_vec(), StatusCode::BAD_REQUEST),
        ("/pnp/WORK-REQUEST", format!("{}{}", "<a>".repeat(100), "</a>".repeat(100)).into_bytes(), StatusCode::BAD_REQUEST),
        ("/pnp/WORK-REQUEST", huge.into_bytes(), StatusCode::PAYLOAD_TOO_LARGE),
        ("/pnp/WORK-RESPONSE", b"<pnp udi=\"PID:X,SN:A1\"><response xmlns=\"urn:cisco:pnp:cli-exec\" success=\"1\"/></pnp>".to_vec(), StatusCode::BAD_REQUEST),
        ("/pnp/WORK-RESPONSE", b"<pnp udi=\"PID:X,SN:A1\"><response xmlns=\"urn:cisco:pnp:cli-exec\" correlator=\"c\" success=\"maybe\"/></pnp>".to_vec(), StatusCode::BAD_REQUEST),
    ];
    for (path, body, want) in cases {
        let (s, text) = f.post(path, "text/xml", body.clone()).await;
        assert_eq!(
            s,
            want,
            "{path} {:?}: {text}",
            String::from_utf8_lossy(&body)
        );
    }
    assert!(f.records().is_empty(), "{:?}", f.records());
    // A response from a device never seen still gets a bye but creates nothing.
    let resp = format!(
        "<pnp udi=\"{UDI}\"><response xmlns=\"urn:cisco:pnp:cli-exec\" correlator=\"c\" success=\"1\"/></pnp>"
    );
    let (s, bye) = f.post("/pnp/WORK-RESPONSE", "text/xml", resp).await;
    assert_eq!(s, StatusCode::OK);
    assert!(bye.contains("<bye/>"));
    assert!(f.records().is_empty());
}

#[tokio::test]
async fn file_routes_stream_with_length_range_and_no_traversal() {
    let f = fixture().await;
    let image = "/images/c1100-universalk9.17.12.03a.SPA.bin";
    let (s, h, body) = f
        .call(Request::get(image).body(Body::empty()).unwrap())
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body.len(), 100_000);
    assert_eq!(h[header::CONTENT_LENGTH], "100000");
    let (s, h, body) = f
        .call(Request::head(image).body(Body::empty()).unwrap())
        .await;
    assert_eq!((s, body.len()), (StatusCode::OK, 0));
    assert_eq!(h[header::CONTENT_LENGTH], "100000");
    let (s, h, body) = f
        .call(
            Request::get(image)
                .header(header::RANGE, "bytes=10-19")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(s, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        body,
        (10..20u32).map(|i| (i % 251) as u8).collect::<Vec<_>>()
    );
    assert_eq!(h[header::CONTENT_RANGE], "bytes 10-19/100000");
    let (s, _, _) = f
        .call(
            Request::get(image)
                .header(header::RANGE, "bytes=200000-")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(s, StatusCode::RANGE_NOT_SATISFIABLE);
    // Traversal and absolute paths on every file route.
    for bad in [
        "/images/../configs/default.cfg",
        "/images/%2e%2e/configs/default.cfg",
        "/images/..%2f..%2fappliance.toml",
        "/images//etc/passwd",
        "/files/..%2fappliance.toml",
        "/files/%2fetc%2fpasswd",
        "/files/../appliance.toml",
        "/configs//etc/passwd",
        "/configs/..%2fappliance.toml",
        "/configs/%2e%2e%2fappliance.toml",
        "/day0/FGL2548L0AW/t/..%2f..%2fappliance.toml",
        "/day0/..%2f/t/default.cfg",
        "/images/nope.bin",
    ] {
        let (s, _, _) = f.call(Request::get(bad).body(Body::empty()).unwrap()).await;
        assert!(
            s == StatusCode::NOT_FOUND || s == StatusCode::BAD_REQUEST,
            "{bad}: {s}"
        );
    }
}

#[tokio::test]
async fn a_record_names_its_job_in_flight() {
    let f = fixture().await;
    let (s, job) = f
        .post("/pnp/WORK-REQUEST", "text/xml", work_request("C-1", false))
        .await;
    assert_eq!(s, StatusCode::OK, "{job}");
    let (s, _, body) = f
        .call(
            Request::get("/api/devices/FGL2548L0AW")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let d: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(d["step"], "cli-config \"config-register 0x2102\"", "{d}");
    let (_, _, body) = f
        .call(Request::get("/api/devices").body(Body::empty()).unwrap())
        .await;
    let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(list[0]["step"], d["step"]);
    assert!(list[0].get("history").is_none());
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

fn post_xml(path: &str, body: String) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "text/xml")
        .body(Body::from(body))
        .unwrap()
}

/// The text of `<tag>` in `xml`.
fn text_of(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].to_string())
}

/// Answers every job the server sends from 198.51.100.20 with success until it sends the
/// config-upgrade; returns that job's config URL path and correlator.
async fn drive_to_config_upgrade(f: &Fixture) -> (String, String) {
    for i in 0..20 {
        let c = format!("C{i}");
        let (s, _, job) = f
            .call(post_xml("/pnp/WORK-REQUEST", work_request(&c, false)))
            .await;
        let job = String::from_utf8(job).unwrap();
        assert_eq!(s, StatusCode::OK, "{job}");
        if job.contains("urn:cisco:pnp:config-upgrade") {
            let url = text_of(&job, "location").expect("config-upgrade without a location");
            return (url.split_once("8080").unwrap().1.to_string(), c);
        }
        let service = [
            "device-info",
            "cli-exec",
            "cli-config",
            "file-transfer",
            "image-install",
        ]
        .into_iter()
        .find(|s| job.contains(&format!("urn:cisco:pnp:{s}")))
        .unwrap_or_else(|| panic!("unexpected job: {job}"));
        let inner = match service {
            "device-info" => "<imageInfo><versionString>17.12.3a</versionString><configReg>0x2102</configReg></imageInfo><fileSystemList><fileSystem name=\"bootflash\" size=\"7605936128\" freespace=\"5000000000\"/></fileSystemList>".to_string(),
            "cli-exec" => "<execLog><dialogueLog><received><text>Building configuration...\n[OK]</text></received></dialogueLog></execLog>".to_string(),
            _ => String::new(),
        };
        let resp = format!(
            "<pnp xmlns=\"urn:cisco:pnp\" version=\"1.0\" udi=\"{UDI}\"><response xmlns=\"urn:cisco:pnp:{service}\" correlator=\"{c}\" success=\"1\">{inner}</response></pnp>"
        );
        let (s, _, _) = f.call(post_xml("/pnp/WORK-RESPONSE", resp)).await;
        assert_eq!(s, StatusCode::OK);
    }
    panic!("no config-upgrade job in 20 exchanges");
}

/// Config theft: a config goes only through the URL issued with the router's config-upgrade
/// job, only to its bound address, only while the job is in flight.
#[tokio::test]
async fn configs_only_through_their_job_to_the_bound_address() {
    let f = fixture_with("[workflow]\nconfig-register = \"\"\n").await;
    let (s, _, _) = f.call(get("/configs/default.cfg")).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "no router at this address yet");
    f.call(post_xml("/pnp/WORK-REQUEST", work_request("C0", false)))
        .await;
    // Bound, but no config job yet: neither URL gives the config.
    let (s, _, _) = f.call(get("/configs/default.cfg")).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "before its config-upgrade job");
    let (url, correlator) = drive_to_config_upgrade(&f).await;
    let parts: Vec<&str> = url.trim_start_matches('/').split('/').collect();
    assert_eq!(parts[0], "day0");
    assert_eq!(parts[1], "FGL2548L0AW");
    assert_eq!(parts[3], "default.cfg");
    let token = parts[2];
    assert_eq!(token.len(), 32, "128 random bits: {url}");
    // The API shows the job without its token or correlator.
    let (_, _, record) = f.call(get("/api/devices/FGL2548L0AW")).await;
    let record = String::from_utf8(record).unwrap();
    assert!(!record.contains(token), "token published: {record}");
    let shown: serde_json::Value = serde_json::from_str(&record).unwrap();
    assert_eq!(
        shown["pending"]["correlator"], "",
        "correlator published: {record}"
    );
    assert!(!record.contains(&format!("\"{correlator}\"")), "{record}");
    // Another host on the bench: refused on every route, with its own claim on the serial
    // changing nothing.
    let spoofer = "198.51.100.99";
    let (s, _, _) = f
        .call_from(
            spoofer,
            post_xml("/pnp/WORK-REQUEST", work_request("X1", false)),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    for path in [url.as_str(), "/configs/default.cfg"] {
        let (s, _, body) = f.call_from(spoofer, get(path)).await;
        assert_eq!(
            s,
            StatusCode::NOT_FOUND,
            "{path}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    // The bound router: the issued URL, and the reference URL; a wrong token is refused.
    let (s, h, body) = f.call(get(&url)).await;
    assert_eq!((s, body.as_slice()), (StatusCode::OK, &b"hostname X\n"[..]));
    assert!(
        h[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let (s, _, body) = f.call(get("/configs/default.cfg")).await;
    assert_eq!((s, body.as_slice()), (StatusCode::OK, &b"hostname X\n"[..]));
    let forged = url.replace(token, "0123456789abcdef0123456789abcdef");
    assert_eq!(f.call(get(&forged)).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        f.call(get(
            "/day0/NOPE/0123456789abcdef0123456789abcdef/default.cfg"
        ))
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    // The job answered: the URL is spent.
    let done = format!(
        "<pnp xmlns=\"urn:cisco:pnp\" version=\"1.0\" udi=\"{UDI}\"><response xmlns=\"urn:cisco:pnp:config-upgrade\" correlator=\"{correlator}\" success=\"1\"/></pnp>"
    );
    f.call(post_xml("/pnp/WORK-RESPONSE", done)).await;
    let (s, _, _) = f.call(get(&url)).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "after its job");
}

/// `GET /metrics` parses with a real exposition-format parser (prometheus-parse) and counts
/// what happened: routers per state, exchanges in the latency histogram.
#[tokio::test]
async fn prometheus_metrics_parse_and_count() {
    let f = fixture().await;
    for c in ["C1", "C2"] {
        f.call(post_xml("/pnp/WORK-REQUEST", work_request(c, false)))
            .await;
    }
    let (s, h, body) = f.call(get("/metrics")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        h[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = String::from_utf8(body).unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    let value = |name: &str, label: Option<(&str, &str)>| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
            .map(|s| s.value.clone())
            .unwrap_or_else(|| panic!("no {name} {label:?} in:\n{text}"))
    };
    // One router, asked twice: in CONFIG_REG after its second request.
    let states: f64 = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "pnp_routers")
        .map(|s| match s.value {
            prometheus_parse::Value::Gauge(v) => v,
            ref other => panic!("{other:?}"),
        })
        .sum();
    assert_eq!(states, 1.0, "{text}");
    assert!(
        matches!(value("pnp_routers", Some(("state", "CONFIG_REG"))), prometheus_parse::Value::Gauge(v) if v == 1.0),
        "{text}"
    );
    match value("pnp_exchange_duration_seconds", None) {
        prometheus_parse::Value::Histogram(buckets) => {
            let inf = buckets
                .iter()
                .find(|b| b.less_than.is_infinite())
                .expect("+Inf bucket");
            assert_eq!(inf.count, 2.0, "two exchanges: {text}");
            assert!(buckets.windows(2).all(|w| w[0].count <= w[1].count));
        }
        other => panic!("{other:?}"),
    }
    // Each exchange here changed the record durably, and its answer waited for the commit (the
    // first one twice: the new record, then its first job).
    match value("pnp_store_commit_duration_seconds", None) {
        prometheus_parse::Value::Histogram(buckets) => {
            let inf = buckets
                .iter()
                .find(|b| b.less_than.is_infinite())
                .expect("+Inf bucket");
            assert_eq!(inf.count, 3.0, "{text}");
            assert!(buckets.windows(2).all(|w| w[0].count <= w[1].count));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        value("pnp_dhcp_packets_total", Some(("outcome", "offer"))),
        prometheus_parse::Value::Counter(v) if v == 0.0
    ));
}

#[tokio::test]
async fn with_https_on_plain_http_keeps_to_what_holds_no_secret() {
    let f = https_fixture().await;
    // The bench CA is public: served over plain HTTP, before a router trusts anything.
    let (s, _, ca) = f.call(get("/pnp-info/ca.pem")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        ca,
        std::fs::read(f.dir.path().join("state/tls/ca.pem")).unwrap()
    );
    // The dashboard and the API from another host over plain HTTP: sent to HTTPS, with the
    // name it was opened under.
    let req = Request::get("/api/status?x=1")
        .header(header::HOST, "198.51.100.1:8080")
        .body(Body::empty())
        .unwrap();
    let (s, h, _) = f.call_from("198.51.100.7", req).await;
    assert_eq!(s, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        h[header::LOCATION],
        "https://198.51.100.1:8443/api/status?x=1"
    );
    let req = Request::post("/api/devices/X/resume")
        .header(header::HOST, "198.51.100.1:8080")
        .body(Body::empty())
        .unwrap();
    let (s, _, _) = f.call_from("198.51.100.7", req).await;
    assert_eq!(
        s,
        StatusCode::PERMANENT_REDIRECT,
        "an action never runs over plain HTTP"
    );
    // The CLI on this host keeps loopback HTTP.
    let req = Request::get("/api/status")
        .header(header::HOST, "127.0.0.1:8080")
        .body(Body::empty())
        .unwrap();
    let (s, _, _) = f.call_from("127.0.0.1", req).await;
    assert_eq!(s, StatusCode::OK);
    // A day-0 config never goes over plain HTTP.
    let (s, _, body) = f.call(get("/day0/FGL2548L0AW/00/default.cfg")).await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "{}",
        String::from_utf8_lossy(&body)
    );
    // A router's first work request over plain HTTP gets the certificate-install.
    let (s, job) = f
        .post("/pnp/WORK-REQUEST", "text/xml", work_request("C1", false))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(job.contains("urn:cisco:pnp:certificate-install"), "{job}");
    assert!(
        job.contains("<uri>http://198.51.100.1:8080/pnp-info/ca.pem</uri>"),
        "{job}"
    );
    assert!(
        job.contains("<ipv4>198.51.100.1</ipv4><port>8443</port>"),
        "{job}"
    );
}
