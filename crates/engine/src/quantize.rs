//! Quantization with llama.cpp's own quantizer (`llama_model_quantize`),
//! by tier name. The caller chooses the output path; write to a temporary
//! name and rename, so that a killed run never leaves a file that looks
//! finished.

use std::ffi::CString;
use std::path::Path;

use crate::error::{EngineError, Result};
use crate::model::backend;

/// Tier names accepted by [`quantize`], most bits first, with llama.cpp's
/// `llama_ftype` and the nominal bits per weight of the main type.
/// Sub-4-bit IQ types are left out: they need an importance matrix.
pub const QUANT_TIERS: &[(&str, u32, f32)] = &[
    ("f16", 1, 16.0),
    ("bf16", 32, 16.0),
    ("q8_0", 7, 8.5),
    ("q6_k", 18, 6.56),
    ("q5_1", 9, 6.0),
    ("q5_k_m", 17, 5.5),
    ("q5_k_s", 16, 5.5),
    ("q5_0", 8, 5.5),
    ("q4_1", 3, 5.0),
    ("q4_k_m", 15, 4.5),
    ("q4_k_s", 14, 4.5),
    ("iq4_nl", 25, 4.5),
    ("q4_0", 2, 4.5),
    ("iq4_xs", 30, 4.25),
    ("q3_k_l", 13, 3.44),
    ("q3_k_m", 12, 3.44),
    ("q3_k_s", 11, 3.44),
    ("q2_k", 10, 2.63),
];

/// The `llama_ftype` of tier `name` (case-insensitive), or an error that
/// lists the valid names.
pub fn quant_ftype(name: &str) -> Result<u32> {
    let lower = name.to_ascii_lowercase();
    QUANT_TIERS
        .iter()
        .find(|(n, _, _)| *n == lower)
        .map(|&(_, f, _)| f)
        .ok_or_else(|| EngineError::InvalidParam {
            name: "tier",
            value: name.to_string(),
            expected: "one of f16, bf16, q8_0, q6_k, q5_1, q5_k_m, q5_k_s, q5_0, q4_1, q4_k_m, q4_k_s, iq4_nl, q4_0, iq4_xs, q3_k_l, q3_k_m, q3_k_s, q2_k",
        })
}

/// Quantizes `src` into `dst` as tier `name` on `threads` threads. An
/// already-quantized source is requantized (llama.cpp's
/// `allow_requantize`): quality can then only fall.
pub fn quantize(src: &Path, dst: &Path, name: &str, threads: u32) -> Result<()> {
    let ftype = quant_ftype(name)?;
    crate::gguf::GgufHeader::read(src)?;
    backend()?;
    let path_c = |p: &Path| {
        CString::new(p.to_string_lossy().as_bytes()).map_err(|_| EngineError::InvalidParam {
            name: "path",
            value: p.display().to_string(),
            expected: "a path without NUL bytes",
        })
    };
    let (src_c, dst_c) = (path_c(src)?, path_c(dst)?);
    // SAFETY: default params are plain data; the pointers inside stay null.
    let mut params = unsafe { llama_cpp_sys_2::llama_model_quantize_default_params() };
    params.nthread = i32::try_from(threads.max(1)).unwrap_or(1);
    params.ftype = ftype as llama_cpp_sys_2::llama_ftype;
    params.allow_requantize = true;
    crate::logs::clear();
    crate::logs::reset_quantize_progress();
    // SAFETY: both strings are valid NUL-terminated paths that outlive the
    // call; params is a valid struct with null optional pointers.
    let rc =
        unsafe { llama_cpp_sys_2::llama_model_quantize(src_c.as_ptr(), dst_c.as_ptr(), &params) };
    if rc != 0 {
        let mut problem = crate::logs::recent_problems();
        if problem.is_empty() {
            problem = format!("llama_model_quantize returned {rc}");
        }
        return Err(EngineError::Backend {
            during: "quantizing",
            problem: format!("{} → {} as {name}: {problem}", src.display(), dst.display()),
        });
    }
    Ok(())
}
