//! The device-twins tutorial in one command, without Azure:
//!
//! ```sh
//! cargo run --example tutorial
//! ```
//!
//! Starts the IoT Hub emulator in-process on free ports with `myDeviceId` registered, then runs
//! the tutorial's three steps as a user sees them:
//! 1. `add-tags-and-query`: tags the device (plant Redmond43); it is listed under Redmond43 only;
//! 2. `report-connectivity --once`: the device reports `{"connectivity":{"type":"cellular"}}`;
//! 3. `add-tags-and-query` again: the device is listed under both headings.

use std::process::ExitCode;

use clap::Parser;
use iothub_emulator::{Emulator, EmulatorConfig};

const DEVICE_ID: &str = "myDeviceId";

#[tokio::main]
async fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    match run_tutorial().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("tutorial: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run_tutorial() -> Result<(), String> {
    let ca_dir = tempfile::tempdir().map_err(|e| format!("cannot create a temporary dir: {e}"))?;
    let mut config = EmulatorConfig::for_tests(ca_dir.path());
    config.devices = vec![DEVICE_ID.to_string()];
    let emulator = Emulator::start(config)
        .await
        .map_err(|e| format!("cannot start the emulator: {e}"))?;
    let service = emulator.service_connection_string();
    let device = emulator
        .device_connection_string(DEVICE_ID)
        .ok_or("the emulator did not register myDeviceId")?;
    let ca_file = emulator.ca_file().to_string_lossy().into_owned();
    println!(
        "IoT Hub emulator running in-process: REST on https://localhost:{}, MQTT on localhost:{}, device {DEVICE_ID} registered.",
        emulator.https_port(),
        emulator.mqtt_port()
    );

    step(
        "1/3",
        "add-tags-and-query",
        "tag the device and run both queries",
    );
    println!("Starting the IoT Hub Device Twins service sample...");
    back_end(&service, &ca_file).await?;

    step(
        "2/3",
        "report-connectivity --once",
        "the device reports cellular connectivity",
    );
    println!("Starting the IoT Hub Device Twins client sample...");
    let cli = report_connectivity::Cli::try_parse_from([
        "report-connectivity",
        "--connection-string",
        &device,
        "--ca-file",
        &ca_file,
        "--once",
    ])
    .map_err(|e| e.to_string())?;
    match report_connectivity::run(cli).await {
        0 => {}
        code => return Err(format!("report-connectivity exited with {code}")),
    }

    step(
        "3/3",
        "add-tags-and-query",
        "now the device is listed under both headings",
    );
    back_end(&service, &ca_file).await?;

    emulator.shutdown().await;
    Ok(())
}

async fn back_end(service: &str, ca_file: &str) -> Result<(), String> {
    let cli = add_tags_and_query::Cli::try_parse_from([
        "add-tags-and-query",
        "--connection-string",
        service,
        "--ca-file",
        ca_file,
    ])
    .map_err(|e| e.to_string())?;
    match add_tags_and_query::run(cli, std::io::stdout(), &mut std::io::stderr()).await {
        0 => Ok(()),
        code => Err(format!("add-tags-and-query exited with {code}")),
    }
}

fn step(number: &str, command: &str, what: &str) {
    println!();
    println!("── step {number}: $ {command}   ({what})");
    println!();
}
