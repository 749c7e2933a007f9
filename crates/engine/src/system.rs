//! What llama.cpp this binary was built with, and for which CPU features.

use std::ffi::CStr;

/// The `llama-cpp-sys-2` crate version the workspace pins (checked against
/// Cargo.toml by the tidy test).
pub const LLAMA_CPP_SYS_VERSION: &str = "0.1.161";
/// Which llama.cpp that is. The crate ships llama.cpp's sources without git
/// metadata (llama.cpp's own build info says "unknown"), so we name what is
/// known: the llama-cpp-rs commit that published the crate (from the crate's
/// `.cargo_vcs_info.json`) and the vendored ggml version. Its sources are
/// newer than llama.cpp 0c1e57098 (the reference tools' commit).
pub const LLAMA_CPP_COMMIT: &str =
    "unrecorded by the crate; llama-cpp-rs e7af607ebd5e, ggml 0.26.0";

/// Build facts for `outpost info --build`.
#[derive(Debug, Clone)]
pub struct BuildInfo {
    pub llama_cpp_sys_version: &'static str,
    pub llama_cpp_commit: &'static str,
    /// CPU features ggml was compiled with (`AVX2`, `AVX512`, ...).
    pub cpu_features: Vec<String>,
    /// llama.cpp's own one-line system report.
    pub system_info: String,
    pub gpu_offload: bool,
}

/// Reads llama.cpp's build and system info.
pub fn build_info() -> BuildInfo {
    let backend = crate::model::backend();
    // SAFETY: returns a pointer to a static, NUL-terminated buffer.
    let system_info = unsafe {
        let p = llama_cpp_sys_2::llama_print_system_info();
        if p.is_null() {
            String::new()
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    };
    BuildInfo {
        llama_cpp_sys_version: LLAMA_CPP_SYS_VERSION,
        llama_cpp_commit: LLAMA_CPP_COMMIT,
        cpu_features: enabled_features(&system_info),
        gpu_offload: backend.is_ok_and(|b| b.supports_gpu_offload()),
        system_info: system_info.trim().to_string(),
    }
}

/// The `NAME = 1` entries of llama.cpp's system-info line.
fn enabled_features(info: &str) -> Vec<String> {
    info.split('|')
        .filter_map(|part| {
            let part = part.rsplit(':').next().unwrap_or(part);
            let (name, val) = part.split_once('=')?;
            (val.trim() == "1").then(|| name.trim().to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn features_are_parsed() {
        let f = super::enabled_features("CPU : SSE3 = 1 | AVX = 1 | AVX512 = 0 | REPACK = 1 |");
        assert_eq!(f, vec!["SSE3", "AVX", "REPACK"]);
    }
}
