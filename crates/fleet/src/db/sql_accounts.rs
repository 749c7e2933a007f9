//! The SQL of users, API tokens and console sessions (#22):
//! loaded whole at start, written by the account changes of a commit (in
//! its transaction, beside its audit record). An expired session is
//! loaded too and refused when used (a login removes its user's expired
//! ones).

use sqlx::{Any, Row, Transaction};

use super::codec::{digest, int, sql, to_json, uint};
use super::error::{DbError, DbResult};
use crate::access::{AccountChange, Accounts, ApiToken, Role, Session, User};

fn role(s: &str) -> DbResult<Role> {
    s.parse().map_err(|problem| DbError::Corrupt {
        what: "a role",
        problem,
    })
}

/// Every user, token and session.
pub(super) async fn load(tx: &mut Transaction<'_, Any>) -> DbResult<Accounts> {
    let mut a = Accounts::default();
    for row in sqlx::query(
        "SELECT name, role, password_hash, created_at, failed_logins, locked_until FROM users",
    )
    .fetch_all(&mut **tx)
    .await
    .map_err(sql("loading users"))?
    {
        let u = User {
            name: row.get("name"),
            role: role(row.get("role"))?,
            password_hash: row.get("password_hash"),
            created_at: uint(row.get("created_at")),
            failed_logins: u32::try_from(row.get::<i64, _>("failed_logins")).unwrap_or(u32::MAX),
            locked_until: row.get::<Option<i64>, _>("locked_until").map(uint),
        };
        a.users.insert(u.name.clone(), u);
    }
    for row in sqlx::query(
        "SELECT id, name, role, hash, created_by, created_at, expires_at, revoked_at, apps FROM api_tokens",
    )
    .fetch_all(&mut **tx)
    .await
    .map_err(sql("loading API tokens"))?
    {
        let t = ApiToken {
            id: row.get("id"),
            name: row.get("name"),
            role: role(row.get("role"))?,
            hash: digest(row.get("hash"), "API token hash")?,
            created_by: row.get("created_by"),
            created_at: uint(row.get("created_at")),
            expires_at: uint(row.get("expires_at")),
            revoked_at: row.get::<Option<i64>, _>("revoked_at").map(uint),
            apps: match row.get::<Option<String>, _>("apps") {
                None => Vec::new(),
                Some(j) => serde_json::from_str(&j).map_err(|e| DbError::Corrupt {
                    what: "an API token's apps",
                    problem: e.to_string(),
                })?,
            },
        };
        a.tokens.insert(t.id.clone(), t);
    }
    for row in
        sqlx::query("SELECT hash, user_name, csrf_hash, created_at, expires_at FROM sessions")
            .fetch_all(&mut **tx)
            .await
            .map_err(sql("loading sessions"))?
    {
        let s = Session {
            hash: digest(row.get("hash"), "session hash")?,
            user: row.get("user_name"),
            csrf_hash: digest(row.get("csrf_hash"), "CSRF token hash")?,
            created_at: uint(row.get("created_at")),
            expires_at: uint(row.get("expires_at")),
        };
        a.sessions.insert(s.hash, s);
    }
    Ok(a)
}

/// Writes one account change inside a commit's transaction.
pub(super) async fn apply(tx: &mut Transaction<'_, Any>, c: &AccountChange) -> DbResult<()> {
    match c {
        AccountChange::PutUser(u) => {
            sqlx::query(
                "INSERT INTO users (name, role, password_hash, created_at, failed_logins, locked_until) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO UPDATE SET role = excluded.role, \
                 password_hash = excluded.password_hash, failed_logins = excluded.failed_logins, \
                 locked_until = excluded.locked_until",
            )
            .bind(&u.name)
            .bind(u.role.as_str())
            .bind(&u.password_hash)
            .bind(int(u.created_at))
            .bind(i64::from(u.failed_logins))
            .bind(u.locked_until.map(int))
            .execute(&mut **tx)
            .await
            .map_err(sql("storing a user"))?;
        }
        AccountChange::DeleteUser { name } => {
            sqlx::query("DELETE FROM sessions WHERE user_name = $1")
                .bind(name)
                .execute(&mut **tx)
                .await
                .map_err(sql("ending a user's sessions"))?;
            sqlx::query("DELETE FROM users WHERE name = $1")
                .bind(name)
                .execute(&mut **tx)
                .await
                .map_err(sql("deleting a user"))?;
        }
        AccountChange::PutToken(t) => {
            sqlx::query(
                "INSERT INTO api_tokens (id, name, role, hash, created_by, created_at, expires_at, revoked_at, apps) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO UPDATE SET revoked_at = excluded.revoked_at",
            )
            .bind(&t.id)
            .bind(&t.name)
            .bind(t.role.as_str())
            .bind(t.hash.to_string())
            .bind(&t.created_by)
            .bind(int(t.created_at))
            .bind(int(t.expires_at))
            .bind(t.revoked_at.map(int))
            .bind((!t.apps.is_empty()).then(|| to_json(&t.apps)))
            .execute(&mut **tx)
            .await
            .map_err(sql("storing an API token"))?;
        }
        AccountChange::PutSession(s) => {
            sqlx::query(
                "INSERT INTO sessions (hash, user_name, csrf_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(s.hash.to_string())
            .bind(&s.user)
            .bind(s.csrf_hash.to_string())
            .bind(int(s.created_at))
            .bind(int(s.expires_at))
            .execute(&mut **tx)
            .await
            .map_err(sql("storing a session"))?;
        }
        AccountChange::DeleteSession { hash } => {
            sqlx::query("DELETE FROM sessions WHERE hash = $1")
                .bind(hash.to_string())
                .execute(&mut **tx)
                .await
                .map_err(sql("ending a session"))?;
        }
    }
    Ok(())
}
