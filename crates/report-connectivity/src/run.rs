//! One run of the simulated device from the command line: Ctrl-C/SIGTERM become the stop
//! signal, [`crate::device::run_device`] does the rest, and the `stopped` event closes the
//! output.

use std::convert::Infallible;

use iothub_cli::{StopSignal, StopSignals};
use tokio::sync::watch;

use crate::config::Config;
use crate::device::{run_device, DeviceBehaviour};
use crate::error::AppError;
use crate::metrics::NoMetrics;
use crate::output::{Printer, StopReason};

/// Runs the device until `--once`, `--duration`, `--telemetry-count`, a signal or a terminal
/// error.
///
/// # Errors
/// The device client's error, or [`AppError::Other`] when a signal came before the hub
/// acknowledged the report.
pub async fn run(config: Config) -> Result<(), AppError> {
    let printer = Printer::new(config.format, config.once);
    // Listen for Ctrl-C/SIGTERM from the start: an interrupt while connecting or reporting
    // must still end with a clean DISCONNECT, not the default "die on SIGINT".
    let mut signals = StopSignals::listen()
        .map_err(|e| AppError::Other(format!("cannot listen for Ctrl-C and SIGTERM: {e}")))?;
    let (stop_tx, stop) = watch::channel(None);
    let forward = async move {
        let reason = stop_reason(&mut signals).await;
        let _ = stop_tx.send(Some(reason));
        // Keep the sender: a dropped one would read as "never stop".
        std::future::pending::<Infallible>().await
    };
    // From here on a signal is handled; `-v` shows this line, and harnesses wait for it.
    tracing::info!(
        device = %config.conn.device_id,
        transport = config.options.transport.as_str(),
        "connecting; Ctrl-C or SIGTERM disconnects and stops"
    );
    let behaviour = DeviceBehaviour::from_config(&config);
    let device = run_device(
        config.conn,
        config.options,
        &behaviour,
        &printer,
        &NoMetrics,
        stop,
    );
    let outcome = tokio::select! {
        outcome = device => outcome?,
        never = forward => match never {},
    };
    printer.stopped_with(outcome.reason, outcome.telemetry);
    Ok(())
}

/// The next SIGINT or SIGTERM, as the reason printed in the `stopped` event.
async fn stop_reason(signals: &mut StopSignals) -> StopReason {
    match signals.recv().await {
        StopSignal::Interrupt => StopReason::CtrlC,
        StopSignal::Terminate => StopReason::Sigterm,
    }
}
