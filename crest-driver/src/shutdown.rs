//! Graceful shutdown: stop accepting, close every open connection with 1001
//! (going away), drop the ones still in their handshake, and wait until all
//! are drained. Runtime-neutral: the futures here only use `Waker`s.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::conn::{Cmd, Conn, ConnId};
use crate::registry::IdMap;

#[derive(Default)]
struct Inner {
    triggered: AtomicBool,
    /// Every live session of the app, in its handshake or open.
    sessions: Mutex<IdMap<Conn>>,
    waiters: Mutex<Vec<Waker>>,
}

/// A shutdown signal shared by an app's listener and all its connections.
/// Cheap to clone; [`trigger`](Self::trigger) from anywhere (a signal
/// handler task, a test, an admin endpoint).
#[derive(Clone, Default)]
pub struct Shutdown(Arc<Inner>);

impl Shutdown {
    /// A signal not yet triggered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts the graceful shutdown: the listener stops accepting, every
    /// open connection is closed with 1001 "server shutting down" (queued
    /// messages are still sent first) and connections still in their opening
    /// handshake are dropped. Idempotent.
    pub fn trigger(&self) {
        if self.0.triggered.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::info!(live = self.live(), "shutting down");
        let sessions: Vec<Conn> = self.sessions().values().cloned().collect();
        for conn in sessions {
            conn.push_control(Cmd::Shutdown);
        }
        self.wake_all();
    }

    /// Whether [`trigger`](Self::trigger) was called.
    pub fn is_triggered(&self) -> bool {
        self.0.triggered.load(Ordering::Acquire)
    }

    /// Connections still alive (in their handshake, open, or closing).
    pub fn live(&self) -> usize {
        self.sessions().len()
    }

    /// Resolves once triggered.
    pub fn triggered(&self) -> Wait<'_> {
        Wait { shutdown: self, drained: false }
    }

    /// Resolves once triggered and every connection has ended.
    pub fn drained(&self) -> Wait<'_> {
        Wait { shutdown: self, drained: true }
    }

    /// The end of every adapter's `serve`, once it stopped accepting: waits
    /// for [`drained`](Self::drained), logging the wait.
    pub async fn drain(&self) {
        tracing::info!(live = self.live(), "draining connections");
        self.drained().await;
        tracing::info!("shut down");
    }

    fn sessions(&self) -> MutexGuard<'_, IdMap<Conn>> {
        self.0.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wake_all(&self) {
        let waiters = std::mem::take(&mut *self.0.waiters.lock().unwrap_or_else(PoisonError::into_inner));
        for w in waiters {
            w.wake();
        }
    }

    /// Session: tracks a new connection; `false` if already shutting down.
    pub(crate) fn register(&self, conn: &Conn) -> bool {
        let mut sessions = self.sessions();
        if self.is_triggered() {
            return false;
        }
        sessions.insert(conn.id(), conn.clone());
        true
    }

    pub(crate) fn unregister(&self, id: ConnId) {
        let mut sessions = self.sessions();
        let removed = sessions.remove(&id);
        let empty = sessions.is_empty();
        drop(sessions);
        drop(removed);
        if empty && self.is_triggered() {
            self.wake_all();
        }
    }
}

impl std::fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shutdown").field("triggered", &self.is_triggered()).field("live", &self.live()).finish()
    }
}

/// A future of [`Shutdown::triggered`] or [`Shutdown::drained`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Wait<'a> {
    shutdown: &'a Shutdown,
    drained: bool,
}

impl Wait<'_> {
    fn ready(&self) -> bool {
        self.shutdown.is_triggered() && (!self.drained || self.shutdown.live() == 0)
    }
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.ready() {
            return Poll::Ready(());
        }
        {
            let mut waiters = self.shutdown.0.waiters.lock().unwrap_or_else(PoisonError::into_inner);
            if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
                waiters.push(cx.waker().clone());
            }
        }
        // Re-check after registering, so a trigger in between is not missed.
        if self.ready() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}
