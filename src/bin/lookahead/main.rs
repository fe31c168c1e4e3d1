//! The `lookahead` command line: a thin shell over the library. `run` hands each command to
//! its function; the modules below hold the commands, grouped by what they drive.

mod args;
mod bench;
mod config;
mod info;
mod mpc;
mod pets;
mod verify;

use clap::Parser;

use args::{BenchCommand, Cli, Command};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_message(&e));
            std::process::ExitCode::from(2)
        }
    }
}

/// Runs one command.
fn run(cli: Cli) -> anyhow::Result<()> {
    let gpu = &cli.gpu;
    match cli.command {
        Command::Pets(a) => pets::cmd_pets(gpu, a),
        Command::Eval(a) => pets::cmd_eval(gpu, a),
        Command::Config { what } => config::cmd_config(what),
        Command::Mpc(a) => mpc::cmd_mpc(gpu, a),
        Command::Bench { what: BenchCommand::Plan(a) } => bench::cmd_bench_plan(gpu, a),
        Command::Bench { what: BenchCommand::Train(a) } => bench::cmd_bench_train(gpu, a),
        Command::Verify(a) => verify::cmd_verify(gpu, a),
        Command::Adapters => info::cmd_adapters(gpu),
        Command::Envs => info::cmd_envs(),
    }
}

/// The error's chain, without repeating a cause that a message above already quotes (our I/O
/// errors name the path and include the OS error).
fn error_message(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    msg
}
