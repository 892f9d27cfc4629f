//! Stopping on SIGTERM or SIGINT without losing anyone's work: no new connections, requests in
//! flight finished (for at most `GRACE`), every socket closed with 1012 so its device reconnects
//! at once and resumes after the last event it has — and the process waits for those close
//! frames to leave before it exits.

use std::time::Duration;

use tokio::sync::{mpsc, watch};

/// How long requests in flight may run on after the signal.
pub const GRACE: Duration = Duration::from_secs(10);
/// How long the sockets' close frames may take to leave.
const CLOSING: Duration = Duration::from_secs(3);

/// What the server and each socket hold: it says when to stop, and while a socket holds one
/// the process waits for it.
#[derive(Clone)]
pub struct Stopping {
    stop: watch::Receiver<bool>,
    _open: mpsc::Sender<()>,
}

impl Stopping {
    /// Resolves once the server is stopping.
    pub async fn stopped(&mut self) {
        let _ = self.stop.wait_for(|stopping| *stopping).await;
    }
}

/// The other end, kept by `main`.
pub struct Stopper {
    stop: watch::Receiver<bool>,
    open: mpsc::Receiver<()>,
}

/// A `Stopping` for the server, and the `Stopper` that waits on a signal and then on them.
pub fn on_signal() -> (Stopper, Stopping) {
    let (tx, stop) = watch::channel(false);
    let (open_tx, open) = mpsc::channel(1);
    tokio::spawn(async move {
        let name = signalled().await;
        tracing::info!(
            "{name}: stopping (requests in flight have {GRACE:?}; sockets close with 1012)"
        );
        tx.send_replace(true);
        // Kept until the process ends: a receiver sees the stop, never a dropped sender.
        std::future::pending::<()>().await;
    });
    (
        Stopper {
            stop: stop.clone(),
            open,
        },
        Stopping {
            stop,
            _open: open_tx,
        },
    )
}

impl Stopper {
    /// Resolves once the server is stopping (on its own: axum holds it while serving).
    pub fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut stop = self.stop.clone();
        async move {
            let _ = stop.wait_for(|stopping| *stopping).await;
        }
    }

    /// After the server let go of its `Stopping`: waits (a little) until every socket's has gone.
    pub async fn sockets_closed(mut self) {
        if tokio::time::timeout(CLOSING, self.open.recv())
            .await
            .is_err()
        {
            tracing::warn!("sockets still closing after {CLOSING:?}; exiting");
        }
    }
}

async fn signalled() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            return tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = tokio::signal::ctrl_c() => "SIGINT",
            };
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    "SIGINT"
}
