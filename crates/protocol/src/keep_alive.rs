//! Ollama's `keep_alive`: how long a model stays loaded after its last
//! request, written as a Go duration (`5m`, `1h30m`, `250ms`) or a number
//! of seconds; negative keeps it forever.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How long a model stays loaded after its last request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAlive {
    /// Unload after this long idle; zero unloads as soon as it is idle.
    For(Duration),
    /// Never unload (a negative duration in Ollama's API).
    Forever,
}

impl KeepAlive {
    /// Ollama's default: five minutes.
    pub const DEFAULT: KeepAlive = KeepAlive::For(Duration::from_secs(300));

    /// Parses a Go duration (`"5m"`, `"1h30m"`, `"250ms"`, `"-1"`), or a
    /// plain number of seconds. Anything negative means forever.
    pub fn parse(s: &str) -> Result<KeepAlive, String> {
        let t = s.trim();
        if t.is_empty() {
            return Err("empty duration: give e.g. \"5m\", \"30s\", \"0\" or \"-1\"".into());
        }
        if let Ok(secs) = t.parse::<f64>() {
            return Self::from_seconds(secs);
        }
        let (negative, body) = match t.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, t.strip_prefix('+').unwrap_or(t)),
        };
        let bad = || {
            format!(
                "{s:?} is not a duration: use a number and a unit (ns, us, ms, s, m, h), \
                 e.g. \"5m\", \"1h30m\", \"0\" to unload at once, \"-1\" to keep forever"
            )
        };
        let mut total = 0f64;
        let mut rest = body;
        while !rest.is_empty() {
            let num_len = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(bad)?;
            let value: f64 = rest[..num_len].parse().map_err(|_| bad())?;
            rest = &rest[num_len..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let scale = match &rest[..unit_len] {
                "ns" => 1e-9,
                "us" | "µs" | "μs" => 1e-6,
                "ms" => 1e-3,
                "s" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                _ => return Err(bad()),
            };
            total += value * scale;
            rest = &rest[unit_len..];
        }
        if negative {
            return Ok(KeepAlive::Forever);
        }
        Self::from_seconds(total)
    }

    /// A number of seconds; negative means forever.
    pub fn from_seconds(secs: f64) -> Result<KeepAlive, String> {
        if secs.is_nan() {
            return Err("keep_alive is NaN".into());
        }
        if secs < 0.0 {
            return Ok(KeepAlive::Forever);
        }
        Duration::try_from_secs_f64(secs)
            .map(KeepAlive::For)
            .map_err(|_| format!("keep_alive {secs} s is too long; use -1 to keep forever"))
    }
}

impl<'de> Deserialize<'de> for KeepAlive {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Number(n) => KeepAlive::from_seconds(n.as_f64().unwrap_or(f64::NAN)),
            Value::String(s) => KeepAlive::parse(&s),
            other => Err(format!(
                "keep_alive must be a duration string or a number of seconds, not {other}"
            )),
        }
        .map_err(|e| serde::de::Error::custom(format!("keep_alive: {e}")))
    }
}

/// In the OpenAPI documents: a duration string or a number of seconds.
impl utoipa::PartialSchema for KeepAlive {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some(
                        "A Go duration (5m, 1h30m, 250ms); negative: keep forever",
                    )),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Number)
                    .description(Some("Seconds; 0: unload when idle; negative: keep forever")),
            )
            .into()
    }
}

impl utoipa::ToSchema for KeepAlive {}

impl Serialize for KeepAlive {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            KeepAlive::Forever => s.serialize_i64(-1),
            KeepAlive::For(d) => s.serialize_f64(d.as_secs_f64()),
        }
    }
}
