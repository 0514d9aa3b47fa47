//! The `fspack` binary: parse arguments, run one command, render errors once, exit with a
//! documented code.

mod args;
mod commands;
mod exit;
mod output;
mod progress;

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = args::parse();
    output::init_logging(&cli.global);
    let verbose = cli.global.verbose;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::Code::Failure.number());
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if exit::is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            output::render_error(&err, verbose);
            ExitCode::from(exit::classify(&err).number())
        }
    }
}
