//! The shipped operations files agree with the code: the Grafana dashboard, the alert rules and
//! the observability doc name only metrics the code emits (and the code emits only metrics the
//! catalog describes); the Kubernetes manifests use the one image, the binaries it contains,
//! and the ports and probes the settings and the configuration file give.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_yaml::Value as Yaml;

use iap_runtime::Settings;
use iap_runtime::metrics_catalog::{self, METRICS};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(workspace().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The `iap_*` identifiers in a PromQL expression or a text.
fn metric_names(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|word| word.starts_with("iap_"))
        .map(str::to_owned)
        .collect()
}

fn unknown_metrics(names: &BTreeSet<String>) -> Vec<&String> {
    names
        .iter()
        .filter(|name| metrics_catalog::find(name).is_none())
        .collect()
}

/// Every `expr` of a JSON document, wherever it is nested (panels, rows of panels, targets).
fn json_exprs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(fields) => {
            for (key, child) in fields {
                match (key.as_str(), child) {
                    ("expr", serde_json::Value::String(expr)) => out.push(expr.clone()),
                    _ => json_exprs(child, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|item| json_exprs(item, out)),
        _ => {}
    }
}

#[test]
fn the_grafana_dashboard_queries_only_metrics_the_code_emits() {
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("deploy/grafana/iap-dashboard.json")).expect("valid JSON");
    assert!(dashboard["title"].is_string() && dashboard["uid"].is_string());
    let mut exprs = Vec::new();
    json_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() > 20, "only {} queries", exprs.len());
    let used: BTreeSet<String> = exprs.iter().flat_map(|e| metric_names(e)).collect();
    assert!(
        unknown_metrics(&used).is_empty(),
        "unknown: {:?}",
        unknown_metrics(&used)
    );

    let panels = dashboard["panels"].as_array().expect("panels");
    let ids: Vec<_> = panels
        .iter()
        .map(|p| p["id"].as_u64().expect("id"))
        .collect();
    let distinct: BTreeSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "panel ids are unique");
    for panel in panels.iter().filter(|p| p["type"] != "row") {
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "panel {} uses the dashboard's datasource variable",
            panel["title"]
        );
    }
}

#[test]
fn the_alert_rules_use_only_metrics_the_code_emits_and_scraped_job_names() {
    let rules: Yaml = serde_yaml::from_str(&read("deploy/prometheus/alerts.yml")).unwrap();
    let mut names = BTreeSet::new();
    let mut alerts = BTreeSet::new();
    for group in rules["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let alert = rule["alert"].as_str().expect("alert name");
            let expr = rule["expr"].as_str().expect("expr");
            assert!(
                rule["labels"]["severity"].as_str().is_some(),
                "{alert} has a severity"
            );
            assert!(alerts.insert(alert.to_owned()), "{alert} defined twice");
            names.extend(metric_names(expr));
            for job in expr.split("job=\"").skip(1) {
                let job = job.split('"').next().unwrap_or_default();
                let scrape = read("deploy/prometheus/prometheus.yml");
                assert!(
                    scrape.contains(&format!("job_name: {job}\n")),
                    "{alert} expects a scrape job {job} that prometheus.yml does not define"
                );
            }
        }
    }
    assert!(
        unknown_metrics(&names).is_empty(),
        "unknown: {:?}",
        unknown_metrics(&names)
    );
    // The issue's alerts, by what they watch.
    for required in [
        "iap_orders_undelivered_oldest_age_seconds",
        "iap_orders",
        "iap_orders_oldest_paid_age_seconds",
        "iap_store_requests_total",
        "iap_notifications_pending_oldest_age_seconds",
        "iap_notification_lag_seconds_bucket",
        "iap_gauges_refreshed_timestamp_seconds",
    ] {
        assert!(names.contains(required), "no alert uses {required}");
    }
    assert!(alerts.contains("IapSchedulerDown") && alerts.contains("IapDeadOrders"));
}

