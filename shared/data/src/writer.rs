//! Group commit for single events. Each insert pays for a commit (a WAL flush); requests that
//! arrive while earlier ones are being written are gathered into one `insert_idempotent`
//! statement and one commit, and each request is answered with its own outcome only after that
//! commit. At low load a request is written at once, alone; under load the batches grow by
//! themselves, up to `max_batch`, with up to `flushers` statements in flight.

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

use domain::NewEvent;

use crate::error::Inconsistency;
use tracing::Instrument;
use tracing::field::Empty;

use crate::insert::insert_timed;
use crate::{DataError, InsertOutcome, Pool};

struct Job {
    event: NewEvent,
    /// The request's wait span: the statement's span hangs off the first job's.
    span: tracing::Span,
    reply: oneshot::Sender<Result<Written, DataError>>,
}

/// One job's answer: its outcome and how its statement went.
struct Written {
    outcome: InsertOutcome,
    /// Events in the statement that carried it.
    batch_size: usize,
    /// How long that statement waited for a pooled connection.
    pool_wait: std::time::Duration,
}

/// A handle to the writer's background tasks; cheap to clone. The tasks end when the last
/// handle is dropped.
#[derive(Debug, Clone)]
pub struct BatchingWriter {
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("event_id", self.event.event_id()).finish_non_exhaustive()
    }
}

/// Most single events written in one statement by the group commit.
pub const MAX_GROUP_COMMIT: usize = 500;

impl BatchingWriter {
    /// The writer the configuration asks for: `INGEST_FLUSHERS` statements in flight, at most
    /// the pool size (`DB_POOL_SIZE`), each carrying up to `MAX_GROUP_COMMIT` events.
    pub fn from_config(pool: &Pool, config: &settings::Config) -> Self {
        let pool_size = usize::try_from(config.pool.max_size).unwrap_or(1);
        Self::spawn(pool.clone(), config.ingest_flushers.min(pool_size), MAX_GROUP_COMMIT)
    }

    /// Starts `flushers` background tasks writing through `pool`; they end when the last
    /// handle is dropped. Call from within a tokio runtime.
    pub fn spawn(pool: Pool, flushers: usize, max_batch: usize) -> Self {
        let max_batch = max_batch.max(1);
        let (jobs, queue) = mpsc::channel(max_batch * flushers.max(1) * 2);
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..flushers.max(1) {
            tokio::spawn(flush_forever(pool.clone(), queue.clone(), max_batch));
        }
        Self { jobs }
    }

    /// Inserts one event, sharing a statement and a commit with whatever else is waiting. The
    /// wait is a `group_commit` span; the size of the statement it rode in and the pool wait
    /// are recorded on it and on the caller's span (`group_commit_size`, `pool_wait_ms`: the
    /// request's log line carries them).
    pub async fn insert(&self, event: NewEvent) -> Result<InsertOutcome, DataError> {
        let span = tracing::info_span!("group_commit", batch_size = Empty, pool_wait_ms = Empty);
        let (reply, answer) = oneshot::channel();
        let job = Job { event, span: span.clone(), reply };
        let written = async {
            self.jobs.send(job).await.map_err(|_| DataError::unavailable(Inconsistency::WriterStopped))?;
            answer.await.map_err(|_| DataError::unavailable(Inconsistency::WriterStopped))?
        }
        .instrument(span.clone())
        .await?;
        let pool_wait_ms = written.pool_wait.as_secs_f64() * 1000.0;
        span.record("batch_size", written.batch_size).record("pool_wait_ms", pool_wait_ms);
        tracing::Span::current().record("group_commit_size", written.batch_size).record("pool_wait_ms", pool_wait_ms);
        Ok(written.outcome)
    }
}

async fn flush_forever(pool: Pool, queue: Arc<Mutex<mpsc::Receiver<Job>>>, max_batch: usize) {
    let mut jobs = Vec::with_capacity(max_batch);
    loop {
        // One flusher at a time waits on the queue; it takes everything waiting (up to
        // max_batch) and lets the next flusher wait while it writes.
        let received = queue.lock().await.recv_many(&mut jobs, max_batch).await;
        if received == 0 {
            return;
        }
        let parent = jobs[0].span.clone();
        let (events, replies): (Vec<NewEvent>, Vec<_>) = jobs.drain(..).map(|j| (j.event, j.reply)).unzip();
        let batch_size = events.len();
        let flush = tracing::info_span!(parent: &parent, "group_commit.flush", batch_size);
        match insert_timed(&pool, &events).instrument(flush.clone()).await {
            Ok((outcomes, pool_wait)) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(Written { outcome, batch_size, pool_wait }));
                }
            }
            // An unexpected error may belong to one event alone: write each on its own so the
            // others still succeed and only the culprit fails.
            Err(DataError::Unexpected(_)) if batch_size > 1 => {
                for (reply, event) in replies.into_iter().zip(events) {
                    let written = insert_timed(&pool, std::slice::from_ref(&event)).instrument(flush.clone()).await;
                    let _ = reply.send(written.and_then(|(outcomes, pool_wait)| {
                        let outcome =
                            outcomes.first().copied().ok_or_else(|| DataError::unexpected(Inconsistency::NoOutcome))?;
                        Ok(Written { outcome, batch_size: 1, pool_wait })
                    }));
                }
            }
            Err(err) => {
                for reply in replies {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
    }
}
