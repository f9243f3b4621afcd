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
  test       services up, then all tests (nextest), without fmt and clippy
  python     the stores' own client libraries (PyPI) against iap-emulator";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(&args[1..]),
        Some("services") => ensure_services(),
        Some("test") => ensure_services().and_then(|()| nextest(&args[1..])),
        Some("python") => python_checks(),
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

/// Tests are built with the crash points compiled in, so the crash matrix runs with the rest;
/// they stay inert unless a test configures one. Release builds never have them.
const CRASH_POINTS: &str = "iap-delivery/failpoints";

fn ci(extra: &[String]) -> Result {
    ensure_services()?;
    step("format", cargo(&["fmt", "--all", "--", "--check"]))?;
    let clippy = [
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--features",
        CRASH_POINTS,
        "--",
        "-D",
        "warnings",
    ];
    step("clippy", cargo(&clippy))?;
    nextest(extra)?;
    python_checks()
}

/// The stores' own client libraries run against a real `iap-emulator` process: Google's
/// `google-api-python-client` (pinned: 2.198.0 still has every method the emulator serves) and
/// Apple's `app-store-server-library` (strict chain verification and its API client).
fn python_checks() -> Result {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from);
    let venv = target.join("python-venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        if !have("python3") {
            apt_install("python3 python3-venv")?;
        }
        let mut create = Command::new("python3");
        create.args(["-m", "venv"]).arg(&venv);
        step("python venv", create)?;
    }
    let mut install = Command::new(&python);
    install.args(["-m", "pip", "install", "-q", "--disable-pip-version-check"]);
    install.args([
        "google-api-python-client==2.198.0",
        "google-auth",
        "app-store-server-library",
    ]);
    step("python packages", install)?;
    step(
        "build iap-emulator",
        cargo(&["build", "--locked", "-p", "iap-emulator"]),
    )?;

    let emulator = target.join("debug/iap-emulator");
    let mut child = Command::new(&emulator)
        .args(["--listen", "127.0.0.1:0"])
        .env("IAP_TELEMETRY_LOG_FORMAT", "json")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", emulator.display()))?;
    let result = read_listen_address(&mut child).and_then(|address| {
        let scripts = workspace_root().join("services/emulator/tests/python");
        for (name, script) in [
            (
                "google-api-python-client against iap-emulator",
                "google_client_check.py",
            ),
            (
                "Apple's app-store-server-library against iap-emulator",
                "apple_library_check.py",
            ),
        ] {
            let mut check = Command::new(&python);
            check
                .arg(scripts.join(script))
                .arg(format!("http://{address}"));
            step(name, check)?;
        }
        if !have("curl") {
            apt_install("curl")?;
        }
        let mut curl = Command::new("bash");
        curl.arg(workspace_root().join("services/emulator/examples/huawei-curl.sh"))
            .arg(format!("http://{address}"));
        step("curl walkthrough of the Huawei paths", curl)
    });
    let _ = child.kill();
    let _ = child.wait();
    result
}

fn read_listen_address(child: &mut std::process::Child) -> Result<String> {
    use std::io::BufRead;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let lines = std::io::BufReader::new(stderr)
        .lines()
        .map_while(std::result::Result::ok);
    for line in lines {
        if line.contains("iap-emulator listening") {
            let key = "\"http\":\"";
            let start = line.find(key).ok_or("no address in the listening line")? + key.len();
            let end = line[start..].find('"').ok_or("unterminated address")? + start;
            return Ok(line[start..end].to_owned());
        }
    }
    Err("iap-emulator exited before listening".into())
}

fn nextest(extra: &[String]) -> Result {
    ensure_nextest()?;
    let mut args = vec![
        "nextest",
        "run",
        "--workspace",
        "--locked",
        "--features",
        CRASH_POINTS,
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
