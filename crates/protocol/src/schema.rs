//! OpenAPI schemas for the protocol's hand-serialized scalars (digests,
//! names, versions, timestamps): each is a JSON string with a pattern, so
//! the documents and their contract tests know what a valid value looks
//! like. Derived types get theirs from `utoipa::ToSchema`.

use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;

/// A string schema with a pattern and a description.
pub(crate) fn string(pattern: &str, description: &str, example: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
        .description(Some(description))
        .examples([serde_json::Value::from(example)])
        .into()
}

/// Implements `ToSchema` for a type that serializes as a patterned string.
macro_rules! string_schema {
    ($ty:ty, $pattern:expr, $description:expr, $example:expr) => {
        impl utoipa::PartialSchema for $ty {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                $crate::schema::string($pattern, $description, $example)
            }
        }
        impl utoipa::ToSchema for $ty {}
    };
}

string_schema!(
    crate::Digest,
    "^sha256:[0-9a-f]{64}$",
    "A SHA-256 content digest",
    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
);
string_schema!(
    crate::ModelName,
    "^[a-z0-9](?:[a-z0-9._-]{0,63})$",
    "A model name: 1-64 of a-z 0-9 . _ -, starting with a letter or digit, no \"..\"",
    "smollm2-135m"
);
string_schema!(
    crate::manifest::Version,
    "^(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)$",
    "MAJOR.MINOR.PATCH, decimal, no leading zeros",
    "1.2.0"
);
string_schema!(
    crate::Timestamp,
    "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$",
    "RFC 3339 UTC, whole seconds, literal Z",
    "2030-01-31T23:59:59Z"
);
