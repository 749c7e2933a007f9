//! `cargo xtask bench-fleet`: check-ins per second and latency of a real
//! `outpost fleet serve` over loopback, from simulated devices.
//!
//! Setup: a fresh data folder, two releases of a fake GGUF published with
//! the CLI, v1 on `stable` and a rollout of v2 at 50 %, N devices
//! registered. Then two phases, each device checking in with its profile:
//! first check-ins (profile stored, a manifest signed and stored per
//! device), then a steady phase of repeated check-ins for a fixed time (the
//! same manifest bytes again, last-seen stored). Every answer is written
//! to SQLite (group commit) before it is sent, in both phases.
//!
//! A third phase sends telemetry: batches of 500 inference events (unique
//! batch ids) from the devices for a fixed time; events/s is reported.
//!
//! With `--db postgres://…` the same phases run a second time on a fleet
//! whose database is that PostgreSQL (it must be empty or absent: use a new
//! database name per run), with `--replicas N` fleet processes on it (the
//! load generator's connections spread over them), and a table puts both
//! side by side with the ratio PostgreSQL / SQLite.
//!
//! The load generator is one thread (a single-threaded tokio runtime)
//! with C keep-alive connections in a closed loop, speaking HTTP/1.1 by
//! hand, so that it takes as little of the 2 cores as possible; latency is
//! measured from writing a request to reading the last byte of its answer.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Opts {
    devices: usize,
    conns: usize,
    secs: u64,
    /// A PostgreSQL database to run the same phases on, after SQLite.
    postgres: Option<String>,
    /// Fleet processes on the PostgreSQL database (SQLite: always one).
    replicas: usize,
}

fn opts(args: &[String]) -> Result<Opts> {
    let mut o = Opts {
        devices: 10_000,
        conns: 64,
        secs: 10,
        postgres: None,
        replicas: 1,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--db" {
            let url = it.next().context("--db needs a postgres://… URL")?;
            if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
                bail!("--db {url:?}: give a postgres://USER:PASSWORD@HOST:PORT/DATABASE URL (SQLite always runs first, for the ratio)");
            }
            o.postgres = Some(url.clone());
            continue;
        }
        if a == "--replicas" {
            let n = it.next().context("--replicas needs a number")?;
            o.replicas = n
                .parse()
                .ok()
                .filter(|&n| (1..=8).contains(&n))
                .with_context(|| format!("--replicas {n}: give 1 to 8"))?;
            continue;
        }
        let v: u64 = it
            .next()
            .with_context(|| format!("{a} needs a value"))?
            .parse()
            .with_context(|| format!("{a} needs a number"))?;
        match a.as_str() {
            "--devices" => o.devices = v as usize,
            "--connections" => o.conns = v as usize,
            "--seconds" => o.secs = v,
            other => bail!("unknown option {other}; use --devices N --connections N --seconds N [--db postgres://… [--replicas N]]"),
        }
    }
    if o.replicas > 1 && o.postgres.is_none() {
        bail!(
            "--replicas {} needs --db postgres://… (replicas share a PostgreSQL database)",
            o.replicas
        );
    }
    if o.devices == 0 || o.conns == 0 || o.secs == 0 {
        bail!("--devices, --connections and --seconds must be above 0");
    }
    Ok(o)
}

fn release_dir(root: &Path, version: &str) -> Result<std::path::PathBuf> {
    let dir = root.join(format!("release-{version}"));
    std::fs::create_dir_all(&dir)?;
    let mut data = b"GGUF".to_vec();
    data.extend(format!("bench weights {version} ").repeat(20_000).bytes());
    std::fs::write(dir.join("m.Q4_0.gguf"), &data)?;
    let meta = json!({
        "model": "bench-model", "version": version, "min_app_version": "1.0.0",
        "variants": [{"file": "m.Q4_0.gguf", "quantization": "Q4_0", "ggml_types": ["f32", "q4_0"],
            "memory_bytes": 200_000_000u64, "min_engine_version": "0.1.0",
            "fingerprints": [{"prompt": "The capital of France is", "position": 6, "top": [[7042, -0.25], [30, -2.5]]}]}],
        "classes": {"default": {"variant": "Q4_0", "n_ctx": 2048, "kv_cache_type": "q8_0", "threads": 4}}
    });
    std::fs::write(dir.join("release.json"), meta.to_string())?;
    Ok(dir)
}

