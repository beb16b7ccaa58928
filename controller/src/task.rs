//! `task`: a spawned task owned by whoever started it, so that dropping the owner (a test
//! stopping an in-process controller, or `run` returning) stops the task too.

/// A task aborted when this handle is dropped.
#[derive(Debug)]
pub struct AbortOnDrop<T>(pub tokio::task::JoinHandle<T>);

impl<T: Send + 'static> AbortOnDrop<T> {
    /// Spawns `future` on the current runtime.
    pub fn spawn(future: impl Future<Output = T> + Send + 'static) -> Self {
        AbortOnDrop(tokio::spawn(future))
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
