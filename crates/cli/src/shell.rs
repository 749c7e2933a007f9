//! Shell integration: `outpost completions SHELL` (clap_complete) and
//! `outpost man` (clap_mangen), both generated from the same clap
//! definitions as `--help`, so they never drift from the real flags.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use clap_complete::Shell;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write outpost.1 and one page per subcommand (outpost-serve.1,
    /// outpost-fleet-rollout.1, ...) into this folder instead of printing
    /// outpost.1 to stdout.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

pub fn completions(a: CompletionsArgs, cmd: &mut clap::Command) -> Result<()> {
    clap_complete::generate(a.shell, cmd, "outpost", &mut std::io::stdout());
    Ok(())
}

pub fn man(a: ManArgs, cmd: clap::Command) -> Result<()> {
    match a.out {
        None => clap_mangen::Man::new(cmd)
            .render(&mut std::io::stdout())
            .context("writing the manual page"),
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(cmd, &dir)
                .with_context(|| format!("writing manual pages into {}", dir.display()))?;
            let pages = std::fs::read_dir(&dir)?.count();
            eprintln!("wrote {pages} pages into {}", dir.display());
            Ok(())
        }
    }
}
