//! Change-event subscriptions and leader leases: what replicas use to coordinate.

use std::pin::Pin;

use futures_util::Stream;
use tokio::sync::broadcast;

use crate::ChangeEvent;

/// A subscription to committed [`ChangeEvent`]s. A subscriber that falls more than the
/// channel capacity behind gets one [`ChangeEvent::Resync`] instead of the events it missed.
#[derive(Debug)]
pub struct Subscription {
    rx: broadcast::Receiver<ChangeEvent>,
}

impl Subscription {
    pub(crate) fn new(rx: broadcast::Receiver<ChangeEvent>) -> Self {
        Self { rx }
    }

    /// The next event; `None` once the store is closed or dropped.
    pub async fn recv(&mut self) -> Option<ChangeEvent> {
        match self.rx.recv().await {
            Ok(e) => Some(e),
            Err(broadcast::error::RecvError::Lagged(_)) => Some(ChangeEvent::Resync),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }

    /// The next event if one is ready, without waiting.
    pub fn try_recv(&mut self) -> Option<ChangeEvent> {
        match self.rx.try_recv() {
            Ok(e) => Some(e),
            Err(broadcast::error::TryRecvError::Lagged(_)) => Some(ChangeEvent::Resync),
            Err(_) => None,
        }
    }

    /// The subscription as a `Stream` (for server-sent events and `select!` loops).
    pub fn into_stream(self) -> Pin<Box<dyn Stream<Item = ChangeEvent> + Send>> {
        Box::pin(futures_util::stream::unfold(self, |mut s| async move {
            s.recv().await.map(|e| (e, s))
        }))
    }
}

/// Held leadership for one name (see [`crate::Store::try_lead`]). Dropping it gives the
/// leadership up.
#[derive(Debug)]
pub struct LeaderLease {
    pub(crate) name: String,
    pub(crate) inner: LeaseInner,
}

#[derive(Debug)]
pub(crate) enum LeaseInner {
    /// SQLite: one process owns the file, so an in-process lock is enough.
    Local(#[allow(dead_code)] tokio::sync::OwnedMutexGuard<()>),
    /// PostgreSQL: a session advisory lock on a dedicated connection.
    Postgres {
        conn: Option<sqlx::AnyConnection>,
        key: i64,
    },
}

impl LeaderLease {
    /// The name led.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Checks that the lease still holds: always true for SQLite; for PostgreSQL a round
    /// trip on the lease's connection (if the connection died, the server released the lock
    /// and another replica may lead now: stop leading and call `try_lead` again).
    pub async fn still_held(&mut self) -> bool {
        match &mut self.inner {
            LeaseInner::Local(_) => true,
            LeaseInner::Postgres { conn, .. } => match conn {
                Some(c) => {
                    let ok = sqlx::query("SELECT 1").execute(&mut *c).await.is_ok();
                    if !ok {
                        *conn = None;
                    }
                    ok
                }
                None => false,
            },
        }
    }

    /// Gives the leadership up now (dropping the lease does too, a moment later for
    /// PostgreSQL, when the server notices the closed connection).
    pub async fn release(mut self) {
        if let LeaseInner::Postgres { conn, key } = &mut self.inner {
            if let Some(mut c) = conn.take() {
                let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                    .bind(*key)
                    .execute(&mut c)
                    .await;
                let _ = sqlx::Connection::close(c).await;
            }
        }
    }
}
