//! `outpost fleet user` and `outpost fleet token` (#22): console users
//! (argon2id-hashed passwords, roles) and API tokens for CI (a role, an
//! expiry, shown once, revocable), over the admin API with an admin
//! credential.

use std::io::Read;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use outpost_fleet::access::Role;
use serde_json::{json, Value};

use super::print::{list, s, table};
use super::{Api, Out};

/// `--role`: the fleet's own roles (viewer < operator < admin); a wrong
/// one is refused with the three named.
fn role(s: &str) -> Result<Role, String> {
    s.parse()
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a console user. The password comes on stdin (never an argument:
    /// it would show in `ps` and shell history), at least 12 characters;
    /// the fleet keeps only its argon2id hash. Five wrong passwords in a
    /// row lock the user out for 15 minutes.
    ///
    /// Examples:
    ///   printf '%s' "$PASSWORD" | outpost fleet user add olivia --role operator --password-stdin --data ./fleet
    #[command(verbatim_doc_comment)]
    Add {
        name: String,
        /// viewer (reads), operator (rollouts, pins, pause/resume,
        /// publishing) or admin (users, tokens, keys, kill switch too).
        #[arg(long, value_parser = role)]
        role: Role,
        /// Read the password from stdin (one line; the newline is dropped).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Every user: role, failed logins, lock-out.
    List,
    /// Delete a user and end their sessions.
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make an API token for CI or scripts, scoped to a role, expiring. The
    /// token is printed once; the fleet keeps only its SHA-256. Use it as
    /// `--token` (or OUTPOST_FLEET_ADMIN_TOKEN) with any fleet command its
    /// role allows.
    ///
    /// Examples:
    ///   outpost fleet token create ci-deploy --role operator --expires-days 30 --data ./fleet
    ///   outpost fleet token create chat-ci --role operator --app chat --data ./fleet
    #[command(verbatim_doc_comment)]
    Create {
        name: String,
        /// viewer (reads), operator (rollouts, pins, pause/resume,
        /// publishing) or admin (users, tokens, keys, kill switch too).
        #[arg(long, value_parser = role)]
        role: Role,
        /// Days until it stops working (1-365).
        #[arg(long, default_value_t = 90)]
        expires_days: u32,
        /// Scope it to this app (repeat for several): it may change only
        /// the app's releases, devices, rollouts, experiments and app keys,
        /// and nothing fleet-wide (channels, kill switch, users, tokens).
        /// It still reads the whole fleet. Default: every app.
        #[arg(long = "app", value_name = "APP")]
        apps: Vec<String>,
    },
    /// Every token (never the secret): role, expiry, revoked or live.
    List,
    /// Revoke a token at once (by its id, `tok_...`).
    Revoke { id: String },
}

#[derive(Debug, Subcommand)]
pub enum AppKeyCommand {
    /// Make an app key: devices register with it (`outpost agent
    /// --app-key-file`) and belong to its app, which decides which releases
    /// they are offered (those published with the same `--app`). Printed
    /// once; the fleet keeps only its SHA-256. The data folder's `app.key`
    /// is the app `default`'s first key.
    ///
    /// Examples:
    ///   outpost fleet app-key create chat-android --app chat --data ./fleet > chat.key
    #[command(verbatim_doc_comment)]
    Create {
        /// What it is for, e.g. the app and platform (1-64 characters).
        label: String,
        /// The app its devices belong to.
        #[arg(long, default_value = "default")]
        app: String,
    },
}

pub(super) fn run_app_key(api: &Api, cmd: &AppKeyCommand, out: Out<'_>) -> Result<()> {
    match cmd {
        AppKeyCommand::Create { label, app } => {
            let v = api.send(
                "POST",
                "/admin/v1/app-keys",
                json!({"label": label, "app": app}),
            )?;
            out(&v, &|v| {
                println!("{}", s(&v["app_key"]));
                eprintln!(
                    "app key {} for the app {}; it is shown only now",
                    s(&v["label"]),
                    s(&v["app"])
                );
            });
        }
    }
    Ok(())
}

/// The password on stdin: one line, its newline dropped.
fn password_from_stdin() -> Result<String> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .context("reading the password from stdin")?;
    let p = s.strip_suffix('\n').unwrap_or(&s);
    let p = p.strip_suffix('\r').unwrap_or(p);
    if p.is_empty() {
        bail!("--password-stdin: stdin was empty; pipe the password in, e.g. printf '%s' \"$PASSWORD\" | outpost fleet user add ...");
    }
    Ok(p.to_string())
}

pub(super) fn run_user(api: &Api, cmd: &UserCommand, out: Out<'_>) -> Result<()> {
    match cmd {
        UserCommand::Add { name, role, .. } => {
            let password = password_from_stdin()?;
            let v = api.send(
                "POST",
                "/admin/v1/users",
                json!({"name": name, "role": role.as_str(), "password": password}),
            )?;
            out(&v, &|v| {
                println!("user {} added as {}", s(&v["name"]), s(&v["role"]))
            });
        }
        UserCommand::List => out(&api.get("/admin/v1/users")?, &users),
        UserCommand::Delete { name } => {
            let v = api.send("DELETE", &format!("/admin/v1/users/{name}"), json!({}))?;
            out(&v, &|_| {
                println!("user {name} deleted; their sessions ended")
            });
        }
    }
    Ok(())
}

pub(super) fn run_token(api: &Api, cmd: &TokenCommand, out: Out<'_>) -> Result<()> {
    match cmd {
        TokenCommand::Create {
            name,
            role,
            expires_days,
            apps,
        } => {
            let mut body =
                json!({"name": name, "role": role.as_str(), "expires_in_days": expires_days});
            if !apps.is_empty() {
                body["apps"] = json!(apps);
            }
            let v = api.send("POST", "/admin/v1/tokens", body)?;
            out(&v, &|v| {
                println!("{}", s(&v["token"]));
                eprintln!(
                    "token {} ({}, {}) expires at {} (unix seconds); it is shown only now",
                    s(&v["id"]),
                    s(&v["name"]),
                    s(&v["role"]),
                    s(&v["expires_at"])
                );
            });
        }
        TokenCommand::List => out(&api.get("/admin/v1/tokens")?, &tokens),
        TokenCommand::Revoke { id } => {
            let v = api.send("POST", &format!("/admin/v1/tokens/{id}/revoke"), json!({}))?;
            out(&v, &|v| println!("token {} revoked", s(&v["id"])));
        }
    }
    Ok(())
}

fn users(v: &Value) {
    let rows = list(v)
        .iter()
        .map(|u| {
            vec![
                s(&u["name"]),
                s(&u["role"]),
                s(&u["failed_logins"]),
                s(&u["locked_until"]),
            ]
        })
        .collect();
    table(&["NAME", "ROLE", "FAILED LOGINS", "LOCKED UNTIL"], rows);
}

fn tokens(v: &Value) {
    let rows = list(v)
        .iter()
        .map(|t| {
            let state = if t["live"] == true {
                "live"
            } else if t["revoked_at"].is_null() {
                "expired"
            } else {
                "revoked"
            };
            vec![
                s(&t["id"]),
                s(&t["name"]),
                s(&t["role"]),
                s(&t["created_by"]),
                s(&t["expires_at"]),
                state.to_string(),
                match t["apps"].as_array() {
                    Some(a) if !a.is_empty() => a.iter().map(s).collect::<Vec<_>>().join(","),
                    _ => "all".to_string(),
                },
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "NAME",
            "ROLE",
            "CREATED BY",
            "EXPIRES AT",
            "STATE",
            "APPS",
        ],
        rows,
    );
}
