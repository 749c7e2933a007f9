//! The device agent over the C ABI, for apps that drive it themselves:
//! open it on a store (settings as JSON), check in under the conditions
//! the app sees, read what is installed, open the active model (a sealed
//! one from memory only), record and ship telemetry. The same object the
//! UniFFI API calls `DeviceAgent` (`api.rs`).

use std::ffi::c_char;
use std::sync::Arc;

use crate::api::{AgentSettings, DeviceAgent, DeviceConditions};
use crate::model::OutpostModel;
use crate::{give, guarded, text, OUTPOST_ERROR, OUTPOST_OK};

/// An embedded device agent. Thread-safe (one check-in at a time; other
/// calls wait for it).
pub struct OutpostAgent(Arc<DeviceAgent>);

/// Opens the agent on its store; registers the device on first use.
/// `settings_json`: `{"fleet_url", "store_dir", "app_key", "pinned_keys":
/// ["<contents of signing.pub.json>"], "channel", "device_class",
/// "app_version", "require_unmetered", "require_charging",
/// "device_key_store", "run_canary", "canary_threads"}` (`fleet_url`,
/// `store_dir`, `pinned_keys` and `app_version` required; `run_canary`
/// defaults to true: each install's quality canary runs in this process
/// and a failing model is put back). NULL on failure. Thread-safe.
///
/// # Safety
/// `settings_json` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn outpost_agent_open(settings_json: *const c_char) -> *mut OutpostAgent {
    guarded(std::ptr::null_mut(), || {
        // SAFETY: as the caller promises.
        let json = unsafe { text(settings_json, "settings_json") }?;
        let settings: AgentSettings =
            serde_json::from_str(json).map_err(|e| format!("settings_json: {e}"))?;
        let agent = DeviceAgent::open(settings).map_err(|e| e.to_string())?;
        Ok(Box::into_raw(Box::new(OutpostAgent(agent))))
    })
}

/// Frees the agent. NULL is ignored.
///
/// # Safety
/// `agent` comes from `outpost_agent_open` and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn outpost_agent_free(agent: *mut OutpostAgent) {
    if !agent.is_null() {
        // SAFETY: made by Box::into_raw in outpost_agent_open.
        drop(unsafe { Box::from_raw(agent) });
    }
}

/// One check-in: `conditions_json` (NULL: unchanged) is `{"battery_pct",
/// "charging", "unmetered", "temperature_c", "free_disk_bytes"}`, any
/// subset. Returns the report as JSON (`{"device_id", "next_check_in_s",
/// "outcomes": [...], "changed", "telemetry_sent"}`), freed with
/// `outpost_string_free`; NULL on failure.
///
/// # Safety
/// `agent` is live; `conditions_json` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn outpost_agent_check_in(
    agent: *const OutpostAgent,
    conditions_json: *const c_char,
) -> *mut c_char {
    guarded(std::ptr::null_mut(), || {
        // SAFETY: as the caller promises.
        let a =
            unsafe { agent.as_ref() }.ok_or("agent is NULL: open one with outpost_agent_open")?;
        let conditions: DeviceConditions = if conditions_json.is_null() {
            DeviceConditions::default()
        } else {
            // SAFETY: as the caller promises.
            let json = unsafe { text(conditions_json, "conditions_json") }?;
            serde_json::from_str(json).map_err(|e| format!("conditions_json: {e}"))?
        };
        let report = a.0.check_in(conditions).map_err(|e| e.to_string())?;
        Ok(give(
            serde_json::to_string(&report).map_err(|e| e.to_string())?,
        ))
    })
}

/// What is installed, as a JSON array of `{"model", "version", "digest"}`;
/// freed with `outpost_string_free`; NULL on failure.
///
/// # Safety
/// `agent` is live.
#[no_mangle]
pub unsafe extern "C" fn outpost_agent_status(agent: *const OutpostAgent) -> *mut c_char {
    guarded(std::ptr::null_mut(), || {
        // SAFETY: as the caller promises.
        let a = unsafe { agent.as_ref() }.ok_or("agent is NULL")?;
        let installed = a.0.installed().map_err(|e| e.to_string())?;
        Ok(give(
            serde_json::to_string(&installed).map_err(|e| e.to_string())?,
        ))
    })
}

/// Loads the active version of `model` (a sealed one from memory only);
/// free it with `outpost_model_free`. NULL on failure.
///
/// # Safety
/// `agent` is live; `model` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn outpost_agent_open_model(
    agent: *const OutpostAgent,
    model: *const c_char,
) -> *mut OutpostModel {
    guarded(std::ptr::null_mut(), || {
        // SAFETY: as the caller promises.
        let a = unsafe { agent.as_ref() }.ok_or("agent is NULL")?;
        // SAFETY: as the caller promises.
        let name = unsafe { text(model, "model") }?;
        let m =
            a.0.open_model(name.to_string())
                .map_err(|e| e.to_string())?;
        Ok(Box::into_raw(Box::new(OutpostModel(m))))
    })
}

/// Records one request the app ran on `model`'s installed release (time to
/// first token, whole latency, tokens; never text) in the telemetry spool.
/// `OUTPOST_OK` or `OUTPOST_ERROR`.
///
/// # Safety
/// `agent` is live; `model` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn outpost_agent_record_inference(
    agent: *const OutpostAgent,
    model: *const c_char,
    ttft_ms: f64,
    latency_ms: f64,
    tokens: u32,
) -> i32 {
    guarded(OUTPOST_ERROR, || {
        // SAFETY: as the caller promises.
        let a = unsafe { agent.as_ref() }.ok_or("agent is NULL")?;
        // SAFETY: as the caller promises.
        let name = unsafe { text(model, "model") }?;
        a.0.record_inference(name.to_string(), ttft_ms, latency_ms, tokens)
            .map_err(|e| e.to_string())?;
        Ok(OUTPOST_OK)
    })
}

/// Sends the spooled telemetry now; the number of events sent, or
/// `OUTPOST_ERROR`.
///
/// # Safety
/// `agent` is live.
#[no_mangle]
pub unsafe extern "C" fn outpost_agent_flush(agent: *const OutpostAgent) -> i64 {
    guarded(i64::from(OUTPOST_ERROR), || {
        // SAFETY: as the caller promises.
        let a = unsafe { agent.as_ref() }.ok_or("agent is NULL")?;
        let n = a.0.flush_telemetry().map_err(|e| e.to_string())?;
        Ok(i64::try_from(n).unwrap_or(i64::MAX))
    })
}
