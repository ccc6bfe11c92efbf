//! `fivexx-agent check`: what this kernel supports.

use clap::ValueEnum;
use tracer_user::output;
use tracer_user::tracer::{KernelFacts, Tracer, TracerOptions, DEFAULT_RING_BYTES};

#[derive(Clone, Copy, ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
}

pub fn run(format: ReportFormat, load: bool) -> anyhow::Result<()> {
    let report = if load {
        Tracer::load(&TracerOptions::default())?.report
    } else {
        let may_mount = tracer_user::privilege::check_can_trace().is_ok();
        KernelFacts::discover(may_mount)?.report(DEFAULT_RING_BYTES, "")
    };
    match format {
        ReportFormat::Json => println!("{}", serde_json::to_string(&report)?),
        ReportFormat::Text => print!("{}", output::report_text(&report)),
    }
    Ok(())
}