fn cli(outpost: &Path, data: &Path, url: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(outpost)
        .arg("fleet")
        .args(args)
        .args(["--url", url, "--data"])
        .arg(data)
        .output()?;
    if !out.status.success() {
        bail!(
            "outpost fleet {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn profile(i: usize) -> Value {
    let classes = ["phone-4gb", "phone-8gb", "laptop-16gb"];
    json!({"profile": {
        "device_class": classes[i % 3], "ram_bytes": 8_000_000_000u64,
        "cpu_features": ["neon", "dotprod", "i8mm"], "accelerator": "adreno-740",
        "os": if i % 2 == 0 { "android" } else { "ios" }, "os_version": "14",
        "app_version": "2.3.1", "engine_version": "0.1.0",
        "ggml_types": ["f32", "f16", "q4_0", "q4_1", "q8_0", "q4_K", "q6_K"],
        "region": "eu-west", "free_disk_bytes": 20_000_000_000u64,
    }})
}

/// One HTTP/1.1 keep-alive connection, spoken by hand.
struct Conn {
    s: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(addr: &str) -> Result<Conn> {
        let s = tokio::net::TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        Ok(Conn {
            s,
            buf: Vec::with_capacity(8192),
        })
    }

    async fn write_all(&mut self, mut b: &[u8]) -> Result<()> {
        while !b.is_empty() {
            self.s.writable().await?;
            match self.s.try_write(b) {
                Ok(n) => b = &b[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    async fn fill(&mut self) -> Result<()> {
        let mut chunk = [0u8; 16384];
        loop {
            self.s.readable().await?;
            match self.s.try_read(&mut chunk) {
                Ok(0) => bail!("connection closed"),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Sends one request; returns (status, body).
    async fn request(&mut self, req: &[u8]) -> Result<(u16, Vec<u8>)> {
        self.write_all(req).await?;
        let head_end = loop {
            if let Some(p) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            self.fill().await?;
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).to_string();
        let status: u16 = head
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .context("status line")?;
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .context("content-length")?;
        while self.buf.len() < head_end + len {
            self.fill().await?;
        }
        let body = self.buf[head_end..head_end + len].to_vec();
        self.buf.drain(..head_end + len);
        Ok((status, body))
    }
}

fn post(path: &str, auth: Option<&str>, body: &str) -> Vec<u8> {
    let auth = auth
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    format!(
        "POST {path} HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n{auth}content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

struct Phase {
    n: usize,
    secs: f64,
    lat_us: Vec<u64>,
    errors: usize,
}

impl Phase {
    fn rate(&self) -> f64 {
        self.n as f64 / self.secs
    }

    fn p99_ms(&mut self) -> f64 {
        self.lat_us.sort_unstable();
        let i = ((self.lat_us.len() as f64 * 0.99).ceil() as usize).saturating_sub(1);
        self.lat_us.get(i).copied().unwrap_or(0) as f64 / 1000.0
    }

    fn report(&mut self, name: &str) {
        self.lat_us.sort_unstable();
        let q = |p: f64| {
            let i = ((self.lat_us.len() as f64 * p).ceil() as usize).saturating_sub(1);
            self.lat_us.get(i).copied().unwrap_or(0) as f64 / 1000.0
        };
        println!(
            "{name:<22} {:>8} in {:>6.2} s = {:>8.0}/s   p50 {:>6.2} ms   p99 {:>6.2} ms   max {:>7.2} ms   errors {}",
            self.n,
            self.secs,
            self.n as f64 / self.secs,
            q(0.50),
            q(0.99),
            q(1.0),
            self.errors
        );
    }
}

/// Closed loop over `conns` connections: each takes the next device (in
/// order, wrapping) until `count` requests are done or `until` passes.
async fn drive(
    addrs: &[String],
    tokens: &[String],
    conns: usize,
    count: Option<usize>,
    until: Option<Instant>,
) -> Result<Phase> {
    let bodies: Vec<String> = (0..tokens.len()).map(|i| profile(i).to_string()).collect();
    let next = std::rc::Rc::new(std::cell::Cell::new(0usize));
    let t0 = Instant::now();
    let local = tokio::task::LocalSet::new();
    let mut handles = Vec::new();
    for k in 0..conns {
        // Connections spread over the replicas.
        let (next, tokens, bodies, addr) = (
            next.clone(),
            tokens.to_vec(),
            bodies.clone(),
            addrs[k % addrs.len()].clone(),
        );
        handles.push(local.spawn_local(async move {
            let mut c = Conn::open(&addr).await?;
            let mut lat = Vec::new();
            let mut errors = 0;
            loop {
                let i = next.get();
                if count.is_some_and(|n| i >= n) || until.is_some_and(|u| Instant::now() >= u) {
                    break;
                }
                next.set(i + 1);
                let k = i % tokens.len();
                let req = post("/v1/devices/check-in", Some(&tokens[k]), &bodies[k]);
                let t = Instant::now();
                let (status, _) = c.request(&req).await?;
                lat.push(t.elapsed().as_micros() as u64);
                if status != 200 {
                    errors += 1;
                }
            }
            Ok::<_, anyhow::Error>((lat, errors))
        }));
    }
    merge(local, handles, t0).await
}

/// Runs every connection task of a phase to its end; one [`Phase`] of all
/// their latencies and errors, timed from `t0`.
async fn merge(
    local: tokio::task::LocalSet,
    handles: Vec<tokio::task::JoinHandle<Result<(Vec<u64>, usize)>>>,
    t0: Instant,
) -> Result<Phase> {
    let results = local
        .run_until(async move {
            let mut out = Vec::new();
            for h in handles {
                out.push(h.await);
            }
            out
        })
        .await;
    let mut phase = Phase {
        n: 0,
        secs: t0.elapsed().as_secs_f64(),
        lat_us: Vec::new(),
        errors: 0,
    };
    for r in results {
        let (lat, errors) = r.context("connection task")??;
        phase.n += lat.len();
        phase.lat_us.extend(lat);
        phase.errors += errors;
    }
    Ok(phase)
}

/// Events per telemetry batch.
const BATCH: usize = 500;

/// A batch of `BATCH` inference events of bench-model@v1, stamped now.
fn batch(device_id: &str, id: usize) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let at = outpost_protocol::Timestamp::from_unix_seconds(now);
    let events: Vec<Value> = (0..BATCH)
        .map(|k| {
            json!({"at": at, "model": "bench-model", "model_version": "v1",
                "model_digest": outpost_protocol::Digest::sha256(b"bench").to_string(),
                "engine_version": "0.1.0", "app_version": "2.0.0", "kind": "inference",
                "data": {"ttft_ms": 40.0 + (k % 50) as f64, "latency_ms": 500.0 + (k % 300) as f64,
                    "tokens": 64, "tok_s": 30.0 + (k % 40) as f64, "cached_tokens": 0}})
        })
        .collect();
    json!({"batch_id": format!("bench-{id}"), "device_id": device_id, "events": events}).to_string()
}

/// Telemetry batches over `conns` connections until `until`.
async fn telemetry(
    addrs: &[String],
    devices: &[(String, String)],
    conns: usize,
    until: Instant,
) -> Result<Phase> {
    // Bodies are made ahead, so the generator measures the server.
    let bodies: Vec<String> = (0..devices.len().min(256))
        .map(|i| batch(&devices[i].0, i))
        .collect();
    let next = std::rc::Rc::new(std::cell::Cell::new(0usize));
    let t0 = Instant::now();
    let local = tokio::task::LocalSet::new();
    let mut handles = Vec::new();
    for k in 0..conns {
        let (next, devices, bodies, addr) = (
            next.clone(),
            devices.to_vec(),
            bodies.clone(),
            addrs[k % addrs.len()].clone(),
        );
        handles.push(local.spawn_local(async move {
            let mut c = Conn::open(&addr).await?;
            let (mut lat, mut errors) = (Vec::new(), 0);
            while Instant::now() < until {
                let i = next.get();
                next.set(i + 1);
                let k = i % bodies.len();
                // A new batch id per round: replace the id in the body.
                let body =
                    bodies[k].replacen(&format!("\"bench-{k}\""), &format!("\"bench-{k}-{i}\""), 1);
                let req = post("/v1/telemetry", Some(&devices[k].1), &body);
                let t = Instant::now();
                let (status, b) = c.request(&req).await?;
                lat.push(t.elapsed().as_micros() as u64);
                if status != 200 || !String::from_utf8_lossy(&b).contains("\"accepted\":500") {
                    errors += 1;
                }
            }
            Ok::<_, anyhow::Error>((lat, errors))
        }));
    }
    merge(local, handles, t0).await
}

/// One backend's phases: (name, per second, p99 ms).
type Results = Vec<(&'static str, f64, f64)>;

pub fn run(outpost: &Path, args: &[String]) -> Result<()> {
    let o = opts(args)?;
    let sqlite = run_one(outpost, &o, None)?;
    let Some(pg) = &o.postgres else {
        return Ok(());
    };
    let postgres = run_one(outpost, &o, Some(pg))?;
    println!();
    println!(
        "                       SQLite /s   PostgreSQL /s   ratio   SQLite p99   PostgreSQL p99"
    );
    for ((name, s_rate, s_p99), (_, p_rate, p_p99)) in sqlite.iter().zip(&postgres) {
        println!(
            "{name:<22} {s_rate:>9.0}   {p_rate:>13.0}   {:>5.2}   {s_p99:>7.2} ms   {p_p99:>11.2} ms",
            p_rate / s_rate
        );
    }
    Ok(())
}

fn run_one(outpost: &Path, o: &Opts, db: Option<&str>) -> Result<Results> {
    println!();
    println!(
        "== database: {} ==",
        if db.is_some() {
            "PostgreSQL (--db)"
        } else {
            "SQLite (the default)"
        }
    );
    let root = std::env::temp_dir().join(format!(
        "outpost-bench-fleet-{}-{}",
        std::process::id(),
        if db.is_some() { "pg" } else { "sqlite" }
    ));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)?;
    let data = root.join("data");
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let start = |data: &Path, port: u16| -> Result<Proc> {
        let p = Proc(
            Command::new(outpost)
                .args(["fleet", "serve", "--port", &port.to_string(), "--data"])
                .arg(data)
                .args(db.map(|u| vec!["--db", u]).unwrap_or_default())
                .stderr(Stdio::null())
                .spawn()
                .context("starting outpost fleet serve")?,
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        while ureq::get(&format!("http://127.0.0.1:{port}/health"))
            .call()
            .is_err()
        {
            if Instant::now() > deadline {
                bail!("fleet did not start");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(p)
    };
    let server = start(&data, port)?;
    // More replicas: each its own folder with the first one's key files
    // (signing key, admin token, app key), on the same database.
    let replicas = if db.is_some() { o.replicas } else { 1 };
    let mut others = Vec::new();
    let mut addrs = vec![format!("127.0.0.1:{port}")];
    for r in 1..replicas {
        let dir = root.join(format!("replica-{r}"));
        std::fs::create_dir_all(&dir)?;
        for f in ["signing.key", "signing.pub.json", "admin.token", "app.key"] {
            std::fs::copy(data.join(f), dir.join(f)).with_context(|| format!("copying {f}"))?;
        }
        let p = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        others.push(start(&dir, p)?);
        addrs.push(format!("127.0.0.1:{p}"));
    }
    for v in ["v1", "v2"] {
        let dir = release_dir(&root, v)?;
        cli(
            outpost,
            &data,
            &url,
            &["publish", dir.to_str().context("utf8 path")?],
        )?;
    }
    cli(
        outpost,
        &data,
        &url,
        &["release", "bench-model@v1", "--channel", "stable"],
    )?;
    cli(
        outpost,
        &data,
        &url,
        &[
            "rollout",
            "create",
            "bench-model@v2",
            "--stages",
            "50,100",
            "--soak",
            "1d",
        ],
    )?;
    let app_key = std::fs::read_to_string(data.join("app.key"))?
        .trim()
        .to_string();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let addr = format!("127.0.0.1:{port}");
    println!(
        "fleet bench: {} devices, {} connections, {} s steady phase, {} fleet process(es) and the load generator on this machine ({} cores)",
        o.devices,
        o.conns,
        o.secs,
        addrs.len(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let devices: Vec<(String, String)> = rt.block_on(async {
        let mut c = Conn::open(&addr).await?;
        let body = json!({"app_key": app_key}).to_string();
        let mut tokens = Vec::with_capacity(o.devices);
        for _ in 0..o.devices {
            let (status, b) = c
                .request(&post("/v1/devices/register", None, &body))
                .await?;
            if status != 200 {
                bail!("register: {status} {}", String::from_utf8_lossy(&b));
            }
            let v: Value = serde_json::from_slice(&b)?;
            tokens.push((
                v["device_id"].as_str().context("device_id")?.to_string(),
                v["token"].as_str().context("token")?.to_string(),
            ));
        }
        Ok::<_, anyhow::Error>(tokens)
    })?;
    let tokens: Vec<String> = devices.iter().map(|d| d.1.clone()).collect();
    let mut first = rt.block_on(drive(&addrs, &tokens, o.conns, Some(o.devices), None))?;
    first.report("first check-in");
    let until = Instant::now() + Duration::from_secs(o.secs);
    let mut steady = rt.block_on(drive(&addrs, &tokens, o.conns, None, Some(until)))?;
    steady.report("steady check-ins");
    let until = Instant::now() + Duration::from_secs(o.secs);
    let mut tele = rt.block_on(telemetry(&addrs, &devices, o.conns.min(16), until))?;
    let batches = tele.n;
    tele.n *= BATCH;
    tele.report("telemetry events");
    println!("  ({batches} batches of {BATCH} events; latency is per batch)");
    let status: Value = ureq::get(&format!("{url}/admin/v1/status"))
        .set(
            "authorization",
            &format!(
                "Bearer {}",
                std::fs::read_to_string(data.join("admin.token"))?.trim()
            ),
        )
        .call()?
        .into_json()?;
    let on_v2 = status["rollouts"][0]["devices_on_release"]
        .as_u64()
        .unwrap_or(0);
    println!("devices on the 50 % rollout: {on_v2} of {}", o.devices);
    // The server's memory (Linux): resident now and at its peak.
    if let Ok(st) = std::fs::read_to_string(format!("/proc/{}/status", server.0.id())) {
        let kb = |key: &str| {
            st.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        println!(
            "server memory: {} MiB resident, {} MiB peak",
            kb("VmRSS:") / 1024,
            kb("VmHWM:") / 1024
        );
    }
    let results = vec![
        ("first check-in", first.rate(), first.p99_ms()),
        ("steady check-ins", steady.rate(), steady.p99_ms()),
        ("telemetry events", tele.rate(), tele.p99_ms()),
    ];
    if first.errors + steady.errors + tele.errors > 0 {
        bail!(
            "{} requests failed",
            first.errors + steady.errors + tele.errors
        );
    }
    drop(server);
    drop(others);
    let _ = std::fs::remove_dir_all(&root);
    Ok(results)
}
