//! Emulator configuration (the embedding API's `EmulatorConfig`; the binary fills it from flags).

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

/// Where and how the emulator runs.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Hub host name in connection strings and certificate SANs.
    pub hostname: String,
    /// Listen address of both listeners.
    pub bind: IpAddr,
    /// REST API + MQTT over WebSockets; 0 = any free port.
    pub https_port: u16,
    /// MQTT over TLS; 0 = any free port.
    pub mqtt_port: u16,
    /// State, keys and CA live here.
    pub data_dir: PathBuf,
    /// Keep nothing on disk except the CA files.
    pub in_memory: bool,
    /// Devices to register at start if missing (existing keys are kept).
    pub devices: Vec<String>,
}

impl EmulatorConfig {
    /// `localhost` on 127.0.0.1, ephemeral ports, in memory, CA files in `data_dir`.
    pub fn for_tests(data_dir: &Path) -> Self {
        EmulatorConfig {
            hostname: "localhost".into(),
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            https_port: 0,
            mqtt_port: 0,
            data_dir: data_dir.to_path_buf(),
            in_memory: true,
            devices: Vec::new(),
        }
    }
}
