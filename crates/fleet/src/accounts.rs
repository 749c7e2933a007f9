//! Users, API tokens and console sessions as fleet operations (#22): who a
//! bearer token or a session cookie is ([`Principal`]), creating and
//! revoking tokens (the secret shown once, only its SHA-256 kept), users
//! with argon2id password hashes, and logging in and out (a fresh session
//! id on every login, a lock-out after repeated failures). Every change is
//! committed with its audit record, as every other admin change is; the
//! role rules themselves are in `access.rs`.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use outpost_protocol::Digest;

use crate::access::{
    check_name, AccountChange, ApiToken, Principal, Role, Session, User, DEFAULT_TOKEN_DAYS,
    LOCKOUT_SECS, MAX_FAILED_LOGINS, MAX_TOKEN_DAYS, MIN_PASSWORD_CHARS, SESSION_SECS,
};
use crate::api::{CreateToken, CreateUser, LoginView, NewToken, TokenView, UserView};
use crate::error::{FleetError, FleetResult};
use crate::keys::{new_token, secret_hash};
use crate::state::Change;
use crate::Fleet;

/// The cookie a console session rides in.
pub const SESSION_COOKIE: &str = "outpost_session";

/// A new console session: the cookie's value and what the page gets.
pub struct LoggedIn {
    pub cookie: String,
    pub view: LoginView,
}

fn account(c: AccountChange) -> Change {
    Change::Account(c)
}

/// argon2id (m = 19 MiB, t = 2, p = 1: the crate's defaults, OWASP's
/// minimum) with a random 16-byte salt, as a PHC string.
fn hash_password(password: &str) -> FleetResult<String> {
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt)
        .map_err(|e| FleetError::Internal(format!("no randomness for a salt: {e}")))?;
    let salt = SaltString::encode_b64(&salt)
        .map_err(|e| FleetError::Internal(format!("encoding a salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| FleetError::Internal(format!("hashing a password: {e}")))
}

fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A hash nobody's password matches, verified against for unknown names so
/// that a wrong name takes as long as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_password("outpost decoy password").unwrap_or_default())
}

/// Runs the (deliberately slow, 19 MiB) hash work off the async workers,
/// at most one per CPU at a time: a flood of logins queues here instead of
/// taking every thread and gigabytes of memory.
async fn hashing<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> FleetResult<T> {
    static SLOTS: OnceLock<tokio::sync::Semaphore> = OnceLock::new();
    let slots = SLOTS.get_or_init(|| {
        tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    });
    let _slot = slots
        .acquire()
        .await
        .map_err(|e| FleetError::Internal(format!("password work: {e}")))?;
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| FleetError::Internal(format!("password work failed: {e}")))
}

fn token_view(t: &ApiToken, now: u64) -> TokenView {
    TokenView {
        id: t.id.clone(),
        name: t.name.clone(),
        role: t.role,
        created_by: t.created_by.clone(),
        created_at: t.created_at,
        expires_at: t.expires_at,
        revoked_at: t.revoked_at,
        live: t.live(now),
        apps: t.apps.clone(),
    }
}

fn user_view(u: &User) -> UserView {
    UserView {
        name: u.name.clone(),
        role: u.role,
        created_at: u.created_at,
        failed_logins: u.failed_logins,
        locked_until: u.locked_until,
    }
}

impl Fleet {
    fn unix_now(&self) -> u64 {
        self.now().unix_seconds()
    }

    /// Who a bearer token is: the bootstrap admin token (acting as
    /// `actor`), or a live API token.
    pub fn principal_for_bearer(&self, token: &str, actor: String) -> Option<Principal> {
        if self.is_admin(token) {
            return Some(Principal {
                actor,
                role: Role::Admin,
                session: false,
                apps: None,
            });
        }
        let now = self.unix_now();
        let st = self.state();
        let t = st.accounts.token_by_hash(&secret_hash(token), now)?;
        Some(Principal {
            actor: format!("token:{} ({})", t.name, t.id),
            role: t.role,
            session: false,
            apps: (!t.apps.is_empty()).then(|| t.apps.iter().cloned().collect()),
        })
    }

    /// Who a session cookie is, and the digest of its CSRF token; `None`
    /// for an unknown or expired session or a deleted user.
    pub fn principal_for_session(&self, cookie: &str) -> Option<(Principal, Digest)> {
        let now = self.unix_now();
        let st = self.state();
        let s = st
            .accounts
            .sessions
            .get(&secret_hash(cookie))
            .filter(|s| s.expires_at > now)?;
        let u = st.accounts.users.get(&s.user)?;
        Some((
            Principal {
                actor: format!("user:{}", u.name),
                role: u.role,
                session: true,
                apps: None,
            },
            s.csrf_hash,
        ))
    }

    pub fn users(&self) -> Vec<UserView> {
        self.state()
            .accounts
            .users
            .values()
            .map(user_view)
            .collect()
    }

