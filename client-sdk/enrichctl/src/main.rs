//! `enrichctl`: the command-line client and admin tool for Enrichment.
//!
//! Users log in once and then create guilds, channels and invites, send messages, export
//! history and tail channels live; operators read the cluster's status and ring and drain
//! nodes with the admin token. Built on the `enrichment-client` SDK. Output is a table or a
//! line for people, or exactly one JSON value with `--json`; the exit code says what kind of
//! failure happened (see `enrichctl --help`).

mod cli;
mod commands;
mod credentials;
mod error;
mod output;
mod session;

use std::process::ExitCode;

use clap::Parser;

use crate::error::{CliError, Exit};

fn main() -> ExitCode {
    // clap exits by itself: 0 for --help and --version, 2 for usage errors.
    let cli = cli::Cli::parse();
    let out = output::Output::new(cli.json);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            output::error(&CliError::local(format!("cannot start the runtime: {e}")));
            return ExitCode::from(Exit::Failure as u8);
        }
    };
    let result = runtime.block_on(async move {
        let store = credentials::Store::open(credentials::Store::default_path()?)?;
        let mut ctx = session::Ctx::new(cli.server, cli.admin_token, out, store)?;
        commands::run(&mut ctx, cli.command).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            output::error(&e);
            ExitCode::from(e.exit as u8)
        }
    }
}
