//! `cargo run -p gateway`: the gateway on the backend and database the
//! environment names (the memory backend and an in-memory SQLite by default).

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("gateway: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let config = gateway::Config::from_env()?;
    let service = gateway::Gateway::start(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|err| format!("cannot listen on {}: {err}", config.addr))?;
    let backend = match (&config.cluster_nodes, &config.redis_url) {
        (Some(nodes), _) => format!("Redis Cluster at {}", cache_core::redact::nodes(nodes)),
        (None, Some(url)) => format!("Redis at {}", cache_core::redact::url(url)),
        (None, None) => "the embedded memory backend (set REDIS_URL to share state)".to_owned(),
    };
    let addr = listener.local_addr().unwrap_or(config.addr);
    println!("gateway listening on http://{addr} with {backend}");
    gateway::serve(service, listener, shutdown_signal())
        .await
        .map_err(|err| format!("serving failed: {err}"))?;
    println!("gateway stopped");
    Ok(())
}

/// SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(terminate) => terminate,
            Err(err) => {
                eprintln!("gateway: no SIGTERM handler ({err}); stopping on Ctrl-C only");
                let _ = interrupt.await;
                return;
            }
        };
    tokio::select! {
        _ = interrupt => {}
        _ = terminate.recv() => {}
    }
}
