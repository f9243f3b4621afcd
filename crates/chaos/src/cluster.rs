//! The services under test as real child processes (release or test builds), killed with
//! SIGKILL and started again on the same ports. PostgreSQL and Redis are private servers from
//! `iap_test_support::private`, so restarting them disturbs nothing else on the machine.

use std::fs::{File, OpenOptions};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A free TCP port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn log_file(path: &Path) -> anyhow::Result<(File, File)> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("open {}", path.display()))?;
    Ok((file.try_clone()?, file))
}

/// One of the services under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// `iap-verifier`: OrderService, VerificationService, store notification receivers.
    Verifier,
    /// `iap-delivery`: grants, store confirmation, the notification inbox.
    Delivery,
    /// `iap-scheduler`: sweeps, subscription checks, reconciliation.
    Scheduler,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 3] = [Role::Verifier, Role::Delivery, Role::Scheduler];

    /// The executable's name.
    pub fn binary(self) -> &'static str {
        match self {
            Role::Verifier => "iap-verifier",
            Role::Delivery => "iap-delivery",
            Role::Scheduler => "iap-scheduler",
        }
    }
}

/// A service process that can be killed and started again on the same ports; its output goes
/// to `<work>/<binary>.log`, appended across restarts.
#[derive(Debug)]
pub struct Service {
    pub(crate) role: Role,
    executable: PathBuf,
    config: PathBuf,
    log: PathBuf,
    /// The port whose `/readyz` says it is up.
    http_port: u16,
    child: Option<Child>,
    pub(crate) starts: u32,
}

impl Service {
    /// A service of `role` from `bin_dir`, reading `config`, ready when `http_port`'s
    /// `/readyz` answers 200. Nothing starts until [`Service::up`].
    ///
    /// # Errors
    /// When the executable is not in `bin_dir`.
    pub fn new(
        role: Role,
        bin_dir: &Path,
        config: &Path,
        work: &Path,
        http_port: u16,
    ) -> anyhow::Result<Self> {
        let executable = bin_dir.join(role.binary());
        if !executable.exists() {
            bail!(
                "{} not found in {}: build the services first (cargo build --release --bins)",
                role.binary(),
                bin_dir.display()
            );
        }
        Ok(Self {
            role,
            executable,
            config: config.to_path_buf(),
            log: work.join(format!("{}.log", role.binary())),
            http_port,
            child: None,
            starts: 0,
        })
    }

    /// Starts the process and waits until `/readyz` answers 200.
    ///
    /// # Errors
    /// When it cannot start, exits at start, or is not ready within 60 s.
    pub async fn up(&mut self, http: &reqwest::Client) -> anyhow::Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        let (out, err) = log_file(&self.log)?;
        let child = Command::new(&self.executable)
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("cannot start {}", self.executable.display()))?;
        self.child = Some(child);
        self.starts += 1;
        let url = format!("http://127.0.0.1:{}/readyz", self.http_port);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(reply) = http.get(&url).send().await
                && reply.status().is_success()
            {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                // Started while the database was down, say: it exits; the caller tries again.
                self.child = None;
                bail!("{} exited at start ({status})", self.role.binary());
            }
            if Instant::now() > deadline {
                bail!("{} not ready within 60 s", self.role.binary());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Which service this is.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The running process's id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL: no shutdown path runs, in-flight work is cut wherever it is.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Notices a process that died on its own (it should not; the report counts it).
    pub(crate) fn exited(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok().flatten()?;
        self.child = None;
        Some(status)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}
