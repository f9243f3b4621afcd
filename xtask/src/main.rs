//! Project automation, in Rust so it runs wherever cargo does.
//!
//! `cargo xtask ci` is the one test command (README, `.ci/run`): it makes sure PostgreSQL and
//! Redis answer on 127.0.0.1 (starting them, or installing them with apt-get on a machine that
//! lacks them), then runs the format check, clippy with warnings denied, and every test with
//! nextest.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage: cargo xtask <command>
  ci         services up, then fmt check, clippy -D warnings, all tests (nextest)
  services   only make sure PostgreSQL and Redis answer on 127.0.0.1
  test       services up, then all tests (nextest), without fmt and clippy";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(&args[1..]),
        Some("services") => ensure_services(),
        Some("test") => ensure_services().and_then(|()| nextest(&args[1..])),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

type Result<T = ()> = std::result::Result<T, String>;

fn ci(extra: &[String]) -> Result {
    ensure_services()?;
    step("format", cargo(&["fmt", "--all", "--", "--check"]))?;
    step(
        "clippy",
        cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    nextest(extra)
}

fn nextest(extra: &[String]) -> Result {
    ensure_nextest()?;
    let mut args = vec![
        "nextest",
        "run",
        "--workspace",
        "--locked",
        "--profile",
        "ci",
    ];
    args.extend(extra.iter().map(String::as_str));
    step("tests", cargo(&args))
}

fn cargo(args: &[&str]) -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.args(args).current_dir(workspace_root());
    command
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn step(name: &str, mut command: Command) -> Result {
    eprintln!("==> {name}");
    let started = Instant::now();
    let status = command
        .status()
        .map_err(|e| format!("{name}: cannot run: {e}"))?;
    eprintln!(
        "==> {name}: {} in {:.0?}",
        if status.success() { "ok" } else { "FAILED" },
        started.elapsed()
    );
    if status.success() {
        Ok(())
    } else {
        Err(format!("{name} failed"))
    }
}

fn ensure_nextest() -> Result {
    let installed = cargo(&["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if installed {
        return Ok(());
    }
    step(
        "install cargo-nextest",
        cargo(&["install", "cargo-nextest", "--locked"]),
    )
}

fn answers(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

fn wait_for(name: &str, port: u16) -> Result {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if answers(port) {
            eprintln!("==> {name} answers on 127.0.0.1:{port}");
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Err(format!(
        "{name} does not answer on 127.0.0.1:{port} after 30 s"
    ))
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn sh(script: &str) -> Result {
    let status = Command::new("sh")
        .args(["-c", script])
        .status()
        .map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("command failed: {script}"))
    }
}

fn apt_install(packages: &str) -> Result {
    if !have("apt-get") {
        return Err(format!(
            "{packages} missing and apt-get unavailable: install them and rerun"
        ));
    }
    eprintln!("==> installing {packages} with apt-get");
    sh(&format!(
        "export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq {packages}"
    ))
}

fn ensure_services() -> Result {
    ensure_postgres()?;
    ensure_redis()
}

fn ensure_postgres() -> Result {
    if answers(5432) {
        return Ok(());
    }
    let mut installed_now = false;
    if !have("pg_ctlcluster") {
        apt_install("postgresql")?;
        installed_now = true;
    }
    // Debian's cluster, started without systemd (CI containers have none).
    sh(
        "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql | sort -V | tail -n1) main start",
    )?;
    if installed_now {
        // A fresh Debian cluster asks for passwords over TCP; the tests connect as `postgres`
        // without one, as on the development machines (trust on loopback only).
        sh("v=$(ls /etc/postgresql | sort -V | tail -n1); \
            hba=/etc/postgresql/$v/main/pg_hba.conf; \
            sed -i -E 's/^(host\\s+all\\s+all\\s+(127\\.0\\.0\\.1\\/32|::1\\/128)\\s+)\\S+/\\1trust/' $hba && \
            pg_ctlcluster --skip-systemctl-redirect $v main reload")?;
    }
    wait_for("PostgreSQL", 5432)
}

fn ensure_redis() -> Result {
    if answers(6379) {
        return Ok(());
    }
    if !have("redis-server") {
        apt_install("redis-server")?;
    }
    sh(
        "mkdir -p /var/lib/redis /var/log/redis && redis-server --daemonize yes --bind 127.0.0.1 -::1 \
        --port 6379 --save '' --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log",
    )?;
    wait_for("Redis", 6379)
}
