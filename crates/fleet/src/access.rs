//! Who may do what on the admin API (#22): the three roles, the principal
//! a request acts as, and the one table that gives every admin route the
//! least role it needs and what it changes ([`ADMIN_ROUTES`]): nothing
//! (reads), one app's things (a token scoped to apps must name that app),
//! or the whole fleet (refused to a token scoped to apps). The HTTP layer looks each
//! request's matched route up here and refuses a route the table lacks, so
//! a new endpoint cannot slip through unguarded; the tests walk the
//! OpenAPI document against it. Pure: no I/O.

use serde::{Deserialize, Serialize};

/// What a user or token may do. Ordered: each role may do everything the
/// ones before it may.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything an operator sees; changes nothing.
    Viewer,
    /// Rollouts (create, advance, pause, resume, complete, roll back),
    /// channels, pins, device channels, experiments, publishing releases.
    Operator,
    /// Users, API tokens, keys (app and content keys), device and release
    /// revocation, and the kill switch.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "role {other:?} is not one of viewer, operator, admin"
            )),
        }
    }
}

/// The app everything belongs to unless told otherwise: the fleet's first
/// app key, releases published without `app`, and their devices.
pub const DEFAULT_APP: &str = "default";

/// [`DEFAULT_APP`], for serde defaults.
pub fn default_app() -> String {
    DEFAULT_APP.to_string()
}

/// Whether `app` is [`DEFAULT_APP`] (left out when serialised).
pub fn is_default_app(app: &str) -> bool {
    app == DEFAULT_APP
}

/// Who a request acts as, for the role check and the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// As the audit log names it: `admin` (the bootstrap token, or its
    /// `X-Outpost-Actor` header), `user:NAME` or `token:NAME`.
    pub actor: String,
    pub role: Role,
    /// Signed in with a session cookie: mutations need the CSRF token.
    pub session: bool,
    /// The apps an API token is scoped to; `None`: every app (users, the
    /// bootstrap token, and tokens made without `apps`).
    pub apps: Option<std::collections::BTreeSet<String>>,
}

impl Principal {
    /// Whether this principal may change what belongs to `app` (a
    /// release of one of its models, one of its devices, rollouts and
    /// experiments of its releases, its app keys).
    pub fn may_change(&self, app: &str) -> Result<(), String> {
        match &self.apps {
            Some(apps) if !apps.contains(app) => Err(format!(
                "{} is scoped to the apps {:?}; this belongs to the app {app:?}",
                self.actor,
                apps.iter().collect::<Vec<_>>()
            )),
            _ => Ok(()),
        }
    }
}

/// What an admin route changes, for tokens scoped to apps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Reads, and content-addressed blob uploads: open to every scope.
    Any,
    /// Things of one app: the handler checks the app of what it changes
    /// ([`Principal::may_change`]).
    App,
    /// The whole fleet (channels, the kill switch, users, tokens): refused
    /// to a token scoped to apps.
    Fleet,
}

/// One admin route (path as the router spells it, under `/admin/v1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminRoute {
    pub method: &'static str,
    pub path: &'static str,
    pub role: Role,
    pub reach: Reach,
}

const fn r(method: &'static str, path: &'static str, role: Role, reach: Reach) -> AdminRoute {
    AdminRoute {
        method,
        path,
        role,
        reach,
    }
}

use Reach::{Any, App, Fleet};
use Role::{Admin, Operator, Viewer};

/// Every admin route, the least role it needs and what it reaches.
pub const ADMIN_ROUTES: &[AdminRoute] = &[
    r("PUT", "/blobs/{digest}", Operator, Any),
    r("GET", "/releases", Viewer, Any),
    r("POST", "/releases", Operator, App),
    r("GET", "/releases/{model}/{version}", Viewer, Any),
    r("POST", "/revoke", Admin, App),
    r("POST", "/kill-switch", Admin, Fleet),
    r("GET", "/channels", Viewer, Any),
    r("POST", "/channels", Operator, Fleet),
    r("POST", "/channels/{name}/release", Operator, App),
    r("GET", "/rollouts", Viewer, Any),
    r("POST", "/rollouts", Operator, App),
    r("GET", "/rollouts/{id}", Viewer, Any),
    r("POST", "/rollouts/{id}/{action}", Operator, App),
    r("GET", "/devices", Viewer, Any),
    r("GET", "/devices/{id}", Viewer, Any),
    r("POST", "/devices/{id}/pins", Operator, App),
    r("DELETE", "/devices/{id}/pins/{model}", Operator, App),
    r("POST", "/devices/{id}/channel", Operator, App),
    r("POST", "/devices/{id}/revoke", Admin, App),
    r("PUT", "/content-keys/{digest}", Admin, App),
    r("POST", "/app-keys", Admin, App),
    r("GET", "/status", Viewer, Any),
    r("GET", "/audit", Viewer, Any),
    r("GET", "/cohorts", Viewer, Any),
    r("GET", "/cohorts/series", Viewer, Any),
    r("GET", "/fragmentation", Viewer, Any),
    r("GET", "/experiments", Viewer, Any),
    r("POST", "/experiments", Operator, App),
    r("GET", "/experiments/{id}", Viewer, Any),
    r("POST", "/experiments/{id}/{action}", Operator, App),
    r("GET", "/users", Admin, Any),
    r("POST", "/users", Admin, Fleet),
    r("DELETE", "/users/{name}", Admin, Fleet),
    r("GET", "/tokens", Admin, Any),
    r("POST", "/tokens", Admin, Fleet),
    r("POST", "/tokens/{id}/revoke", Admin, Fleet),
    r("GET", "/whoami", Viewer, Any),
];

