//! The deployment recipes in `deploy/` against the real binary: the
//! Containerfile's and the Kubernetes manifests' flags, ports and probe
//! paths agree with the CLI, the manifests pass the Kubernetes schemas,
//! the systemd units verify and serve through socket activation, and a
//! rolling restart behind nginx, or a restart in place under socket
//! activation, fails no request.
//!
//! Needs, as `.ci/run` installs them: `nginx` and `systemd-socket-activate`
//! (Debian packages `nginx` and `systemd`) and a Python venv with
//! `kubernetes-validate` (and its PyYAML) in `target/deploy-venv`, or at
//! `$REPRISE_DEPLOY_VENV`. A missing tool fails its test, with the command
//! that installs it.

mod support;

use serde_json::Value;
use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{Server, metric, reprise, scratch_path};

// ---------------------------------------------------------------------------
// The files under test, and the tools.

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn deploy_file(path: &str) -> PathBuf {
    workspace().join("deploy").join(path)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The venv `.ci/run` makes, with kubernetes-validate and PyYAML.
fn venv() -> PathBuf {
    let venv = std::env::var_os("REPRISE_DEPLOY_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/deploy-venv"));
    let validator = venv.join("bin/kubernetes-validate");
    assert!(
        validator.exists(),
        "{} is missing: the Kubernetes manifests cannot be checked. Install the validator as \
         .ci/run does:\n  python3 -m venv target/deploy-venv && \
         target/deploy-venv/bin/pip install kubernetes-validate==1.37.0\n(or point \
         REPRISE_DEPLOY_VENV at a venv that has it)",
        validator.display()
    );
    venv
}

/// Fails with the install command when a Debian tool is missing.
fn require(tool: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        found,
        "`{tool}` is not installed; install it as .ci/run does:\n  \
         apt-get update && apt-get install -y {package}"
    );
}

/// The documents of a YAML file, as JSON (parsed by the venv's PyYAML).
fn yaml(path: &Path) -> Vec<Value> {
    let python = venv().join("bin/python");
    let output = Command::new(python)
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
        ])
        .arg(path)
        .output()
        .expect("run python");
    assert!(
        output.status.success(),
        "{}: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn manifest(name: &str) -> Value {
    let mut docs = yaml(&deploy_file(&format!("kubernetes/{name}")));
    assert_eq!(docs.len(), 1, "{name} holds one resource");
    docs.remove(0)
}

/// `--flag VALUE` in `args`.
fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    let at = args.iter().position(|arg| arg == name)?;
    Some(args.get(at + 1)?.as_str())
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

/// `25s`, `500ms`.
fn seconds(duration: &str) -> f64 {
    if let Some(ms) = duration.strip_suffix("ms") {
        return ms.parse::<f64>().unwrap() / 1000.0;
    }
    duration.strip_suffix('s').unwrap().parse().unwrap()
}

/// `32MiB` (Reprise), `768Mi` (Kubernetes), in bytes.
fn bytes(size: &str) -> u64 {
    let units = [
        ("GiB", 30),
        ("MiB", 20),
        ("KiB", 10),
        ("Gi", 30),
        ("Mi", 20),
        ("Ki", 10),
    ];
    for (unit, shift) in units {
        if let Some(n) = size.strip_suffix(unit) {
            return n.parse::<u64>().unwrap() << shift;
        }
    }
    size.parse().unwrap()
}

/// The ENTRYPOINT and CMD of the Containerfile's final stage.
fn container_command() -> (Vec<String>, Vec<String>) {
    let text = read(&deploy_file("Containerfile"));
    let last = |instruction: &str| -> Vec<String> {
        let line = text
            .lines()
            .filter_map(|line| line.strip_prefix(instruction))
            .last()
            .unwrap_or_else(|| panic!("the Containerfile has no {instruction}"));
        serde_json::from_str(line.trim()).expect("exec (JSON) form")
    };
    (last("ENTRYPOINT "), last("CMD "))
}

