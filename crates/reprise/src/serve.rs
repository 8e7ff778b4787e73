//! `reprise serve`: wire the engine, the instance manager and the HTTP front
//! end together, then serve until SIGINT/SIGTERM.

use crate::cli::{PolicyArg, ServeArgs};
use anyhow::Context as _;
use reprise_host::admin::serve_admin;
use reprise_host::component::{self, Source};
use reprise_host::engine::{EngineHandle, EngineOptions};
use reprise_host::http::{HttpFrontEnd, ServeOptions, serve};
use reprise_host::manager::{InstanceLimits, InstanceManager};
use reprise_host::policy::{self, Policy, PolicyChoice, ReuseFlags};
use std::process::ExitCode;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let source = match &args.component {
        Some(path) => Source::File(path.clone()),
        None => Source::Embedded {
            name: "example",
            bytes: reprise_test_programs::EXAMPLE_BYTES,
        },
    };
    let bytes = component::read(&source)?;
    let hint = crate::hint::effective_for_serve(&bytes, &source);

    let resolution = policy::resolve(policy_choice(args.policy), hint.as_ref(), &reuse_flags(&args));
    for note in &resolution.notes {
        tracing::warn!("{note}");
    }
    match &resolution.policy {
        Policy::Fresh => tracing::info!("policy: a fresh instance per request"),
        Policy::Reuse(bounds) => tracing::info!("policy: reuse ({bounds})"),
    }

    let engine_options = EngineOptions {
        max_memory: args.max_memory,
        interruptible: args.timeout.is_some(),
        ..EngineOptions::default()
    };
    let engine = EngineHandle::new(&engine_options)?;
    tracing::debug!(allocator = ?engine.allocator, "engine ready");
    let compiled = component::compile(&engine.engine, &bytes, &source)?;
    let limits = InstanceLimits {
        max_memory: args.max_memory,
        timeout: args.timeout,
    };
    let manager = Arc::new(InstanceManager::new(engine, compiled, limits, resolution.policy)?);
    let front = Arc::new(HttpFrontEnd::new(manager.clone(), args.expose_instance_id, args.prewarm)?);
    tracing::info!("serving {source}, which exports {}", front.flavor());

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
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
            ..ServeOptions::default()
        };
        serve(listener, front, options, wait_for(stop_rx)).await
    })?;
    Ok(ExitCode::SUCCESS)
}

fn policy_choice(arg: PolicyArg) -> PolicyChoice {
    match arg {
        PolicyArg::Fresh => PolicyChoice::Fresh,
        PolicyArg::Reuse => PolicyChoice::Reuse,
        PolicyArg::Auto => PolicyChoice::Auto,
    }
}

fn reuse_flags(args: &ServeArgs) -> ReuseFlags {
    ReuseFlags {
        max_calls: args.max_calls,
        max_concurrency: args.max_concurrency,
        idle_timeout: args.idle_timeout,
        max_age: args.max_age,
        memory_ceiling: None,
    }
}

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
