//! The `lookahead` command line: a thin shell over the library. `run` hands each command to
//! its function; the modules below hold the commands, grouped by what they drive.

mod args;
mod bench;
mod config;
mod distill;
mod info;
mod interrupt;
mod mbpo;
mod mpc;
mod pets;
mod sac;
mod verify;

use std::process::ExitCode;

use clap::Parser;

use args::{BenchCommand, Cli, Command};

/// Exit status 0, 2 for an error (one line on stderr), 130 for a command stopped by Ctrl-C.
fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", error_message(&e));
            ExitCode::from(2)
        }
    }
}

/// Runs one command; the interruptible ones say how they ended.
fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let gpu = &cli.gpu;
    let done = |r: anyhow::Result<()>| r.map(|()| ExitCode::SUCCESS);
    match cli.command {
        Command::Pets(a) => pets::cmd_pets(gpu, a),
        Command::Sac(a) => sac::cmd_sac(gpu, a).map(interrupt::exit_status),
        Command::Mbpo(a) => mbpo::cmd_mbpo(gpu, a).map(interrupt::exit_status),
        Command::Distill(a) => distill::cmd_distill(gpu, a).map(interrupt::exit_status),
        Command::Eval(a) => pets::cmd_eval(gpu, a),
        Command::Config { what } => done(config::cmd_config(what)),
        Command::Mpc(a) => done(mpc::cmd_mpc(gpu, a)),
        Command::Bench { what: BenchCommand::Plan(a) } => done(bench::cmd_bench_plan(gpu, a)),
        Command::Bench { what: BenchCommand::Train(a) } => done(bench::cmd_bench_train(gpu, a)),
        Command::Bench { what: BenchCommand::Sac(a) } => done(bench::cmd_bench_sac(gpu, a)),
        Command::Bench { what: BenchCommand::Mbpo(a) } => done(bench::cmd_bench_mbpo(gpu, a)),
        Command::Bench { what: BenchCommand::Policy } => done(bench::cmd_bench_policy()),
        Command::Verify(a) => done(verify::cmd_verify(gpu, a)),
        Command::Adapters => done(info::cmd_adapters(gpu)),
        Command::Envs => done(info::cmd_envs()),
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
