//! Background jobs: each is a [`Job`] (one pass, `run_once`) and every process runs its jobs
//! through the one runner, [`run`], which repeats passes until the shutdown, starts the next
//! pass at once when the last one took a full batch, logs what a pass did and counts passes.

mod usecases;

use std::future::Future;
use std::time::Duration;

use iap_domain::ports::StorageError;

pub use usecases::{
    EntitlementSyncJob, NotificationInboxJob, ReconciliationJob, SubscriptionCheckJob,
};

use crate::Shutdown;

/// What one pass of a job did.
pub trait Report: std::fmt::Debug + Send {
    /// How many items the pass took (compared with the job's batch: a full batch means more
    /// work is waiting).
    fn taken(&self) -> usize;
}

/// One background job: a pass over whatever is due now.
pub trait Job: Send + Sync {
    /// What a pass reports.
    type Report: Report;

    /// A stable snake_case name, for logs and the `job` label.
    fn name(&self) -> &'static str;

    /// Items one pass takes at most; `None` for a job that looks at everything each pass.
    fn batch(&self) -> Option<u32>;

    /// One pass. Errors are the database's: the runner logs them and tries again next pass.
    fn run_once(&self) -> impl Future<Output = Result<Self::Report, StorageError>> + Send;
}

impl<T: Report> Report for Vec<T> {
    fn taken(&self) -> usize {
        self.len()
    }
}

/// The pass left work behind: it took a full batch.
pub fn more_work<J: Job>(job: &J, report: &J::Report) -> bool {
    job.batch()
        .is_some_and(|batch| report.taken() >= batch as usize)
}

/// Runs `job` every `interval` until the shutdown (a zero interval: the job is off). A pass that
/// took a full batch is followed at once by the next.
pub async fn run<J: Job>(job: J, interval: Duration, shutdown: Shutdown) {
    let name = job.name();
    if interval.is_zero() {
        tracing::info!(job = name, "job off (interval 0)");
        return;
    }
    repeat(interval, shutdown, || async {
        match job.run_once().await {
            Ok(report) => {
                metrics::counter!("iap_job_passes_total", "job" => name, "outcome" => "ok")
                    .increment(1);
                if report.taken() > 0 {
                    tracing::info!(job = name, ?report, "job pass");
                }
                more_work(&job, &report)
            }
            Err(e) => {
                metrics::counter!("iap_job_passes_total", "job" => name, "outcome" => "error")
                    .increment(1);
                tracing::warn!(job = name, error = %e, "job pass failed: database unavailable");
                false
            }
        }
    })
    .await;
}

/// The jobs one process runs: each added with its interval, all started together on the one
/// runner by [`JobSet::run`] and stopped by the same shutdown.
#[derive(Default)]
pub struct JobSet {
    jobs: Vec<(&'static str, StartJob)>,
}

type StartJob = Box<dyn FnOnce(Shutdown) -> futures::future::BoxFuture<'static, ()> + Send>;

impl std::fmt::Debug for JobSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.jobs.iter().map(|(name, _)| name))
            .finish()
    }
}

impl JobSet {
    /// Adds `job`, run every `interval` (zero: off, logged when the set starts).
    pub fn add<J: Job + 'static>(&mut self, job: J, interval: Duration) {
        let name = job.name();
        self.jobs.push((
            name,
            Box::new(move |shutdown| Box::pin(run(job, interval, shutdown))),
        ));
    }

    /// The names of the jobs added, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.jobs.iter().map(|(name, _)| *name).collect()
    }

    /// Runs every job until the shutdown.
    pub async fn run(self, shutdown: Shutdown) {
        futures::future::join_all(
            self.jobs
                .into_iter()
                .map(|(_, start)| start(shutdown.clone())),
        )
        .await;
    }
}

