//! Running a real binary of the workspace as a child process: wait for a line it prints, stop it
//! with SIGTERM like an orchestrator would, and read its exit status.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running child whose stdout and stderr lines are collected in the background.
#[derive(Debug)]
pub struct RunningBinary {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl RunningBinary {
    /// Starts `command` with piped output.
    ///
    /// # Panics
    /// When the binary cannot be started.
    pub fn spawn(mut command: Command) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        let (tx, lines) = mpsc::channel();
        let stdout: ChildStdout = child.stdout.take().expect("piped stdout");
        let stderr: ChildStderr = child.stderr.take().expect("piped stderr");
        forward(BufReader::new(stdout), tx.clone());
        forward(BufReader::new(stderr), tx);
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits up to `timeout` for a line containing `needle` and returns it.
    ///
    /// # Panics
    /// On timeout or if the process exits first, showing everything it printed.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line containing {needle:?}; output so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits up to `timeout` for the process to exit on its own (a crash, an abort).
    ///
    /// # Panics
    /// If it is still running after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.seen.extend(self.lines.try_iter());
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "process still running; output:\n{}",
                self.seen.join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits for the exit.
    ///
    /// # Panics
    /// If the process does not exit within 20 seconds.
    pub fn terminate(mut self) -> (ExitStatus, Vec<String>) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.seen.extend(self.lines.try_iter());
                return (status, std::mem::take(&mut self.seen));
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "process did not stop after SIGTERM; output:\n{}",
                    self.seen.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for RunningBinary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn forward(reader: impl BufRead + Send + 'static, tx: mpsc::Sender<String>) {
    std::thread::spawn(move || {
        for line in reader.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
}

/// Extracts `"key":"value"` from a JSON log line.
pub fn json_field(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let end = line[start..].find('"')? + start;
    Some(line[start..end].to_owned())
}
