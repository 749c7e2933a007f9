//! The guard over the C ABI: scan text for personal data, redact it into
//! placeholders before it leaves the device, and restore the originals in
//! an answer that mentions the placeholders.

use std::ffi::{c_char, CString};

use outpost_guard::{redact, Action, Region, Restorer, Scanner, Vault};

use crate::{give, guarded, text};

/// A configured scanner. Thread-safe: scans may run on several threads.
pub struct OutpostGuard(Scanner);

/// One redacted text and the placeholders it made. Not thread-safe: one
/// thread at a time.
pub struct OutpostRedaction {
    text: CString,
    vault: Vault,
}

/// A scanner reading national phone numbers of `regions` (comma separated
/// CLDR codes such as "US,GB"; NULL or "" for the device locale's region,
/// else US). NULL on failure. Thread-safe.
///
/// # Safety
/// `regions` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn outpost_guard_new(regions: *const c_char) -> *mut OutpostGuard {
    guarded(std::ptr::null_mut(), || {
        let codes = if regions.is_null() {
            ""
        } else {
            // SAFETY: as the caller promises.
            unsafe { text(regions, "regions") }?
        };
        let scanner = if codes.trim().is_empty() {
            Scanner::new()
        } else {
            let parsed = codes
                .split(',')
                .map(|c| c.parse::<Region>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("regions {codes:?}: {e}"))?;
            Scanner::with_regions(parsed)
        };
        Ok(Box::into_raw(Box::new(OutpostGuard(scanner))))
    })
}

/// Frees a scanner. NULL is ignored.
///
/// # Safety
/// `guard` comes from `outpost_guard_new` and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn outpost_guard_free(guard: *mut OutpostGuard) {
    if !guard.is_null() {
        // SAFETY: made by Box::into_raw in outpost_guard_new.
        drop(unsafe { Box::from_raw(guard) });
    }
}

/// The personal data found in `text`, as a JSON array of `{"entity",
/// "start", "end", "score"}` (`start`/`end`: Unicode character offsets,
/// end exclusive); free it with `outpost_string_free`. NULL on failure.
/// Thread-safe.
///
/// # Safety
/// `guard` is live; `text` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn outpost_guard_scan(
    guard: *const OutpostGuard,
    input: *const c_char,
) -> *mut c_char {
    guarded(std::ptr::null_mut(), || {
        // SAFETY: as the caller promises.
        let g =
            unsafe { guard.as_ref() }.ok_or("guard is NULL: make one with outpost_guard_new")?;
        // SAFETY: as the caller promises.
        let t = unsafe { text(input, "text") }?;
        let found: Vec<serde_json::Value> =
            g.0.scan(t)
                .into_iter()
                .map(|f| {
                    serde_json::json!({"entity": f.entity.name(), "start": f.start,
                    "end": f.end, "score": f.score})
                })
                .collect();
        Ok(give(serde_json::Value::Array(found).to_string()))
    })
}

/// `text` with every finding replaced by a placeholder such as
/// `<EMAIL_ADDRESS_1>` (the same value, the same placeholder). NULL on
/// failure. Thread-safe (the result is not).
///
/// # Safety
/// `guard` is live; `text` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn outpost_guard_redact(
    guard: *const OutpostGuard,
    input: *const c_char,
) -> *mut OutpostRedaction {
    guarded(std::ptr::null_mut(), || {
        // SAFETY: as the caller promises.
        let g =
            unsafe { guard.as_ref() }.ok_or("guard is NULL: make one with outpost_guard_new")?;
        // SAFETY: as the caller promises.
        let t = unsafe { text(input, "text") }?;
        let mut vault = Vault::new();
        let red = redact(&g.0, t, &Action::Placeholder, &mut vault).map_err(|e| e.to_string())?;
        let text = CString::new(red.into_inner().replace('\0', " ")).unwrap_or_default();
        Ok(Box::into_raw(Box::new(OutpostRedaction { text, vault })))
    })
}

/// The redacted text; valid until the redaction is freed (do not free it).
///
/// # Safety
/// `redaction` is live.
#[no_mangle]
pub unsafe extern "C" fn outpost_redaction_text(
    redaction: *const OutpostRedaction,
) -> *const c_char {
    // SAFETY: a live handle, as the caller promises.
    unsafe { redaction.as_ref() }.map_or(std::ptr::null(), |r| r.text.as_ptr())
}

/// `answer` with the placeholders this redaction made put back to the
/// original values (others are left as written). Free the result with
/// `outpost_string_free`; NULL on failure.
///
/// # Safety
/// `redaction` is live; `answer` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn outpost_redaction_restore(
    redaction: *const OutpostRedaction,
    answer: *const c_char,
) -> *mut c_char {
    guarded(std::ptr::null_mut(), || {
        // SAFETY: as the caller promises.
        let r = unsafe { redaction.as_ref() }.ok_or("redaction is NULL")?;
        // SAFETY: as the caller promises.
        let a = unsafe { text(answer, "answer") }?;
        let mut restorer = Restorer::new(&r.vault);
        let mut out = restorer.push(a.as_bytes());
        out.push_str(&restorer.finish());
        Ok(give(out))
    })
}

/// Frees a redaction (and the originals it remembered). NULL is ignored.
///
/// # Safety
/// `redaction` comes from `outpost_guard_redact` and is not used
/// afterwards.
#[no_mangle]
pub unsafe extern "C" fn outpost_redaction_free(redaction: *mut OutpostRedaction) {
    if !redaction.is_null() {
        // SAFETY: made by Box::into_raw in outpost_guard_redact.
        drop(unsafe { Box::from_raw(redaction) });
    }
}
