//! One module per subcommand.

pub mod capture;
pub mod completion;
pub mod deploy;
pub mod explain;
pub mod node;
pub mod session_flags;
pub mod status;
pub mod trace;
pub mod version;

use std::process::ExitCode;

use crate::error::CliError;

/// Runs a cluster command on a small runtime: the plugin waits on the
/// network, two worker threads are plenty.
pub fn run_async(
    fut: impl std::future::Future<Output = Result<ExitCode, CliError>>,
) -> Result<ExitCode, CliError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::bare("cannot start the async runtime").with_source(e))?;
    let out = rt.block_on(fut);
    // Port-forwards and watches are not awaited on exit.
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    out
}
