//! `vexil serve`, `vexil keys` and `vexil flags import`: open the store named by `--db`, then
//! run the server or one service call.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use vexil_core::{Actor, Role, Services};
use vexil_store::{PostgresStore, SqliteStore, Store, StoreError};

use crate::cli::{DbArgs, FlagsCommand, KeysCommand, LogFormat, ServeArgs};

/// Opens SQLite (a path) or PostgreSQL (a `postgres://` URL), creating the schema.
pub fn open_store(db: &DbArgs) -> Result<Arc<dyn Store>> {
    let url = db.db.as_str();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = PostgresStore::connect(url, None).context("connecting to PostgreSQL")?;
        Ok(Arc::new(store))
    } else {
        let path = url.strip_prefix("sqlite://").unwrap_or(url);
        let store = SqliteStore::open(std::path::Path::new(path))
            .with_context(|| format!("opening the SQLite database {path}"))?;
        Ok(Arc::new(store))
    }
}

/// The store `vexil serve` runs on. With a state directory, a PostgreSQL database that cannot
/// be reached is connected to in the background, so that the server starts on the snapshots
/// it persisted; without one, the server needs the database to start.
fn open_serving_store(args: &ServeArgs) -> Result<Arc<dyn Store>> {
    if !args.db.is_postgres() || args.state_dir().is_none() {
        return open_store(&args.db);
    }
    match PostgresStore::connect(&args.db.db, None) {
        Ok(store) => Ok(Arc::new(store)),
        Err(StoreError::Unavailable(err)) => {
            tracing::warn!(error = %err, "PostgreSQL is unreachable; starting without it and connecting in the background");
            let store = crate::deferred::Deferred::connect_later(args.db.db.clone())
                .context("starting the database connector")?;
            Ok(Arc::new(store))
        }
        Err(err) => Err(err).context("connecting to PostgreSQL"),
    }
}

pub fn serve(args: &ServeArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let traces = init_logging(
        args.log_format,
        args.otlp_endpoint.as_deref(),
        runtime.handle(),
    )?;
    // The store opens before the async runtime starts: the PostgreSQL driver runs its own.
    let store = open_serving_store(args)?;
    let services = Services::new(store);
    match services.keys.bootstrap() {
        Ok(Some(key)) => {
            println!("Created the admin management key (it is shown only this once; keep it):");
            println!("  {}", key.secret);
            println!("Use it as: Authorization: Bearer {}", key.secret);
        }
        Ok(None) => {}
        // Only a node with a state directory starts without its database (see
        // `open_serving_store`); the first key is made on a start that reaches it.
        Err(err) if err.is_unavailable() => {
            tracing::warn!(error = %vexil_server::error::chain(&err), "the database is unreachable; the first admin key (if none exists) is created on a start that reaches it");
        }
        Err(err) => return Err(err).context("creating the first admin key"),
    }
    match args.state_dir() {
        Some(dir) => tracing::info!(dir = %dir.display(), "state directory (event spool, persisted snapshots)"),
        None => tracing::info!("no state directory: event batches get 503 while the database is unreachable (see --state-dir)"),
    }
    // The application is handed out of the runtime and dropped after it: the PostgreSQL driver
    // panics when its connections are closed on a runtime thread.
    let app = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        let metrics_listener = match args.metrics_listen {
            Some(at) => Some(bind_metrics(at).await?),
            None => None,
        };
        let mut config = args.config();
        for path in &args.webhook_ca {
            let pem = std::fs::read(path)
                .with_context(|| format!("reading the webhook CA {}", path.display()))?;
            config.webhooks.extra_roots.push(pem);
        }
        config.webhooks.allowed_networks = args.webhook_allow_network.clone();
        let app = vexil_server::App::start(services, config)
            .await
            .map_err(|e| anyhow::anyhow!(vexil_server::error::chain(&e)))
            .context("starting the server")?;
        let stop = stop_on_signal();
        if let Some(metrics_listener) = metrics_listener {
            announce_metrics(&metrics_listener)?;
            tokio::spawn(log_failure(
                app.serve_metrics(metrics_listener, stopped(stop.clone())),
            ));
        }
        println!("Vexil is listening on http://{addr}");
        tracing::info!(%addr, "listening");
        let served = app.serve(listener, stopped(stop)).await;
        app.stop().await;
        served.context("serving")?;
        Ok::<_, anyhow::Error>(app)
    })?;
    // The exporter posts on the runtime: flush before it goes.
    if let Some(traces) = traces {
        traces.shutdown();
    }
    drop(runtime);
    drop(app);
    tracing::info!("stopped");
    Ok(())
}

