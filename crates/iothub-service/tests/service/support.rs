//! An emulator on ephemeral ports plus clients for it.

use std::time::Duration;

use iothub_auth::ServiceConnectionString;
use iothub_emulator::{Emulator, EmulatorConfig, RunningEmulator};
use iothub_service::{RetryPolicy, ServiceClient};

pub struct TestHub {
    pub emulator: RunningEmulator,
    _dir: tempfile::TempDir,
}

impl TestHub {
    pub async fn start() -> TestHub {
        let dir = tempfile::tempdir().expect("temp dir");
        let emulator = Emulator::start(EmulatorConfig::for_tests(dir.path()))
            .await
            .expect("emulator starts");
        TestHub {
            emulator,
            _dir: dir,
        }
    }

    pub fn connection(&self) -> ServiceConnectionString {
        self.emulator
            .service_connection_string()
            .parse()
            .expect("emulator connection string parses")
    }

    /// A client trusting the emulator's CA, with a fast retry policy so tests stay quick.
    pub fn client(&self) -> ServiceClient {
        self.client_for(self.connection())
    }

    pub fn client_for(&self, connection: ServiceConnectionString) -> ServiceClient {
        ServiceClient::builder(connection)
            .extra_ca_pem(self.emulator.ca_pem())
            .retry_policy(fast_retries())
            .build()
            .expect("client builds")
    }

    /// The emulator's service connection string pointed at another port on localhost.
    pub fn connection_on_port(&self, port: u16) -> ServiceConnectionString {
        let cs = self.connection();
        ServiceConnectionString::new(
            format!("localhost:{port}"),
            cs.shared_access_key_name,
            cs.shared_access_key,
        )
    }

    pub async fn add_devices(&self, ids: impl IntoIterator<Item = String>) {
        for id in ids {
            self.emulator.add_device(&id).await.expect("add device");
        }
    }
}

pub fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 5,
        max_elapsed: Duration::from_secs(20),
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
    }
}
