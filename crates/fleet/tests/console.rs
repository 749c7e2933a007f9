//! The fleet console (#22) in real headless Chromium (Debian's chromium +
//! chromium-driver, driven over WebDriver with fantoccini), against a
//! fleet served on a loopback socket with 1 000 registered devices and a
//! staged rollout: an operator signs in, sees the fleet, and pauses the
//! rollout with the keyboard through the confirmation dialog, and the page
//! follows a resume made elsewhere by itself; a viewer has no such button and
//! the API answers the page 403; an admin creates an API token (which then
//! works) and revokes it (which then fails). Every page is screenshotted
//! at 1280 px and 390 px into `target/console-screenshots/`, and each
//! page's render time is printed (never asserted). Without the browser
//! this test fails: run scripts/ensure-browser.sh.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use outpost_fleet::api::CreateUser;
use outpost_fleet::{Fleet, SystemClock};
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery";

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

fn shots_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/console-screenshots");
    std::fs::create_dir_all(&d).expect("screenshot folder");
    d
}

async fn browser() -> (Driver, Client) {
    let port = free_port();
    let driver = Driver(
        Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver did not start: run scripts/ensure-browser.sh"),
    );
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"binary": "/usr/bin/chromium", "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,900"]}),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await;
        match c {
            Ok(c) => return (driver, c),
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("no WebDriver session (run scripts/ensure-browser.sh): {e}"),
        }
    }
}

/// Browser tests one at a time (each has its own Chromium).
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A fleet on a loopback socket: two releases, `n` devices on the first,
/// a staged rollout of the second, and one user per role.
async fn fleet(n: usize) -> (TempDir, Arc<Fleet>, String, u64) {
    let dir = TempDir::new("console");
    let mut cfg = config(&dir);
    cfg.admin_token = Some(ADMIN.into());
    let fleet = Fleet::open(cfg, Arc::new(SystemClock))
        .await
        .expect("fleet opens");
    let t = TestFleet {
        fleet: fleet.clone(),
        clock: Arc::new(outpost_fleet::ManualClock::new(T0)),
        dir: TempDir(dir.0.clone()),
    };
    publish(&t, "smollm2-135m", "1.0.0", "0.1.0").await;
    publish(&t, "smollm2-135m", "1.1.0", "0.1.0").await;
    release_on_stable(&t, "smollm2-135m", "1.0.0").await;
    const CLASSES: [&str; 4] = ["phone-4gb", "phone-8gb", "laptop-16gb", "tablet-6gb"];
    let classes = CLASSES;
    // Registered and checked in 500 at a time (the fleet's group commit
    // writes each wave in a few transactions).
    let mut devices = Vec::new();
    let app_key = fleet.app_key().to_string();
    for wave in (0..n).collect::<Vec<_>>().chunks(500) {
        let mut set = tokio::task::JoinSet::new();
        for &i in wave {
            let (f, key) = (fleet.clone(), app_key.clone());
            set.spawn(async move {
                let reg = json!({"app_key": key, "channel": "stable"});
                let v = one(&f, "/v1/devices/register", None, reg).await;
                let d = (
                    v["device_id"].as_str().expect("id").to_string(),
                    v["token"].as_str().expect("token").to_string(),
                );
                let body = json!({"profile": profile(CLASSES[i % 4])});
                one(&f, "/v1/devices/check-in", Some(&d.1), body).await;
                (i, d)
            });
        }
        let mut got: Vec<_> = set.join_all().await;
        got.sort_by_key(|(i, _)| *i);
        devices.extend(got.into_iter().map(|(_, d)| d));
    }
    let r = start_rollout(&t, "smollm2-135m", "1.1.0", &[10, 50, 100], 3600).await;
    let rollout = r["id"].as_u64().expect("rollout id");
    // A day of telemetry from 100 devices, for the time series; then the
    // ones the rollout picked report from the new release.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    for (n, d) in devices.iter().take(100).enumerate() {
        let a = check_in(&t, &d.1, profile(classes[n % 4]), "smollm2-135m").await;
        let version = a["model_version"].as_str().unwrap_or("1.0.0").to_string();
        let mut events: Vec<Value> = (0..24)
            .map(|h| {
                let at = outpost_protocol::Timestamp::from_unix_seconds(now - h * 3000 - n as u64);
                json!({"at": at, "model": "smollm2-135m", "model_version": version,
                    "model_digest": outpost_protocol::Digest::sha256(version.as_bytes()).to_string(),
                    "engine_version": "0.1.0", "app_version": "2.0.0", "kind": "inference",
                    "data": {"ttft_ms": 40.0 + (h as f64) + (n % 7) as f64, "latency_ms": 900.0, "tokens": 32, "tok_s": 60.0 - (n % 5) as f64}})
            })
            .collect();
        // phone-4gb crashes (an alert on the overview); every device
        // reports its peak memory once.
        let event = |kind: &str, data: Value| {
            json!({"at": outpost_protocol::Timestamp::from_unix_seconds(now - 5), "model": "smollm2-135m",
                "model_version": version, "model_digest": outpost_protocol::Digest::sha256(version.as_bytes()).to_string(),
                "engine_version": "0.1.0", "app_version": "2.0.0", "kind": kind, "data": data})
        };
        if n % 4 == 0 {
            events.push(event("crash", json!({"reason": "oom"})));
        }
        events.push(event(
            "memory_peak",
            json!({"bytes": 300_000_000u64 + n as u64 * 1_000_000}),
        ));
        let (s, v) = call(
            &t,
            "POST",
            "/v1/telemetry",
            Some(&d.1),
            Some(json!({"batch_id": format!("b{n}"), "device_id": d.0, "events": events})),
        )
        .await;
        assert!(s.is_success(), "{v}");
    }
    for (name, role) in [
        ("ada", outpost_fleet::access::Role::Admin),
        ("olivia", outpost_fleet::access::Role::Operator),
        ("victor", outpost_fleet::access::Role::Viewer),
    ] {
        fleet
            .create_user(
                "admin",
                CreateUser {
                    name: name.into(),
                    role,
                    password: PASSWORD.into(),
                },
            )
            .await
            .expect("user");
    }
    std::mem::forget(t); // `dir` removes the folder
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let f = fleet.clone();
    tokio::spawn(async move {
        let _ = outpost_fleet::serve(listener, f, std::future::pending()).await;
    });
    (dir, fleet, url, rollout)
}

