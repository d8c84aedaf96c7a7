//! The `vexil` binary. It stays thin: parse the command line, hand it to the command's module,
//! and turn an error into a message and an exit status. The work lives in the library crates and
//! in one module per command.

mod cli;
mod deferred;
mod edge;
mod eval;
mod serve;

use std::io::{self, Write};
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

/// jemalloc with background threads that purge freed pages after a few seconds: a snapshot
/// rebuild frees a whole deployment's snapshot at once, and glibc's allocator kept that memory
/// resident (10,000 flags: 195 MB with glibc, 142 MB settled with this; `bench/memory.sh`).
#[cfg(all(not(target_env = "msvc"), not(feature = "system-allocator")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Eval(args) => eval::run(args),
        Command::Serve(args) => serve::serve(args).map(|()| ExitCode::SUCCESS),
        Command::Edge(args) => edge::edge(args).map(|()| ExitCode::SUCCESS),
        Command::Keys(command) => serve::keys(command).map(|()| ExitCode::SUCCESS),
        Command::Flags(command) => serve::flags(command).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        // The reader went away (`vexil eval ... | head`): what it wanted was written, so this is
        // not a failure worth a message.
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            // `eprintln!` would panic if stderr were a closed pipe.
            let _ = writeln!(io::stderr(), "error: {}", chain(&err));
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|cause| cause.downcast_ref::<io::Error>())
        .any(|io| io.kind() == io::ErrorKind::BrokenPipe)
}

/// The error and its causes joined by `: `.
fn chain(err: &anyhow::Error) -> String {
    format!("{err:#}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_names_the_flag_the_path_and_the_cause_once() {
        let compile = vexil_eval::FlagSet::from_json(
            r#"[{"key": "a", "variants": {}, "segments": [{"bucket": {}}]}]"#,
        )
        .unwrap_err();
        let err = anyhow::Error::new(compile).context("reading flags from f.json");
        let text = chain(&err);
        let expected = "reading flags from f.json: flag \"a\": [0].segments[0].bucket: invalid flag config: missing field `selector`";
        assert!(text.starts_with(expected), "{text}");
        assert_eq!(text.matches("missing field").count(), 1, "{text}");

        let io = io::Error::new(io::ErrorKind::NotFound, "gone");
        assert_eq!(
            chain(&anyhow::Error::new(io).context("opening x")),
            "opening x: gone"
        );
    }

    #[test]
    fn broken_pipe_is_found_below_context() {
        let pipe = anyhow::Error::new(io::Error::from(io::ErrorKind::BrokenPipe))
            .context("writing results");
        assert!(is_broken_pipe(&pipe));
        let other =
            anyhow::Error::new(io::Error::from(io::ErrorKind::NotFound)).context("writing results");
        assert!(!is_broken_pipe(&other));
    }
}