    /// Adds a console user (the password kept only as an argon2id hash).
    pub async fn create_user(&self, actor: &str, req: CreateUser) -> FleetResult<UserView> {
        check_name("user name", &req.name).map_err(FleetError::BadRequest)?;
        if req.password.chars().count() < MIN_PASSWORD_CHARS {
            return Err(FleetError::BadRequest(format!(
                "password must be at least {MIN_PASSWORD_CHARS} characters"
            )));
        }
        let password = req.password;
        let password_hash = hashing(move || hash_password(&password)).await??;
        let _g = self.admin_guard().await?;
        if self.state().accounts.users.contains_key(&req.name) {
            return Err(FleetError::Conflict(format!(
                "user {:?} exists; delete it first to replace it",
                req.name
            )));
        }
        let user = User {
            name: req.name.clone(),
            role: req.role,
            password_hash,
            created_at: self.unix_now(),
            failed_logins: 0,
            locked_until: None,
        };
        let view = user_view(&user);
        self.apply_admin(
            actor,
            "user.create",
            format!("user/{}", req.name),
            serde_json::json!({"role": req.role}),
            vec![account(AccountChange::PutUser(user))],
        )
        .await?;
        Ok(view)
    }

    /// Deletes a user, ends their sessions and revokes the API tokens they
    /// made.
    pub async fn delete_user(&self, actor: &str, name: &str) -> FleetResult<()> {
        let _g = self.admin_guard().await?;
        if !self.state().accounts.users.contains_key(name) {
            return Err(FleetError::NotFound(format!("no user {name:?}")));
        }
        // The tokens they made go with them: removing a user removes the
        // access they handed out.
        let now = self.unix_now();
        let by = format!("user:{name}");
        let mut changes = vec![account(AccountChange::DeleteUser {
            name: name.to_string(),
        })];
        let mut revoked = Vec::new();
        for t in self.state().accounts.tokens.values() {
            if t.created_by == by && t.live(now) {
                let mut t = t.clone();
                t.revoked_at = Some(now);
                revoked.push(t.id.clone());
                changes.push(account(AccountChange::PutToken(t)));
            }
        }
        self.apply_admin(
            actor,
            "user.delete",
            format!("user/{name}"),
            serde_json::json!({"tokens_revoked": revoked}),
            changes,
        )
        .await
    }

    pub fn tokens(&self) -> Vec<TokenView> {
        let now = self.unix_now();
        self.state()
            .accounts
            .tokens
            .values()
            .map(|t| token_view(t, now))
            .collect()
    }

    /// A new API token for `req.role`, never above the creator's own.
    pub async fn create_token(&self, by: &Principal, req: CreateToken) -> FleetResult<NewToken> {
        check_name("token name", &req.name).map_err(FleetError::BadRequest)?;
        if req.role > by.role {
            return Err(FleetError::Forbidden(format!(
                "{} is a {} and cannot make a {} token",
                by.actor, by.role, req.role
            )));
        }
        if req.apps.as_ref().is_some_and(Vec::is_empty) {
            return Err(FleetError::BadRequest(
                "apps is empty: leave it out for a token for every app, or name at least one"
                    .into(),
            ));
        }
        let mut apps = req.apps.unwrap_or_default();
        apps.sort();
        apps.dedup();
        for app in &apps {
            check_name("app", app).map_err(FleetError::BadRequest)?;
        }
        let days = req.expires_in_days.unwrap_or(DEFAULT_TOKEN_DAYS);
        if !(1..=MAX_TOKEN_DAYS).contains(&days) {
            return Err(FleetError::BadRequest(format!(
                "expires_in_days must be 1-{MAX_TOKEN_DAYS}, not {days}"
            )));
        }
        let _g = self.admin_guard().await?;
        let secret = new_token("opt_")?;
        let now = self.unix_now();
        let t = ApiToken {
            id: format!("tok_{}", &new_token("")?[..12]),
            name: req.name,
            role: req.role,
            hash: secret_hash(&secret),
            created_by: by.actor.clone(),
            created_at: now,
            expires_at: now + u64::from(days) * 86_400,
            revoked_at: None,
            apps,
        };
        let view = token_view(&t, now);
        self.apply_admin(
            &by.actor,
            "token.create",
            format!("token/{}", t.id),
            serde_json::json!({"name": t.name, "role": t.role, "expires_at": t.expires_at, "apps": t.apps}),
            vec![account(AccountChange::PutToken(t))],
        )
        .await?;
        Ok(NewToken {
            view,
            token: secret,
        })
    }

    /// Revokes a token at once (idempotent).
    pub async fn revoke_token(&self, actor: &str, id: &str) -> FleetResult<TokenView> {
        let _g = self.admin_guard().await?;
        let now = self.unix_now();
        let Some(mut t) = self.state().accounts.tokens.get(id).cloned() else {
            return Err(FleetError::NotFound(format!(
                "no API token {id:?}; GET /admin/v1/tokens lists them"
            )));
        };
        if t.revoked_at.is_none() {
            t.revoked_at = Some(now);
            self.apply_admin(
                actor,
                "token.revoke",
                format!("token/{id}"),
                serde_json::json!({"name": t.name}),
                vec![account(AccountChange::PutToken(t.clone()))],
            )
            .await?;
        }
        Ok(token_view(&t, now))
    }

