//! Group commit for device writes. Every registration and check-in hands
//! its write to one task and waits; the task takes everything queued, writes
//! it in one transaction, and answers all of them. Under load a batch holds
//! every request that arrived during the previous commit, so the number of
//! transactions stays flat while check-ins grow, and no request is answered
//! before its write is durable.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::db::{Db, DeviceWrite};
use crate::error::{FleetError, FleetResult};

/// Most writes in one transaction.
const MAX_BATCH: usize = 2048;

type Job = (DeviceWrite, oneshot::Sender<Result<(), String>>);

#[derive(Debug, Clone)]
pub struct Writer {
    tx: mpsc::UnboundedSender<Job>,
}

impl Writer {
    /// Starts the writer task on the current tokio runtime.
    pub fn spawn(db: Arc<dyn Db>) -> Writer {
        let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
        tokio::spawn(async move {
            let mut jobs = Vec::with_capacity(64);
            while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
                let (writes, replies): (Vec<_>, Vec<_>) = jobs.drain(..).unzip();
                let result = db.write_devices(writes).await.map_err(|e| e.to_string());
                for r in replies {
                    let _ = r.send(result.clone());
                }
            }
        });
        Writer { tx }
    }

    /// Queues `write` and waits until it is committed.
    pub async fn write(&self, write: DeviceWrite) -> FleetResult<()> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send((write, tx))
            .map_err(|_| FleetError::Internal("the device writer has stopped".into()))?;
        rx.await
            .map_err(|_| FleetError::Internal("the device writer has stopped".into()))?
            .map_err(|e| FleetError::Internal(format!("storing the device write failed: {e}")))
    }
}
