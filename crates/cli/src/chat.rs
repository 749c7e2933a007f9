//! `outpost chat`: an interactive multi-turn chat on the scheduler, whose
//! prompt cache makes each turn compute only its new tokens.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Result;
use clap::Args;
use outpost_engine::{
    CancelToken, EngineError, GenerateRequest, LoadOptions, Message, Model, Prompt, Scheduler,
    SchedulerConfig,
};

use crate::models;
use crate::run::{load_template, SamplingArgs};

#[derive(Debug, Args)]
pub struct ChatArgs {
    /// Model path or short name (a chat model, or give --chat-template).
    pub model: String,
    /// A system message for the whole conversation.
    #[arg(long)]
    pub system: Option<String>,
    /// Chat template to use instead of the model's own: a built-in name
    /// (chatml, gemma, llama3) or a Jinja file.
    #[arg(long, value_name = "NAME|FILE")]
    pub chat_template: Option<String>,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

const HELP: &str = "commands: /reset (forget the conversation), /system TEXT (set the system message), /exit (or Ctrl-D)";

pub fn chat(a: ChatArgs) -> Result<()> {
    let path = models::resolve(&a.model)?;
    let model = Arc::new(Model::load(&path, &LoadOptions::default())?);
    let template = load_template(a.chat_template.as_deref())?;
    if template.is_none() && model.chat_template().is_none() {
        model.render_chat(&[Message::user("")], None, true)?;
    }
    let sched = Scheduler::start(
        model.clone(),
        SchedulerConfig {
            slots: 1,
            n_ctx_per_slot: a.sampling.ctx_size,
            threads: a.sampling.threads,
            ..SchedulerConfig::default()
        },
    )?;

    // Ctrl-C stops the answer being written; at the prompt it exits.
    let current: Arc<Mutex<Option<CancelToken>>> = Arc::new(Mutex::new(None));
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let current = current.clone();
        let interrupted = interrupted.clone();
        let _ = ctrlc::set_handler(move || match current.lock().ok().and_then(|c| c.clone()) {
            Some(c) => {
                interrupted.store(true, Ordering::SeqCst);
                c.cancel();
            }
            None => std::process::exit(130),
        });
    }

    let interactive = std::io::stdin().is_terminal();
    let mut system = a.system.clone();
    let mut history: Vec<Message> = Vec::new();
    eprintln!(
        "chatting with {} ({} tokens of context). {HELP}",
        path.display(),
        sched.n_ctx_per_slot()
    );
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        if interactive {
            eprint!("> ");
            let _ = std::io::stderr().flush();
        }
        let Some(line) = lines.next() else { break };
        let line = line?;
        let input = line.trim();
        match input {
            "" => continue,
            "/exit" | "/quit" => break,
            "/help" => {
                eprintln!("{HELP}");
                continue;
            }
            "/reset" => {
                history.clear();
                eprintln!("[conversation forgotten]");
                continue;
            }
            _ if input.starts_with("/system") => {
                let text = input.trim_start_matches("/system").trim();
                system = (!text.is_empty()).then(|| text.to_string());
                history.clear();
                eprintln!("[system message set; conversation restarted]");
                continue;
            }
            _ if input.starts_with('/') => {
                eprintln!("unknown command {input:?}; {HELP}");
                continue;
            }
            _ => {}
        }
        history.push(Message::user(input));
        let mut messages: Vec<Message> =
            system.iter().map(|s| Message::system(s.clone())).collect();
        messages.extend(history.iter().cloned());
        let mut req = GenerateRequest::new(Prompt::Chat {
            messages,
            template: template.clone(),
            tools: Vec::new(),
        });
        a.sampling.apply(&mut req);
        let handle = match sched.submit(req) {
            Ok(h) => h,
            Err(e @ EngineError::ContextOverflow { .. }) => {
                history.pop();
                eprintln!("error: {e}\n[the conversation no longer fits: /reset to start over]");
                continue;
            }
            Err(e) => {
                history.pop();
                eprintln!("error: {e}");
                continue;
            }
        };
        if let Ok(mut c) = current.lock() {
            *c = Some(handle.cancel.clone());
        }
        let mut out = std::io::stdout().lock();
        let done = handle.wait(|p| {
            let _ = out.write_all(p.text.as_bytes());
            let _ = out.flush();
        });
        let _ = writeln!(out);
        drop(out);
        if let Ok(mut c) = current.lock() {
            *c = None;
        }
        match done {
            Ok(done) => {
                eprintln!(
                    "[{} prompt tokens, {} from cache, {} computed; {} generated at {:.1} tok/s; finish: {:?}]",
                    done.prompt_tokens,
                    done.cached_tokens,
                    done.prompt_tokens - done.cached_tokens,
                    done.tokens.len(),
                    done.tokens.len() as f64 * 1e3 / done.generate_ms.max(1e-3),
                    done.finish_reason,
                );
                history.push(Message::assistant(done.text));
                if interrupted.swap(false, Ordering::SeqCst) {
                    eprintln!("[interrupted: the partial answer is kept]");
                }
            }
            Err(e) => {
                history.pop();
                eprintln!("error: {e}");
            }
        }
    }
    Ok(())
}