/// One POST through the router; its JSON answer (a success, or panics).
async fn one(f: &Arc<Fleet>, path: &str, token: Option<&str>, body: Value) -> Value {
    let (s, v) = call_fleet(f, "POST", path, token, body.to_string().into_bytes()).await;
    assert!(s.is_success(), "POST {path}: {v}");
    v
}

async fn wait_css(c: &Client, css: &str) -> fantoccini::elements::Element {
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} never appeared: {e}"))
}

async fn type_into(c: &Client, css: &str, text: &str) {
    wait_css(c, css)
        .await
        .send_keys(text)
        .await
        .unwrap_or_else(|e| panic!("typing into {css}: {e}"));
}

async fn click(c: &Client, css: &str) {
    wait_css(c, css)
        .await
        .click()
        .await
        .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
}

async fn sign_in(c: &Client, url: &str, name: &str) {
    c.delete_all_cookies().await.expect("cookies");
    c.goto(url).await.expect("goto");
    wait_css(c, "form#login").await;
    type_into(c, "form#login input[name='name']", name).await;
    type_into(c, "form#login input[name='password']", PASSWORD).await;
    click(c, "form#login button[type='submit']").await;
    wait_css(c, "body[data-page='overview']").await;
}

/// Opens `#/page`, waits for it and saves a screenshot at both widths;
/// returns the page's render time in ms.
async fn visit(c: &Client, url: &str, page: &str, shot: &str) -> u64 {
    c.set_window_size(1280, 900).await.expect("size");
    c.goto(&format!("{url}/#/{page}")).await.expect("goto");
    let name = page.split(['/', '?']).next().unwrap_or(page);
    wait_css(c, &format!("body[data-page='{name}'] main h1")).await;
    let ms = c
        .execute("return Number(document.body.dataset.renderMs)", vec![])
        .await
        .expect("render time")
        .as_u64()
        .unwrap_or(0);
    let dir = shots_dir();
    std::fs::write(
        dir.join(format!("{shot}-1280.png")),
        c.screenshot().await.expect("shot"),
    )
    .expect("write");
    c.set_window_size(390, 844).await.expect("size");
    // The page must still fit: nothing wider than the window but tables,
    // which scroll inside their own box.
    let overflow = c
        .execute(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth",
            vec![],
        )
        .await
        .expect("width");
    assert!(
        overflow.as_i64().unwrap_or(0) <= 1,
        "{page} overflows 390 px by {overflow}"
    );
    std::fs::write(
        dir.join(format!("{shot}-390.png")),
        c.screenshot().await.expect("shot"),
    )
    .expect("write");
    c.set_window_size(1280, 900).await.expect("size");
    ms
}

