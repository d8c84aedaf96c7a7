//! The blocking clients from a plain `fn main`, with no async runtime in the program.
//!
//! ```sh
//! cargo run -p vexil-sdk --example blocking -- http://127.0.0.1:8080 server-<key> [flags.json]
//! ```
//!
//! Starts a local client (from the bootstrap file when one is given, evaluating it while the
//! server does not answer), prints every flag's variant for a few users three times, two
//! seconds apart (changes made meanwhile show up), checks the first user against remote
//! evaluation, and shuts down, sending the exposures of the `variant` calls. The example (a
//! binary) reads its arguments; the library reads none.

#![allow(clippy::print_stdout, reason = "an example prints")]

use std::time::Duration;

use vexil_sdk::blocking::{LocalClient, RemoteClient};
use vexil_sdk::{LocalConfig, RemoteConfig, User};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(server), Some(key)) = (args.next(), args.next()) else {
        eprintln!("usage: blocking SERVER_URL DEPLOYMENT_KEY [BOOTSTRAP_FILE]");
        std::process::exit(2);
    };
    let mut config = LocalConfig::new(&server, &key);
    if let Some(file) = args.next() {
        config = config.bootstrap_file(file)?;
    }
    let client = LocalClient::start(config)?;
    if let Err(e) = client.wait_until_ready(Duration::from_secs(3)) {
        eprintln!("not ready ({e}); evaluating the bootstrap meanwhile");
    }
    let users: Vec<User> = (1..=3)
        .map(|i| User::new().with_user_id(format!("user-{i}")))
        .collect();
    for round in 0..3 {
        if round > 0 {
            std::thread::sleep(Duration::from_secs(2));
        }
        for user in &users {
            // One Evaluation per user: prepared once, read for every flag.
            let flags = client.evaluation(user);
            let keys: Vec<String> = flags
                .all_variants()
                .keys()
                .map(|flag| match flags.variant(flag) {
                    Some(v) => format!("{flag}={}", v.key),
                    None => format!("{flag}=?"),
                })
                .collect();
            println!("{}: {}", user.user_id().unwrap_or("?"), keys.join(" "));
        }
    }

    let remote = RemoteClient::new(RemoteConfig::new(&server, &key))?;
    match remote.fetch(&users[0]) {
        Ok(remote) if remote == client.all_variants(&users[0]) => {
            println!("remote evaluation agrees for user-1");
        }
        Ok(remote) => println!("remote evaluation differs for user-1: {remote:?}"),
        Err(e) => eprintln!("remote evaluation failed: {e}"),
    }
    // Sends the exposures still queued; gives up after five seconds (Vexil unreachable).
    match client.shutdown(Duration::from_secs(5)) {
        Ok(()) => println!("sent {} exposures", client.event_stats().sent),
        Err(e) => eprintln!("shut down ({e}): {:?}", client.event_stats()),
    }
    Ok(())
}
