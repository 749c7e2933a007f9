//! Contract tests: schemathesis (PyPI) generates requests from the
//! server's and the fleet's own OpenAPI documents (`/openapi.json`) and
//! sends them to the process on a real socket; every answer must be no
//! server error (5xx) and must match the schema the document gives for its
//! status.

mod common;

use std::process::Command;

use common::fleet::{free_port, release_dir, Fleet};
use common::server::{http, start_models};

/// `schemathesis run URL` with `env` (the hooks read tokens from it):
/// (success, its output).
fn schemathesis(url: &str, env: &[(&str, &str)]) -> (bool, String) {
    let hooks = common::root().join("crates/cli/tests/contract/hooks.py");
    let o = Command::new("schemathesis")
        .args([
            "run",
            url,
            "--checks",
            "not_a_server_error,response_schema_conformance",
            "--max-examples",
            "30",
            "--request-timeout",
            "60",
            "--generation-deterministic",
        ])
        .env("SCHEMATHESIS_HOOKS", hooks.with_extension("").file_name().expect("name"))
        .env("PYTHONPATH", hooks.parent().expect("dir"))
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .output()
        .expect("schemathesis is missing: scripts/test.sh installs it (pip install schemathesis==4.32.5)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text)
}

/// "N generated, N passed" from the summary: (generated, passed).
fn cases(out: &str) -> (u64, u64) {
    let line = out
        .lines()
        .find(|l| l.contains(" generated, "))
        .unwrap_or_else(|| panic!("no test-case summary in:\n{out}"));
    let nums: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    (nums[0], nums.get(1).copied().unwrap_or(0))
}

/// Every operation of the document was selected, and every generated
/// case passed (at least `min` of them).
fn assert_all_passed(out: &str, operations: usize, min: u64) {
    let ops = format!("Selected: {n}/{n}", n = operations);
    assert!(
        out.contains(&ops),
        "not every operation was tested ({ops}):\n{out}"
    );
    let (generated, passed) = cases(out);
    // Seen with --nocapture: the figures for a closing note.
    println!("{ops}: {generated} generated, {passed} passed");
    assert!(
        generated >= min && passed == generated,
        "{generated} generated, {passed} passed:\n{out}"
    );
}

/// The document at `/openapi.json` (3.1, holding `paths`) and its offline
/// page at `/docs`, which must name `path` and `schema`: the document.
fn document(port: u16, paths: &[&str], schema: &str) -> serde_json::Value {
    let (status, doc) = http(port, "GET", "/openapi.json", "", None);
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&doc).expect("json");
    assert_eq!(v["openapi"], "3.1.0");
    let listed = v["paths"].as_object().expect("paths");
    for p in paths {
        assert!(listed.contains_key(*p), "{p} is not in the document");
    }
    let (status, page) = http(port, "GET", "/docs", "", None);
    assert_eq!(status, 200);
    assert!(
        page.contains(paths[0]) && page.contains(&format!("id=\"schema-{schema}\"")),
        "the docs page lacks {} or {schema}",
        paths[0]
    );
    assert!(
        !page.contains("<script") && !page.contains("https://"),
        "the docs page works offline"
    );
    v
}

#[test]
fn the_servers_answers_match_its_openapi_document_and_none_is_a_5xx() {
    let server = start_models(&["smollm2-135m"], &[]);
    let v = document(
        server.port,
        &[
            "/v1/chat/completions",
            "/v1/completions",
            "/v1/models",
            "/api/chat",
            "/api/generate",
            "/api/show",
            "/health",
            "/metrics",
        ],
        "ChatCompletionRequest",
    );
    let url = format!("http://127.0.0.1:{}/openapi.json", server.port);
    let (ok, out) = schemathesis(&url, &[]);
    assert!(ok, "schemathesis found failures:\n{out}");
    assert_all_passed(&out, operations(&v), 500);
}

/// The document counts operations per path; schemathesis selects each.
fn operations(doc: &serde_json::Value) -> usize {
    doc["paths"].as_object().map_or(0, |p| {
        p.values()
            .map(|ops| ops.as_object().map_or(0, |o| o.len()))
            .sum()
    })
}

#[test]
fn the_fleets_answers_match_its_openapi_document_and_none_is_a_5xx() {
    let root = std::env::temp_dir().join(format!("outpost-contract-fleet-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let data = root.join("data");
    let fleet = Fleet::start(&data, free_port(), &[]);
    // Something in every list: a release on a channel, a rollout, a device
    // that checked in, so the views the schema describes are not empty.
    fleet.publish(&release_dir(&root, "contract", "1.0.0"));
    fleet.publish(&release_dir(&root, "contract", "1.1.0"));
    fleet.admin(&["release", "contract@1.0.0", "--channel", "stable"]);
    fleet.admin(&["rollout", "create", "contract@1.1.0", "--channel", "stable"]);
    let read = |f: &str| {
        std::fs::read_to_string(data.join(f))
            .expect(f)
            .trim()
            .to_string()
    };
    let (admin, app_key) = (read("admin.token"), read("app.key"));
    let body = serde_json::json!({"app_key": app_key}).to_string();
    let (status, reg) = http(fleet.port, "POST", "/v1/devices/register", &body, None);
    assert_eq!(status, 200, "{reg}");
    let reg: serde_json::Value = serde_json::from_str(&reg).expect("json");
    let device = reg["token"].as_str().expect("token").to_string();
    let profile = serde_json::json!({"profile": {"device_class": "laptop-16gb",
        "ram_bytes": 16_000_000_000u64, "os": "linux", "app_version": "1.2.0",
        "engine_version": "0.1.0", "ggml_types": ["f32", "q4_0", "q8_0"],
        "free_disk_bytes": 10_000_000_000u64}});
    let (status, answer) = http(
        fleet.port,
        "POST",
        "/v1/devices/check-in",
        &profile.to_string(),
        Some(&device),
    );
    assert_eq!(status, 200, "{answer}");

    let v = document(
        fleet.port,
        &[
            "/v1/devices/check-in",
            "/v1/devices/register",
            "/v1/telemetry",
            "/v1/artifacts/{digest}",
            "/admin/v1/releases",
            "/admin/v1/rollouts/{id}/{action}",
            "/admin/v1/cohorts",
            "/metrics",
        ],
        "CheckInResponse",
    );
    let url = format!("http://127.0.0.1:{}/openapi.json", fleet.port);
    let (ok, out) = schemathesis(
        &url,
        &[
            ("OUTPOST_CONTRACT_ADMIN_TOKEN", &admin),
            ("OUTPOST_CONTRACT_DEVICE_TOKEN", &device),
        ],
    );
    assert!(ok, "schemathesis found failures:\n{out}");
    assert_all_passed(&out, operations(&v), 500);
    let _ = std::fs::remove_dir_all(&root);
}
