//! The `kubectl-fivexx` binary: everything is in the library.

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    kubectl_fivexx::run()
}
