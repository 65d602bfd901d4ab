//! The fast path's decisions (table-driven) and, on real loopback connections, its answers
//! compared byte for byte with what ServeDir answers for the same request.

use super::*;
use axum::body::Body;
use http_body_util::BodyExt;
use std::collections::BTreeMap;
use tower::ServiceExt;

/// (dir, name, head only, range, keep-alive) when served on the fast path.
type Served = Option<(Dir, &'static str, bool, Option<RangeSpec>, bool)>;
/// Status, the compared headers, body.
type Compared<'a> = (u16, Vec<(String, Option<String>)>, &'a [u8]);
/// Method, path, headers, served on the fast path.
type Row = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    bool,
);

/// Whether a name the fast path serves could leave its directory or be a hidden file: what
/// `plain_name` must never let through.
fn escapes(name: &str) -> bool {
    name.is_empty()
        || name.starts_with('/')
        || name
            .split('/')
            .any(|seg| seg.is_empty() || seg.starts_with('.') || seg == "..")
        || name
            .bytes()
            .any(|b| !(b.is_ascii_alphanumeric() || b"/._+-~".contains(&b)))
}

use proptest::strategy::Strategy as _;

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 3000, ..Default::default() })]

    /// Arbitrary bytes at the head of a connection: a decision, never a panic; and whatever is
    /// served names a plain file inside `images/` or `files/` within the bytes received.
    #[test]
    fn arbitrary_heads_never_panic_or_escape(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..700)) {
        if let Decision::Serve(r) = decide(&bytes) {
            proptest::prop_assert!(!escapes(&r.name), "{:?}", r.name);
            proptest::prop_assert!(r.head_len <= bytes.len());
        }
    }

    /// Request heads of the shape routers send, with the path, a header value and the range
    /// drawn from hostile alphabets (`..`, `%2e`, slashes, NUL, CR/LF): a traversal or an odd
    /// range is always handed to ServeDir, a plain request always served with its own range.
    #[test]
    fn near_valid_heads_are_served_only_when_plain(
        method in proptest::sample::select(vec!["GET", "HEAD", "POST", "get"]),
        dir in proptest::sample::select(vec!["/images/", "/files/", "/configs/", "/image/", "//images/"]),
        segments in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::sample::select(vec![
                    "..", ".", ".hidden", "", "%2e%2e", "a%2Fb", "a\\b", "x y", "c1100.bin", "g.tar",
                ])
                .prop_map(String::from),
                proptest::string::string_regex("[a-zA-Z0-9._+~-]{1,8}").unwrap(),
            ],
            1..4,
        ),
        range in proptest::option::of("bytes=[0-9]{0,4}-[0-9]{0,4}|bytes=-[0-9]{1,3}|bytes= 1-2|bytes=0-1,3-4"),
        extra in proptest::option::of("[A-Za-z-]{1,12}: [ -~]{0,20}"),
        cut in proptest::sample::select(vec![0usize, 0, 0, 1, 2, 5]),
    ) {
        let name = segments.join("/");
        let mut head = format!("{method} {dir}{name} HTTP/1.1\r\nHost: h\r\n");
        if let Some(r) = &range {
            head.push_str(&format!("Range: {r}\r\n"));
        }
        if let Some(x) = &extra {
            head.push_str(x);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        let complete = cut == 0;
        let bytes = &head.as_bytes()[..head.len() - cut.min(head.len())];
        match decide(bytes) {
            Decision::Serve(r) => {
                proptest::prop_assert!(complete, "served an incomplete head: {head:?}");
                proptest::prop_assert!(!escapes(&r.name), "{head:?}");
                proptest::prop_assert!(matches!(method, "GET" | "HEAD"));
                proptest::prop_assert!(matches!(dir, "/images/" | "/files/"));
                proptest::prop_assert_eq!(r.name.as_str(), name.as_str());
                proptest::prop_assert_eq!(r.head_len, head.len());
                proptest::prop_assert_eq!(r.head_only, method == "HEAD");
                proptest::prop_assert_eq!(r.range.is_some(), range.is_some());
            }
            Decision::HandOff => {
                let plain = matches!(method, "GET" | "HEAD")
                    && matches!(dir, "/images/" | "/files/")
                    && !escapes(&name)
                    && range.is_none()
                    && extra.is_none()
                    && complete;
                proptest::prop_assert!(!plain, "a plain request was handed off: {head:?}");
            }
        }
    }
}