/// The admin route `method` `path` (as matched, under `/admin/v1`);
/// `None` for a route the table lacks (refused).
pub fn route(method: &str, path: &str) -> Option<&'static AdminRoute> {
    ADMIN_ROUTES
        .iter()
        .find(|r| r.method.eq_ignore_ascii_case(method) && r.path == path)
}

/// The least role `method` on the admin route `path` needs.
pub fn required_role(method: &str, path: &str) -> Option<Role> {
    route(method, path).map(|r| r.role)
}

/// Whether `p` may call `method` `path`; the error says what is missing.
/// (A route that reaches one app is checked again, against that app, by
/// its handler.)
pub fn authorize(p: &Principal, method: &str, path: &str) -> Result<(), String> {
    match route(method, path) {
        None => Err(format!(
            "{method} /admin/v1{path} has no role in crates/fleet/src/access.rs; refused"
        )),
        Some(r) if p.role < r.role => Err(format!(
            "{} is a {}; {method} /admin/v1{path} needs {}",
            p.actor, p.role, r.role
        )),
        Some(r) if r.reach == Fleet && p.apps.is_some() => Err(format!(
            "{} is scoped to apps; {method} /admin/v1{path} changes the whole fleet and needs a token for every app",
            p.actor
        )),
        Some(_) => Ok(()),
    }
}

/// A user or token name: 1-64 of `a-z A-Z 0-9 . _ -`.
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(format!(
            "{what} {name:?} must be 1-64 characters of letters, digits, '.', '_' or '-'"
        ));
    }
    Ok(())
}

/// A console user, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub role: Role,
    /// argon2id, as a PHC string.
    pub password_hash: String,
    pub created_at: u64,
    /// Consecutive failed logins.
    pub failed_logins: u32,
    /// Unix seconds until which logins are refused.
    pub locked_until: Option<u64>,
}

/// An API token, as stored (its secret only as a digest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    /// Public, e.g. `tok_1a2b3c4d5e6f`.
    pub id: String,
    pub name: String,
    pub role: Role,
    pub hash: outpost_protocol::Digest,
    pub created_by: String,
    pub created_at: u64,
    pub expires_at: u64,
    pub revoked_at: Option<u64>,
    /// The apps it may change; empty: every app.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apps: Vec<String>,
}

impl ApiToken {
    /// Usable at `now` (unix seconds): not revoked, not expired.
    pub fn live(&self, now: u64) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

/// A console session, as stored (its cookie and CSRF token as digests).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub hash: outpost_protocol::Digest,
    pub user: String,
    pub csrf_hash: outpost_protocol::Digest,
    pub created_at: u64,
    pub expires_at: u64,
}

/// Users, tokens and sessions in memory, rebuilt from storage at start
/// and kept by the same changes storage commits.
#[derive(Debug, Clone, Default)]
pub struct Accounts {
    pub users: std::collections::BTreeMap<String, User>,
    /// By id.
    pub tokens: std::collections::BTreeMap<String, ApiToken>,
    /// By cookie digest.
    pub sessions: std::collections::HashMap<outpost_protocol::Digest, Session>,
}

/// What changes about accounts (a part of the fleet's `Change`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountChange {
    /// Insert or replace (also a failed-login count or a lock-out).
    PutUser(User),
    /// The user and their sessions.
    DeleteUser {
        name: String,
    },
    /// Insert or replace (also a revocation).
    PutToken(ApiToken),
    PutSession(Session),
    DeleteSession {
        hash: outpost_protocol::Digest,
    },
}

