//! Loading a GGUF model and describing it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

use crate::error::{EngineError, Result};
use crate::gguf::GgufHeader;
use crate::logs;
use crate::template::{builtin_names, ChatTemplate, Message};

static BACKEND: OnceLock<std::result::Result<LlamaBackend, String>> = OnceLock::new();

/// The process-wide llama.cpp backend (initialised on first use).
pub(crate) fn backend() -> Result<&'static LlamaBackend> {
    logs::install();
    BACKEND
        .get_or_init(|| LlamaBackend::init().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| EngineError::Backend {
            during: "initialising the backend",
            problem: e.clone(),
        })
}

/// A special token and how it prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecialToken {
    pub id: i32,
    pub text: String,
}

/// What `outpost info` prints about a model.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub path: PathBuf,
    pub file_size: u64,
    pub gguf_version: u32,
    /// `general.name`, when the file has one.
    pub name: Option<String>,
    /// `general.architecture`, e.g. `llama`, `gemma3`.
    pub architecture: String,
    pub n_params: u64,
    pub n_layer: u32,
    pub n_embd: i32,
    pub n_ctx_train: u32,
    pub n_vocab: i32,
    /// Sliding-window attention size, for models that use it (Gemma 3).
    pub sliding_window: Option<u64>,
    /// ggml type name, tensor count, bytes; largest share first.
    pub type_mix: Vec<(String, usize, u64)>,
    pub bos: Option<SpecialToken>,
    pub eos: Option<SpecialToken>,
    pub add_bos: bool,
    pub add_eos: bool,
    /// The GGUF's own Jinja chat template (`tokenizer.chat_template`).
    pub chat_template: Option<String>,
    /// Set for embedding models (a GGUF whose `ARCH.pooling_type` pools
    /// token vectors into one): they embed, they do not generate.
    pub embedding: Option<EmbeddingInfo>,
}

/// How an embedding model turns tokens into one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddingInfo {
    /// llama.cpp's pooling: `mean`, `cls`, `last` or `rank`.
    pub pooling: &'static str,
    /// L2-normalise after pooling (`outpost.embedding.normalize`; absent
    /// means yes, as llama-server does by default).
    pub normalize: bool,
}

impl EmbeddingInfo {
    /// From a GGUF header: `None` for models that generate.
    pub fn of(header: &GgufHeader, arch: &str) -> Option<EmbeddingInfo> {
        let pooling = match header.u64(&format!("{arch}.pooling_type"))? {
            1 => "mean",
            2 => "cls",
            3 => "last",
            4 => "rank",
            _ => return None,
        };
        Some(EmbeddingInfo {
            pooling,
            normalize: header.bool("outpost.embedding.normalize").unwrap_or(true),
        })
    }
}

impl fmt::Display for ModelInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        writeln!(f, "file              {}", self.path.display())?;
        writeln!(
            f,
            "size              {:.1} MiB (GGUF v{})",
            mib(self.file_size),
            self.gguf_version
        )?;
        if let Some(n) = &self.name {
            writeln!(f, "name              {n}")?;
        }
        writeln!(f, "architecture      {}", self.architecture)?;
        writeln!(
            f,
            "parameters        {} ({:.1} M)",
            self.n_params,
            self.n_params as f64 / 1e6
        )?;
        writeln!(f, "layers            {}", self.n_layer)?;
        writeln!(f, "embedding width   {}", self.n_embd)?;
        writeln!(f, "training context  {} tokens", self.n_ctx_train)?;
        if let Some(e) = &self.embedding {
            writeln!(
                f,
                "kind              embedding ({} pooling{}; serves /v1/embeddings and /api/embed, not chat)",
                e.pooling,
                if e.normalize { ", L2-normalised" } else { "" }
            )?;
        }
        match self.sliding_window {
            _ if self.embedding.is_some() => {}
            Some(w) => {
                writeln!(
                    f,
                    "sliding window    {w} tokens (some layers attend only this far back)"
                )?;
                writeln!(
                    f,
                    "prompt cache      yes, keeping full KV for the sliding-window layers (more memory)"
                )?;
            }
            None => {
                writeln!(f, "sliding window    none")?;
                writeln!(f, "prompt cache      yes")?;
            }
        }
        writeln!(f, "vocabulary        {} tokens", self.n_vocab)?;
        let tok = |t: &Option<SpecialToken>| {
            t.as_ref()
                .map_or_else(|| "none".to_string(), |t| format!("{} {:?}", t.id, t.text))
        };
        writeln!(
            f,
            "BOS               {} (added to prompts: {})",
            tok(&self.bos),
            yes(self.add_bos)
        )?;
        writeln!(
            f,
            "EOS               {} (added to prompts: {})",
            tok(&self.eos),
            yes(self.add_eos)
        )?;
        match &self.chat_template {
            _ if self.embedding.is_some() => {}
            Some(t) => writeln!(f, "chat template     yes ({} bytes of Jinja)", t.len())?,
            None => writeln!(
                f,
                "chat template     none (use raw completions, or --chat-template {})",
                builtin_names()
            )?,
        }
        let total: u64 = self.type_mix.iter().map(|m| m.2).sum();
        writeln!(f, "tensor types      (count, MiB, share of tensor bytes)")?;
        for (name, n, bytes) in &self.type_mix {
            writeln!(
                f,
                "  {name:<8} {n:>5} {:>9.1} {:>6.1} %",
                mib(*bytes),
                100.0 * *bytes as f64 / total.max(1) as f64
            )?;
        }
        Ok(())
    }
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// How to load a model.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Layers to offload to a GPU (only with a GPU build; 0 = CPU only).
    pub gpu_layers: u32,
    /// Lock the weights in RAM (`mlock`) so they are never swapped out:
    /// for a sealed model's in-memory plaintext. Where the limit on locked
    /// memory is too low llama.cpp says so and loads unlocked.
    pub mlock: bool,
    /// The file is still arriving (a sealed model opening in the
    /// background, `outpost_store::open_sealed_background`): the header is
    /// read as its bytes arrive, llama.cpp parses the metadata while the
    /// weights are still being opened, and it reads no tensor data before
    /// the whole file is in (the wait sits in its progress callback, which
    /// it calls before loading the first tensor).
    pub arrival: Option<crate::gguf::Arrival>,
}