fn serve_req(head: &str) -> FileRequest {
    match decide(head.as_bytes()) {
        Decision::Serve(r) => r,
        Decision::HandOff => panic!("handed off: {head:?}"),
    }
}

#[test]
fn decide_table() {
    use RangeSpec::*;
    let ok = |m: &str, p: &str, extra: &str| format!("{m} {p} HTTP/1.1\r\nHost: x\r\n{extra}\r\n");
    // (request head, Some((dir, name, head_only, range, keep_alive)) when served here)
    let rows: Vec<(String, Served)> = vec![
        (
            ok("GET", "/images/a.bin", ""),
            Some((Dir::Images, "a.bin", false, None, true)),
        ),
        (
            ok("HEAD", "/images/a.bin", ""),
            Some((Dir::Images, "a.bin", true, None, true)),
        ),
        (
            ok("GET", "/files/sub/g-1.2+x~.tar", ""),
            Some((Dir::Files, "sub/g-1.2+x~.tar", false, None, true)),
        ),
        (
            ok("GET", "/images/a.bin", "Range: bytes=10-19\r\n"),
            Some((Dir::Images, "a.bin", false, Some(FromTo(10, 19)), true)),
        ),
        (
            ok("GET", "/images/a.bin", "range: bytes=0-\r\n"),
            Some((Dir::Images, "a.bin", false, Some(From(0)), true)),
        ),
        (
            ok("GET", "/images/a.bin", "RANGE: bytes=-500\r\n"),
            Some((Dir::Images, "a.bin", false, Some(Suffix(500)), true)),
        ),
        (
            ok("GET", "/images/a.bin", "Connection: close\r\n"),
            Some((Dir::Images, "a.bin", false, None, false)),
        ),
        (
            ok("GET", "/images/a.bin", "Connection: TE, Close\r\n"),
            Some((Dir::Images, "a.bin", false, None, false)),
        ),
        (
            ok("GET", "/images/a.bin", "Content-Length: 0\r\n"),
            Some((Dir::Images, "a.bin", false, None, true)),
        ),
        (
            "GET /images/a.bin HTTP/1.0\r\n\r\n".into(),
            Some((Dir::Images, "a.bin", false, None, false)),
        ),
        (
            "GET /images/a.bin HTTP/1.0\r\nConnection: keep-alive\r\n\r\n".into(),
            Some((Dir::Images, "a.bin", false, None, true)),
        ),
        // A per-job URL serves the same file.
        (
            ok("GET", "/dl/FCZ1/0a1b/images/a.bin", ""),
            Some((Dir::Images, "a.bin", false, None, true)),
        ),
        (
            ok("GET", "/dl/FCZ1/0a1b/files/g.tar", ""),
            Some((Dir::Files, "g.tar", false, None, true)),
        ),
        (ok("GET", "/dl/FCZ1/0a1b/configs/x", ""), None),
        (ok("GET", "/dl/../0a1b/images/a.bin", ""), None),
        (ok("GET", "/dl/FCZ1/0a1b/images/../x", ""), None),
        (ok("GET", "/dl/FCZ1/images/a.bin", ""), None),
        // Everything else goes to hyper.
        (ok("POST", "/images/a.bin", ""), None),
        (ok("PUT", "/files/x", ""), None),
        (ok("GET", "/pnp/HELLO", ""), None),
        (ok("GET", "/configs/default.cfg", ""), None),
        (ok("GET", "/images/", ""), None),
        (ok("GET", "/images", ""), None),
        (ok("GET", "/images/../appliance.toml", ""), None),
        (ok("GET", "/images/%2e%2e/appliance.toml", ""), None),
        (ok("GET", "/images//etc/passwd", ""), None),
        (ok("GET", "/images/a/./b", ""), None),
        (ok("GET", "/images/.hidden", ""), None),
        (ok("GET", "/images/a.bin?x=1", ""), None),
        (ok("GET", "/images/a%20b.bin", ""), None),
        (ok("GET", "/images/a.bin", "Range: bytes=1-2,5-6\r\n"), None),
        (ok("GET", "/images/a.bin", "Range: bytes=0010-\r\n"), None),
        (ok("GET", "/images/a.bin", "Range: bytes=20-10\r\n"), None),
        (ok("GET", "/images/a.bin", "Range: bytes= 1-2\r\n"), None),
        (ok("GET", "/images/a.bin", "Range: items=1-2\r\n"), None),
        (ok("GET", "/images/a.bin", "Range: bytes=-\r\n"), None),
        (
            ok(
                "GET",
                "/images/a.bin",
                "Range: bytes=1-2\r\nRange: bytes=3-4\r\n",
            ),
            None,
        ),
        (
            ok(
                "GET",
                "/images/a.bin",
                "If-Modified-Since: Tue, 24 Nov 2026 10:00:00 GMT\r\n",
            ),
            None,
        ),
        (ok("GET", "/images/a.bin", "If-Range: \"x\"\r\n"), None),
        (ok("GET", "/images/a.bin", "Content-Length: 5\r\n"), None),
        (
            ok("GET", "/images/a.bin", "Transfer-Encoding: chunked\r\n"),
            None,
        ),
        (ok("GET", "/images/a.bin", "Upgrade: websocket\r\n"), None),
        ("GET /images/a.bin HTTP/1.1\r\nHost: x\r\n".into(), None), // incomplete head
        ("GARBAGE\r\n\r\n".into(), None),
        // obs-text in a header we do not read is no reason to refuse (hyper accepts it too).
        (
            "GET /images/a.bin HTTP/1.1\r\nX: \u{e9}\r\n\r\n".into(),
            Some((Dir::Images, "a.bin", false, None, true)),
        ),
        (String::new(), None),
    ];
    for (head, want) in rows {
        let got = match decide(head.as_bytes()) {
            Decision::Serve(r) => {
                assert_eq!(r.head_len, head.len(), "{head:?}");
                Some((r.dir, r.name, r.head_only, r.range, r.keep_alive))
            }
            Decision::HandOff => None,
        };
        let want = want.map(|(d, n, h, r, k)| (d, n.to_string(), h, r, k));
        assert_eq!(got, want, "{head:?}");
    }
    // A pipelined second request is not part of the first head.
    let two = "GET /images/a HTTP/1.1\r\n\r\nGET /pnp/HELLO HTTP/1.1\r\n\r\n";
    assert_eq!(
        serve_req(two).head_len,
        "GET /images/a HTTP/1.1\r\n\r\n".len()
    );
}