impl Accounts {
    pub fn apply(&mut self, c: &AccountChange) {
        match c {
            AccountChange::PutUser(u) => {
                self.users.insert(u.name.clone(), u.clone());
            }
            AccountChange::DeleteUser { name } => {
                self.users.remove(name);
                self.sessions.retain(|_, s| &s.user != name);
            }
            AccountChange::PutToken(t) => {
                self.tokens.insert(t.id.clone(), t.clone());
            }
            AccountChange::PutSession(s) => {
                self.sessions.insert(s.hash, s.clone());
            }
            AccountChange::DeleteSession { hash } => {
                self.sessions.remove(hash);
            }
        }
    }

    /// The live token whose secret has digest `hash`.
    pub fn token_by_hash(&self, hash: &outpost_protocol::Digest, now: u64) -> Option<&ApiToken> {
        self.tokens
            .values()
            .find(|t| &t.hash == hash)
            .filter(|t| t.live(now))
    }
}

/// Consecutive failed logins after which a user is locked out.
pub const MAX_FAILED_LOGINS: u32 = 5;
/// How long a lock-out lasts.
pub const LOCKOUT_SECS: u64 = 15 * 60;
/// How long a session lives.
pub const SESSION_SECS: u64 = 12 * 3600;
/// The longest an API token may live, and its default.
pub const MAX_TOKEN_DAYS: u32 = 365;
pub const DEFAULT_TOKEN_DAYS: u32 = 90;
/// The shortest password a user may have.
pub const MIN_PASSWORD_CHARS: usize = 12;

#[cfg(test)]
mod tests {
    use super::*;

    fn p(role: Role) -> Principal {
        Principal {
            actor: "token:ci".into(),
            role,
            session: false,
            apps: None,
        }
    }

    #[test]
    fn a_token_scoped_to_apps_changes_only_them_and_nothing_fleet_wide() {
        let mut ci = p(Admin);
        ci.apps = Some(["chat".to_string()].into());
        assert!(ci.may_change("chat").is_ok());
        let e = ci.may_change("maps").unwrap_err();
        assert!(
            e.contains("scoped to the apps [\"chat\"]") && e.contains("\"maps\""),
            "{e}"
        );
        assert!(authorize(&ci, "POST", "/rollouts/{id}/{action}").is_ok());
        assert!(authorize(&ci, "GET", "/tokens").is_ok());
        for (m, path) in [
            ("POST", "/kill-switch"),
            ("POST", "/tokens"),
            ("POST", "/channels"),
        ] {
            let e = authorize(&ci, m, path).unwrap_err();
            assert!(e.contains("whole fleet"), "{e}");
        }
        // Unscoped: every app, fleet-wide routes too.
        assert!(p(Admin).may_change("maps").is_ok());
        assert!(authorize(&p(Admin), "POST", "/kill-switch").is_ok());
        // Every mutation reaches an app or the fleet; every read reaches any.
        for r in ADMIN_ROUTES {
            assert_eq!(
                r.reach == Any,
                r.method == "GET" || r.path == "/blobs/{digest}",
                "{} {}",
                r.method,
                r.path
            );
        }
    }

    #[test]
    fn roles_are_ordered_and_each_route_is_checked() {
        assert!(Viewer < Operator && Operator < Admin);
        assert!(authorize(&p(Viewer), "GET", "/rollouts").is_ok());
        let e = authorize(&p(Viewer), "POST", "/rollouts/{id}/{action}").unwrap_err();
        assert!(
            e.contains("token:ci is a viewer") && e.contains("needs operator"),
            "{e}"
        );
        assert!(authorize(&p(Operator), "POST", "/rollouts/{id}/{action}").is_ok());
        assert!(authorize(&p(Operator), "POST", "/kill-switch").is_err());
        assert!(authorize(&p(Admin), "POST", "/kill-switch").is_ok());
        // A route the table lacks is refused even to an admin.
        let e = authorize(&p(Admin), "POST", "/new-thing").unwrap_err();
        assert!(e.contains("no role"), "{e}");
    }

    #[test]
    fn no_route_is_listed_twice_and_names_and_roles_parse() {
        for (i, a) in ADMIN_ROUTES.iter().enumerate() {
            for b in &ADMIN_ROUTES[i + 1..] {
                assert!(
                    (a.method, a.path) != (b.method, b.path),
                    "{} {} twice",
                    a.method,
                    a.path
                );
            }
        }
        assert_eq!("operator".parse::<Role>(), Ok(Operator));
        assert!("root"
            .parse::<Role>()
            .unwrap_err()
            .contains("viewer, operator, admin"));
        assert!(check_name("user", "alice.ops-1").is_ok());
        assert!(check_name("user", "al ice").is_err());
        assert!(check_name("user", "").is_err());
    }
}
