//! PostgreSQL change events: one `LISTEN opamp_changes` connection per store, fanned out to
//! subscribers through a broadcast channel. A replica hears its own `NOTIFY`s too, so local
//! and remote changes arrive the same way.

use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::broadcast;

use crate::{ChangeEvent, Error, Result};

/// The channel every replica listens on.
pub(crate) const CHANNEL: &str = "opamp_changes";

/// Connects and starts listening before returning, so that no change committed after
/// `open` returns is missed.
pub(crate) async fn start(
    url: &str,
    tx: broadcast::Sender<ChangeEvent>,
) -> Result<tokio::task::JoinHandle<()>> {
    let mut listener = PgListener::connect(url).await.map_err(|e| {
        let mut err = Error::from(e);
        if let Error::Backend { message, .. } = &mut err {
            *message = format!("cannot open the PostgreSQL change listener: {message}");
        }
        err
    })?;
    listener.listen(CHANNEL).await?;
    Ok(tokio::spawn(run(listener, tx)))
}

async fn run(mut listener: PgListener, tx: broadcast::Sender<ChangeEvent>) {
    let mut failures = 0u32;
    loop {
        match listener.try_recv().await {
            Ok(Some(n)) => {
                failures = 0;
                match serde_json::from_str::<ChangeEvent>(n.payload()) {
                    Ok(e) => {
                        let _ = tx.send(e);
                    }
                    Err(e) => {
                        // Another (newer) replica may send event types this one does not
                        // know: reload rather than miss what it meant.
                        tracing::warn!(error = %e, "unreadable change event; asking subscribers to resync");
                        let _ = tx.send(ChangeEvent::Resync);
                    }
                }
            }
            Ok(None) => {
                // The connection was lost; the next try_recv reconnects and re-listens.
                // Notifications sent meanwhile are gone: tell subscribers.
                tracing::warn!("PostgreSQL change listener lost its connection; reconnecting");
                let _ = tx.send(ChangeEvent::Resync);
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let backoff = Duration::from_millis(100 * u64::from(failures.min(50)));
                tracing::warn!(error = %e, ?backoff, "PostgreSQL change listener failed; retrying");
                tokio::time::sleep(backoff).await;
            }
        }
    }
}
