//! Documents into chunks of at most N tokens with an overlap, cut on word
//! boundaries, each with its byte range in the document (so a citation can
//! point at the original text). Token counts come from the caller (the
//! embedding model's tokenizer), so this module knows no model.

/// One chunk: byte offsets `[start, end)` into the document, and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub start: usize,
    pub end: usize,
    pub text: String,
}

/// Word spans (byte ranges of maximal non-whitespace runs).
fn words(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                out.push((s, i));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, text.len()));
    }
    out
}

/// Chunks `text` so that each chunk's words count at most `max_tokens`
/// (by `count`, the tokens of one word) and consecutive chunks share about
/// `overlap` tokens. A single word longer than `max_tokens` is a chunk of
/// its own (the embedder truncates it).
pub fn chunk(
    text: &str,
    max_tokens: usize,
    overlap: usize,
    count: &dyn Fn(&str) -> usize,
) -> Vec<Chunk> {
    let spans = words(text);
    let costs: Vec<usize> = spans
        .iter()
        .map(|&(s, e)| count(&text[s..e]).max(1))
        .collect();
    let max_tokens = max_tokens.max(1);
    let overlap = overlap.min(max_tokens / 2);
    let mut chunks = Vec::new();
    let mut first = 0;
    while first < spans.len() {
        let mut last = first;
        let mut used = costs[first];
        while last + 1 < spans.len() && used + costs[last + 1] <= max_tokens {
            last += 1;
            used += costs[last];
        }
        let (start, end) = (spans[first].0, spans[last].1);
        chunks.push(Chunk {
            start,
            end,
            text: text[start..end].to_string(),
        });
        if last + 1 >= spans.len() {
            break;
        }
        // Step back over about `overlap` tokens, always moving forward.
        let mut next = last + 1;
        let mut back = 0;
        while next > first + 1 && back + costs[next - 1] <= overlap {
            next -= 1;
            back += costs[next];
        }
        first = next;
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_per_word(_: &str) -> usize {
        1
    }

    #[test]
    fn chunks_cover_the_text_with_overlap_and_true_offsets() {
        let text = "one two three four five six seven eight nine ten";
        let c = chunk(text, 4, 1, &one_per_word);
        assert_eq!(c[0].text, "one two three four");
        assert_eq!(c[1].text, "four five six seven");
        assert_eq!(c.last().map(|c| c.end), Some(text.len()));
        for ch in &c {
            assert_eq!(&text[ch.start..ch.end], ch.text);
        }
    }

    #[test]
    fn no_overlap_and_long_words_and_unicode() {
        let text = "  héllo   wörld\n\nß  ";
        let c = chunk(text, 1, 0, &one_per_word);
        let got: Vec<&str> = c.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(got, ["héllo", "wörld", "ß"]);
        let c = chunk("a verylongword b", 2, 0, &|w: &str| w.len());
        assert_eq!(c[1].text, "verylongword");
        assert!(chunk("   ", 8, 2, &one_per_word).is_empty());
    }
}
