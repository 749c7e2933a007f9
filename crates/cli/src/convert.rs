//! `outpost convert DIR --out FILE`: a full-precision Hugging Face
//! checkpoint to GGUF (see `outpost_convert`), with a progress bar and a
//! one-paragraph summary.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use outpost_convert::{Options, Pooling};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PoolingArg {
    Mean,
    Cls,
}

#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The checkpoint folder: config.json, tokenizer.json, model.safetensors
    /// (or model.safetensors.index.json and its shards) and, for
    /// sentence-transformers models, 1_Pooling/config.json and modules.json.
    pub dir: PathBuf,
    /// Where to write the GGUF (written to FILE.partial, then renamed).
    #[arg(long, short)]
    pub out: PathBuf,
    /// Storage type of the weight matrices: f32 (the lossless reference that
    /// `outpost variants build` scores tiers against) or f16. Norms, biases,
    /// position and token-type embeddings stay f32 either way.
    #[arg(long = "type", default_value = "f32", value_name = "TYPE")]
    pub out_type: String,
    /// Pooling when the folder has no 1_Pooling/config.json.
    #[arg(long, value_enum)]
    pub pooling: Option<PoolingArg>,
}

pub fn convert(args: ConvertArgs) -> Result<()> {
    let opts = Options {
        out_type: outpost_convert::parse_out_type(&args.out_type)?,
        pooling: args.pooling.map(|p| match p {
            PoolingArg::Mean => Pooling::Mean,
            PoolingArg::Cls => Pooling::Cls,
        }),
    };
    let bar = crate::progress::steps(100, &format!("converting {}", args.dir.display()), "%");
    let report = outpost_convert::convert(&args.dir, &args.out, &opts, |done, total| {
        bar.set_position(done * 100 / total.max(1));
    })
    .with_context(|| format!("converting {}", args.dir.display()))?;
    bar.finish_and_clear();
    println!(
        "wrote {} ({:.1} MiB): {} encoder, {} tensors, {:.1} M parameters, {} tokens, {} pooling{}",
        report.path.display(),
        report.size as f64 / (1024.0 * 1024.0),
        report.architecture,
        report.tensors,
        report.parameters as f64 / 1e6,
        report.vocab,
        report.pooling.as_str(),
        if report.normalize {
            ", L2-normalised"
        } else {
            ""
        },
    );
    if !report.dropped.is_empty() {
        println!(
            "left out (not used for embeddings): {}",
            report.dropped.join(", ")
        );
    }
    Ok(())
}