/// Confirms the open dialog with `reason`.
async fn confirm(c: &Client, reason: Option<&str>) {
    wait_css(c, "dialog#confirm[open]").await;
    if let Some(r) = reason {
        c.find(Locator::Css("#confirm-reason"))
            .await
            .expect("reason")
            .send_keys(r)
            .await
            .expect("type");
    }
    c.find(Locator::Css("#confirm-ok"))
        .await
        .expect("ok")
        .click()
        .await
        .expect("click");
}

/// What the page's own fetch of `method path` (with its CSRF token)
/// answers: the status code.
async fn page_fetch(c: &Client, method: &str, path: &str) -> u64 {
    c.execute_async(
        "const [m, p, done] = arguments; fetch(p, {method: m, credentials: 'same-origin', headers: {'content-type': 'application/json', 'x-csrf-token': sessionStorage.getItem('outpost-csrf') || ''}, body: m === 'GET' ? undefined : '{\"reason\": \"from a script\"}'}).then(r => done(r.status));",
        vec![json!(method), json!(path)],
    )
    .await
    .expect("fetch")
    .as_u64()
    .expect("status")
}

fn whoami(url: &str, token: &str) -> u16 {
    match ureq::get(&format!("{url}/admin/v1/whoami"))
        .set("authorization", &format!("Bearer {token}"))
        .call()
    {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(s, _)) => s,
        Err(e) => panic!("whoami: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_viewer_and_admin_in_headless_chromium() {
    let _one = ONE_BROWSER.lock().await;
    let (_dir, fleet, url, rollout) = fleet(1000).await;
    let (_driver, c) = browser().await;
    c.goto(&url).await.expect("goto");
    wait_css(&c, "form#login").await;
    std::fs::write(
        shots_dir().join("login-1280.png"),
        c.screenshot().await.expect("shot"),
    )
    .expect("write");

    // The operator: the fleet at a glance, every page, then a pause.
    sign_in(&c, &url, "olivia").await;
    let cards = wait_css(&c, ".cards").await.text().await.expect("cards");
    assert!(cards.contains("1000"), "{cards}");
    let alerts = wait_css(&c, "main").await.text().await.expect("text");
    assert!(
        alerts.contains("in the last hour: smollm2-135m@1.0.0 on phone-4gb"),
        "{alerts}"
    );
    let device = fleet.list_devices(None, None, 1, 0).devices[0].id.clone();
    let mut timings = Vec::new();
    for (page, shot) in [
        ("overview", "overview"),
        ("fragmentation", "fragmentation"),
        ("rollouts", "rollouts"),
        ("cohorts", "cohorts"),
        ("devices", "devices"),
        (&format!("device/{device}") as &str, "device"),
        ("releases", "releases"),
        ("audit", "audit"),
    ] {
        timings.push((shot, visit(&c, &url, page, shot).await));
    }
    eprintln!("render ms with 1000 devices (Chromium, this machine): {timings:?}");
    // One class's series: the filter is kept in the page's address.
    timings.push((
        "cohorts-class",
        visit(&c, &url, "cohorts?class=phone-4gb", "cohorts-phone-4gb").await,
    ));
    let picked = c
        .execute("return document.getElementById('only-class').value", vec![])
        .await
        .expect("value");
    assert_eq!(picked, json!("phone-4gb"));
    c.goto(&format!("{url}/#/rollouts")).await.expect("goto");
    // By keyboard: Enter on the focused button, the reason typed, Enter.
    wait_css(
        &c,
        &format!("button[data-action='pause'][data-rollout='{rollout}']"),
    )
    .await
    .send_keys("\u{E007}")
    .await
    .expect("Enter on pause");
    wait_css(&c, "dialog#confirm[open]").await;
    type_into(&c, "#confirm-reason", "crash rate on phone-4gb\u{E007}").await;
    wait_css(
        &c,
        &format!("button[data-action='resume'][data-rollout='{rollout}']"),
    )
    .await;
    let state = fleet.rollout(rollout).expect("rollout").rollout.state;
    assert_eq!(state.as_str(), "paused");
    assert!(
        c.find(Locator::Css("#kill-switch")).await.is_err(),
        "an operator has no kill switch"
    );
    // The page follows the rollout by itself: resumed elsewhere (the API),
    // the Pause button is back without a reload.
    let resumed = ureq::post(&format!("{url}/admin/v1/rollouts/{rollout}/resume"))
        .set("authorization", &format!("Bearer {ADMIN}"))
        .send_json(json!({"reason": "looked fine"}));
    assert!(resumed.is_ok(), "{resumed:?}");
    let seen = Instant::now();
    wait_css(
        &c,
        &format!("button[data-action='pause'][data-rollout='{rollout}']"),
    )
    .await;
    eprintln!(
        "the rollouts page showed the resume after {:?}",
        seen.elapsed()
    );

    // The viewer: no action buttons, and the API refuses the page's call.
    sign_in(&c, &url, "victor").await;
    visit(&c, &url, "rollouts", "rollouts-viewer").await;
    let buttons = c
        .find_all(Locator::Css("button[data-action]"))
        .await
        .expect("find");
    assert!(
        buttons.is_empty(),
        "a viewer sees {} action buttons",
        buttons.len()
    );
    assert_eq!(
        page_fetch(&c, "POST", &format!("/admin/v1/rollouts/{rollout}/resume")).await,
        403
    );
    assert!(
        c.find(Locator::Css("nav a[href='#/tokens']"))
            .await
            .expect("link")
            .is_displayed()
            .await
            .expect("displayed")
            == false,
        "a viewer has no tokens page"
    );

    // The admin: a token is created, works, is revoked, stops working.
    sign_in(&c, &url, "ada").await;
    visit(&c, &url, "tokens", "tokens").await;
    wait_css(&c, "form#token-form").await;
    type_into(&c, "form#token-form input[name='name']", "ci-bot").await;
    c.find(Locator::Css("form#token-form select[name='role']"))
        .await
        .expect("role")
        .select_by_value("operator")
        .await
        .expect("select");
    click(&c, "form#token-form button[type='submit']").await;
    let secret = wait_css(&c, "#token-secret")
        .await
        .text()
        .await
        .expect("secret");
    assert!(secret.starts_with("opt_"), "{secret}");
    std::fs::write(
        shots_dir().join("tokens-created-1280.png"),
        c.screenshot().await.expect("shot"),
    )
    .expect("write");
    assert_eq!(whoami(&url, &secret), 200);
    let id = fleet
        .tokens()
        .into_iter()
        .find(|t| t.name == "ci-bot")
        .expect("the token")
        .id;
    wait_css(&c, &format!("button[data-revoke='{id}']"))
        .await
        .click()
        .await
        .expect("revoke");
    confirm(&c, None).await;
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath("//td[text()='revoked']"))
        .await
        .expect("shown revoked");
    assert_eq!(whoami(&url, &secret), 401);
    // The audit log names each of them.
    let audit: Vec<Value> = fleet
        .audit_log(100, None)
        .await
        .expect("audit")
        .into_iter()
        .map(|a| serde_json::to_value(a).expect("json"))
        .collect();
    let by = |actor: &str, action: &str| {
        audit
            .iter()
            .any(|a| a["actor"] == actor && a["action"] == action)
    };
    assert!(by("user:olivia", "rollout.pause"), "{audit:?}");
    let pause = audit
        .iter()
        .find(|a| a["action"] == "rollout.pause")
        .expect("pause");
    assert_eq!(pause["detail"]["from"], "127.0.0.1", "where from: {pause}");
    assert!(by("user:ada", "token.create") && by("user:ada", "token.revoke"));
    c.close().await.expect("close");
}