/// `metrics::counter!("name"`, `gauge!`, `histogram!` and `describe_*!` in the workspace's
/// sources, outside tests.
fn emitted_metric_names() -> BTreeMap<String, PathBuf> {
    fn visit(dir: &Path, out: &mut BTreeMap<String, PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if path.is_dir() {
                if !matches!(name.as_ref(), "target" | "tests" | "fuzz" | ".git") {
                    visit(&path, out);
                }
            } else if name.ends_with(".rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for macro_name in ["counter!(", "gauge!(", "histogram!("] {
                    for after in text.split(&format!("metrics::{macro_name}")).skip(1) {
                        let after = after.trim_start();
                        if let Some(quoted) = after.strip_prefix('"') {
                            let metric = quoted.split('"').next().unwrap_or_default();
                            out.insert(metric.to_owned(), path.clone());
                        }
                    }
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    for dir in ["crates", "services", "examples"] {
        visit(&workspace().join(dir), &mut out);
    }
    out
}

#[test]
fn every_emitted_metric_is_described_and_every_described_metric_is_emitted() {
    let emitted = emitted_metric_names();
    let undescribed: Vec<_> = emitted
        .iter()
        .filter(|(name, _)| METRICS.iter().all(|m| m.name != name.as_str()))
        .collect();
    assert!(
        undescribed.is_empty(),
        "emitted but missing from metrics_catalog::METRICS: {undescribed:?}"
    );
    let never_emitted: Vec<_> = METRICS
        .iter()
        .map(|m| m.name)
        .filter(|name| !emitted.contains_key(*name))
        .collect();
    assert!(
        never_emitted.is_empty(),
        "described, never emitted: {never_emitted:?}"
    );
    for metric in METRICS {
        let no_id_labels = metric
            .labels
            .iter()
            .all(|l| !l.contains("order") && !l.contains("user") && !l.contains("token"));
        assert!(no_id_labels, "{} has an unbounded label", metric.name);
    }
}

#[test]
fn the_observability_doc_lists_every_metric_and_only_those() {
    let doc = read("docs/observability.md");
    let named = metric_names(&doc);
    assert!(
        unknown_metrics(&named).is_empty(),
        "unknown: {:?}",
        unknown_metrics(&named)
    );
    for metric in METRICS {
        assert!(
            doc.contains(&format!("`{}`", metric.name)),
            "docs/observability.md does not list {}",
            metric.name
        );
    }
}

#[test]
fn described_metrics_carry_help_on_the_prometheus_page() {
    let recorder = iap_runtime::telemetry::build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        metrics_catalog::describe_all();
        let mut call =
            iap_domain::store_calls::StoreCall::start(iap_domain::Platform::Google, "products.get");
        call.saw_status(429);
        call.finish::<()>(&Err(iap_domain::ports::StoreError::Unavailable {
            detail: "quota".into(),
            retry_after: None,
        }));
        metrics::histogram!("iap_delivery_latency_seconds", "platform" => "apple").record(90.0);
    });
    let page = handle.render();
    assert!(
        page.contains("# HELP iap_store_requests_total Calls to the stores' server APIs"),
        "{page}"
    );
    assert!(
        page.contains(
            r#"iap_store_requests_total{store="google",endpoint="products.get",outcome="rate_limited"} 1"#
        ),
        "{page}"
    );
    assert!(
        page.contains(r#"iap_store_rate_limited_total{store="google",endpoint="products.get"} 1"#),
        "{page}"
    );
    // A paid order waiting minutes lands in a minutes bucket, not past the 30 s call buckets.
    assert!(
        page.contains(r#"iap_delivery_latency_seconds_bucket{platform="apple",le="300"} 1"#),
        "{page}"
    );
    assert!(
        page.contains(r#"iap_delivery_latency_seconds_bucket{platform="apple",le="60"} 0"#),
        "{page}"
    );
}

// Kubernetes

fn k8s_documents() -> Vec<(String, Yaml)> {
    let dir = workspace().join("deploy/k8s");
    let mut docs = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        if !file.ends_with(".yaml") || file == "kustomization.yaml" {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap();
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value = <Yaml as serde::Deserialize>::deserialize(document)
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            if !value.is_null() {
                docs.push((file.clone(), value));
            }
        }
    }
    docs
}

/// The binaries the Dockerfile puts in the image.
fn image_binaries() -> BTreeSet<String> {
    let dockerfile = read("Dockerfile");
    dockerfile
        .split_whitespace()
        .filter_map(|word| word.strip_prefix("target/release/"))
        .map(str::to_owned)
        .collect()
}

fn port_of(listen: std::net::SocketAddr) -> u64 {
    u64::from(listen.port())
}

#[test]
fn kustomization_lists_every_manifest() {
    let kustomization: Yaml = serde_yaml::from_str(&read("deploy/k8s/kustomization.yaml")).unwrap();
    let listed: BTreeSet<String> = kustomization["resources"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    let files: BTreeSet<String> = k8s_documents().into_iter().map(|(file, _)| file).collect();
    assert_eq!(listed, files);
}

#[test]
fn manifests_match_the_image_the_settings_and_the_config_file() {
    let defaults = Settings::default();
    let binaries = image_binaries();
    assert!(binaries.contains("iap-verifier") && binaries.contains("iap-game-server"));
    // The ports each binary listens on by default (named as the manifests name them).
    let expected: BTreeMap<&str, Vec<(&str, u64)>> = [
        (
            "iap-verifier",
            vec![
                ("grpc", port_of(defaults.verifier.grpc_listen)),
                ("http", port_of(defaults.verifier.http_listen)),
                ("metrics", port_of(defaults.verifier.metrics_listen)),
            ],
        ),
        (
            "iap-delivery",
            vec![
                ("grpc", port_of(defaults.delivery.grpc_listen)),
                ("http", port_of(defaults.delivery.http_listen)),
            ],
        ),
        (
            "iap-scheduler",
            vec![("http", port_of(defaults.scheduler.http_listen))],
        ),
        (
            "iap-emulator",
            vec![("http", port_of(defaults.emulator.listen))],
        ),
        ("iap-game-server", vec![("grpc", 50070)]),
    ]
    .into();

    let docs = k8s_documents();
    let config = docs
        .iter()
        .find(|(_, d)| d["kind"] == "ConfigMap")
        .and_then(|(_, d)| d["data"]["iap.toml"].as_str())
        .expect("a ConfigMap with iap.toml");
    let configured = Settings::from_toml(config).expect("the ConfigMap's iap.toml is valid");
    assert_eq!(
        port_of(configured.verifier.grpc_listen),
        expected["iap-verifier"][0].1
    );
    assert_eq!(
        port_of(configured.verifier.http_listen),
        expected["iap-verifier"][1].1
    );
    assert_eq!(
        port_of(configured.verifier.metrics_listen),
        expected["iap-verifier"][2].1
    );
    assert_ne!(
        configured.verifier.metrics_listen.port(),
        configured.verifier.http_listen.port(),
        "/metrics is not on the port the stores reach"
    );
    assert_eq!(
        port_of(configured.delivery.grpc_listen),
        expected["iap-delivery"][0].1
    );
    assert_eq!(
        port_of(configured.delivery.http_listen),
        expected["iap-delivery"][1].1
    );
    assert_eq!(
        port_of(configured.scheduler.http_listen),
        expected["iap-scheduler"][0].1
    );
    for listen in [
        configured.verifier.grpc_listen,
        configured.verifier.metrics_listen,
        configured.delivery.grpc_listen,
        configured.scheduler.http_listen,
    ] {
        assert!(
            listen.ip().is_unspecified(),
            "{listen}: pods listen on every interface"
        );
    }

    let mut deployments = BTreeSet::new();
    for (file, doc) in docs.iter().filter(|(_, d)| d["kind"] == "Deployment") {
        let name = doc["metadata"]["name"].as_str().unwrap();
        deployments.insert(name.to_owned());
        let pod = &doc["spec"]["template"];
        assert_eq!(
            doc["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"],
            pod["metadata"]["labels"]["app.kubernetes.io/name"],
            "{file}: the selector selects the pods"
        );
        let container = &pod["spec"]["containers"][0];
        let image = container["image"].as_str().unwrap();
        assert_eq!(
            image.split(':').next(),
            Some("iap"),
            "{file}: the one image"
        );
        let binary = container["command"][0].as_str().unwrap();
        assert!(
            binaries.contains(binary),
            "{file}: {binary} is not in the image"
        );
        assert_eq!(
            binary, name,
            "{file}: the deployment is named after its binary"
        );
        let ports: Vec<(String, u64)> = container["ports"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap().to_owned(),
                    p["containerPort"].as_u64().unwrap(),
                )
            })
            .collect();
        let want: Vec<(String, u64)> = expected[binary]
            .iter()
            .map(|(n, p)| ((*n).to_owned(), *p))
            .collect();
        assert_eq!(ports, want, "{file}: container ports are the default ports");
        // Prometheus scrapes the port that serves /metrics: the verifier's own metrics port,
        // never the one the stores reach.
        let metrics_port = match binary {
            "iap-verifier" => Some(port_of(defaults.verifier.metrics_listen)),
            "iap-delivery" => Some(port_of(defaults.delivery.http_listen)),
            "iap-scheduler" => Some(port_of(defaults.scheduler.http_listen)),
            "iap-emulator" => Some(port_of(defaults.emulator.listen)),
            _ => None,
        };
        if let Some(port) = metrics_port {
            let scraped: u64 = pod["metadata"]["annotations"]["prometheus.io/port"]
                .as_str()
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("{file}: a prometheus.io/port annotation"));
            assert_eq!(scraped, port, "{file}: scrapes the port serving /metrics");
        }
        for probe in ["readinessProbe", "livenessProbe"] {
            let probe = &container[probe];
            let port = probe["grpc"]["port"]
                .as_u64()
                .or_else(|| probe["httpGet"]["port"].as_u64())
                .unwrap_or_else(|| panic!("{file}: probes use grpc or httpGet by port number"));
            assert!(
                ports.iter().any(|(_, p)| *p == port),
                "{file}: probe port {port} is a container port"
            );
            if probe["grpc"].is_mapping() {
                assert!(
                    ports.iter().any(|(n, p)| n == "grpc" && *p == port),
                    "{file}: gRPC probes go to the gRPC port"
                );
            }
        }
        let resources = &container["resources"];
        for field in ["requests", "limits"] {
            assert!(
                resources[field]["cpu"].as_str().is_some()
                    && resources[field]["memory"].as_str().is_some(),
                "{file}: resources.{field} sets cpu and memory"
            );
        }
        let replicas = doc["spec"]["replicas"].as_u64().unwrap();
        if matches!(binary, "iap-verifier" | "iap-delivery" | "iap-scheduler") {
            assert!(replicas > 1, "{file}: {binary} runs more than one replica");
        }
        let service = docs
            .iter()
            .find(|(_, d)| d["kind"] == "Service" && d["metadata"]["name"] == name)
            .map(|(_, d)| d)
            .unwrap_or_else(|| panic!("{file}: a Service named {name}"));
        assert_eq!(
            service["spec"]["selector"]["app.kubernetes.io/name"],
            doc["metadata"]["name"]
        );
        for port in service["spec"]["ports"].as_sequence().unwrap() {
            let target = port["targetPort"].as_str().unwrap();
            let number = port["port"].as_u64().unwrap();
            assert!(
                ports.iter().any(|(n, p)| n == target && *p == number),
                "{file}: Service port {number} targets container port {target}"
            );
        }
    }
    let wanted: BTreeSet<String> = expected.keys().map(|k| (*k).to_owned()).collect();
    assert_eq!(deployments, wanted);

    // The URLs in the config file reach the Services.
    for url in [
        configured.verifier.delivery_url.as_deref(),
        configured.scheduler.delivery_url.as_deref(),
        configured.delivery.game_server_url.as_deref(),
    ] {
        let url = url.expect("set in the ConfigMap");
        let host_port = url.trim_start_matches("http://");
        let (host, port) = host_port.split_once(':').unwrap();
        let service = docs
            .iter()
            .find(|(_, d)| d["kind"] == "Service" && d["metadata"]["name"] == host)
            .unwrap_or_else(|| panic!("{url}: no Service {host}"));
        assert!(
            service.1["spec"]["ports"]
                .as_sequence()
                .unwrap()
                .iter()
                .any(|p| p["port"].as_u64() == port.parse().ok()),
            "{url}: Service {host} has no port {port}"
        );
    }

    let job = docs
        .iter()
        .find(|(_, d)| d["kind"] == "Job")
        .map(|(_, d)| d)
        .expect("the migration Job");
    let command = &job["spec"]["template"]["spec"]["containers"][0]["command"];
    assert_eq!(command[0], "iap-migrate");
    assert_eq!(command[1], "up");
}

// docker compose and the example scrape configuration

/// The port of `host:port`.
fn port_in(address: &str) -> u64 {
    address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{address}: no port"))
}

#[test]
fn the_scrape_config_reaches_each_compose_service_on_its_metrics_port() {
    let compose: Yaml = serde_yaml::from_str(&read("docker-compose.yml")).unwrap();
    let scrape: Yaml = serde_yaml::from_str(&read("deploy/prometheus/prometheus.yml")).unwrap();
    let env = |service: &str, key: &str| -> String {
        compose["services"][service]["environment"][key]
            .as_str()
            .unwrap_or_else(|| panic!("docker-compose.yml: {service} sets no {key}"))
            .to_owned()
    };
    // (scrape job, compose service, the setting holding the port that serves /metrics)
    let metrics_ports = [
        (
            "iap-verifier",
            "verifier",
            port_in(&env("verifier", "IAP_VERIFIER_METRICS_LISTEN")),
        ),
        (
            "iap-delivery",
            "delivery",
            port_in(&env("delivery", "IAP_DELIVERY_HTTP_LISTEN")),
        ),
        (
            "iap-scheduler",
            "scheduler",
            port_in(&env("scheduler", "IAP_SCHEDULER_HTTP_LISTEN")),
        ),
    ];
    assert_ne!(
        port_in(&env("verifier", "IAP_VERIFIER_METRICS_LISTEN")),
        port_in(&env("verifier", "IAP_VERIFIER_HTTP_LISTEN")),
        "the verifier's /metrics is not on the port the stores reach"
    );
    for (job, service, port) in metrics_ports {
        let config = scrape["scrape_configs"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|c| c["job_name"] == job)
            .unwrap_or_else(|| panic!("prometheus.yml: no job {job}"));
        let target = config["static_configs"][0]["targets"][0].as_str().unwrap();
        assert_eq!(target, format!("{service}:{port}"), "job {job}");
    }
}

#[test]
fn compose_configures_the_services_from_the_emulators_printed_configuration() {
    let mut compose: Yaml = serde_yaml::from_str(&read("docker-compose.yml")).unwrap();
    // The services share their settings through YAML merge keys (`<<: *iap`).
    compose.apply_merge().unwrap();
    let services = &compose["services"];
    let words = |service: &str| -> Vec<String> {
        services[service]["command"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{service} has a command"))
            .iter()
            .flat_map(|w| {
                w.as_str()
                    .unwrap()
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let after = |words: &[String], flag: &str| -> String {
        let at = words
            .iter()
            .position(|w| w == flag)
            .unwrap_or_else(|| panic!("{flag} in {words:?}"));
        words[at + 1].clone()
    };
    let printing = words("emulator-config");
    assert!(printing.iter().any(|w| w == "--print-config"));
    let written = after(&printing, ">");
    let serving = words("emulator");
    assert_eq!(
        after(&printing, "--state-file"),
        after(&serving, "--state-file"),
        "the emulator serves the keys the printed configuration names"
    );
    assert_eq!(
        after(&printing, "--public-url"),
        after(&serving, "--public-url")
    );
    for service in ["verifier", "delivery", "scheduler"] {
        assert_eq!(
            services[service]["environment"]["IAP_CONFIG"].as_str(),
            Some(written.as_str()),
            "{service} reads the printed configuration"
        );
        assert_eq!(
            services[service]["depends_on"]["emulator-config"]["condition"].as_str(),
            Some("service_completed_successfully"),
            "{service} starts after the configuration is written"
        );
    }
}