    /// Logs `name` in from `from` (the client address): a new session
    /// (never one the client brought: `old_cookie`'s session, if any, is
    /// ended), or a refusal that counts towards a lock-out.
    pub async fn login(
        &self,
        name: &str,
        password: &str,
        from: &str,
        old_cookie: Option<&str>,
    ) -> FleetResult<LoggedIn> {
        // One answer for an unknown name, a wrong password and a locked
        // user, after the same hashing work: the answer says nothing about
        // which names exist.
        let wrong = || {
            FleetError::Unauthorized(format!(
                "wrong user name or password (after {MAX_FAILED_LOGINS} failures in a row a user is locked out for {} minutes)",
                LOCKOUT_SECS / 60
            ))
        };
        let now = self.unix_now();
        let user = self.state().accounts.users.get(name).cloned();
        let locked = |u: &User| u.locked_until.is_some_and(|t| t > now);
        let checked = match user.as_ref() {
            Some(u) if !locked(u) => Some(u.password_hash.clone()),
            _ => None,
        };
        let (pw, phc) = (
            password.to_string(),
            checked.clone().unwrap_or_else(|| decoy_hash().to_string()),
        );
        let ok = hashing(move || verify_password(&pw, &phc)).await? && checked.is_some();
        let Some(user) = user else {
            return Err(wrong());
        };
        if locked(&user) {
            return Err(wrong());
        }
        let _g = self.admin_guard().await?;
        // Counted against the current row: logins race. A lock set while
        // this one hashed, or a password changed meanwhile (the user
        // replaced), refuses it.
        let Some(mut user) = self.state().accounts.users.get(name).cloned() else {
            return Err(wrong());
        };
        if locked(&user) || Some(&user.password_hash) != checked.as_ref() {
            return Err(wrong());
        }
        let actor = format!("user:{name}");
        if !ok {
            // A lock-out that has run out starts the count again.
            if user.locked_until.is_some_and(|t| t <= now) {
                user.failed_logins = 0;
                user.locked_until = None;
            }
            user.failed_logins = user.failed_logins.saturating_add(1);
            let lock = user.failed_logins >= MAX_FAILED_LOGINS;
            if lock {
                user.locked_until = Some(now + LOCKOUT_SECS);
            }
            let detail = serde_json::json!({"from": from, "failed_logins": user.failed_logins, "locked": lock});
            self.apply_admin(
                &actor,
                "user.login_failed",
                format!("user/{name}"),
                detail,
                vec![account(AccountChange::PutUser(user))],
            )
            .await?;
            return Err(wrong());
        }
        let mut changes = Vec::new();
        if user.failed_logins != 0 || user.locked_until.is_some() {
            user.failed_logins = 0;
            user.locked_until = None;
            changes.push(account(AccountChange::PutUser(user.clone())));
        }
        {
            let st = self.state();
            let brought = old_cookie.map(secret_hash);
            for s in st.accounts.sessions.values() {
                if Some(s.hash) == brought || (s.user == name && s.expires_at <= now) {
                    changes.push(account(AccountChange::DeleteSession { hash: s.hash }));
                }
            }
        }
        let cookie = new_token("ops_")?;
        let csrf = new_token("csrf_")?;
        let session = Session {
            hash: secret_hash(&cookie),
            user: name.to_string(),
            csrf_hash: secret_hash(&csrf),
            created_at: now,
            expires_at: now + SESSION_SECS,
        };
        let expires_at = session.expires_at;
        changes.push(account(AccountChange::PutSession(session)));
        self.apply_admin(
            &actor,
            "user.login",
            format!("user/{name}"),
            serde_json::json!({"from": from}),
            changes,
        )
        .await?;
        Ok(LoggedIn {
            cookie,
            view: LoginView {
                user: name.to_string(),
                role: user.role,
                csrf_token: csrf,
                expires_at,
            },
        })
    }

    /// Ends the session of `cookie` (no-op for an unknown one).
    pub async fn logout(&self, cookie: &str, from: &str) -> FleetResult<()> {
        let _g = self.admin_guard().await?;
        let hash = secret_hash(cookie);
        let Some(s) = self.state().accounts.sessions.get(&hash).cloned() else {
            return Ok(());
        };
        self.apply_admin(
            &format!("user:{}", s.user),
            "user.logout",
            format!("user/{}", s.user),
            serde_json::json!({"from": from}),
            vec![account(AccountChange::DeleteSession { hash })],
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_as_argon2id_and_verify_only_themselves() {
        let h = hash_password("correct horse battery").expect("hash");
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterz", &h));
        assert!(!verify_password("anything", "not a phc string"));
        // A fresh salt each time.
        assert_ne!(h, hash_password("correct horse battery").expect("hash"));
        assert!(!verify_password("correct horse battery", decoy_hash()));
    }
}
