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
    },
    /// Every token (never the secret): role, expiry, revoked or live.
    List,
    /// Revoke a token at once (by its id, `tok_...`).
    Revoke { id: String },
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
        } => {
            let v = api.send(
                "POST",
                "/admin/v1/tokens",
                json!({"name": name, "role": role.as_str(), "expires_in_days": expires_days}),
            )?;
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
            ]
        })
        .collect();
    table(
        &["ID", "NAME", "ROLE", "CREATED BY", "EXPIRES AT", "STATE"],
        rows,
    );
}
