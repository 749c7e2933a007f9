//! The few file-system moves everything in the store is built from: a
//! unique temp name, fsync of a directory, and write-temp-then-rename.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{IoContext, Result};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name no other temp file of this or another process has: pid, a
/// process-wide counter and the clock.
pub(crate) fn temp_name() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}-{}-{nanos}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Makes a rename or a new name in `dir` durable. Filesystems that cannot
/// fsync a directory (they answer EINVAL) are let through.
pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
    let r = File::open(dir).and_then(|d| d.sync_all());
    match r {
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => Ok(()),
        other => other.ctx("fsync directory", dir),
    }
}

/// A new file in `tmp_dir`, opened for writing; `create_new` so it never
/// reuses someone else's.
pub(crate) fn create_temp(tmp_dir: &Path) -> Result<(File, PathBuf)> {
    let path = tmp_dir.join(temp_name());
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .ctx("create temp file", &path)?;
    Ok((file, path))
}

/// Moves a finished, fsynced file into place and makes the move durable.
pub(crate) fn commit_rename(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).ctx("rename into place", to)?;
    if let Some(dir) = to.parent() {
        fsync_dir(dir)?;
    }
    Ok(())
}

/// Replaces `dest` with `bytes` so that a reader sees either the old file
/// or the new one, whole, even across a crash: temp file, fsync, rename,
/// fsync the directory.
pub(crate) fn write_atomic(tmp_dir: &Path, dest: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_at(tmp_dir, dest, bytes, None)
}

/// [`write_atomic`] with a named crash point between the fsync and the
/// rename (see `crash.rs`).
pub(crate) fn write_atomic_at(
    tmp_dir: &Path,
    dest: &Path,
    bytes: &[u8],
    crash_point: Option<&str>,
) -> Result<()> {
    let (mut file, tmp) = create_temp(tmp_dir)?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .ctx("write", &tmp);
    drop(file);
    if let (Ok(()), Some(point)) = (&written, crash_point) {
        crate::crash::crash_point(point);
    }
    if let Err(e) = written.and_then(|()| commit_rename(&tmp, dest)) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(())
}

/// Total size of the regular files directly in `dir` (0 if it is absent).
pub(crate) fn dir_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).ctx("list", dir),
    };
    for entry in entries {
        let entry = entry.ctx("list", dir)?;
        // A file removed while we count is simply not counted.
        if let Ok(meta) = entry.metadata() {
            if meta.is_file() {
                total += meta.len();
            }
        }
    }
    Ok(total)
}