/// Every page with 10 000 devices: the content is there; the render times
/// (fetch + draw, in the page) are printed for the closing note.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_renders_with_ten_thousand_devices() {
    let _one = ONE_BROWSER.lock().await;
    let started = Instant::now();
    let (_dir, fleet, url, _) = fleet(10_000).await;
    eprintln!(
        "10 000 devices registered and checked in: {:?}",
        started.elapsed()
    );
    let (_driver, c) = browser().await;
    sign_in(&c, &url, "olivia").await;
    let cards = wait_css(&c, ".cards").await.text().await.expect("cards");
    assert!(cards.contains("10000"), "{cards}");
    let device = fleet.list_devices(None, None, 1, 0).devices[0].id.clone();
    let mut timings = Vec::new();
    for page in [
        "overview",
        "fragmentation",
        "rollouts",
        "cohorts",
        "devices",
        &format!("device/{device}") as &str,
        "releases",
        "audit",
    ] {
        let name = page.split('/').next().unwrap_or(page).to_string();
        timings.push((
            name.clone(),
            visit(&c, &url, page, &format!("10k-{name}")).await,
        ));
    }
    let text = wait_css(&c, "main").await.text().await.expect("text");
    assert!(!text.contains("Something went wrong"), "{text}");
    c.goto(&format!("{url}/#/devices")).await.expect("goto");
    let shown = wait_css(&c, "body[data-page='devices'] main p")
        .await
        .text()
        .await
        .expect("p");
    assert!(shown.starts_with("10000 devices"), "{shown}");
    eprintln!("render ms with 10 000 devices (Chromium, this machine): {timings:?}");
    c.close().await.expect("close");
}
