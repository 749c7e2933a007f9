//! What the in-app library's tests (the Python, Kotlin/Swift and aarch64
//! ones) share: the repository root, a built artifact that must exist, and
//! a command that must succeed.

#![allow(dead_code)] // each test binary uses its own subset

use std::path::PathBuf;
use std::process::Command;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `path`, which must exist; `how` says how to make it.
pub fn built(path: PathBuf, how: &str) -> PathBuf {
    assert!(path.is_file(), "{} is missing: {how}", path.display());
    path
}

/// Runs `c` to success and gives its stdout (a failure shows stderr too);
/// `setup` names the script that installs the program when it does not
/// start.
pub fn run_ok(c: &mut Command, setup: &str) -> String {
    let o = c
        .output()
        .unwrap_or_else(|e| panic!("{c:?} did not start ({e}): run {setup}"));
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{c:?}:\n{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    stdout
}
