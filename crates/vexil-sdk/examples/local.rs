//! Local evaluation against a Vexil server, starting from a bootstrap file when one is given.
//!
//! ```sh
//! cargo run -p vexil-sdk --example local -- http://127.0.0.1:8080 server-<key> [flags.json]
//! ```
//!
//! Prints the variants of a few users, then every change the stream delivers, until Ctrl-C.
//! The example (a binary) reads its arguments; the library reads none.

#![allow(clippy::print_stdout, reason = "an example prints")]

use std::time::Duration;

use vexil_sdk::{LocalClient, LocalConfig, User};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(server), Some(key)) = (args.next(), args.next()) else {
        eprintln!("usage: local SERVER_URL DEPLOYMENT_KEY [BOOTSTRAP_FILE]");
        std::process::exit(2);
    };
    let mut config = LocalConfig::new(server, key);
    if let Some(file) = args.next() {
        config = config.bootstrap_file(file)?;
    }
    let client = LocalClient::start(config)?;
    if let Err(e) = client.wait_until_ready(Duration::from_secs(3)).await {
        eprintln!("not ready ({e}); evaluating the bootstrap meanwhile");
    }
    let users: Vec<User> = (1..=3)
        .map(|i| User::new().with_user_id(format!("user-{i}")))
        .collect();
    let mut changes = client.changes();
    loop {
        for user in &users {
            let variants = client.all_variants(user);
            let keys: Vec<String> = variants
                .iter()
                .map(|(flag, v)| format!("{flag}={}", v.key))
                .collect();
            println!("{}: {}", user.user_id().unwrap_or("?"), keys.join(" "));
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { break },
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    client.close().await;
    Ok(())
}
