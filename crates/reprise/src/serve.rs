//! `reprise serve`: wire the engine, the instance manager and the HTTP front
//! end together, then serve until SIGINT/SIGTERM.

use crate::cli::{LogFormat, ServeArgs};
use crate::guest::guest_output;
use crate::instances::{prepare, runtime};
use anyhow::Context as _;
use reprise_host::ops::admin::serve_admin;
use reprise_host::runtime::component::Source;
use reprise_host::front::http::record::Recorder;
use reprise_host::front::http::{HttpFrontEnd, Routing, ServeOptions, serve};
use reprise_host::policy::ReuseFlags;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub fn run(args: ServeArgs, log_format: LogFormat) -> anyhow::Result<ExitCode> {
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

    let runtime = runtime()?;
    let served = runtime.block_on(async move {
        let listener = TcpListener::bind(args.addr)
            .await
            .with_context(|| format!("cannot listen on {}", args.addr))?;
        let admin = match args.admin_addr {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} (admin)"))?,
            ),
            None => None,
        };
        let (stop_tx, stop_rx) = watch::channel(false);
        if let Some(admin) = admin {
            eprintln!("admin endpoint on http://{}", admin.local_addr()?);
            let stopped = wait_for(stop_rx.clone());
            tokio::spawn(serve_admin(admin, manager.clone(), stopped));
        }
        // Initialize the first instance before traffic: it proves the
        // component starts (readiness) and serves the first request warm.
        let warming = front.clone();
        tokio::spawn(async move {
            if warming.warm_up().await.is_ok() {
                tracing::info!("first instance initialized; ready");
            }
        });
        eprintln!("listening on http://{}", listener.local_addr()?);
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = stop_tx.send(true);
        });
        let options = ServeOptions {
            max_connections: args.max_connections,
            header_timeout: Some(args.header_timeout).filter(|t| !t.is_zero()),
            drain_timeout: args.drain_timeout,
            record,
        };
        serve(listener, front, options, wait_for(stop_rx)).await?;
        manager.close();
        anyhow::Ok(())
    });
    // A call still running after the drain timeout (a guest in a loop that
    // never yields, with no --timeout to stop it) must not keep the process
    // alive: its thread is left behind as the process exits.
    runtime.shutdown_timeout(EXIT_GRACE);
    served?;
    Ok(ExitCode::SUCCESS)
}

/// How long the runtime may take to wind down once serving stopped.
const EXIT_GRACE: Duration = Duration::from_secs(1);

/// Resolves once the watched flag turns true.
async fn wait_for(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (what orchestrators send).
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("install SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
