//! Grounded answers: the prompt that puts retrieved chunks in front of a
//! chat model as numbered sources, the JSON schema that makes it name the
//! sources it uses before it answers (so a citation is there by
//! construction, not by luck: small models rarely write `[1]` on their
//! own), and the citations read back, whole or as the answer streams
//! ([`AnswerStream`]). Shared by `outpost ask` and the server's
//! `outpost.retrieve` extension.

use serde::Deserialize;

use crate::Hit;

mod stream;
pub use stream::AnswerStream;

/// The system message of a grounded answer.
pub const SYSTEM: &str = "Answer the question using only the numbered sources given with it. \
First list the numbers of the sources that contain the answer, then give the answer in one short sentence. \
If no source contains the answer, list the closest one and say that the sources do not say.";

/// The answer's shape: the sources it uses (one or more of the `k`
/// given), then the answer. Written as text so that `sources` comes first.
pub fn answer_schema(k: usize) -> String {
    let numbers: Vec<String> = (1..=k.max(1)).map(|n| n.to_string()).collect();
    format!(
        r#"{{"type": "object", "properties": {{"sources": {{"type": "array", "items": {{"enum": [{}]}}, "minItems": 1, "maxItems": {}}}, "answer": {{"type": "string", "maxLength": 400}}}}, "required": ["sources", "answer"]}}"#,
        numbers.join(", "),
        k.max(1)
    )
}

/// Reads an answer written to [`answer_schema`]: the text with its
/// citations written after it (`… [1][2]`), and the numbers cited. Text
/// that is not such JSON is taken as it is, citations read from it.
pub fn read_answer(raw: &str) -> (String, Vec<usize>) {
    #[derive(Deserialize)]
    struct Shaped {
        sources: Vec<usize>,
        answer: String,
    }
    match serde_json::from_str::<Shaped>(raw.trim()) {
        Ok(s) => {
            let mut sources = Vec::new();
            for n in s.sources {
                if !sources.contains(&n) {
                    sources.push(n);
                }
            }
            let marks: String = sources.iter().map(|n| format!("[{n}]")).collect();
            let text = if marks.is_empty() {
                s.answer.trim().to_string()
            } else {
                format!("{} {marks}", s.answer.trim())
            };
            (text, sources)
        }
        Err(_) => (raw.to_string(), cited_numbers(raw)),
    }
}

pub use outpost_protocol::retrieval::Citation;

/// The user message: the sources, numbered, then the question.
pub fn user_message(question: &str, hits: &[Hit]) -> String {
    let mut s = String::from("Sources:\n");
    for (i, h) in hits.iter().enumerate() {
        s.push_str(&format!("[{}] {}\n", i + 1, h.text.replace('\n', " ")));
    }
    s.push_str("\nQuestion: ");
    s.push_str(question);
    s
}

/// The numbers `[n]` that appear in `answer` (also `[1, 2]` and `[1][2]`).
pub fn cited_numbers(answer: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut rest = answer;
    while let Some(open) = rest.find('[') {
        rest = &rest[open + 1..];
        let Some(close) = rest.find(']') else { break };
        let inside = &rest[..close];
        if inside.split(',').all(|p| p.trim().parse::<usize>().is_ok()) {
            for p in inside.split(',') {
                if let Ok(n) = p.trim().parse::<usize>() {
                    if !out.contains(&n) {
                        out.push(n);
                    }
                }
            }
        }
        rest = &rest[close..];
    }
    out
}

/// Every retrieved source, numbered as in the prompt, marked when the
/// answer cites it.
pub fn citations(cited: &[usize], hits: &[Hit]) -> Vec<Citation> {
    hits.iter()
        .enumerate()
        .map(|(i, h)| Citation {
            n: i + 1,
            doc: h.doc.clone(),
            start: h.start,
            end: h.end,
            score: h.score,
            text: h.text.clone(),
            cited: cited.contains(&(i + 1)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_citation_forms() {
        assert_eq!(
            cited_numbers("Thursday [1]. Also [2][3], see [1, 4]."),
            vec![1, 2, 3, 4]
        );
        assert_eq!(
            cited_numbers("no [citation] here [x] ["),
            Vec::<usize>::new()
        );
    }
}
