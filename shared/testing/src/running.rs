//! A service running in the background of a test, stopped gracefully on request.

use std::{future::Future, net::SocketAddr};

use tokio::{sync::oneshot, task::JoinHandle};

#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<Result<(), String>>,
}

impl Running {
    /// Spawns `run(signal)`; the signal completes when `stop` is called.
    pub fn spawn<F, E>(addr: SocketAddr, run: impl FnOnce(SignalFuture) -> F) -> Self
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display,
    {
        let (stop, rx) = oneshot::channel();
        let future = run(Box::pin(async move {
            let _ = rx.await;
        }));
        let handle = tokio::spawn(async move { future.await.map_err(|e| e.to_string()) });
        Self {
            addr,
            stop: Some(stop),
            handle,
        }
    }

    /// Triggers graceful shutdown without waiting for it.
    pub fn begin_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Triggers graceful shutdown and waits until the service has stopped.
    pub async fn stop(mut self) -> Result<(), String> {
        self.begin_stop();
        (&mut self.handle).await.map_err(|e| e.to_string())?
    }

    /// Whether the service task has finished.
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }
}

/// The shutdown signal handed to the service.
pub type SignalFuture = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

impl Drop for Running {
    fn drop(&mut self) {
        self.begin_stop();
    }
}