/// Logs to stderr at `VEXIL_LOG`'s level (default `info`), as text or as one JSON object a
/// line (with the request span's fields: trace id, span id, method, path); with an OTLP
/// endpoint, the spans the same filter enables are also exported as OpenTelemetry traces.
pub(crate) fn init_logging(
    format: LogFormat,
    otlp_endpoint: Option<&str>,
    runtime: &tokio::runtime::Handle,
) -> Result<Option<vexil_server::otlp::Traces>> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_env("VEXIL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (otel, traces) = match otlp_endpoint {
        Some(endpoint) => {
            let (tracer, traces) = vexil_server::otlp::start(endpoint, runtime.clone())
                .map_err(|e| anyhow::anyhow!(e))
                .with_context(|| format!("starting the OTLP exporter to {endpoint}"))?;
            (
                Some(tracing_opentelemetry::layer().with_tracer(tracer)),
                Some(traces),
            )
        }
        None => (None, None),
    };
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => registry.with(fmt).try_init(),
        LogFormat::Json => registry.with(fmt.json().flatten_event(true)).try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!(e).context("setting up logging"))?;
    if let Some(endpoint) = otlp_endpoint {
        tracing::info!(endpoint, "exporting traces over OTLP/HTTP");
    }
    Ok(traces)
}

/// A receiver that turns `true` on SIGINT or SIGTERM: one signal stops every listener.
pub(crate) fn stop_on_signal() -> tokio::sync::watch::Receiver<bool> {
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    stop
}

/// Resolves once `stop` turns `true` (or its sender is gone).
pub(crate) async fn stopped(mut stop: tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Binds `--metrics-listen`.
pub(crate) async fn bind_metrics(at: std::net::SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(at)
        .await
        .with_context(|| format!("listening for metrics on {at}"))
}

/// Prints where `/metrics` is served.
pub(crate) fn announce_metrics(listener: &tokio::net::TcpListener) -> Result<()> {
    let at = listener
        .local_addr()
        .context("reading the metrics address")?;
    println!("Metrics are at http://{at}/metrics");
    Ok(())
}

/// Runs the metrics listener, logging why it stopped if it failed.
pub(crate) async fn log_failure(serving: impl std::future::Future<Output = std::io::Result<()>>) {
    if let Err(err) = serving.await {
        tracing::error!(error = %err, "the metrics listener failed");
    }
}

/// Resolves on SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

pub fn keys(command: &KeysCommand) -> Result<()> {
    let actor = Actor::cli();
    match command {
        KeysCommand::Create { db, name, role } => {
            let Some(role) = Role::parse(role) else {
                bail!("--role is reader, writer or admin, not {role:?}");
            };
            let services = Services::new(open_store(db)?);
            let key = services.keys.create(&actor, name, role)?;
            println!("{}", key.secret);
            eprintln!(
                "created key {} ({}, role {}); the secret above is shown only once",
                key.key.id,
                key.key.name,
                role.as_str()
            );
        }
        KeysCommand::List { db } => {
            let services = Services::new(open_store(db)?);
            for k in services.keys.list(&actor)? {
                let state = if k.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!(
                    "{}\t{}\t{}\t{}…\t{}",
                    k.id,
                    k.name,
                    k.role.as_str(),
                    k.prefix,
                    state
                );
            }
        }
        KeysCommand::Revoke { db, key } => {
            let services = Services::new(open_store(db)?);
            let k = services.keys.revoke(&actor, key)?;
            println!("revoked {} ({})", k.id, k.name);
        }
        KeysCommand::RotateServerSecret { db, grace_seconds } => {
            let services = Services::new(open_store(db)?);
            let rotation = services
                .keys
                .rotate_server_secret(&actor, *grace_seconds)
                .context("rotating the server secret")?;
            match rotation.previous_expires_at {
                Some(at) => println!(
                    "rotated the server secret (rotation {}); the old one works until {at} \
                     (Unix ms); running servers switch within their sync interval",
                    rotation.version
                ),
                None => println!(
                    "rotated the server secret (rotation {}); the old one stopped; running \
                     servers switch within their sync interval",
                    rotation.version
                ),
            }
        }
    }
    Ok(())
}

pub fn flags(command: &FlagsCommand) -> Result<()> {
    let FlagsCommand::Import {
        db,
        file,
        cohorts,
        deployment,
        project,
    } = command;
    let flags =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let cohorts = match cohorts {
        Some(path) => Some(
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        ),
        None => None,
    };
    let services = Services::new(open_store(db)?);
    let project = match project {
        Some(p) => p.clone(),
        None => find_project(&services, deployment)?,
    };
    let report = services
        .import
        .import(
            &Actor::cli(),
            &project,
            deployment,
            &flags,
            cohorts.as_deref(),
        )
        .context("importing")?;
    // Settle the deployments' revisions now, so that running servers (which poll them) pick
    // the import up at once.
    let publisher = vexil_core::sdk::Publisher::new(services.store().clone(), Default::default());
    publisher
        .refresh(&project)
        .context("publishing the imported flags")?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// The project of the only deployment with this label or key.
fn find_project(services: &Services, deployment: &str) -> Result<String> {
    let mut found = Vec::new();
    for p in services.projects.list()? {
        if services.deployments.find(&p.key, deployment).is_ok() {
            found.push(p.key);
        }
    }
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("no project has a deployment {deployment:?}"),
        many => bail!(
            "projects {} all have a deployment {deployment:?}; pass --project",
            many.join(", ")
        ),
    }
}
