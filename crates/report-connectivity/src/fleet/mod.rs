//! `--fleet N`: N simulated devices from one process, on one runtime, with one TLS
//! configuration and a bound on connection attempts in flight.
//!
//! `config` validates the flags; `identities` reads `--devices-file` or creates (and with
//! `--cleanup` deletes) `PREFIX-00000…` through the bulk registry; `device` is one device's
//! run; `metrics` the shared counters; `report` the progress line, events and summary; `serve`
//! the Prometheus endpoint. Data flows one way: devices write metrics, the rest read them.

mod config;
mod device;
mod identities;
mod metrics;
mod report;
mod serve;

use std::sync::Arc;
use std::time::Duration;

use iothub_cli::{exit, StopSignal, StopSignals};
use rand::Rng;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{sleep_until, Instant};

use crate::cli::Cli;
use crate::error::AppError;
use config::{FleetConfig, Identities};
use device::{run_device, DeviceOutcome, FleetShared};
use metrics::Metrics;
use report::Reporter;

/// The largest `--fleet`.
pub const MAX_FLEET: u32 = 100_000;

/// `--connect-rate`: `N/s` or `N`, a positive number of devices a second.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let number = text.strip_suffix("/s").unwrap_or(text).trim();
    match number.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!(
            "'{text}' is not a rate: give devices a second, e.g. 500/s"
        )),
    }
}

/// Runs a fleet for a parsed command line; returns the exit code.
pub async fn run(cli: Cli) -> u8 {
    match run_fleet(cli).await {
        Ok(code) => code,
        Err(e) => crate::report_error(&e),
    }
}

async fn run_fleet(cli: Cli) -> Result<u8, AppError> {
    let config = FleetConfig::from_cli(cli)?;
    let mut signals = StopSignals::listen()
        .map_err(|e| AppError::Other(format!("cannot listen for Ctrl-C and SIGTERM: {e}")))?;
    let reporter = Arc::new(Reporter::new(config.format, config.size as u64));

    let mut created = None;
    let devices = match &config.identities {
        Identities::File(path) => identities::read_devices_file(path, config.size)?,
        Identities::Create {
            service,
            prefix,
            cleanup,
            device_host,
        } => {
            let client = identities::service_client(service, config.ca_pem.as_deref())?;
            let began = Instant::now();
            let devices =
                identities::create_devices(&client, device_host, prefix, config.size).await?;
            reporter.created(devices.len(), began.elapsed());
            created = Some((client, prefix.clone(), *cleanup));
            devices
        }
    };

    let metrics = Arc::new(Metrics::new(config.size));
    if let Some(addr) = config.metrics_listen {
        let bound = serve::serve_metrics(addr, Arc::clone(&metrics)).await?;
        reporter.metrics_listening(bound);
    }
    let progress = reporter.follow(Arc::clone(&metrics));
    let announcer = {
        let (reporter, metrics) = (Arc::clone(&reporter), Arc::clone(&metrics));
        tokio::spawn(async move {
            loop {
                metrics.wait_all_connected().await;
                if metrics.connected() == metrics.target() {
                    reporter.all_connected(&metrics);
                }
            }
        })
    };

    let shared = Arc::new(FleetShared {
        options: config.options.clone(),
        patch: config.patch.clone(),
        methods: config.methods.clone(),
        once: config.once,
        metrics: Arc::clone(&metrics),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let start = Instant::now();
    let mut rng = rand::thread_rng();
    for (index, conn) in devices.into_iter().enumerate() {
        // A ramp: device i starts in slot i of 1/rate, at a random point of its slot.
        let offset = match config.connect_rate {
            Some(rate) => Duration::from_secs_f64((index as f64 + rng.gen::<f64>()) / rate),
            None => Duration::ZERO,
        };
        tasks.spawn(run_device(
            conn,
            Arc::clone(&shared),
            start + offset,
            stop_rx.clone(),
        ));
    }

    let deadline = config.duration.map(|d| start + d);
    let mut outcomes = Vec::with_capacity(config.size);
    let stop = loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                Some(Ok(outcome)) => outcomes.push(outcome),
                Some(Err(e)) => {
                    tracing::warn!("a device task ended abnormally: {e}");
                    outcomes.push(DeviceOutcome::Failed(exit::OTHER));
                }
                None => break "once",
            },
            signal = signals.recv() => break match signal {
                StopSignal::Interrupt => "ctrl-c",
                StopSignal::Terminate => "sigterm",
            },
            () = sleep_until_opt(deadline) => break "duration",
        }
    };
    let connected_at_stop = metrics.connected();
    let _ = stop_tx.send(true);
    while let Some(joined) = tasks.join_next().await {
        outcomes.push(joined.unwrap_or(DeviceOutcome::Failed(exit::OTHER)));
    }
    announcer.abort();
    progress.abort();

    let cleanup = match created {
        Some((client, prefix, true)) => {
            Some(identities::delete_devices(&client, &prefix, config.size).await?)
        }
        _ => None,
    };
    reporter.summary(&metrics, stop, connected_at_stop, cleanup.as_ref());
    Ok(exit_code(&outcomes))
}

/// 0 when no device failed; the devices' common code when all failed alike; 1 otherwise.
fn exit_code(outcomes: &[DeviceOutcome]) -> u8 {
    let failures: Vec<u8> = outcomes
        .iter()
        .filter_map(|o| match o {
            DeviceOutcome::Failed(code) => Some(*code),
            _ => None,
        })
        .collect();
    match failures.first() {
        None => exit::OK,
        Some(&first)
            if failures.len() == outcomes.len() && failures.iter().all(|c| *c == first) =>
        {
            first
        }
        Some(_) => exit::OTHER,
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(parse_rate("500/s"), Ok(500.0));
        assert_eq!(parse_rate("2.5"), Ok(2.5));
        for bad in ["0/s", "-1", "fast", "NaN/s", "inf"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn exit_codes() {
        use DeviceOutcome::*;
        assert_eq!(exit_code(&[Done, Stopped]), 0);
        assert_eq!(exit_code(&[Failed(3), Failed(3)]), 3);
        assert_eq!(exit_code(&[Failed(3), Done]), 1);
        assert_eq!(exit_code(&[Failed(3), Failed(5)]), 1);
    }
}