#[test]
fn resolve_table() {
    use RangeSpec::*;
    let rows = [
        (FromTo(10, 19), 100, Some((10, 19))),
        (FromTo(10, 1000), 100, Some((10, 99))),
        (FromTo(99, 99), 100, Some((99, 99))),
        (FromTo(100, 200), 100, None),
        (From(0), 100, Some((0, 99))),
        (From(99), 100, Some((99, 99))),
        (From(100), 100, None),
        (Suffix(1), 100, Some((99, 99))),
        (Suffix(100), 100, Some((0, 99))),
        (Suffix(101), 100, None),
        (Suffix(0), 100, None),
        (From(0), 0, None),
        (Suffix(1), 0, None),
    ];
    for (r, len, want) in rows {
        assert_eq!(resolve(r, len), want, "{r:?} of {len}");
    }
}

/// A directory with files of known content.
fn dirs() -> (tempfile::TempDir, FastFiles) {
    let t = tempfile::tempdir().unwrap();
    let images = t.path().join("images");
    let files = t.path().join("files");
    std::fs::create_dir_all(images.join("sub")).unwrap();
    std::fs::create_dir_all(&files).unwrap();
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(images.join("c1100.bin"), &body).unwrap();
    std::fs::write(images.join("sub/nested.bin"), &body[..1000]).unwrap();
    std::fs::write(images.join("empty.bin"), b"").unwrap();
    std::fs::write(files.join("pnp_script.py"), "print('hi')\n").unwrap();
    std::fs::write(files.join("gs.tar"), vec![7u8; 5000]).unwrap();
    std::fs::write(t.path().join("secret.toml"), "token = 1\n").unwrap();
    let fast = FastFiles {
        images,
        files,
        transfers: Transfers::default(),
        bulk: None,
        idle_timeout: std::time::Duration::from_secs(60),
    };
    (t, fast)
}

#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

/// Headers both paths must agree on (hyper adds `date` and its own connection handling).
const COMPARED: [&str; 5] = [
    "content-type",
    "content-length",
    "content-range",
    "accept-ranges",
    "last-modified",
];

