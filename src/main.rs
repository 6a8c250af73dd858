use std::process::ExitCode;

fn main() -> ExitCode {
    sessiongate::cli::main()
}
