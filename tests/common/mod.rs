//! Shared helpers for tests that run the real binary: a bench directory with a config, an
//! image, a tarball, a script and a day-0 config; a server process on a free loopback port,
//! stopped by PID on drop.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_pnp-appliance");

/// Image name used by the benches.
pub const IMAGE: &str = "c1100-universalk9.17.12.03a.SPA.bin";

/// A staging bench in a temporary directory.
pub struct Bench {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub server: Option<Child>,
}

/// Where `cmd` is, searching PATH and the sbin directories.
pub fn find(cmd: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|d| Path::new(d).join(cmd))
        .find(|p| p.is_file())
}

/// For the `#[ignore]`d tests that need root or packages: panics, naming what is missing and
/// how to get it, instead of passing without testing anything. `.ci/run` runs them
/// (`--include-ignored`) as root after `scripts/install-deps.sh`.
pub fn require(test: &str, tools: &[&str], root: bool) {
    let mut missing: Vec<String> = tools
        .iter()
        .filter(|t| find(t).is_none())
        .map(|t| t.to_string())
        .collect();
    if root && !is_root() {
        missing.push("root".into());
    }
    assert!(
        missing.is_empty(),
        "{test} needs {}: run `sudo ./scripts/install-deps.sh`, then the tests as root \
         (`sudo ./scripts/test.sh` runs the ignored ones too)",
        missing.join(", ")
    );
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Polls `probe` every 50 ms until it gives a value or `deadline` passes.
pub fn wait_for<T>(deadline: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

impl Bench {
    /// Creates the bench; `extra` is appended to the config.
    pub fn new(extra: &str) -> Bench {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        for d in ["images", "files", "configs"] {
            std::fs::create_dir_all(p.join(d)).unwrap();
        }
        let image: Vec<u8> = (0..2_000_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        std::fs::write(p.join("images").join(IMAGE), image).unwrap();
        std::fs::write(p.join("files/guestshell.17.12.03a.tar"), vec![7u8; 300_000]).unwrap();
        std::fs::write(p.join("files/pnp_script.py"), "print('hello')\n").unwrap();
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        std::fs::copy(
            repo.join("configs/default.cfg"),
            p.join("configs/default.cfg"),
        )
        .unwrap();
        let port = free_port();
        // The shipped config, on a test port, plus the test's additions.
        let shipped = std::fs::read_to_string(repo.join("appliance.toml")).unwrap();
        let cfg = shipped.replace(
            "listen = \"0.0.0.0:8080\"",
            &format!("listen = \"127.0.0.1:{port}\""),
        );
        assert!(cfg.contains(&format!("127.0.0.1:{port}")));
        std::fs::write(p.join("appliance.toml"), format!("{cfg}\n{extra}")).unwrap();
        Bench {
            dir,
            port,
            server: None,
        }
    }

    /// Replaces `from` by `to` in the bench's config (e.g. to add a key to a table).
    pub fn patch_config(&self, from: &str, to: &str) {
        let cfg = std::fs::read_to_string(self.config()).unwrap();
        assert!(cfg.contains(from), "{from:?} not in config");
        std::fs::write(self.config(), cfg.replacen(from, to, 1)).unwrap();
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn config(&self) -> PathBuf {
        self.path("appliance.toml")
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts `serve` and waits until it answers HELLO.
    pub fn start(&mut self) {
        self.start_wrapped(&[]);
    }

    /// Starts `serve` behind a wrapper command (`wrapper... BIN --config CFG serve`).
    pub fn start_wrapped(&mut self, wrapper: &[&str]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path("serve.out"))
            .unwrap();
        let mut cmd = match wrapper.split_first() {
            Some((prog, args)) => {
                let mut c = Command::new(prog);
                c.args(args).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        let child = cmd
            .arg("--config")
            .arg(self.config())
            .arg("serve")
            .env("NO_COLOR", "1")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("cannot start server");
        self.server = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Some(Ok(Some(status))) = self.server.as_mut().map(|c| c.try_wait()) {
                panic!("server exited with {status}: {}", self.server_log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server did not come up: {}", self.server_log());
    }

    /// The admin token the server generated at its first start.
    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.path("state/admin-token"))
            .expect("no generated admin token")
            .trim()
            .to_string()
    }

    /// Kills the server with SIGKILL (no chance to flush anything).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.path("serve.out")).unwrap_or_default()
    }

    /// A `simulate` command against this bench.
    pub fn simulate(&self, devices: usize, extra: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--config")
            .arg(self.config())
            .args([
                "simulate",
                "--server",
                &self.url(),
                "--devices",
                &devices.to_string(),
            ])
            .args(["--time-scale", "0.01", "--timeout", "240"])
            .args(extra);
        c
    }

    /// Runs an arbitrary subcommand.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("--config")
            .arg(self.config())
            .args(args)
            .output()
            .unwrap()
    }

    /// The server's view of one device (JSON), if it answers.
    pub fn device(&self, serial: &str) -> Option<serde_json::Value> {
        let (status, body) = http_get(self.port, &format!("/api/devices/{serial}"))?;
        if status != 200 {
            return None;
        }
        serde_json::from_slice(&body).ok()
    }
}

/// A minimal HTTP/1.0 GET on loopback: (status, body).
pub fn http_get(port: u16, path: &str) -> Option<(u16, Vec<u8>)> {
    http(port, "GET", path, "")
}

/// POSTs `body` to `path`; (status, body).
pub fn http_post(port: u16, path: &str, body: &str) -> Option<(u16, Vec<u8>)> {
    http(port, "POST", path, body)
}

fn http(port: u16, method: &str, path: &str, body: &str) -> Option<(u16, Vec<u8>)> {
    http_from(
        "127.0.0.1",
        port,
        method,
        path,
        &[("Host", "127.0.0.1")],
        body,
    )
}

/// An HTTP/1.0 request to the server on 127.0.0.1:`port` from the local address `src` (any of
/// 127.0.0.0/8: "another host on the bench"), with `headers`: (status, body).
pub fn http_from(
    src: &str,
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<(u16, Vec<u8>)> {
    use std::io::{Read, Write};
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
    let from: std::net::SocketAddr = format!("{src}:0").parse().ok()?;
    sock.bind(&from.into()).ok()?;
    let to: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().ok()?;
    sock.connect(&to.into()).ok()?;
    let mut s: std::net::TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut head = format!("{method} {path} HTTP/1.0\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    write!(
        s,
        "{head}Content-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, raw[split + 4..].to_vec()))
}

impl Drop for Bench {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The history lines of a record as the API shows it.
pub fn history_texts(d: &serde_json::Value) -> Vec<String> {
    d["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["text"].as_str().unwrap().to_string())
        .collect()
}

/// Output of a finished command as text, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A real PostgreSQL server for one test: `initdb` and `pg_ctl` (Debian's `postgresql`) in a
/// temporary directory as the `postgres` user, on a free loopback port; stopped on drop.
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
}

/// Debian's PostgreSQL binaries (`/usr/lib/postgresql/<version>/bin`), newest first.
fn postgres_bin() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists() && b.join("pg_ctl").exists())
        .collect();
    versions.sort();
    versions.pop()
}

impl Postgres {
    /// Starts the server (needs root, to run it as `postgres`).
    pub fn start() -> Postgres {
        require("PostgreSQL fleet store", &["runuser"], true);
        let bin = postgres_bin().expect(
            "the fleet tests need PostgreSQL (initdb, pg_ctl): `sudo ./scripts/install-deps.sh` installs Debian's postgresql",
        );
        let dir = tempfile::Builder::new().prefix("pnp-pg").tempdir().unwrap();
        let data = dir.path().join("data");
        let out = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "chown: {}", text(&out));
        let as_pg = |prog: &str| {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(bin.join(prog));
            c
        };
        let out = as_pg("initdb")
            .args([
                "--auth=trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
                "-D",
            ])
            .arg(&data)
            .output()
            .unwrap();
        assert!(out.status.success(), "initdb: {}", text(&out));
        let port = free_port();
        let opts = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -k {} -c fsync=on",
            dir.path().display()
        );
        let out = as_pg("pg_ctl")
            .args(["-w", "-t", "60", "-D"])
            .arg(&data)
            .args(["-o", &opts, "-l"])
            .arg(dir.path().join("server.log"))
            .arg("start")
            .output()
            .unwrap();
        assert!(out.status.success(), "pg_ctl start: {}", text(&out));
        Postgres { dir, bin, port }
    }

    /// A new empty database `name`; returns its URL.
    pub fn database(&self, name: &str) -> String {
        let mut c = postgres::Client::connect(
            &format!(
                "host=127.0.0.1 port={} user=postgres dbname=postgres",
                self.port
            ),
            postgres::NoTls,
        )
        .unwrap();
        c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        format!("postgresql://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// The server's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // pg_ctl stops the server by the PID in its own postmaster.pid.
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D"])
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

/// Runs `routers` simulated routers against `b` while killing its server with SIGKILL at
/// random moments (seeded: `PNP_KILL_SEED` replays a schedule); asserts every router finished,
/// no step recorded as done was done again and no router was charged a retry.
pub fn finishes_across_kill_9(b: &mut Bench, prefix: &str, routers: usize) {
    use rand::{Rng, SeedableRng};
    let seed: u64 = std::env::var("PNP_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("kill -9 schedule seed: {seed} (rerun with PNP_KILL_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut sim = b
        .simulate(routers, &["--serial-prefix", prefix])
        .spawn()
        .unwrap();
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(rng.random_range(200..2500)));
        b.kill9();
        std::thread::sleep(Duration::from_millis(rng.random_range(50..600)));
        b.start();
    }
    let status = sim.wait().unwrap();
    assert!(
        status.success(),
        "seed {seed}: not all finished after kill -9 restarts\n{}",
        b.server_log()
    );
    let log = b.server_log();
    assert!(
        !log.contains("is unreadable"),
        "seed {seed}: a record was torn: {log}"
    );
    // No step the server recorded as done is done again, and the restarts cost no router a retry.
    let mut interrupted = 0;
    let once = [
        "image-install",
        "guestshell.17.12.03a.tar -> bootflash:guestshell.17.12.03a.tar done",
        "pnp_script.py done",
        "config-upgrade",
        "python script output",
        "event manager run",
    ];
    for n in 1..=routers {
        let serial = format!("{prefix}{n:05}");
        let d = b.device(&serial).unwrap();
        let texts = history_texts(&d);
        for step in once {
            let done = texts
                .iter()
                .filter(|t| {
                    t.contains(step)
                        && (t.ends_with(" done")
                            || t.contains("succeeded")
                            || t.starts_with("python script output"))
                })
                .count();
            assert!(
                done <= 1,
                "seed {seed}: {serial} finished {step:?} {done} times:\n{texts:#?}"
            );
        }
        assert!(
            !texts.iter().any(|t| t.starts_with("attempt ")),
            "seed {seed}: {serial} was charged a retry:\n{texts:#?}"
        );
        interrupted += texts
            .iter()
            .filter(|t| t.contains("server restart"))
            .count();
    }
    eprintln!("seed {seed}: {interrupted} jobs were cut short by a kill and sent again");
}
