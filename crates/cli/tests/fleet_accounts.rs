//! `outpost fleet user` and `outpost fleet token` (#22) against a real
//! `outpost fleet serve`: a user added with the password on stdin logs in
//! over the socket (the audit log records where from); a viewer token reads
//! but is refused a change with a message naming its role; an operator
//! token pauses a rollout; a revoked token stops working at once.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

use common::fleet::{free_port, Fleet as Server};

fn cli(data: &Path, url: &str, token: Option<&str>, args: &[&str], stdin: &str) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_outpost"));
    c.arg("fleet")
        .args(args)
        .args(["--url", url, "--data"])
        .arg(data);
    if let Some(t) = token {
        c.args(["--token", t]);
    }
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run outpost fleet");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

fn ok(o: &Output, what: &str) -> Value {
    assert!(
        o.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap_or(Value::Null)
}

fn refused(o: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains(needle),
        "{needle}: {err}"
    );
}

#[test]
fn users_and_tokens_through_the_cli_and_a_real_socket() {
    let dir = std::env::temp_dir().join(format!("outpost-fleet-accounts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let data = dir.join("fleet");
    let server = Server::start(&data, free_port(), &[]);
    let url = server.url.clone();
    let run =
        |token: Option<&str>, args: &[&str], stdin: &str| cli(&data, &url, token, args, stdin);

    // The password comes on stdin only; an empty one is refused by name.
    refused(
        &run(
            None,
            &[
                "user",
                "add",
                "olivia",
                "--role",
                "operator",
                "--password-stdin",
            ],
            "",
        ),
        "stdin was empty",
    );
    refused(
        &run(
            None,
            &[
                "user",
                "add",
                "olivia",
                "--role",
                "root",
                "--password-stdin",
            ],
            "x",
        ),
        "root",
    );
    ok(
        &run(
            None,
            &[
                "user",
                "add",
                "olivia",
                "--role",
                "operator",
                "--password-stdin",
                "--json",
            ],
            "correct horse battery\n",
        ),
        "user add",
    );
    let users = ok(&run(None, &["user", "list", "--json"], ""), "user list");
    assert_eq!(users[0]["role"], "operator", "{users}");

    // Logs in over the socket with the password without its newline.
    let resp = ureq::post(&format!("{url}/console/v1/login"))
        .send_json(json!({"name": "olivia", "password": "correct horse battery"}))
        .expect("login");
    let cookie = resp.header("set-cookie").expect("set-cookie").to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let audit = ok(&run(None, &["audit", "--json"], ""), "audit");
    let login = audit
        .as_array()
        .expect("audit")
        .iter()
        .find(|a| a["action"] == "user.login")
        .cloned()
        .expect("the login is audited");
    assert_eq!(login["actor"], "user:olivia");
    assert_eq!(login["detail"]["from"], "127.0.0.1", "{login}");

    // A viewer token reads, and is refused a change by its role.
    let v = ok(
        &run(
            None,
            &[
                "token",
                "create",
                "wallboard",
                "--role",
                "viewer",
                "--expires-days",
                "3",
                "--json",
            ],
            "",
        ),
        "token create",
    );
    let viewer = v["token"].as_str().expect("secret").to_string();
    let id = v["id"].as_str().expect("id").to_string();
    ok(
        &run(Some(&viewer), &["status", "--json"], ""),
        "status as viewer",
    );
    refused(
        &run(Some(&viewer), &["freeze", "--reason", "test"], ""),
        "is a viewer; POST /admin/v1/kill-switch needs admin",
    );
    let listed = run(None, &["token", "list"], "");
    let table = String::from_utf8_lossy(&listed.stdout);
    assert!(
        table.contains(&id) && table.contains("live") && !table.contains(&viewer),
        "{table}"
    );
    ok(
        &run(None, &["token", "revoke", &id, "--json"], ""),
        "revoke",
    );
    refused(
        &run(Some(&viewer), &["status"], ""),
        "neither the admin token nor a live API token",
    );

    // An operator token pauses a rollout.
    let op = ok(
        &run(
            None,
            &[
                "token",
                "create",
                "release-bot",
                "--role",
                "operator",
                "--json",
            ],
            "",
        ),
        "token create",
    )["token"]
        .as_str()
        .expect("secret")
        .to_string();
    let rel = common::fleet::release_dir(&dir, "smollm2-135m", "1.0.0");
    server.publish(&rel);
    server.release_to_stable("1.0.0");
    let rel2 = common::fleet::release_dir(&dir, "smollm2-135m", "1.1.0");
    server.publish(&rel2);
    let r = ok(
        &run(
            Some(&op),
            &[
                "rollout",
                "create",
                "smollm2-135m@1.1.0",
                "--stages",
                "10,100",
                "--soak",
                "1h",
                "--json",
            ],
            "",
        ),
        "rollout create as operator",
    );
    let rid = r["id"].as_u64().expect("id").to_string();
    let p = ok(
        &run(
            Some(&op),
            &["rollout", "pause", &rid, "--reason", "crash rate", "--json"],
            "",
        ),
        "pause as operator",
    );
    assert_eq!(p["state"], "paused", "{p}");

    // Apps: a key for the app chat, a token scoped to it that publishes a
    // chat model and is refused the default app's rollout.
    let k = ok(
        &run(
            None,
            &[
                "app-key",
                "create",
                "chat-android",
                "--app",
                "chat",
                "--json",
            ],
            "",
        ),
        "app-key create",
    );
    assert_eq!(k["app"], "chat", "{k}");
    assert!(
        k["app_key"].as_str().is_some_and(|s| s.starts_with("opk_")),
        "{k}"
    );
    let chat = ok(
        &run(
            None,
            &[
                "token", "create", "chat-ci", "--role", "operator", "--app", "chat", "--json",
            ],
            "",
        ),
        "token create --app",
    );
    assert_eq!(chat["apps"], json!(["chat"]), "{chat}");
    let chat = chat["token"].as_str().expect("secret").to_string();
    let listed = run(None, &["token", "list"], "");
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(
        text.contains("APPS")
            && text
                .lines()
                .any(|l| l.contains("chat-ci") && l.trim_end().ends_with("chat")),
        "{text}"
    );
    let rel3 = common::fleet::release_dir(&dir, "chat-lm", "2.0.0");
    let published = ok(
        &run(
            Some(&chat),
            &[
                "publish",
                rel3.to_str().expect("utf8"),
                "--app",
                "chat",
                "--json",
            ],
            "",
        ),
        "publish --app as the chat token",
    );
    assert_eq!(published["meta"]["app"], "chat", "{published}");
    refused(
        &run(Some(&chat), &["rollout", "resume", &rid], ""),
        "scoped to the apps",
    );
    let _ = std::fs::remove_dir_all(&dir);
}
