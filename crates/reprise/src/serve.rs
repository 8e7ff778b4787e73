//! `reprise serve`: wire the engine, the instance manager and the HTTP front
//! end together, then serve until SIGINT/SIGTERM.

use crate::cli::{LogFormat, ServeArgs};
use crate::guest::guest_output;
use crate::instances::{prepare, runtime};
use anyhow::Context as _;
use reprise_host::front::http::record::Recorder;
use reprise_host::front::http::{BodyLimits, HttpFrontEnd, Routing, ServeOptions, serve};
use reprise_host::ops::activation;
use reprise_host::ops::admin::serve_admin;
use reprise_host::policy::ReuseFlags;
use reprise_host::runtime::component::Source;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub fn run(args: ServeArgs, log_format: LogFormat) -> anyhow::Result<ExitCode> {
    // Socket activation (systemd's LISTEN_FDS): taken first, while this is
    // the only thread, as it clears the variables.
    let inherited = activation::take()?;
    let record = match &args.record {
        Some(path) => Some(Arc::new(
            Recorder::open(path, args.record_secrets)
                .with_context(|| format!("cannot open --record file {}", path.display()))?,
        )),
        None => None,
    };
    let source = match &args.component {
        Some(path) => Source::File(path.clone()),
        None => Source::Embedded {
            name: "example",
            bytes: reprise_test_programs::EXAMPLE_BYTES,
        },
    };
    let flags = ReuseFlags {
        max_concurrency: args.max_concurrency,
        idle_timeout: args.idle_timeout,
        memory_ceiling: args.memory_ceiling,
        ..args.instances.reuse_flags()
    };
    let setup = prepare(source.clone(), &args.instances, flags, true)?;
    let routing = Routing {
        isolate_by: args.isolate_by,
        chaos: setup.chaos.clone(),
    };
    let output = guest_output(log_format, false);
    let guest = args.instances.guest.environment(Vec::new(), false, output);
    let manager = Arc::new(setup.manager(guest)?);
    let front = Arc::new(HttpFrontEnd::new(
        manager.clone(),
        routing,
        args.expose_instance_id,
        args.instances.prewarm,
    )?);
    tracing::info!("serving {source}, which exports {}", front.flavor());

    let max_connections = connection_cap(args.max_connections);
    let runtime = runtime()?;
    let served = runtime.block_on(async move {
        let listener = match inherited.http {
            Some(socket) => {
                tracing::info!(
                    "using the inherited socket {} (socket activation); --addr is ignored",
                    socket.local_addr()?
                );
                TcpListener::from_std(socket)?
            }
            None => TcpListener::bind(args.addr)
                .await
                .with_context(|| format!("cannot listen on {}", args.addr))?,
        };
        let admin = match (inherited.admin, args.admin_addr) {
            (Some(socket), addr) => {
                let ignored = addr.map_or("", |_| "; --admin-addr is ignored");
                tracing::info!(
                    "admin endpoint on the inherited socket {} (socket activation){ignored}",
                    socket.local_addr()?,
                );
                Some(TcpListener::from_std(socket)?)
            }
            (None, Some(addr)) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} (admin)"))?,
            ),
            (None, None) => None,
        };
        let (stop_tx, stop_rx) = watch::channel(false);
        if let Some(admin) = admin {
            eprintln!("admin endpoint on http://{}", admin.local_addr()?);
            let draining = wait_for(stop_rx.clone());
            tokio::spawn(serve_admin(admin, manager.clone(), draining));
        }
        // Initialize the first instance before traffic: it proves the
        // component starts (readiness) and serves the first request warm.
        let warming = front.clone();
        tokio::spawn(async move {
            if warming.warm_up().await.is_ok() {
                tracing::info!("first instance initialized; ready");
            }
        });
        // Handlers first: a SIGTERM sent as soon as the address is known
        // must drain the server, not kill it with the default action.
        let mut signals = Signals::new()?;
        eprintln!("listening on http://{}", listener.local_addr()?);
        tokio::spawn(async move {
            signals.next().await;
            let _ = stop_tx.send(true);
            // Whoever sends a second one wants the process gone now.
            let signal = signals.next().await;
            eprintln!("error: {signal} during the drain: exiting at once");
            std::process::exit(128 + signal.number());
        });
        let options = ServeOptions {
            max_connections,
            header_timeout: Some(args.header_timeout).filter(|t| !t.is_zero()),
            drain_timeout: args.drain_timeout,
            record,
            extra_headers: Arc::new(args.headers.clone()),
            max_header_bytes: args.max_header_bytes,
            body_limits: BodyLimits {
                timeout: Some(args.body_timeout).filter(|t| !t.is_zero()),
                max_bytes: Some(args.max_body_bytes),
            },
        };
        let drained = serve(listener, front, options, wait_for(stop_rx)).await?;
        manager.close();
        anyhow::Ok(drained)
    });
    // A call still running after the drain timeout (a guest in a loop that
    // never yields, with no --timeout to stop it) must not keep the process
    // alive: its thread is left behind as the process exits.
    runtime.shutdown_timeout(EXIT_GRACE);
    if served?.cut > 0 {
        // Requests were lost: whatever restarts the server should know.
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The connection cap, after raising the open-file limit as far as it
/// goes; both are logged.
fn connection_cap(requested: Option<usize>) -> usize {
    use reprise_host::ops::files;
    let limit = files::raise_open_file_limit();
    match limit {
        Some((before, after)) if after > before => {
            tracing::info!("raised the open-file limit from {before} to {after} (its hard limit)")
        }
        Some((before, _)) => tracing::info!("open-file limit: {before}"),
        None => {}
    }
    let (cap, warning) = files::connection_cap(requested, limit.map(|(_, after)| after));
    if let Some(warning) = warning {
        tracing::warn!("{warning}");
    }
    tracing::info!("serving at most {cap} connections at once (--max-connections)");
    cap
}

/// How long the runtime may take to wind down once serving stopped.
const EXIT_GRACE: Duration = Duration::from_secs(1);

/// Resolves once the watched flag turns true.
async fn wait_for(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// SIGINT (Ctrl-C) and SIGTERM (what orchestrators send), listened for
/// from the start so that none is missed between the first and the second.
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

/// Which signal arrived.
#[derive(Clone, Copy)]
enum Stop {
    Interrupt,
    Terminate,
}

impl Stop {
    fn number(self) -> i32 {
        match self {
            Stop::Interrupt => 2,
            Stop::Terminate => 15,
        }
    }
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stop::Interrupt => "a second signal (SIGINT)",
            Stop::Terminate => "a second signal (SIGTERM)",
        })
    }
}

impl Signals {
    fn new() -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                interrupt: signal(SignalKind::interrupt()).context("install SIGINT handler")?,
                terminate: signal(SignalKind::terminate()).context("install SIGTERM handler")?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Resolves on the next SIGINT or SIGTERM.
    async fn next(&mut self) -> Stop {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => Stop::Interrupt,
                _ = self.terminate.recv() => Stop::Terminate,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Stop::Interrupt
        }
    }
}
