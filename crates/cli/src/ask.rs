//! `outpost ask INDEX "question"`: retrieval-grounded answers on the
//! device. The index's own embedding model finds the nearest chunks, a chat
//! model answers from them as numbered sources, and the answer's [n]
//! citations are listed with their documents and byte offsets.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use outpost_engine::{
    CancelToken, GenerateRequest, LoadOptions, Message, Model, Prompt, SamplingParams,
};
use outpost_index::ground;

#[derive(Debug, Args)]
pub struct AskArgs {
    /// The index (a name under --dir, or a path to a .sqlite file).
    pub index: String,
    pub question: String,
    /// The chat model that answers.
    #[arg(long, default_value = "smollm2-135m")]
    pub model: String,
    /// Chunks put in front of the model.
    #[arg(short, default_value_t = 4)]
    pub k: usize,
    /// Longest answer, in tokens.
    #[arg(long, default_value_t = 200)]
    pub max_tokens: u32,
    /// Where indexes live.
    #[arg(long, env = "OUTPOST_INDEX_DIR")]
    pub dir: Option<PathBuf>,
    #[arg(long, short)]
    pub threads: Option<u32>,
    /// The answer and its sources as one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn ask(a: AskArgs) -> Result<()> {
    let path = crate::index::index_path(a.dir.as_deref(), &a.index)?;
    let (ix, emb) = crate::index::open_with_model(&path, a.threads)?;
    let hits = crate::index::search(&ix, &emb, &a.question, a.k)?;
    drop(emb);
    let model = Model::load(&crate::models::resolve(&a.model)?, &LoadOptions::default())?;
    let messages = vec![
        Message::new("system", ground::SYSTEM),
        Message::new("user", ground::user_message(&a.question, &hits)),
    ];
    let mut req = GenerateRequest::new(Prompt::Chat {
        messages,
        template: None,
        tools: Vec::new(),
    });
    req.sampling = SamplingParams::greedy();
    req.max_tokens = Some(a.max_tokens);
    req.grammar = Some(outpost_engine::json_schema_grammar(
        &ground::answer_schema(hits.len()),
    )?);
    if let Some(t) = a.threads {
        req.threads = Some(t);
    }
    let mut raw = String::new();
    model.generate(&req, &CancelToken::new(), |piece| raw.push_str(&piece.text))?;
    let (answer, cited) = ground::read_answer(&raw);
    let citations = ground::citations(&cited, &hits);
    let mut out = std::io::stdout().lock();
    if a.json {
        let v = serde_json::json!({ "answer": answer, "citations": citations });
        writeln!(out, "{v}")?;
        return Ok(());
    }
    writeln!(out, "{answer}\n\nSources:")?;
    for c in &citations {
        writeln!(
            out,
            "[{}]{} {} bytes {}..{} (score {:.3})",
            c.n,
            if c.cited { " cited" } else { "" },
            c.doc,
            c.start,
            c.end,
            c.score
        )?;
    }
    Ok(())
}
