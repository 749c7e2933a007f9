//! Every table the CLI prints, through `comfy-table`: `table` for people
//! (fits the terminal's width, numbers right-aligned), `markdown` for the
//! llama-bench-style reports meant to be pasted into notes and issues.
//! Every command that prints a table also has `--json`.

use comfy_table::{presets, CellAlignment, ContentArrangement, Table};

/// A table for the terminal with `header`; add rows, then print it.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::UTF8_HORIZONTAL_ONLY)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    t
}

/// A GitHub-flavoured Markdown table (numbers right-aligned, as `---:`).
pub fn markdown(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::ASCII_MARKDOWN)
        .set_header(header.to_vec());
    t
}

/// Right-aligns the columns whose cells all read as numbers (`12`, `-3.5`,
/// `40 %`, `1.2 ms`, `3 (2)`); `-` stands for a missing value. Call it
/// after the rows are in. Returns which columns it right-aligned.
pub fn align_numbers(t: &mut Table) -> Vec<bool> {
    let columns = t.column_count();
    let mut numeric = vec![true; columns];
    let mut seen = vec![false; columns];
    for row in t.row_iter() {
        for (i, cell) in row.cell_iter().enumerate().take(columns) {
            let text = cell.content();
            let text = text.trim();
            if text.is_empty() || text == "-" {
                continue;
            }
            seen[i] = true;
            numeric[i] &= looks_numeric(text);
        }
    }
    let right: Vec<bool> = (0..columns).map(|i| numeric[i] && seen[i]).collect();
    for (i, r) in right.iter().enumerate() {
        if *r {
            if let Some(c) = t.column_mut(i) {
                c.set_cell_alignment(CellAlignment::Right);
            }
        }
    }
    right
}

fn looks_numeric(text: &str) -> bool {
    let first = text.split_whitespace().next().unwrap_or("");
    let first = first.trim_end_matches(['%', 'x', '×']);
    !first.is_empty() && first.parse::<f64>().is_ok()
}

/// Prints `t` with numbers right-aligned.
pub fn print(mut t: Table) {
    let right = align_numbers(&mut t);
    println!("{}", render(&t, &right));
}

/// The table's text; a Markdown table gets its alignment row (`---:` for
/// right-aligned columns), which comfy-table's preset leaves plain.
pub fn render(t: &Table, right: &[bool]) -> String {
    let text = t.to_string();
    // Only the Markdown preset draws `|---|---|` under the header.
    let markdown = text
        .lines()
        .nth(1)
        .is_some_and(|l| l.starts_with("|-") && l.chars().all(|c| c == '|' || c == '-'));
    if !markdown {
        return text;
    }
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    if let Some(sep) = lines.get_mut(1) {
        let cells: Vec<&str> = sep.trim().trim_matches('|').split('|').collect();
        let marked: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let w = c.len().max(3);
                if right.get(i).copied().unwrap_or(false) {
                    format!("{}:", "-".repeat(w - 1))
                } else {
                    "-".repeat(w)
                }
            })
            .collect();
        *sep = format!("|{}|", marked.join("|"));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_told_from_words() {
        for n in ["12", "-3.5", "40 %", "1.2 ms", "3 (2)", "1.05x", "0.5%"] {
            assert!(looks_numeric(n), "{n}");
        }
        for w in ["phone-4gb", "q4_0", "1.0.0", "", "auto-halt"] {
            assert!(!looks_numeric(w), "{w}");
        }
    }

    #[test]
    fn markdown_marks_numeric_columns_right_aligned() {
        let mut t = markdown(&["tier", "MiB"]);
        t.add_row(vec!["q4_0", "88.1"]);
        t.add_row(vec!["q8_0", "-"]);
        let right = align_numbers(&mut t);
        assert_eq!(right, [false, true]);
        let text = render(&t, &right);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(
            lines[0].contains("tier") && lines[0].contains("MiB"),
            "{text}"
        );
        assert!(
            lines[1].contains("---:"),
            "the MiB column is right-aligned: {text}"
        );
        assert!(
            lines[2].contains("q4_0") && lines[2].contains("88.1"),
            "{text}"
        );
    }
}
