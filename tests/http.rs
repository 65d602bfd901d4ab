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
    let src = "[[workflow.image]]\nfile = \"c1100-universalk9.17.12.03a.SPA.bin\"\n[http]\nmax-body-bytes = 8192\n";
    let path = dir.path().join("appliance.toml");
    std::fs::write(&path, src).unwrap();
    let cfg = Config::load(&path, &Default::default()).unwrap();
    let (app, _) = pnp_appliance::serve::prepare(cfg).await.unwrap();
    Fixture { dir, app }
}

impl Fixture {
    fn router(&self) -> axum::Router {
        let peer = Peer {
            remote: "198.51.100.20:51000".parse::<SocketAddr>().unwrap(),
            local: "198.51.100.1:8080".parse::<SocketAddr>().unwrap(),
        };
        http::router(self.app.clone()).layer(MockConnectInfo(peer))
    }

    async fn call(&self, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let resp = self.router().oneshot(req).await.unwrap();
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

    /// Serials of the saved records (files and journal).
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
    assert!(
        job.contains("<location>http://198.51.100.1:8080/images/c1100-universalk9.17.12.03a.SPA.bin</location>"),
        "{job}"
    );
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
    // A config only goes to the router it is issued to: none from this address yet.
    let (s, _, _) = f
        .call(
            Request::get("/configs/default.cfg")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    f.post("/pnp/WORK-REQUEST", "text/xml", work_request("C1", false))
        .await;
    let (s, h, body) = f
        .call(
            Request::get("/configs/default.cfg")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        h[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(body, b"hostname X\n");
    let (s, _, body) = f
        .call(
            Request::get("/day0/FGL2548L0AW/default.cfg")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!((s, body.as_slice()), (StatusCode::OK, &b"hostname X\n"[..]));
    // The same router's config asked for from another address: refused.
    let other = Peer {
        remote: "198.51.100.99:40000".parse().unwrap(),
        local: "198.51.100.1:8080".parse().unwrap(),
    };
    for path in [
        "/configs/default.cfg",
        "/day0/FGL2548L0AW/default.cfg",
        "/day0/NOPE/default.cfg",
    ] {
        let resp = http::router(f.app.clone())
            .layer(MockConnectInfo(other))
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
    }
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
        "/day0/FGL2548L0AW/..%2f..%2fappliance.toml",
        "/day0/..%2f/default.cfg",
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
