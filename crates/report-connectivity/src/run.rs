//! One run of the simulated device: connect, read the twin, report, then (unless `--once`)
//! print desired updates until Ctrl-C, SIGTERM or `--duration`, and disconnect cleanly.

use iothub_device::{ConnectionEvent, DeviceClient};
use tokio::time::{sleep_until, Instant};

use crate::config::Config;
use crate::error::AppError;
use crate::output::{Printer, StopReason};

pub async fn run(config: Config) -> Result<(), AppError> {
    let printer = Printer::new(config.format, config.once);
    let transport = config.options.transport.as_str();
    // Listen for Ctrl-C/SIGTERM from the start: an interrupt while connecting or reporting
    // must still end with a clean DISCONNECT, not the default "die on SIGINT".
    let signal = shutdown_signal();
    tokio::pin!(signal);

    let client = tokio::select! {
        client = DeviceClient::connect(config.conn, config.options) => client?,
        _ = &mut signal => return Err(interrupted()),
    };
    // Subscribe before the first request so nothing pushed from now on is missed.
    let mut desired = client.desired_updates();
    let mut events = client.connection_events();
    printer.connected(&client, transport);

    let outcome = tokio::select! {
        outcome = report(&client, &printer, &config.patch) => outcome,
        _ = &mut signal => Err(interrupted()),
    };
    if let Err(e) = outcome {
        client.disconnect().await;
        return Err(e);
    }
    if config.once {
        client.disconnect().await;
        printer.stopped(StopReason::Once);
        return Ok(());
    }

    printer.waiting();
    let deadline = config.duration.map(|d| Instant::now() + d);
    let stop = loop {
        tokio::select! {
            reason = &mut signal => break Ok(reason),
            () = sleep_until_opt(deadline) => break Ok(StopReason::Duration),
            Some(update) = desired.next() => printer.desired(&update),
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

/// Ctrl-C, or SIGTERM on Unix (how service managers and test harnesses stop processes).
async fn shutdown_signal() -> StopReason {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => StopReason::CtrlC,
                _ = term.recv() => StopReason::Sigterm,
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                StopReason::CtrlC
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        StopReason::CtrlC
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}