/// A loaded GGUF model. Cheap to share across threads behind an `Arc`;
/// each generation makes its own llama.cpp context.
pub struct Model {
    pub(crate) inner: LlamaModel,
    /// llama.cpp may write to the model while making a context, so contexts
    /// are made one at a time (see `Model::new_context`).
    pub(crate) context_lock: std::sync::Mutex<()>,
    info: ModelInfo,
    template: Option<ChatTemplate>,
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Model")
            .field("path", &self.info.path)
            .finish_non_exhaustive()
    }
}

impl Model {
    /// Memory-maps and loads the GGUF at `path`. The header is validated in
    /// Rust first, so bad files get a precise error and never reach a
    /// llama.cpp code path that could abort the process.
    pub fn load(path: &Path, opts: &LoadOptions) -> Result<Model> {
        let header = GgufHeader::read_arriving(path, opts.arrival.as_ref())?;
        let architecture = header
            .architecture()
            .ok_or_else(|| EngineError::BadGguf {
                path: path.to_path_buf(),
                problem: "it has no general.architecture key; it is not a llama.cpp model file"
                    .into(),
            })?
            .to_string();
        if header.tensors.is_empty() {
            return Err(EngineError::BadGguf {
                path: path.to_path_buf(),
                problem: "it has no tensors (a vocabulary-only file?)".into(),
            });
        }
        let backend = backend()?;
        let mut params = LlamaModelParams::default()
            .with_n_gpu_layers(opts.gpu_layers)
            .with_use_mlock(opts.mlock);
        let arrival_failed = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
        if let Some(a) = &opts.arrival {
            // The metadata llama.cpp parses lies before the tensor data.
            a.wait_for(header.data_offset)
                .map_err(|problem| EngineError::Load {
                    path: path.to_path_buf(),
                    problem,
                })?;
            let (a, failed, size) = (a.clone(), arrival_failed.clone(), header.file_size);
            let mut arrived = false;
            params = params.with_progress_callback(move |_| {
                if !arrived {
                    if let Err(e) = a.wait_for(size) {
                        *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                        return false;
                    }
                    arrived = true;
                }
                true
            });
        }
        logs::clear();
        let inner = LlamaModel::load_from_file(backend, path, &params).map_err(|e| {
            let mut problem = logs::recent_problems();
            if let Some(f) = arrival_failed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
            {
                problem = f;
            }
            if problem.is_empty() {
                problem = e.to_string();
            }
            if problem.contains("unknown model architecture") {
                problem.push_str(&format!(
                    " (this llama.cpp build does not support architecture {architecture:?})"
                ));
            }
            EngineError::Load {
                path: path.to_path_buf(),
                problem,
            }
        })?;

        let vocab = inner.vocab();
        let special = |t: LlamaToken| {
            (t.0 >= 0).then(|| SpecialToken {
                id: t.0,
                text: String::from_utf8_lossy(&vocab.token_to_piece(t, true, None)).into_owned(),
            })
        };
        let chat_template = header.str("tokenizer.chat_template").map(str::to_string);
        let embedding = EmbeddingInfo::of(&header, &architecture);
        let info = ModelInfo {
            path: path.to_path_buf(),
            file_size: header.file_size,
            gguf_version: header.version,
            name: header.str("general.name").map(str::to_string),
            architecture,
            n_params: inner.n_params(),
            n_layer: inner.n_layer(),
            n_embd: inner.n_embd(),
            n_ctx_train: inner.n_ctx_train(),
            n_vocab: inner.n_vocab(),
            sliding_window: header
                .arch_u64("attention.sliding_window")
                .filter(|&w| w > 0),
            type_mix: header.type_mix(),
            bos: special(vocab.bos()),
            eos: special(vocab.eos()),
            add_bos: vocab.should_add_bos(),
            add_eos: vocab.should_add_eos(),
            chat_template: chat_template.clone(),
            embedding,
        };
        let template = chat_template
            .map(|src| ChatTemplate::new("gguf", src))
            .transpose()?;
        Ok(Model {
            inner,
            context_lock: std::sync::Mutex::new(()),
            info,
            template,
        })
    }