/// Runs `pass` until the shutdown. `pass` returns whether it left work behind (a full batch);
/// if so the next pass starts at once, otherwise after `interval`.
async fn repeat<F, Fut>(interval: Duration, shutdown: Shutdown, mut pass: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    loop {
        let more = pass().await;
        if shutdown.is_triggered() {
            return;
        }
        if !more {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = shutdown.wait() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A job that answers a scripted series of passes, then idle ones.
    struct Scripted {
        passes: Mutex<Vec<Result<usize, StorageError>>>,
        ran: Mutex<usize>,
    }

    #[derive(Debug)]
    struct Taken(usize);

    impl Report for Taken {
        fn taken(&self) -> usize {
            self.0
        }
    }

    impl Scripted {
        async fn pass(&self) -> Result<Taken, StorageError> {
            *self.ran.lock().unwrap() += 1;
            let mut passes = self.passes.lock().unwrap();
            if passes.is_empty() {
                Ok(Taken(0))
            } else {
                passes.remove(0).map(Taken)
            }
        }
    }

    fn scripted(passes: Vec<Result<usize, StorageError>>) -> std::sync::Arc<Scripted> {
        std::sync::Arc::new(Scripted {
            passes: Mutex::new(passes),
            ran: Mutex::new(0),
        })
    }

    impl Job for std::sync::Arc<Scripted> {
        type Report = Taken;
        fn name(&self) -> &'static str {
            "scripted"
        }
        fn batch(&self) -> Option<u32> {
            Some(10)
        }
        async fn run_once(&self) -> Result<Taken, StorageError> {
            self.pass().await
        }
    }

    #[tokio::test]
    async fn full_batches_run_back_to_back_then_the_interval_is_kept_until_the_shutdown() {
        let job = scripted(vec![Ok(10), Ok(10), Ok(3)]);
        let shutdown = Shutdown::new();
        let runner = tokio::spawn(run(job.clone(), Duration::from_secs(1), shutdown.clone()));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            *job.ran.lock().unwrap(),
            3,
            "two full batches, then a short one"
        );
        tokio::time::sleep(Duration::from_millis(1300)).await;
        assert_eq!(*job.ran.lock().unwrap(), 4, "then one pass per interval");
        shutdown.trigger();
        runner.await.unwrap();
    }

    #[tokio::test]
    async fn a_failed_pass_waits_for_the_interval_and_the_job_goes_on() {
        let job = scripted(vec![Err(StorageError::Unavailable("down".into())), Ok(10)]);
        let shutdown = Shutdown::new();
        let runner = tokio::spawn(run(job.clone(), Duration::from_secs(1), shutdown.clone()));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            *job.ran.lock().unwrap(),
            1,
            "no busy loop on a database outage"
        );
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert_eq!(
            *job.ran.lock().unwrap(),
            3,
            "the full batch after it runs the next at once"
        );
        shutdown.trigger();
        runner.await.unwrap();
    }

    #[tokio::test]
    async fn a_job_set_runs_every_job_until_the_one_shutdown() {
        let (first, second) = (scripted(vec![]), scripted(vec![]));
        let mut set = JobSet::default();
        set.add(first.clone(), Duration::from_millis(50));
        set.add(second.clone(), Duration::from_millis(50));
        set.add(scripted(vec![]), Duration::ZERO);
        assert_eq!(set.names(), ["scripted"; 3]);
        let shutdown = Shutdown::new();
        let runner = tokio::spawn(set.run(shutdown.clone()));
        tokio::time::sleep(Duration::from_millis(220)).await;
        shutdown.trigger();
        runner.await.unwrap();
        for job in [first, second] {
            let ran = *job.ran.lock().unwrap();
            assert!(
                (3..=6).contains(&ran),
                "each job ran on its interval: {ran}"
            );
        }
    }

    #[tokio::test]
    async fn a_zero_interval_turns_the_job_off() {
        let job = scripted(vec![]);
        run(job.clone(), Duration::ZERO, Shutdown::new()).await;
        assert_eq!(*job.ran.lock().unwrap(), 0);
    }
}
