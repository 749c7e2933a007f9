//! How hard a prompt looks, from cheap text features: its length, the
//! answer length asked for, and cues of multi-step reasoning or code. A
//! score in 0..1; `auto` sends prompts at or above its threshold to the
//! cloud. Also the prompt-token estimate used before any tokenizer runs.

use crate::policy::AutoConfig;

/// Tokens in `bytes` of text, estimated on the high side (about 4 bytes a
/// token for English; the real count decides only on the engine).
pub fn estimate_tokens(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(4)).unwrap_or(u32::MAX)
}

/// Phrases that ask for multi-step reasoning (matched lowercase).
const REASONING: &[&str] = &[
    "step by step",
    "step-by-step",
    "prove",
    "derive",
    "explain why",
    "reason about",
    "analyze",
    "analyse",
    "compare",
    "trade-off",
    "tradeoff",
    "calculate",
    "solve",
    "plan ",
    "design ",
    "evaluate",
];

/// Signs of code in the prompt or a request for code.
const CODE: &[&str] = &[
    "```",
    "fn ",
    "def ",
    "class ",
    "function ",
    "#include",
    "select ",
    "import ",
    "=> ",
    "write a program",
    "write code",
    "implement",
    "refactor",
    "debug",
    "regex",
    "sql",
];

/// The complexity score of a prompt (all its texts joined) and the answer
/// length it asks for: 0.4 for length (scaled up to `long_prompt_tokens`),
/// 0.3 for a long answer, 0.3 for reasoning cues, 0.3 for code cues, capped
/// at 1.
pub fn complexity(text: &str, max_tokens: Option<u32>, cfg: &AutoConfig) -> f32 {
    let tokens = estimate_tokens(text.len()) as f32;
    let mut score = 0.4 * (tokens / cfg.long_prompt_tokens.max(1) as f32).min(1.0);
    if max_tokens.is_some_and(|m| m >= cfg.long_answer_tokens) {
        score += 0.3;
    }
    // Only the first 16 KiB: cues sit near the question, and the cost stays flat.
    let mut end = text.len().min(16 << 10);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let lower = text[..end].to_ascii_lowercase();
    if REASONING.iter().any(|c| lower.contains(c)) {
        score += 0.3;
    }
    if CODE.iter().any(|c| lower.contains(c)) {
        score += 0.3;
    }
    score.min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cues_and_length_raise_the_score() {
        let cfg = AutoConfig::default();
        let simple = complexity("What is the capital of France?", Some(32), &cfg);
        assert!(simple < 0.1, "{simple}");
        let reasoning = complexity("Explain step by step why the sky is blue.", None, &cfg);
        assert!((0.3..0.4).contains(&reasoning), "{reasoning}");
        let both = complexity(
            "Solve this step by step and write code:\n```py\ndef f(x): return x\n```",
            Some(1024),
            &cfg,
        );
        assert!(both >= 0.9, "{both}");
        let long = complexity(&"word ".repeat(2000), None, &cfg);
        assert!((0.39..=0.4).contains(&long), "{long}");
        assert_eq!(estimate_tokens(9), 3);
        // A multi-byte character at the 16 KiB cut does not panic.
        let _ = complexity(&"é".repeat(10_000), None, &cfg);
    }
}
