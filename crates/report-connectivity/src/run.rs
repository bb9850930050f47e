//! One run of the simulated device: connect, read the twin, report, then (unless `--once`)
//! print desired updates, answer direct methods and print and complete cloud-to-device
//! messages until Ctrl-C, SIGTERM or `--duration`, and disconnect cleanly.

use futures_util::stream::{FuturesUnordered, StreamExt};
use iothub_cli::{StopSignal, StopSignals};
use iothub_device::{C2dMessages, ConnectionEvent, DeviceClient, MethodRequests};
use tokio::time::{sleep_until, Instant};

use crate::config::Config;
use crate::error::AppError;
use crate::methods::answer;
use crate::output::{Printer, StopReason};

/// Runs the device until `--once`, `--duration`, a signal or a terminal error.
///
/// # Errors
/// The device client's error, or [`AppError::Other`] when a signal came before the hub
/// acknowledged the report.
pub async fn run(config: Config) -> Result<(), AppError> {
    let printer = Printer::new(config.format, config.once);
    let transport = config.options.transport.as_str();
    // Listen for Ctrl-C/SIGTERM from the start: an interrupt while connecting or reporting
    // must still end with a clean DISCONNECT, not the default "die on SIGINT".
    let mut signals = StopSignals::listen()
        .map_err(|e| AppError::Other(format!("cannot listen for Ctrl-C and SIGTERM: {e}")))?;
    let signal = stop_reason(&mut signals);
    tokio::pin!(signal);
    // From here on a signal is handled; `-v` shows this line, and harnesses wait for it.
    tracing::info!(
        device = %config.conn.device_id,
        transport,
        "connecting; Ctrl-C or SIGTERM disconnects and stops"
    );

    let client = tokio::select! {
        client = DeviceClient::connect(config.conn, config.options) => client?,
        _ = &mut signal => return Err(interrupted()),
    };
    // Subscribe before the first request so nothing pushed from now on is missed.
    let mut desired = client.desired_updates();
    let mut events = client.connection_events();
    printer.connected(&client, transport);

    // Methods and C2D are subscribed (and granted) before reporting, so once the `reported`
    // line is out the device can be called.
    let outcome = tokio::select! {
        outcome = listen_and_report(&client, &printer, config.once, &config.patch) => outcome,
        _ = &mut signal => Err(interrupted()),
    };
    let (mut methods, mut c2d) = match outcome {
        Ok(streams) => streams,
        Err(e) => {
            client.disconnect().await;
            return Err(e);
        }
    };
    if config.once {
        client.disconnect().await;
        printer.stopped(StopReason::Once);
        return Ok(());
    }

    printer.waiting();
    let deadline = config.duration.map(|d| Instant::now() + d);
    // Calls are answered concurrently; each prints when its answer is acknowledged.
    let mut answering = FuturesUnordered::new();
    let stop = loop {
        tokio::select! {
            reason = &mut signal => break Ok(reason),
            () = sleep_until_opt(deadline) => break Ok(StopReason::Duration),
            Some(update) = desired.next() => printer.desired(&update),
            Some(request) = next_of(&mut methods) => {
                answering.push(answer(request, &config.methods));
            }
            Some(call) = answering.next(), if !answering.is_empty() => printer.method(&call),
            Some(message) = next_of(&mut c2d) => {
                printer.c2d(&message);
                // Printed, so taken over: complete it (PUBACK), or the hub delivers it again.
                if let Err(e) = message.complete().await {
                    printer.warning(&format!("could not complete a cloud-to-device message: {e}"));
                }
            }
            Some(event) = events.next() => {
                printer.connection(&event);
                if let ConnectionEvent::Closed { error: Some(e) } = event {
                    break Err(AppError::Device(e));
                }
            }
        }
    };
    client.disconnect().await;
    let reason = stop?;
    printer.stopped(reason);
    Ok(())
}

fn interrupted() -> AppError {
    AppError::Other("interrupted before the hub acknowledged the reported patch".into())
}

/// Subscribes to methods and C2D (not for `--once`, which only reports), then reports.
async fn listen_and_report(
    client: &DeviceClient,
    printer: &Printer,
    once: bool,
    patch: &serde_json::Value,
) -> Result<(Option<MethodRequests>, Option<C2dMessages>), AppError> {
    let streams = if once {
        (None, None)
    } else {
        (
            Some(client.method_requests().await?),
            Some(client.c2d_messages().await?),
        )
    };
    report(client, printer, patch).await?;
    Ok(streams)
}

/// The next item of an optional stream; never ready without one.
async fn next_of<S: futures_util::Stream + Unpin>(stream: &mut Option<S>) -> Option<S::Item> {
    match stream {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}

async fn report(
    client: &DeviceClient,
    printer: &Printer,
    patch: &serde_json::Value,
) -> Result<(), AppError> {
    let twin = client.get_twin().await?;
    printer.twin(&twin);
    printer.sending();
    let ack = client.update_reported_acknowledged(patch).await?;
    printer.reported(client.device_id(), ack, patch);
    Ok(())
}

/// The next SIGINT or SIGTERM, as the reason printed in the `stopped` event.
async fn stop_reason(signals: &mut StopSignals) -> StopReason {
    match signals.recv().await {
        StopSignal::Interrupt => StopReason::CtrlC,
        StopSignal::Terminate => StopReason::Sigterm,
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}
