//! OpenDAL's writer, driven so that an upload abandoned in the middle of a request still
//! aborts its multipart upload.
//!
//! An upload is abandoned by dropping it, and the future that was sending a part or starting
//! the multipart upload is dropped with it. OpenDAL's writer learns the upload's id only when
//! `CreateMultipartUpload` answers: a future dropped after the request left but before the
//! answer was read leaves an upload open at the store that the writer knows nothing of, so its
//! abort does nothing. Here every request runs on a task of its own that owns the writer until
//! the store answers; an upload dropped meanwhile aborts once that task is done, with the
//! writer in the state the answer left it.

use std::ops::Range;

use opendal::Writer;
use tokio::task::JoinHandle;

/// A request in progress: its task gives the writer back with the answer.
type Running = JoinHandle<(Writer, opendal::Result<()>)>;

/// A writer between requests, or the request holding it.
pub(super) struct MultipartUpload {
    state: State,
    /// Where the tasks run (an upload may be dropped on a thread outside the runtime: a TFTP
    /// transfer's own thread).
    runtime: tokio::runtime::Handle,
}

enum State {
    Idle(Writer),
    Running(Running),
    /// Closed, aborted, or its task failed.
    Over,
}

/// Why a request could not be made at all.
#[derive(Debug, thiserror::Error)]
pub(super) enum DriveError {
    /// The store answered with an error.
    #[error(transparent)]
    Store(#[from] opendal::Error),
    /// The upload is over (closed, aborted, or a request's task died).
    #[error("the upload is over")]
    Over,
}

impl MultipartUpload {
    /// Drives `writer` on the current runtime.
    pub(super) fn new(writer: Writer) -> Self {
        MultipartUpload { state: State::Idle(writer), runtime: tokio::runtime::Handle::current() }
    }

    /// Sends `part` (the writer decides whether it starts or joins a multipart upload, or is
    /// kept for a single `PUT`).
    pub(super) async fn write(&mut self, part: bytes::Bytes) -> Result<(), DriveError> {
        let mut writer = self.take()?;
        self.start(async move {
            let answer = writer.write(part).await;
            (writer, answer)
        })
        .await
    }

    /// Copies `range` of the stored object `key` as the next part(s), inside the store.
    pub(super) async fn copy_from(
        &mut self,
        key: String,
        range: Range<u64>,
    ) -> Result<(), DriveError> {
        let mut writer = self.take()?;
        self.start(async move {
            let answer = writer.copy_from(&key, range).await;
            (writer, answer)
        })
        .await
    }

    /// Completes the upload: the object appears. After an error, [`MultipartUpload::abort`]
    /// still aborts it.
    pub(super) async fn close(&mut self) -> Result<(), DriveError> {
        let mut writer = self.take()?;
        self.start(async move {
            let answer = writer.close().await.map(drop);
            (writer, answer)
        })
        .await?;
        // Complete: nothing is left to abort.
        self.state = State::Over;
        Ok(())
    }

    /// Aborts the upload (once a request in progress has answered); nothing is left at the
    /// store. The upload is over afterwards.
    pub(super) async fn abort(&mut self) -> Result<(), DriveError> {
        let running = std::mem::replace(&mut self.state, State::Over);
        abort(running).await
    }

    fn take(&mut self) -> Result<Writer, DriveError> {
        match std::mem::replace(&mut self.state, State::Over) {
            State::Idle(writer) => Ok(writer),
            // Not reached: every request is awaited to its end before the next (an upload
            // whose request was dropped is dropped with it).
            State::Running(running) => {
                self.state = State::Running(running);
                Err(DriveError::Over)
            }
            State::Over => Err(DriveError::Over),
        }
    }

    /// Runs `request` on a task of its own and waits for its answer. Cancel-safe: dropped
    /// while waiting, the task goes on and the state keeps it, for the abort.
    async fn start<F>(&mut self, request: F) -> Result<(), DriveError>
    where
        F: Future<Output = (Writer, opendal::Result<()>)> + Send + 'static,
    {
        self.state = State::Running(self.runtime.spawn(request));
        let State::Running(running) = &mut self.state else { return Err(DriveError::Over) };
        match running.await {
            Ok((writer, answer)) => {
                self.state = State::Idle(writer);
                answer.map_err(DriveError::Store)
            }
            Err(_) => {
                self.state = State::Over;
                Err(DriveError::Over)
            }
        }
    }
}

/// Aborts the upload `state` holds, after the request in progress (if any) has answered.
async fn abort(state: State) -> Result<(), DriveError> {
    let mut writer = match state {
        State::Idle(writer) => writer,
        State::Running(running) => match running.await {
            Ok((writer, _)) => writer,
            Err(_) => return Err(DriveError::Over),
        },
        State::Over => return Ok(()),
    };
    writer.abort().await.map_err(DriveError::Store)
}

impl Drop for MultipartUpload {
    fn drop(&mut self) {
        let state = std::mem::replace(&mut self.state, State::Over);
        if matches!(state, State::Over) {
            return;
        }
        // An upload that ends without a commit leaves no object and no open multipart upload.
        drop(self.runtime.spawn(async move {
            if let Err(err) = abort(state).await {
                tracing::warn!(error = %err, "could not abort an unfinished object upload");
            }
        }));
    }
}
