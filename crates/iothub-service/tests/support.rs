//! Service clients for the shared test hub (`iothub_emulator::test_support::TestHub`).

use std::time::Duration;

use iothub_auth::ServiceConnectionString;
use iothub_emulator::test_support::TestHub;
use iothub_service::{RetryPolicy, ServiceClient};

/// Clients of the crate under test, pointed at the hub.
pub trait ServiceHub {
    /// A client trusting the emulator's CA, with a fast retry policy so tests stay quick.
    fn client(&self) -> ServiceClient;
    /// The same for another connection string (another policy, key or port).
    fn client_for(&self, connection: ServiceConnectionString) -> ServiceClient;
    /// The hub's `iothubowner` connection string pointed at another port on localhost.
    fn connection_on_port(&self, port: u16) -> ServiceConnectionString;
}

impl ServiceHub for TestHub {
    fn client(&self) -> ServiceClient {
        self.client_for(self.service_connection())
    }

    fn client_for(&self, connection: ServiceConnectionString) -> ServiceClient {
        ServiceClient::builder(connection)
            .extra_ca_pem(self.emulator().ca_pem())
            .retry_policy(fast_retries())
            .build()
            .expect("client builds")
    }

    fn connection_on_port(&self, port: u16) -> ServiceConnectionString {
        let cs = self.service_connection();
        ServiceConnectionString::new(
            format!("localhost:{port}"),
            cs.shared_access_key_name,
            cs.shared_access_key,
        )
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
