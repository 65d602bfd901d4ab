//! Entry point: parse the command line and run; all logic lives in the library.

fn main() -> std::process::ExitCode {
    pnp_appliance::cli::main()
}
