//! `vexil serve`, `vexil keys` and `vexil flags import`: open the store named by `--db`, then
//! run the server or one service call.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use vexil_core::{Actor, Role, Services};
use vexil_store::{PostgresStore, SqliteStore, Store};

use crate::cli::{DbArgs, FlagsCommand, KeysCommand, ServeArgs};

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

pub fn serve(args: &ServeArgs) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VEXIL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    // The store opens before the async runtime starts: the PostgreSQL driver runs its own.
    let store = open_store(&args.db)?;
    let services = Services::new(store);
    if let Some(key) = services
        .keys
        .bootstrap()
        .context("creating the first admin key")?
    {
        println!("Created the admin management key (it is shown only this once; keep it):");
        println!("  {}", key.secret);
        println!("Use it as: Authorization: Bearer {}", key.secret);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        println!("Vexil is listening on http://{addr}");
        tracing::info!(%addr, "listening");
        vexil_server::run(services, args.config(), listener, shutdown_signal())
            .await
            .context("serving")?;
        tracing::info!("stopped");
        Ok(())
    })
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
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