/// A free loopback port (free when this returns; tests bind it at once).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Rewrites deployment paths and addresses for a test on loopback.
fn localize(args: &[String], http: &str, admin: &str) -> Vec<String> {
    args.iter()
        .map(|arg| match arg.as_str() {
            "/app/component.wasm" | "/srv/reprise/component.wasm" => {
                reprise_test_programs::HELLO.to_string()
            }
            "0.0.0.0:8080" => http.to_string(),
            "0.0.0.0:9090" => admin.to_string(),
            other => other.to_string(),
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Static checks.

#[test]
fn the_containerfile_builds_locked_and_runs_unprivileged_on_the_documented_ports() {
    let text = read(&deploy_file("Containerfile"));
    let froms: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "a builder and a runtime stage: {froms:?}");
    assert!(froms[0].contains("rust:1.95"), "{}", froms[0]);
    assert!(
        froms[1].contains("debian:") && froms[1].contains("-slim"),
        "{}",
        froms[1]
    );
    assert!(
        text.lines()
            .any(|l| l.contains("cargo build --release --locked -p reprise")),
        "the binary is built with --locked"
    );
    assert!(text.contains("COPY --from=build /out/reprise /usr/local/bin/reprise"));
    let user = text
        .lines()
        .filter_map(|l| l.strip_prefix("USER "))
        .last()
        .expect("a USER");
    let uid = user.split(':').next().unwrap();
    assert!(uid != "0" && uid != "root", "runs as root: USER {user}");
    let exposed: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("EXPOSE "))
        .flat_map(|l| l.split_whitespace())
        .collect();
    assert_eq!(exposed, ["8080", "9090"]);
    let (entrypoint, cmd) = container_command();
    assert_eq!(
        entrypoint[..3],
        ["/usr/local/bin/reprise", "serve", "/app/component.wasm"]
    );
    let args = [entrypoint.clone(), cmd].concat();
    assert_eq!(flag(&args, "--addr"), Some("0.0.0.0:8080"));
    assert_eq!(flag(&args, "--admin-addr"), Some("0.0.0.0:9090"));
    let ignore = read(&deploy_file("Containerfile.dockerignore"));
    assert!(
        ignore.lines().any(|l| l == "target"),
        "the build context leaves target/ out"
    );
}

#[test]
fn the_container_command_with_the_deployments_args_serves_and_answers_the_probes() {
    let (entrypoint, cmd) = container_command();
    let deployment = manifest("deployment.yaml");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<String> = serde_json::from_value(container["args"].clone()).unwrap();
    for extra in [cmd, args] {
        // The image's command as Kubernetes runs it, on loopback.
        let full = [entrypoint.clone(), extra].concat();
        let local = localize(&full[1..], "127.0.0.1:0", "127.0.0.1:0");
        let mut command = reprise();
        command.args(&local);
        let server = Server::spawn(command);
        assert_eq!(server.get("/").status, 200, "{}", server.stderr());
        let probes = &container;
        for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
            let path = probes[probe]["httpGet"]["path"].as_str().unwrap();
            let mut ready = false;
            for _ in 0..100 {
                if server.admin_get(path).status == 200 {
                    ready = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            assert!(
                ready,
                "{probe} {path} never answered 200: {}",
                server.stderr()
            );
        }
        let metrics = server.admin_get("/metrics").body;
        assert_eq!(metric(&metrics, "reprise_calls_total"), 1);
        assert_eq!(server.terminate().code(), Some(0));
    }
}

#[test]
fn the_kubernetes_manifests_agree_with_the_cli() {
    let (entrypoint, _) = container_command();
    let deployment = manifest("deployment.yaml");
    assert_eq!(deployment["kind"], "Deployment");
    let pod = &deployment["spec"]["template"];
    let container = &pod["spec"]["containers"][0];
    let args: Vec<String> = serde_json::from_value(container["args"].clone()).unwrap();
    let all = [entrypoint.clone(), args.clone()].concat();

    // Ports: the container's named ports are the ones Reprise listens on.
    let port = |name: &str| -> u64 {
        container["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no container port named {name}"))["containerPort"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(port("http"), port_of(flag(&all, "--addr").unwrap()) as u64);
    assert_eq!(
        port("admin"),
        port_of(flag(&all, "--admin-addr").unwrap()) as u64
    );

    // Probes: on the admin port, at the paths the admin endpoint serves.
    for (probe, path) in [
        ("startupProbe", "/ready"),
        ("readinessProbe", "/ready"),
        ("livenessProbe", "/live"),
    ] {
        assert_eq!(container[probe]["httpGet"]["path"], path, "{probe}");
        assert_eq!(container[probe]["httpGet"]["port"], "admin", "{probe}");
    }
    // The startup probe allows slow initialization, longer than readiness.
    let startup = &container["startupProbe"];
    let patience =
        startup["periodSeconds"].as_u64().unwrap() * startup["failureThreshold"].as_u64().unwrap();
    assert!(patience >= 30, "startup probe gives only {patience}s");

    // Scraping: the annotations name the admin port and /metrics.
    let annotations = &pod["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], port("admin").to_string());
    assert_eq!(annotations["prometheus.io/path"], "/metrics");

    // Shutdown: preStop, then the drain, end within the grace period.
    let drain = seconds(flag(&args, "--drain-timeout").expect("--drain-timeout is set"));
    let pre_stop: f64 = container["lifecycle"]["preStop"]["exec"]["command"]
        .as_array()
        .map(|command| {
            assert_eq!(command[0], "sleep");
            command[1].as_str().unwrap().parse().unwrap()
        })
        .unwrap_or(0.0);
    let grace = pod["spec"]["terminationGracePeriodSeconds"]
        .as_f64()
        .unwrap();
    assert!(
        grace > pre_stop + drain,
        "terminationGracePeriodSeconds {grace} must exceed preStop {pre_stop}s + --drain-timeout {drain}s"
    );

    // Memory: the limit holds max-instances instances at max-memory each.
    let instances: u64 = flag(&args, "--max-instances").unwrap().parse().unwrap();
    let memory = bytes(flag(&args, "--max-memory").unwrap());
    let resources = &container["resources"];
    let limit = bytes(resources["limits"]["memory"].as_str().unwrap());
    let request = bytes(resources["requests"]["memory"].as_str().unwrap());
    assert!(
        limit >= instances * memory + (128 << 20),
        "memory limit {limit} < {instances} x {memory} + 128MiB of host overhead"
    );
    assert!(request <= limit);
    assert!(resources["requests"]["cpu"].is_string());
    let prewarm: u64 = flag(&args, "--prewarm").unwrap_or("0").parse().unwrap();
    assert!(
        prewarm < instances,
        "--prewarm must leave room under --max-instances"
    );

    // Security: the image's user, never root.
    let security = &pod["spec"]["securityContext"];
    assert_eq!(security["runAsNonRoot"], true);
    assert_ne!(security["runAsUser"], 0);

    // The others select these pods and this Deployment.
    let labels = &pod["metadata"]["labels"];
    assert_eq!(deployment["spec"]["selector"]["matchLabels"], *labels);
    let service = manifest("service.yaml");
    assert_eq!(service["kind"], "Service");
    for (key, value) in service["spec"]["selector"].as_object().unwrap() {
        assert_eq!(labels[key], *value);
    }
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http");
    let pdb = manifest("pdb.yaml");
    assert_eq!(pdb["kind"], "PodDisruptionBudget");
    assert_eq!(pdb["spec"]["selector"]["matchLabels"], *labels);
    let hpa = manifest("hpa.yaml");
    assert_eq!(hpa["kind"], "HorizontalPodAutoscaler");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["kind"], "Deployment");
    assert_eq!(
        hpa["spec"]["scaleTargetRef"]["name"],
        deployment["metadata"]["name"]
    );
    // At least two replicas, of which the budget leaves one up.
    assert!(hpa["spec"]["minReplicas"].as_u64().unwrap() >= 2);
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
}

/// The Kubernetes version the manifests are validated against.
const KUBERNETES_VERSION: &str = "1.33.0";

#[test]
fn the_kubernetes_manifests_pass_the_kubernetes_schemas() {
    let validator = venv().join("bin/kubernetes-validate");
    let mut files: Vec<PathBuf> = std::fs::read_dir(deploy_file("kubernetes"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 4, "{files:?}");
    let output = Command::new(&validator)
        .args(["--strict", "--kubernetes-version", KUBERNETES_VERSION])
        .args(&files)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{report}");
    assert_eq!(report.matches(" passed ").count(), 4, "{report}");

    // The validator does reject what Kubernetes would.
    let broken = scratch_path("broken-deployment.yaml");
    let text = read(&deploy_file("kubernetes/deployment.yaml")).replace(
        "terminationGracePeriodSeconds: 40",
        "terminationGracePeriodSeconds: forty",
    );
    std::fs::write(&broken, text).unwrap();
    let output = Command::new(&validator)
        .args(["--strict", "--kubernetes-version", KUBERNETES_VERSION])
        .arg(&broken)
        .output()
        .unwrap();
    assert!(!output.status.success(), "a broken manifest passed");
}

#[test]
fn the_systemd_units_verify() {
    require("systemd-analyze", "systemd");
    let dir = scratch_path("systemd-units");
    std::fs::create_dir_all(&dir).unwrap();
    let mut units = Vec::new();
    for name in ["reprise.socket", "reprise-admin.socket", "reprise.service"] {
        let text = read(&deploy_file(&format!("systemd/{name}")))
            .replace("/usr/local/bin/reprise", env!("CARGO_BIN_EXE_reprise"));
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        units.push(path);
    }
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .args(&units)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let service = read(&deploy_file("systemd/reprise.service"));
    assert!(service.contains("Sockets=reprise.socket reprise-admin.socket"));
    let stop: f64 = unit_value(&service, "TimeoutStopSec").parse().unwrap();
    let args = exec_start();
    let drain = seconds(flag(&args, "--drain-timeout").unwrap());
    assert!(
        stop > drain,
        "TimeoutStopSec {stop} must exceed --drain-timeout {drain}"
    );
    assert!(
        flag(&args, "--addr").is_none(),
        "the sockets come from the .socket units"
    );
}

fn unit_value(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}="))
        .to_string()
}

/// `ExecStart=` of reprise.service, split (it quotes nothing).
fn exec_start() -> Vec<String> {
    let service = read(&deploy_file("systemd/reprise.service"));
    unit_value(&service, "ExecStart")
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------------
// Restarts under load.

/// An nginx on a free loopback port in front of `upstreams`, as
/// docs/deploy.md configures it: keep-alive to the replicas, and a GET
/// that fails on one (refused, reset, closed) retried on the next.
struct Nginx {
    child: std::process::Child,
    port: u16,
    dir: PathBuf,
}

impl Nginx {
    fn start(upstreams: &[u16]) -> Nginx {
        require("nginx", "nginx");
        let dir = scratch_path(&format!("nginx-{}", upstreams[0]));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        let port = free_port();
        let servers: String = upstreams
            .iter()
            .map(|p| format!("    server 127.0.0.1:{p} max_fails=0;\n"))
            .collect();
        let d = dir.display();
        let conf = format!(
            "worker_processes 1;\n\
             error_log {d}/logs/error.log warn;\n\
             pid {d}/nginx.pid;\n\
             events {{ worker_connections 512; }}\n\
             http {{\n\
             access_log off;\n\
             client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
             upstream reprise {{\n{servers}    keepalive 32;\n  }}\n\
             server {{\n\
               listen 127.0.0.1:{port};\n\
               location / {{\n\
                 proxy_pass http://reprise;\n\
                 proxy_http_version 1.1;\n\
                 proxy_set_header Connection \"\";\n\
                 proxy_next_upstream error timeout;\n\
                 proxy_next_upstream_tries 3;\n\
                 proxy_connect_timeout 2s;\n\
                 add_header x-upstream $upstream_addr always;\n\
               }}\n\
             }}\n\
             }}\n"
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new("nginx")
            .arg("-c")
            .arg(&conf_path)
            .arg("-p")
            .arg(&dir)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start nginx");
        let nginx = Nginx { child, port, dir };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "nginx did not start: {}",
                nginx.errors()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        nginx
    }

    fn errors(&self) -> String {
        std::fs::read_to_string(self.dir.join("logs/error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGQUIT: nginx's graceful stop; then make sure.
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-QUIT", &pid]).status();
        for _ in 0..100 {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the load saw.
#[derive(Default)]
struct Outcome {
    ok: u64,
    failures: Vec<String>,
    /// Which upstream (nginx's `$upstream_addr`) served each request, in order.
    upstreams: Vec<String>,
}

/// GETs `url` from `clients` keep-alive clients until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    outcome: Arc<Mutex<Outcome>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    /// `keep_alive: false` opens a connection per request.
    fn start(url: &str, clients: usize, keep_alive: bool) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let outcome = Arc::new(Mutex::new(Outcome::default()));
        let threads = (0..clients)
            .map(|_| {
                let (stop, outcome, url) = (stop.clone(), outcome.clone(), url.to_string());
                std::thread::spawn(move || {
                    let pooled = if keep_alive { 4 } else { 0 };
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .max_idle_connections(pooled)
                        .max_idle_connections_per_host(pooled)
                        .timeout_global(Some(Duration::from_secs(20)))
                        .build()
                        .into();
                    while !stop.load(SeqCst) {
                        let result = agent.get(&url).call();
                        let mut outcome = outcome.lock().unwrap();
                        match result {
                            Ok(mut response) => {
                                let status = response.status().as_u16();
                                let upstream = response
                                    .headers()
                                    .get("x-upstream")
                                    .map(|v| v.to_str().unwrap().to_string())
                                    .unwrap_or_default();
                                let body = response.body_mut().read_to_string().unwrap_or_default();
                                if status == 200 && body == "hello from reprise\n" {
                                    outcome.ok += 1;
                                    outcome.upstreams.push(upstream);
                                } else {
                                    outcome
                                        .failures
                                        .push(format!("{status} from {upstream}: {body:?}"));
                                }
                            }
                            Err(e) => outcome.failures.push(format!("request failed: {e}")),
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            outcome,
            threads,
        }
    }

    fn served(&self) -> u64 {
        self.outcome.lock().unwrap().ok
    }

    fn finish(self) -> Outcome {
        self.stop.store(true, SeqCst);
        for thread in self.threads {
            thread.join().unwrap();
        }
        Arc::try_unwrap(self.outcome)
            .ok()
            .unwrap()
            .into_inner()
            .unwrap()
    }
}

/// Waits until the load got `more` responses beyond what it had.
fn wait_for_load(load: &Load, more: u64) {
    let target = load.served() + more;
    let start = Instant::now();
    while load.served() < target {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the load stalled"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A replica on a fixed loopback port, as the deployment runs it.
fn replica(port: u16) -> Server {
    let (entrypoint, cmd) = container_command();
    let full = [entrypoint, cmd].concat();
    let args = localize(&full[1..], &format!("127.0.0.1:{port}"), "127.0.0.1:0");
    let mut command = reprise();
    command.args(with_flag(&args, "--drain-timeout", "5s"));
    let server = Server::spawn(command);
    wait_ready(&server);
    server
}

fn wait_ready(server: &Server) {
    for _ in 0..400 {
        if server.admin_get("/ready").status == 200 {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("replica never became ready: {}", server.stderr());
}

#[test]
fn a_rolling_restart_of_two_replicas_behind_nginx_fails_no_request() {
    let ports = [free_port(), free_port()];
    let mut replicas = ports.map(|port| Some(replica(port)));
    let nginx = Nginx::start(&ports);
    let load = Load::start(&format!("http://127.0.0.1:{}/", nginx.port), 4, true);
    wait_for_load(&load, 200);
    let mut restarted = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        // SIGTERM: the replica stops accepting, drains, exits; nginx sends
        // the GETs it cannot place there to the other one.
        let old = replicas[i].take().unwrap();
        let status = old.terminate_within(Duration::from_secs(10));
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(0),
            "replica {i} drained and exited"
        );
        wait_for_load(&load, 100);
        replicas[i] = Some(replica(*port));
        restarted.push((load.outcome.lock().unwrap().upstreams.len(), *port));
        wait_for_load(&load, 200);
    }
    let outcome = load.finish();
    assert!(
        outcome.failures.is_empty(),
        "{} of {} requests failed, e.g. {:?}\nnginx errors:\n{}",
        outcome.failures.len(),
        outcome.ok + outcome.failures.len() as u64,
        &outcome.failures[..outcome.failures.len().min(5)],
        nginx.errors()
    );
    // Each restarted replica served again afterwards.
    for (since, port) in restarted {
        let addr = format!("127.0.0.1:{port}");
        assert!(
            outcome.upstreams[since..]
                .iter()
                .any(|u| u.ends_with(&addr)),
            "{addr} served nothing after its restart"
        );
    }
    eprintln!("{} requests through nginx, none failed", outcome.ok);
}

/// `args` with `--name VALUE` set to `value`.
fn with_flag(args: &[String], name: &str, value: &str) -> Vec<String> {
    let mut args = args.to_vec();
    match args.iter().position(|arg| arg == name) {
        Some(at) => args[at + 1] = value.to_string(),
        None => args.extend([name.to_string(), value.to_string()]),
    }
    args
}

/// Stops the supervisor below and the reprise it runs, even when a test
/// fails.
struct Supervised(PathBuf);

impl Drop for Supervised {
    fn drop(&mut self) {
        let _ = std::fs::write(self.0.join("stop"), "");
        if let Ok(pid) = std::fs::read_to_string(self.0.join("pid")) {
            let _ = Command::new("kill")
                .args(["-KILL", pid.trim()])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A supervisor standing in for systemd's `Restart=`: it holds the sockets
/// it inherited from the activator and starts reprise again each time it
/// exits, with `LISTEN_PID` naming the new process; it records the pid.
const SUPERVISOR: &str = r#"
while [ ! -e "$STATE/stop" ]; do
    sh -c 'echo $$ > "$STATE/pid.tmp"; mv "$STATE/pid.tmp" "$STATE/pid"; export LISTEN_PID=$$; exec "$@"' reprise "$@"
done
"#;

#[test]
fn a_socket_activated_replica_restarted_in_place_fails_no_request() {
    require("systemd-socket-activate", "systemd");
    let (http, admin) = (free_port(), free_port());
    let state = scratch_path("activation");
    let _ = std::fs::remove_dir_all(&state);
    std::fs::create_dir_all(&state).unwrap();
    // The names the .socket units give their sockets.
    let name = |unit: &str| {
        unit_value(
            &read(&deploy_file(&format!("systemd/{unit}"))),
            "FileDescriptorName",
        )
    };
    let names = format!(
        "{}:{}",
        name("reprise.socket"),
        name("reprise-admin.socket")
    );
    // reprise.service's command, on the activator's sockets.
    let args = with_flag(
        &localize(&exec_start()[1..], "unused", "unused"),
        "--drain-timeout",
        "5s",
    );
    let mut command = Command::new("systemd-socket-activate");
    command
        .arg(format!("--listen=127.0.0.1:{http}"))
        .arg(format!("--listen=127.0.0.1:{admin}"))
        .arg(format!("--fdname={names}"))
        .args(["--setenv=RUST_LOG", "--setenv=STATE"])
        .env("RUST_LOG", "warn,reprise=info,reprise_host=info")
        .env("STATE", &state)
        .args([
            "sh",
            "-c",
            SUPERVISOR,
            "supervisor",
            env!("CARGO_BIN_EXE_reprise"),
        ])
        .args(&args);
    let _cleanup = Supervised(state.clone());
    // The activator starts its command on the first connection.
    let trigger = std::thread::spawn(move || {
        let start = Instant::now();
        loop {
            match std::net::TcpStream::connect(("127.0.0.1", http)) {
                Ok(mut stream) => {
                    let _ =
                        stream.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
                    let mut answer = String::new();
                    let _ = std::io::Read::read_to_string(&mut stream, &mut answer);
                    return answer;
                }
                Err(_) if start.elapsed() < Duration::from_secs(30) => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => panic!("the activator never listened: {e}"),
            }
        }
    });
    let activated = Server::spawn(command);
    let first = trigger.join().unwrap();
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    // It serves on the inherited sockets, and says so.
    assert_eq!(activated.addr, format!("127.0.0.1:{http}"));
    assert!(
        activated.stderr().contains("using the inherited socket"),
        "{}",
        activated.stderr()
    );
    let admin_url = format!("http://127.0.0.1:{admin}/ready");
    let admin_ready = || {
        ureq::get(&admin_url)
            .call()
            .is_ok_and(|response| response.status() == 200)
    };
    let start = Instant::now();
    while !admin_ready() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{}",
            activated.stderr()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
    let pid = || {
        std::fs::read_to_string(state.join("pid"))
            .unwrap()
            .trim()
            .to_string()
    };
    let listening = || activated.stderr().matches("listening on http://").count();
    assert_eq!(listening(), 1);

    // Through nginx (one upstream: it has nowhere else to retry) and
    // straight to the socket at once.
    let nginx = Nginx::start(&[http]);
    let through_nginx = Load::start(&format!("http://127.0.0.1:{}/", nginx.port), 2, true);
    // A connection per request: none may be refused while reprise is down.
    // (A kept-alive client would see its idle connections closed by the
    // drain, which HTTP lets a server do; nginx retries those, above.)
    let direct = Load::start(&format!("http://127.0.0.1:{http}/"), 2, false);
    wait_for_load(&through_nginx, 200);
    wait_for_load(&direct, 200);
    for restart in 1..=2 {
        let old = pid();
        Command::new("kill").args(["-TERM", &old]).status().unwrap();
        let start = Instant::now();
        while listening() <= restart || pid() == old {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "reprise did not come back: {}",
                activated.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        wait_for_load(&through_nginx, 200);
        wait_for_load(&direct, 200);
    }
    std::fs::write(state.join("stop"), "").unwrap();
    let (nginx_outcome, direct_outcome) = (through_nginx.finish(), direct.finish());
    assert!(
        nginx_outcome.failures.is_empty(),
        "through nginx: {} of {} requests failed, e.g. {:?}\nreprise:\n{}\nnginx errors:\n{}",
        nginx_outcome.failures.len(),
        nginx_outcome.ok + nginx_outcome.failures.len() as u64,
        &nginx_outcome.failures[..nginx_outcome.failures.len().min(5)],
        activated.stderr(),
        nginx.errors()
    );
    eprintln!(
        "through nginx: {} requests over two restarts, none failed",
        nginx_outcome.ok
    );
    // Straight to the socket, with no balancer to retry: never refused (the
    // activator's socket stays open) and never reset (a connection the old
    // process accepted just before SIGTERM gets its request answered before
    // the drain closes it).
    assert!(
        direct_outcome.failures.is_empty() && direct_outcome.ok > 400,
        "direct: {} of {} requests failed, e.g. {:?}\nreprise:\n{}",
        direct_outcome.failures.len(),
        direct_outcome.ok + direct_outcome.failures.len() as u64,
        &direct_outcome.failures[..direct_outcome.failures.len().min(5)],
        activated.stderr()
    );
    eprintln!(
        "direct: {} requests over two restarts, none failed",
        direct_outcome.ok
    );
    // The supervisor, seeing `stop`, ends once this last reprise does.
    Command::new("kill")
        .args(["-TERM", &pid()])
        .status()
        .unwrap();
    let mut activated = activated;
    let start = Instant::now();
    while activated.exited().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the supervisor did not end"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
