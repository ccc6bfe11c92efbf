//! `fivexx-agent serve`: the event stream for the plugin, on loopback.

use std::net::SocketAddr;
use std::time::Duration;

use tracer_user::output;
use tracer_user::pump::{LoopOptions, Pump, Sink};
use tracer_user::serve;
use tracer_user::sink::Publisher;
use tracer_user::tracer::Tracer;

use super::{decoder_for, print_hook_notes, TracerArgs, DEFAULT_LISTEN};

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Loopback address to serve on; remote clients come through pods/portforward.
    #[arg(long, default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub tracer: TracerArgs,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let opts = args.tracer.options(None)?;
    let node = args.tracer.node.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // Bind before loading, so a taken port fails fast and loads nothing.
    let listener = rt.block_on(serve::bind(args.listen))?;
    let mut tracer = Tracer::load(&opts)?;
    print_hook_notes(&tracer);
    let ring = tracer.take_ring()?;
    let hub = serve::Hub::new(tracer.report.clone(), node.clone());
    let mut pump = Pump::new(decoder_for(&tracer, &node));
    let mut publisher = Publisher::new(hub.clone(), tracer.http_set().clone());
    eprintln!(
        "fivexx-agent: serving on {} (kernel {})",
        args.listen, tracer.report.kernel_release
    );
    rt.block_on(async {
        let accept = tokio::spawn(serve::accept_loop(listener, hub.clone()));
        let loop_opts = LoopOptions {
            tick: Some(Duration::from_secs(1)),
            duration: None,
        };
        let result = pump.run(ring, &mut tracer, &mut publisher, loop_opts).await;
        // Final counters, then tell clients we are leaving and let them read it.
        let _ = publisher.tick(&mut tracer, pump.received);
        let _ = hub.shutdown.send("agent stopping (SIGTERM)".into());
        tokio::time::sleep(Duration::from_millis(200)).await;
        accept.abort();
        result
    })?;
    eprint!(
        "{}",
        output::counters_table(&tracer.ring_counts(pump.received)?)
    );
    Ok(())
}