    /// `general.name`, or the file path when the GGUF has no name.
    pub fn display_name(&self) -> String {
        self.info
            .name
            .clone()
            .unwrap_or_else(|| self.info.path.display().to_string())
    }

    /// What the model is.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The GGUF's own chat template, if it has one.
    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        self.template.as_ref()
    }

    /// Tokenizes `text`. Special-token text (like `<|im_start|>`) becomes the
    /// special token; with `add_special`, BOS/EOS are added as the model's
    /// metadata asks.
    pub fn tokenize(&self, text: &str, add_special: bool) -> Vec<i32> {
        // Same call as llama.cpp's own tools: llama.cpp adds BOS (and EOS,
        // for models that ask for it) exactly as the GGUF metadata says.
        self.inner
            .vocab()
            .tokenize(text.as_bytes(), add_special, true)
            .into_iter()
            .map(|t| t.0)
            .collect()
    }

    /// Refuses token ids outside the vocabulary.
    pub fn check_tokens(&self, tokens: &[i32]) -> Result<()> {
        let n_vocab = self.info.n_vocab;
        match tokens.iter().find(|&&t| t < 0 || t >= n_vocab) {
            Some(bad) => Err(EngineError::InvalidParam {
                name: "token",
                value: bad.to_string(),
                expected: "a token id in [0, vocabulary size)",
            }),
            None => Ok(()),
        }
    }

    /// The text of one token (special tokens render as their text when
    /// `special` is true).
    pub fn token_bytes(&self, token: i32, special: bool) -> Vec<u8> {
        self.inner
            .vocab()
            .token_to_piece(LlamaToken(token), special, None)
    }

    /// Concatenated text of `tokens`, without special tokens.
    pub fn detokenize(&self, tokens: &[i32]) -> String {
        let mut bytes = Vec::new();
        for &t in tokens {
            bytes.extend(self.token_bytes(t, false));
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Whether `token` ends generation (EOS, end-of-turn, ...).
    pub fn is_end_of_generation(&self, token: i32) -> bool {
        self.inner.vocab().is_eog(LlamaToken(token))
    }

    /// Renders chat `messages` into prompt text with `template`, or the
    /// model's own template when `template` is None. A model without a
    /// template is an error naming the way out; it never guesses.
    pub fn render_chat(
        &self,
        messages: &[Message],
        template: Option<&ChatTemplate>,
        add_generation_prompt: bool,
    ) -> Result<String> {
        self.render_chat_with_tools(messages, &[], template, add_generation_prompt)
    }

    /// [`Model::render_chat`] with `tools` handed to the template.
    pub fn render_chat_with_tools(
        &self,
        messages: &[Message],
        tools: &[crate::TemplateValue],
        template: Option<&ChatTemplate>,
        add_generation_prompt: bool,
    ) -> Result<String> {
        let tmpl =
            template
                .or(self.template.as_ref())
                .ok_or_else(|| EngineError::NoChatTemplate {
                    model: self
                        .info
                        .name
                        .clone()
                        .unwrap_or_else(|| self.info.path.display().to_string()),
                    builtins: builtin_names(),
                })?;
        let bos = self.info.bos.as_ref().map_or("", |t| t.text.as_str());
        let eos = self.info.eos.as_ref().map_or("", |t| t.text.as_str());
        tmpl.render_with_tools(messages, tools, add_generation_prompt, bos, eos)
    }

    /// Tokens of a rendered chat prompt. A template that writes the BOS text
    /// itself does not get a second BOS from the tokenizer.
    pub fn tokenize_chat_prompt(&self, rendered: &str) -> Vec<i32> {
        match &self.info.bos {
            Some(bos)
                if self.info.add_bos && !bos.text.is_empty() && rendered.starts_with(&bos.text) =>
            {
                self.tokenize(&rendered[bos.text.len()..], true)
            }
            _ => self.tokenize(rendered, true),
        }
    }
}
