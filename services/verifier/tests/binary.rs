//! The real `iap-verifier` binary: a clear one-line error and a distinct exit code for bad
//! configuration and for an unreachable database.

use std::process::Command;

fn verifier() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_iap-verifier"));
    // Only the variables each case sets reach the child.
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    command
}

#[test]
fn bad_configuration_exits_78_with_one_line() {
    let output = verifier()
        .env("IAP_DATABASE_MAX_CONNECTIONS", "lots")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(78));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("iap-verifier: configuration error:"),
        "{stderr}"
    );
    assert!(stderr.contains("max_connections"), "{stderr}");

    let output = verifier().output().unwrap();
    assert_eq!(output.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&output.stderr).contains("database.url: is not set"));
}

/// An App Store app without `app_apple_id` accepts Production purchases it cannot tell from
/// another app's: the process does not start, and the line names the key.
#[test]
fn an_app_store_app_without_its_apple_id_exits_78() {
    let config = std::env::temp_dir().join(format!("iap-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(
        &config,
        "[database]\nurl = \"sqlite::memory:\"\n[apps.game.products.gems]\nkind = \"consumable\"\n\
         [apps.game.apple]\nbundle_id = \"com.example.game\"\n",
    )
    .unwrap();
    let output = verifier().env("IAP_CONFIG", &config).output().unwrap();
    std::fs::remove_file(&config).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("apps.game.apple") && stderr.contains("app_apple_id is required"),
        "{stderr}"
    );
}

#[test]
fn unreachable_database_exits_69_with_one_line() {
    let output = verifier()
        .env("IAP_DATABASE_URL", "postgres://iap:secret@127.0.0.1:1/iap")
        .env("IAP_DATABASE_CONNECT_TIMEOUT", "2s")
        .env("IAP_DATABASE_ACQUIRE_TIMEOUT", "2s")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(69));
    let stderr = String::from_utf8(output.stderr).unwrap();
    let last = stderr.trim_end().lines().last().unwrap_or_default();
    assert!(
        last.starts_with("iap-verifier: database unreachable"),
        "{stderr}"
    );
    assert!(!stderr.contains("secret"), "password leaked: {stderr}");
}
