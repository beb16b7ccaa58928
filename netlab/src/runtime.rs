//! A tokio runtime living on a thread inside a namespace, for tasks whose sockets must be there
//! (a BGP speaker of a lab node) while the test itself stays in the host namespace.

use std::future::Future;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use crate::error::{LabError, io_error};
use crate::netns;

/// A current-thread runtime on its own thread inside one namespace; stopped on drop.
#[derive(Debug)]
pub struct NsRuntime {
    ns: String,
    handle: tokio::runtime::Handle,
    /// Ends the runtime's `block_on`; taken on drop.
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl NsRuntime {
    /// Starts the runtime thread inside namespace `ns` (a full name).
    pub fn start(ns: &str) -> Result<NsRuntime, LabError> {
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = oneshot::channel::<()>();
        let thread_ns = ns.to_owned();
        let thread = std::thread::spawn(move || {
            let runtime = netns::enter(&thread_ns).and_then(|()| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
            });
            match runtime {
                Ok(runtime) => {
                    let _ = handle_tx.send(Ok(runtime.handle().clone()));
                    runtime.block_on(async move {
                        let _ = stop_rx.await;
                    });
                }
                Err(e) => {
                    let _ = handle_tx.send(Err(e));
                }
            }
        });
        let handle = handle_rx
            .recv()
            .map_err(|_| std::io::Error::other("the runtime thread ended"))
            .and_then(|started| started)
            .map_err(io_error(format!("runtime in {ns}")))?;
        Ok(NsRuntime {
            ns: ns.to_owned(),
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The namespace it runs in.
    pub fn ns(&self) -> &str {
        &self.ns
    }

    /// Its handle: `handle().enter()` makes tokio spawns of the caller land on this runtime.
    pub fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }

    /// Runs a future on the runtime (inside the namespace) in the background.
    pub fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.handle.spawn(future);
    }

    /// Runs a future on the runtime (inside the namespace) and waits for its result; a panic in
    /// it is raised again here.
    pub fn block_on<F>(&self, future: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let task = self.handle.spawn(future);
        let (tx, rx) = std::sync::mpsc::channel();
        self.handle.spawn(async move {
            let _ = tx.send(task.await);
        });
        match rx.recv() {
            Ok(Ok(value)) => value,
            Ok(Err(join)) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            _ => panic!("the runtime in {} stopped", self.ns),
        }
    }
}

impl Drop for NsRuntime {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
