//! `outpost fleet publish DIR [--encrypt]`: hash (and with `--encrypt`
//! seal) a release folder's files, upload the blobs the fleet lacks, hand
//! over the content key of a sealed release, then record the release.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use outpost_fleet::meta::{load_dir, seal_release, Minimums};
use outpost_protocol::manifest::Version;
use serde_json::{json, Value};

use super::Api;

/// Sealing chunk sizes `--chunk-size` accepts (the 1-4 MiB).
const CHUNK_MIN: u64 = 1 << 20;
const CHUNK_MAX: u64 = 4 << 20;

/// What `publish` was asked to do.
pub struct Publish<'a> {
    pub dir: &'a Path,
    pub version: &'a Option<String>,
    pub app: &'a Option<String>,
    pub min_app_version: &'a Option<String>,
    pub min_engine_version: &'a Option<String>,
    /// `Some(true)`: --encrypt, `Some(false)`: --no-encrypt, `None`: the
    /// fleet's default (`outpost fleet serve --seal-releases`).
    pub encrypt: Option<bool>,
    pub chunk_size: &'a str,
}

pub fn run(api: &Api, p: &Publish<'_>) -> Result<Value> {
    let parse = |flag: &str, v: &Option<String>| {
        v.as_deref()
            .map(Version::parse)
            .transpose()
            .with_context(|| format!("--{flag}"))
    };
    let mins = Minimums {
        version: p.version.clone(),
        min_app_version: parse("min-app-version", p.min_app_version)?,
        min_engine_version: parse("min-engine-version", p.min_engine_version)?,
    };
    let chunk = super::parse_size(p.chunk_size).context("--chunk-size")?;
    if !(CHUNK_MIN..=CHUNK_MAX).contains(&chunk) {
        bail!(
            "--chunk-size {:?} is outside 1MiB-4MiB: chunks that small cost a tag each, larger ones make a resumed download redo more",
            p.chunk_size
        );
    }
    let mut rd = load_dir(p.dir, &mins)
        .with_context(|| format!("reading the release in {}", p.dir.display()))?;
    if let Some(app) = p.app {
        let given = &rd.meta.app;
        if !outpost_fleet::access::is_default_app(given) && given != app {
            bail!("--app {app:?} but the release's metadata says \"app\": {given:?}; drop one");
        }
        rd.meta.app = app.clone();
    }
    let encrypt = match p.encrypt {
        Some(e) => e,
        None => api.get("/admin/v1/status")?["seal_releases"]
            .as_bool()
            .unwrap_or(false),
    };
    // Sealed blobs are written beside the release (where there is room for
    // them) and removed when publishing ends, however it ends.
    let sealed_dir = ScratchDir(
        p.dir
            .join(format!(".outpost-sealed-{}", std::process::id())),
    );
    let key = if encrypt {
        std::fs::create_dir_all(&sealed_dir.0).with_context(|| {
            format!(
                "making a folder for the sealed blobs: {}",
                sealed_dir.0.display()
            )
        })?;
        let key = seal_release(&mut rd, &sealed_dir.0, chunk as u32, &|path, file, len| {
            let bar = crate::progress::bytes(len, &format!("sealing {}", path.display()));
            Box::new(bar.wrap_read(file))
        })
        .context("sealing the release")?;
        Some(key)
    } else {
        None
    };
    for (digest, path) in &rd.files {
        let url = format!("{}/v1/artifacts/{digest}", api.url);
        let have = api
            .agent
            .head(&url)
            .set("authorization", &api.auth)
            .call()
            .is_ok();
        if have {
            eprintln!("{digest} already in the fleet ({})", path.display());
            continue;
        }
        let file =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let len = file.metadata()?.len();
        let bar = crate::progress::bytes(len, &format!("uploading {} as {digest}", path.display()));
        let r = api
            .agent
            .put(&format!("{}/admin/v1/blobs/{digest}", api.url))
            .set("authorization", &api.auth)
            .set("content-length", &len.to_string())
            .send(bar.wrap_read(file));
        bar.finish_and_clear();
        api.answer(&format!("uploading {}", path.display()), r)?;
    }
    if let Some(key) = &key {
        let b64 = outpost_fleet::keys::key32_to_base64(key.as_bytes());
        for (digest, _) in &rd.files {
            api.send(
                "PUT",
                &format!("/admin/v1/content-keys/{digest}"),
                json!({ "key": b64 }),
            )
            .with_context(|| format!("handing the fleet the content key of {digest}"))?;
        }
    }
    drop(key);
    api.send(
        "POST",
        "/admin/v1/releases",
        serde_json::to_value(&rd.meta)?,
    )
}

/// A folder removed with everything in it when dropped.
struct ScratchDir(PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
