//! Shipping the telemetry spool: batches of at most `batch_size` events,
//! each under an id fixed in the spool before the first send, deleted only
//! after the fleet's acknowledgement, so a lost answer means a resend that
//! the fleet counts once. A batch the fleet refuses as malformed (4xx) is
//! dropped, said on stderr, so it cannot block the queue forever.

use outpost_protocol::telemetry::TelemetryBatch;

use crate::{Agent, AgentError};

/// Sends everything waiting; returns how many events were delivered.
/// Stops (without error) at the first network failure: the rest waits for
/// the next cycle.
pub(crate) fn ship(agent: &Agent) -> Result<u64, AgentError> {
    let mut sent = 0;
    while let Some(b) = agent.spool.next_batch(agent.cfg.batch_size.max(1))? {
        let batch = TelemetryBatch {
            batch_id: b.batch_id.clone(),
            device_id: agent.identity.device_id.clone(),
            events: b.events,
        };
        match agent.client.send_telemetry(&batch) {
            Ok(_ack) => {
                outpost_store::crash_point("telemetry-before-ack");
                sent += agent.spool.ack(&b.batch_id)?;
            }
            Err(e) if e.is_transient() => return Ok(sent),
            Err(AgentError::Fleet {
                status, message, ..
            }) if (400..500).contains(&status) && status != 401 => {
                tracing::warn!(
                    batch = %b.batch_id,
                    events = batch.events.len(),
                    status,
                    "telemetry batch refused by the fleet ({message}); dropped"
                );
                agent.spool.ack(&b.batch_id)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(sent)
}
