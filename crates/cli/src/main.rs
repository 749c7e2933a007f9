//! `outpost`: the command line. Thin: parse arguments, call the libraries,
//! turn errors into messages and exit codes (0 ok, 1 failed, 2 bad usage).

mod agent;
mod ask;
mod chat;
mod convert;
mod embed;
mod fleet;
mod guard;
mod guard_bench;
mod index;
mod logging;
mod models;
mod progress;
mod route;
mod run;
mod serve;
mod shell;
mod table;
mod variants;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// Outpost runs quantized GGUF models on the device, at llama.cpp speed.
///
/// MODEL is a path to a .gguf file or the short name of a fetched model
/// (smollm2-135m, gemma3-270m; fetch them with scripts/fetch-models.sh).
#[derive(Debug, Parser)]
#[command(
    name = "outpost",
    version,
    propagate_version = true,
    max_term_width = 100
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    log: logging::LogArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate from a prompt, streaming the answer to stdout.
    ///
    /// Chat models get the prompt as a user message rendered with the
    /// model's own chat template; --raw sends the text as-is for a plain
    /// completion (required for base models such as gemma3-270m).
    /// Statistics go to stderr. Ctrl-C stops generation cleanly.
    ///
    /// Examples:
    ///   outpost run smollm2-135m "Write a haiku about the sea"
    ///   outpost run gemma3-270m --raw "The capital of France is" --temperature 0
    ///   outpost run model.gguf "hi" --seed 42 --max-tokens 64 --stop "\n\n"
    #[command(verbatim_doc_comment)]
    Run(run::RunArgs),
    /// Chat interactively, turn after turn. The conversation is kept in the
    /// prompt cache, so each turn computes only its new tokens. Reads lines
    /// from stdin (works in a pipe too); /reset, /system TEXT, /exit.
    /// Ctrl-C stops the answer being written.
    ///
    /// Examples:
    ///   outpost chat smollm2-135m
    ///   outpost chat smollm2-135m --system "Answer in one sentence." --temperature 0.3
    ///   printf 'Hi\nWhat did I just say?\n' | outpost chat smollm2-135m
    #[command(verbatim_doc_comment)]
    Chat(chat::ChatArgs),
    /// Describe a model (architecture, size, tensor types, template), or
    /// with --build the llama.cpp build and its CPU features.
    ///
    /// Examples:
    ///   outpost info smollm2-135m
    ///   outpost info models/gemma3-270m.gguf --json
    ///   outpost info --build
    #[command(verbatim_doc_comment)]
    Info(run::InfoArgs),
    /// Measure prompt processing (pp) and generation (tg) speed the way
    /// llama-bench does: random tokens, one warm-up, --reps timed runs.
    ///
    /// Examples:
    ///   outpost bench smollm2-135m
    ///   outpost bench gemma3-270m -p 512 -g 128 -r 5 -t 2 --json
    #[command(verbatim_doc_comment)]
    Bench(run::BenchArgs),
    /// Find and redact personal data (emails, phones, cards, IBANs, SSNs,
    /// addresses, secrets, birth dates) on the device.
    ///
    /// Examples:
    ///   echo "Call +1 (415) 555-0134" | outpost guard scan
    ///   echo "IBAN GB82 WEST 1234 5698 7654 32" | outpost guard redact --action mask
    ///   outpost guard bench
    #[command(verbatim_doc_comment)]
    Guard(guard::GuardArgs),
    /// Serve models over OpenAI- and Ollama-compatible HTTP APIs on localhost,
    /// so existing clients work unchanged:
    ///   OpenAI  /v1/chat/completions, /v1/completions (SSE), /v1/models
    ///   Ollama  /api/chat, /api/generate (NDJSON), /api/tags, /api/show,
    ///           /api/ps, /api/version
    ///   ops     /health, /metrics (Prometheus)
    ///
    /// Models load on first use and unload after --keep-alive idle (or a
    /// request's keep_alive), within --memory-budget. Each model runs --slots
    /// requests at once and queues --queue more; beyond that, 503 with
    /// Retry-After. SIGTERM or Ctrl-C: stop accepting, let requests finish
    /// for --grace, cancel the rest, exit 0.
    ///
    /// Examples:
    ///   outpost serve smollm2-135m
    ///   outpost serve smollm2-135m gemma3-270m --port 9000 --slots 8
    ///   outpost serve gemma3-270m --keep-alive -1 --memory-budget 2GiB
    ///   OUTPOST_API_KEY=secret outpost serve smollm2-135m --host 0.0.0.0
    #[command(verbatim_doc_comment)]
    Serve(serve::ServeArgs),
    /// Hybrid routing: check a route policy, or measure one on a prompt set
    /// (local-only vs cloud-only vs auto). `outpost serve --route-policy FILE
    /// --cloud-url URL` routes each OpenAI request to the local model or the
    /// cloud and says why in the x-outpost-route header; personal data is
    /// kept local or replaced by placeholders before it leaves.
    ///
    /// Examples:
    ///   outpost route check policy.toml
    ///   outpost route eval prompts.txt --policy policy.toml
    #[command(verbatim_doc_comment)]
    Route(route::RouteArgs),
    /// The fleet control plane: serve it, publish releases, roll them out
    /// to channels in stages, pin, revoke, freeze, and see every device.
    ///
    /// Examples:
    ///   outpost fleet serve --data ./fleet
    ///   outpost fleet publish releases/smollm2-2025-06 --data ./fleet
    ///   outpost fleet rollout create smollm2-135m@2025-06 --stages 1,5,25,100 --soak 1h --data ./fleet
    ///   outpost fleet status --data ./fleet
    #[command(verbatim_doc_comment)]
    Fleet(fleet::FleetArgs),
    /// The device agent: check in with a fleet, download what it assigns
    /// (resumable, verified: signature, version, expiry, length, sha256),
    /// install it atomically into a store (the previous version kept), run
    /// a quality canary and revert locally if it fails, tell the local
    /// server to reload, and ship telemetry (buffered while offline).
    ///
    /// Examples:
    ///   outpost agent once --fleet http://127.0.0.1:8700 --store ./device \
    ///       --app-key-file fleet/app.key --pin fleet/signing.pub.json
    ///   outpost agent run --store ./device --pin fleet/signing.pub.json --serve-url http://127.0.0.1:8642
    ///   outpost serve --store ./device
    ///   outpost agent profile --profile phone.toml
    #[command(verbatim_doc_comment)]
    Agent(agent::AgentArgs),
    /// Quantization tiers from one checkpoint, each measured against it
    /// (perplexity, KL divergence, same-top-token %, speed, memory), with a
    /// report, a chart and a recommended tier per device class.
    ///
    /// Example:
    ///   outpost variants build smollm2-135m --out variants/smollm2
    #[command(verbatim_doc_comment)]
    Variants(variants::VariantsArgs),
    /// Convert a full-precision Hugging Face checkpoint (safetensors +
    /// tokenizer.json) to GGUF for llama.cpp. BERT encoders today
    /// (all-MiniLM-L6-v2, BGE, E5); `outpost variants build` then makes
    /// f16 / q8_0 / q5 / q4 tiers of the f32 file.
    ///
    /// Examples:
    ///   outpost convert models/all-minilm-l6-v2 --out models/minilm-f32.gguf
    ///   outpost convert ./my-bert --out bert-f16.gguf --type f16 --pooling cls
    #[command(verbatim_doc_comment)]
    Convert(convert::ConvertArgs),
    /// Embed texts with an embedding model: one JSON line per input
    /// (index, token count, vector; pooled and normalised as the model says).
    ///
    /// Examples:
    ///   outpost embed minilm "The sea is calm" "A storm is coming"
    ///   outpost embed models/minilm-f32.gguf --file notes.txt > vectors.jsonl
    #[command(verbatim_doc_comment)]
    Embed(embed::EmbedArgs),
    /// An on-device vector index: documents chunked by tokens, embedded and
    /// stored in one SQLite file; exact nearest-chunk search. Nothing leaves
    /// the device.
    ///
    /// Examples:
    ///   outpost index create notes --model minilm
    ///   outpost index add notes notes/*.txt --redact
    ///   outpost index search notes "when is the dentist?" -k 3
    ///   outpost index list notes
    ///   outpost index rm notes old.txt
    #[command(verbatim_doc_comment)]
    Index(index::IndexArgs),
    /// Answer a question from an index: the nearest chunks go to a chat
    /// model as numbered sources, and the answer cites them ([1], [2]) with
    /// their documents and byte offsets. All on the device.
    ///
    /// Examples:
    ///   outpost ask notes "When is the dentist appointment?"
    ///   outpost ask notes "What did the bank write?" --model gemma3-270m -k 3 --json
    #[command(verbatim_doc_comment)]
    Ask(ask::AskArgs),
    /// Print a shell completion script.
    ///
    /// Examples:
    ///   outpost completions bash > /etc/bash_completion.d/outpost
    ///   outpost completions zsh > "${fpath[1]}/_outpost"
    ///   outpost completions fish > ~/.config/fish/completions/outpost.fish
    #[command(verbatim_doc_comment)]
    Completions(shell::CompletionsArgs),
    /// Print the manual page (roff), or write one page per subcommand.
    ///
    /// Examples:
    ///   outpost man | man -l -
    ///   outpost man --out /usr/local/share/man/man1
    #[command(verbatim_doc_comment)]
    Man(shell::ManArgs),
}

fn main() -> ExitCode {
    // `outpost ... | head`: a closed pipe ends the program quietly, as for
    // any Unix tool, instead of panicking in println!.
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to the default at start-up,
    // before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    if let Err(e) = cli.log.init() {
        eprintln!("error: {e:#}");
        return ExitCode::from(2);
    }
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Chat(args) => chat::chat(args),
        Command::Info(args) => run::info(args),
        Command::Bench(args) => run::bench(args),
        Command::Guard(args) => guard::guard(args),
        Command::Serve(args) => serve::serve(args),
        Command::Agent(args) => agent::agent(args),
        Command::Route(args) => route::route(args),
        Command::Fleet(args) => fleet::fleet(args),
        Command::Variants(args) => variants::variants(args),
        Command::Convert(args) => convert::convert(args),
        Command::Embed(args) => embed::embed(args),
        Command::Index(args) => index::index(args),
        Command::Ask(args) => ask::ask(args),
        Command::Completions(args) => shell::completions(args, &mut Cli::command()),
        Command::Man(args) => shell::man(args, Cli::command()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A machine reading JSON lines gets the failure as one too.
        Err(e) if cli.log.json() => {
            tracing::error!(error = %format!("{e:#}"), "failed");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
