//! Where the fleet's database is: `sqlite:PATH` (the default, a file in the
//! data folder) or `postgres://…` (`postgresql://…`), parsed once with an
//! error that says what is accepted.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// A database location, from `outpost fleet serve --db URL`.
#[derive(Clone, PartialEq, Eq)]
pub enum DbUrl {
    /// An SQLite file (created when missing).
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL, as libpq takes it (user, password,
    /// host, port, database, `?sslmode=…`).
    Postgres(String),
}

impl DbUrl {
    /// The default: `fleet.db` in the data folder.
    pub fn default_in(data_dir: &Path) -> DbUrl {
        DbUrl::Sqlite(data_dir.join("fleet.db"))
    }

    /// The URL with any password replaced by `***`, for logs and errors.
    pub fn redacted(&self) -> String {
        match self {
            DbUrl::Sqlite(p) => format!("sqlite:{}", p.display()),
            DbUrl::Postgres(u) => redact(u),
        }
    }
}

impl fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Display for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl FromStr for DbUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<DbUrl, String> {
        if let Some(rest) = s.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                return Err(
                    "`sqlite:` needs a file path, e.g. sqlite:/var/lib/outpost/fleet.db".into(),
                );
            }
            return Ok(DbUrl::Sqlite(PathBuf::from(path)));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            let parsed = url::Url::parse(s)
                .map_err(|e| format!("{:?} is not a valid PostgreSQL URL: {e}", redact(s)))?;
            if parsed.host_str().unwrap_or("").is_empty() {
                return Err(format!(
                    "{:?} names no host; e.g. postgres://outpost:PASSWORD@127.0.0.1:5432/outpost",
                    redact(s)
                ));
            }
            let db = parsed.path().trim_start_matches('/');
            if db.is_empty() {
                return Err(format!(
                    "{:?} names no database; add it after the host, e.g. postgres://…@127.0.0.1:5432/outpost",
                    redact(s)
                ));
            }
            return Ok(DbUrl::Postgres(s.to_string()));
        }
        Err(format!(
            "{:?} is not a database URL the fleet knows: use sqlite:PATH (the default, \
             a file) or postgres://USER:PASSWORD@HOST:PORT/DATABASE",
            redact(s)
        ))
    }
}

/// `s` with its password (`user:PASSWORD@`, `?password=…`) replaced by
/// `***`, even when it does not parse as a URL.
fn redact(s: &str) -> String {
    if let Ok(mut parsed) = url::Url::parse(s) {
        if parsed.password().is_some() {
            let _ = parsed.set_password(Some("***"));
        }
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let v = if k.eq_ignore_ascii_case("password") {
                    "***".into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        if !pairs.is_empty() {
            parsed.query_pairs_mut().clear().extend_pairs(pairs);
        }
        return parsed.to_string();
    }
    // Unparsable: hide everything between the scheme and the last `@`,
    // and any query.
    let (scheme, rest) = s.split_once("://").unwrap_or(("", s));
    let rest = rest.split('?').next().unwrap_or("");
    match rest.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://***@{host}"),
        None => format!("{scheme}://{rest}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_passwords_stay_out_of_messages() {
        assert_eq!(
            "sqlite:/tmp/f.db".parse::<DbUrl>(),
            Ok(DbUrl::Sqlite("/tmp/f.db".into()))
        );
        assert_eq!(
            "sqlite:///tmp/f.db".parse::<DbUrl>(),
            Ok(DbUrl::Sqlite("/tmp/f.db".into()))
        );
        let pg: DbUrl = "postgres://u:secret@127.0.0.1:5432/fleet"
            .parse()
            .expect("parses");
        assert!(!pg.to_string().contains("secret"), "{pg}");
        assert!(!format!("{pg:?}").contains("secret"));
        let e = "postgres://u:secret@127.0.0.1:5432"
            .parse::<DbUrl>()
            .expect_err("refused");
        assert!(
            e.contains("names no database") && !e.contains("secret"),
            "{e}"
        );
        let e = "postgres://u:p#ss/w@rd@h:5432/db"
            .parse::<DbUrl>()
            .map(|u| u.to_string())
            .unwrap_or_else(|e| e);
        assert!(!e.contains("p#ss") && !e.contains("w@rd"), "{e}");
        let q: DbUrl = "postgres://u@h/db?password=hunter2&sslmode=require"
            .parse()
            .expect("parses");
        assert!(
            !q.to_string().contains("hunter2") && q.to_string().contains("sslmode"),
            "{q}"
        );
        let e = "mysql://u@h/db".parse::<DbUrl>().expect_err("refused");
        assert!(
            e.contains("sqlite:PATH") && e.contains("postgres://"),
            "{e}"
        );
        assert!("sqlite:".parse::<DbUrl>().is_err());
    }
}
