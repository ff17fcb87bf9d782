//! The `dockgate` binary: argument parsing lives in the library so that
//! integration tests and the binary share one definition.

fn main() -> std::process::ExitCode {
    dockgate::cli::main()
}
