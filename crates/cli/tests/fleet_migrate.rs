//! `outpost fleet migrate` (#21) between real processes: a fleet on the
//! default SQLite file gets releases, a rollout, 200 simulated devices with
//! telemetry, a user and an API token; its database is copied while it
//! runs into PostgreSQL (when `OUTPOST_FLEET_TEST_DB` names a server, as
//! `scripts/test.sh` sets it) or into another SQLite file; the fleet
//! restarted on the copy answers the same: devices, releases, rollouts,
//! cohorts, audit log, and the token and the password still work. A second
//! copy into the same target is refused by name and leaves it unchanged.

mod common;

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use common::fleet::{free_port, release_dir, Fleet as Server};
use common::MODEL;

fn outpost(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_outpost"))
        .args(args)
        .output()
        .expect("run outpost")
}

/// What a restarted fleet must answer the same.
fn picture(server: &Server) -> Vec<Value> {
    let mut devices = server.admin(&["devices", "--limit", "1000"]);
    if let Some(list) = devices["devices"].as_array_mut() {
        // Last-seen is stored; nothing else in the list moves by itself.
        list.sort_by_key(|d| d["id"].as_str().unwrap_or("").to_string());
    }
    // Distinct devices per cohort are counted in memory only (they start
    // from zero after any restart, see outpost_fleet::telemetry); the
    // stored aggregates must match.
    let mut cohorts = server.admin(&["cohorts", "--minutes", "1440"]);
    for c in cohorts.as_array_mut().into_iter().flatten() {
        c.as_object_mut().map(|o| o.remove("devices"));
    }
    // Adoption over time is sampled up to "now", which moves on.
    let mut fragmentation = server.admin(&["fragmentation"]);
    fragmentation.as_object_mut().map(|o| o.remove("adoption"));
    vec![
        devices,
        server.admin(&["rollout", "list"]),
        fragmentation,
        cohorts,
        server.admin(&["audit", "--limit", "500"]),
        server.admin(&["user", "list"]),
        server.admin(&["token", "list"]),
    ]
}

fn target_url(root: &Path) -> String {
    match std::env::var("OUTPOST_FLEET_TEST_DB") {
        Ok(server) if !server.is_empty() => format!(
            "{}/outpost_migrate_{}_{}",
            server.trim_end_matches('/'),
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0)
        ),
        _ => format!("sqlite:{}", root.join("copy.db").display()),
    }
}

#[test]
fn a_running_fleet_is_copied_into_another_database_and_restarts_on_it() {
    let root = std::env::temp_dir().join(format!("outpost-fleet-migrate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("dir");
    let data = root.join("fleet");
    let mut server = Server::start(&data, free_port(), &[]);
    for v in ["v1", "v2"] {
        server.publish(&release_dir(&root, MODEL, v));
    }
    server.release_to_stable("v1");
    server.admin(&[
        "rollout",
        "create",
        &format!("{MODEL}@v2"),
        "--stages",
        "10,50,100",
        "--soak",
        "1d",
    ]);
    server.admin(&["simulate", "--devices", "200", "--rounds", "2"]);
    let added = Command::new(env!("CARGO_BIN_EXE_outpost"))
        .args([
            "fleet",
            "user",
            "add",
            "maria",
            "--role",
            "viewer",
            "--password-stdin",
        ])
        .args(["--url", &server.url, "--data"])
        .arg(&data)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .expect("stdin")
                .write_all(b"a long enough password\n")?;
            c.wait()
        })
        .expect("user add");
    assert!(added.success());
    let token = server.admin(&["token", "create", "ci", "--role", "operator"]);
    let secret = token["token"].as_str().expect("token secret").to_string();
    // The telemetry the simulator sent is flushed within a tick.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let before = picture(&server);
    assert!(
        before[0]["devices"]
            .as_array()
            .is_some_and(|d| d.len() == 200),
        "200 devices registered: {}",
        before[0]
    );
    assert!(
        before[3].as_array().is_some_and(|c| !c.is_empty()),
        "cohorts have telemetry: {}",
        before[3]
    );

    // Copied while the fleet runs.
    let from = format!("sqlite:{}", data.join("fleet.db").display());
    let to = target_url(&root);
    let o = outpost(&["fleet", "migrate", "--from", &from, "--to", &to]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "migrate: {}{out}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("devices") && out.contains("200"), "{out}");
    assert!(
        !out.contains(":outpost@"),
        "the password is not shown: {out}"
    );

    // The same fleet (its keys stay in --data) restarted on the copy.
    server.restart(&["--db", &to]);
    let after = picture(&server);
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b, a, "the copy answers the same");
    }
    let who = Command::new(env!("CARGO_BIN_EXE_outpost"))
        .args([
            "fleet",
            "status",
            "--json",
            "--url",
            &server.url,
            "--token",
            &secret,
        ])
        .output()
        .expect("status");
    assert!(
        who.status.success(),
        "the API token works on the copy: {}",
        String::from_utf8_lossy(&who.stderr)
    );
    // New audit entries go on after the copied ones.
    server.admin(&["rollout", "pause", "1"]);
    let audit = server.admin(&["audit", "--limit", "1"]);
    let newest = audit[0]["id"].as_u64().expect("id");
    let copied_max = before[4][0]["id"].as_u64().expect("id");
    assert!(newest > copied_max, "{newest} > {copied_max}");

    // A second copy into it is refused, naming the problem, and changes nothing.
    let o = outpost(&["fleet", "migrate", "--from", &from, "--to", &to]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("not empty"), "{err}");
    let o = outpost(&["fleet", "migrate", "--from", "mysql://x/y", "--to", &to]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("--from") && err.contains("sqlite:PATH"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&root);
}
