//! JSON schemas turned into GBNF grammars (llama.cpp's converter), for
//! output that must parse and validate.

use crate::error::{EngineError, Result};

/// The GBNF grammar (rule `root`) accepting exactly the JSON documents that
/// `schema` (a JSON Schema, as text) allows.
pub fn json_schema_grammar(schema: &str) -> Result<String> {
    llama_cpp_2::json_schema_to_grammar(schema).map_err(|e| EngineError::InvalidParam {
        name: "json schema",
        value: e.to_string(),
        expected:
            "a JSON Schema llama.cpp can convert (types, properties, required, enums, arrays, ...)",
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn schemas_become_grammars_and_bad_ones_are_refused() {
        let g = super::json_schema_grammar(
            r#"{"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]}"#,
        )
        .expect("grammar");
        assert!(g.contains("root"), "{g}");
        assert!(super::json_schema_grammar("not json").is_err());
    }
}