fn parse_answer(raw: &[u8]) -> Answer {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no end of head");
    let head = std::str::from_utf8(&raw[..split]).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let mut headers = BTreeMap::new();
    for l in lines {
        let (k, v) = l.split_once(':').unwrap();
        headers.insert(k.to_ascii_lowercase(), v.trim().to_string());
    }
    Answer {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// Sends `raw` on a loopback connection served by [`serve`]; `None` when it handed off (and
/// then checks the request was left unread).
async fn fast_answer(fast: &FastFiles, raw: &str) -> Option<Answer> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let fast = fast.clone();
    let server = tokio::spawn(async move {
        let (s, peer) = listener.accept().await.unwrap();
        let back = serve(s, &fast, peer.ip(), &CancellationToken::new()).await;
        match back {
            Some(mut s) => {
                let mut left = vec![0u8; 8192];
                let n = s.read(&mut left).await.unwrap();
                left.truncate(n);
                Some(left)
            }
            None => None,
        }
    });
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(raw.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let handed = server.await.unwrap();
    if let Some(left) = handed {
        assert_eq!(left, raw.as_bytes(), "a handed-off request must be unread");
        return None;
    }
    c.read_to_end(&mut got).await.unwrap();
    Some(parse_answer(&got))
}

async fn servedir_answer(
    fast: &FastFiles,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let mut req = axum::http::Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = crate::http::files::router::<()>(&fast.images, &fast.files)
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let mut hs = BTreeMap::new();
    for (k, v) in resp.headers() {
        hs.insert(k.as_str().to_string(), v.to_str().unwrap().to_string());
    }
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    if !hs.contains_key("content-length") {
        // hyper writes the length of a body known to be empty or full.
        hs.insert("content-length".into(), body.len().to_string());
    }
    Answer {
        status,
        headers: hs,
        body: if method == "HEAD" { Vec::new() } else { body },
    }
}

fn compared(a: &Answer) -> Compared<'_> {
    let hs = COMPARED
        .iter()
        .map(|k| (k.to_string(), a.headers.get(*k).cloned()))
        .collect();
    (a.status, hs, &a.body)
}

#[tokio::test]
async fn same_answers_as_servedir_or_handed_off_untouched() {
    let (_t, fast) = dirs();
    // (method, path, headers, served on the fast path?)
    let rows: &[Row] = &[
        ("GET", "/images/c1100.bin", &[], true),
        ("HEAD", "/images/c1100.bin", &[], true),
        (
            "GET",
            "/images/c1100.bin",
            &[("range", "bytes=10-19")],
            true,
        ),
        (
            "GET",
            "/images/c1100.bin",
            &[("range", "bytes=299990-400000")],
            true,
        ),
        (
            "GET",
            "/images/c1100.bin",
            &[("range", "bytes=123456-")],
            true,
        ),
        ("GET", "/images/c1100.bin", &[("range", "bytes=-7")], true),
        ("HEAD", "/images/c1100.bin", &[("range", "bytes=0-0")], true),
        ("GET", "/images/sub/nested.bin", &[], true),
        ("GET", "/images/empty.bin", &[], true),
        ("GET", "/files/pnp_script.py", &[], true),
        ("GET", "/files/gs.tar", &[], true),
        ("GET", "/dl/FCZ1/0a1b/images/c1100.bin", &[], true),
        (
            "GET",
            "/dl/FCZ1/0a1b/files/gs.tar",
            &[("range", "bytes=-7")],
            true,
        ),
        // ServeDir's answers: 416, 404, refusals.
        (
            "GET",
            "/images/c1100.bin",
            &[("range", "bytes=300000-")],
            false,
        ),
        (
            "GET",
            "/images/c1100.bin",
            &[("range", "bytes=-300001")],
            false,
        ),
        (
            "GET",
            "/images/c1100.bin",
            &[("range", "bytes=1-2,4-5")],
            false,
        ),
        ("GET", "/images/empty.bin", &[("range", "bytes=0-")], false),
        ("GET", "/images/missing.bin", &[], false),
        ("GET", "/images/sub", &[], false),
        ("GET", "/images/../secret.toml", &[], false),
        ("GET", "/images/%2e%2e/secret.toml", &[], false),
        ("GET", "/files/..%2fsecret.toml", &[], false),
        (
            "GET",
            "/images/c1100.bin",
            &[("if-modified-since", "Tue, 24 Nov 2099 10:00:00 GMT")],
            false,
        ),
    ];
    for (method, path, headers, fast_path) in rows {
        let mut raw = format!("{method} {path} HTTP/1.1\r\nhost: t\r\nconnection: close\r\n");
        for (k, v) in headers.iter() {
            raw.push_str(&format!("{k}: {v}\r\n"));
        }
        raw.push_str("\r\n");
        let ours = fast_answer(&fast, &raw).await;
        assert_eq!(ours.is_some(), *fast_path, "{method} {path} {headers:?}");
        let reference = servedir_answer(&fast, method, path, headers).await;
        if let Some(ours) = ours {
            assert_eq!(
                compared(&ours),
                compared(&reference),
                "{method} {path} {headers:?}"
            );
            assert_eq!(ours.headers["connection"], "close");
        } else {
            assert!(
                !(200..300).contains(&reference.status) || reference.body.len() < 10_000,
                "{method} {path}"
            );
        }
    }
    // Traversal never reaches the file above the directory, on either path.
    let r = servedir_answer(&fast, "GET", "/images/../secret.toml", &[]).await;
    assert_ne!(r.body, b"token = 1\n");
}

#[tokio::test]
async fn keep_alive_serves_several_then_hands_off_and_counts_transfers() {
    let (_t, fast) = dirs();
    // One download through its job's URL, one plain one from the address S1 last spoke from.
    fast.transfers
        .issued("http://h/dl/S1/t1/files/gs.tar", "S1");
    fast.transfers
        .name(std::net::Ipv4Addr::LOCALHOST.into(), "S1");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let f2 = fast.clone();
    let server = tokio::spawn(async move {
        let (s, peer) = listener.accept().await.unwrap();
        let mut s = serve(s, &f2, peer.ip(), &CancellationToken::new())
            .await
            .expect("the PnP request must be handed off");
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).await.unwrap();
        rest
    });
    let mut c = TcpStream::connect(addr).await.unwrap();
    let hello = "POST /pnp/HELLO HTTP/1.1\r\nhost: t\r\ncontent-length: 3\r\n\r\nabc";
    let pipelined = format!(
        "GET /dl/S1/t1/files/gs.tar HTTP/1.1\r\nhost: t\r\n\r\nGET /images/c1100.bin HTTP/1.1\r\nrange: bytes=0-9\r\n\r\n{hello}"
    );
    c.write_all(pipelined.as_bytes()).await.unwrap();
    c.shutdown().await.unwrap();
    let mut got = Vec::new();
    // Read the two answers: 5000 + 10 body bytes after their heads.
    let mut buf = vec![0u8; 65536];
    while got.windows(4).filter(|w| w == b"\r\n\r\n").count() < 2 || got.len() < 5010 + 300 {
        let n = c.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    let first = parse_answer(&got);
    assert_eq!(first.status, 200);
    assert_eq!(first.headers["connection"], "keep-alive");
    assert_eq!(&first.body[..5000], &[7u8; 5000][..]);
    let second = parse_answer(&first.body[5000..]);
    assert_eq!(second.status, 206);
    assert_eq!(second.body, (0..10u8).collect::<Vec<_>>());
    assert_eq!(server.await.unwrap(), hello.as_bytes());
    let seen = fast.transfers.for_serial("S1");
    assert_eq!(seen.len(), 2);
    assert!(
        seen.iter()
            .all(|t| t.state == crate::files::transfers::TransferState::Done),
        "{seen:?}"
    );
    let mut sizes: Vec<_> = seen.iter().map(|t| (t.bytes, t.total)).collect();
    sizes.sort();
    assert_eq!(sizes, vec![(10, Some(10)), (5000, Some(5000))]);
}

#[tokio::test]
async fn router_gone_mid_download_is_an_aborted_transfer() {
    let (_t, fast) = dirs();
    fast.transfers
        .name(std::net::Ipv4Addr::LOCALHOST.into(), "S1");
    // Big enough not to fit in the socket buffers of both ends.
    let big = vec![1u8; 64 << 20];
    std::fs::write(fast.images.join("big.bin"), &big).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let f2 = fast.clone();
    let server = tokio::spawn(async move {
        let (s, peer) = listener.accept().await.unwrap();
        serve(s, &f2, peer.ip(), &CancellationToken::new())
            .await
            .is_none()
    });
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"GET /images/big.bin HTTP/1.1\r\nhost: t\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 100_000];
    let mut n = 0;
    while n < 100_000 {
        n += c.read(&mut buf[n..]).await.unwrap();
    }
    drop(c);
    assert!(server.await.unwrap(), "the connection ends with the router");
    let t = &fast.transfers.for_serial("S1")[0];
    assert_eq!(t.state, crate::files::transfers::TransferState::Aborted);
    assert!(t.bytes < 64 << 20, "{t:?}");
}
