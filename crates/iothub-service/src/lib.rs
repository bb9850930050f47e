//! Client of the Azure IoT Hub **service** REST API (`api-version=2021-04-12`): registry
//! statistics, device identities, device twins and the twin query language.
//!
//! * [`ServiceClient`] is built from an [`iothub_auth::ServiceConnectionString`] and an
//!   optional extra CA certificate. TLS is rustls (ring provider) trusting the system roots
//!   plus that CA; the standard proxy variables (`HTTPS_PROXY`, `NO_PROXY`, …) are honoured.
//! * Requests are signed with a SAS token that is cached and renewed before it expires.
//! * Throttling (429), unavailability (503) and refused or reset connections are retried
//!   with exponential backoff and jitter, honouring `Retry-After`, bounded in attempts and
//!   total time ([`RetryPolicy`]). Connect and request timeouts bound every attempt, so an
//!   unreachable hub fails in bounded time.
//! * Errors are typed ([`ServiceError`], [`ErrorKind`]) and carry the hub's error code
//!   (`iothub-errorcode` header first, then the body).
//! * Queries stream page by page ([`QueryPager`]), following `x-ms-continuation` until the
//!   hub stops sending it; [`ServiceClient::list_devices`] uses the same pager, so listings
//!   are not capped at 1,000 devices.
//!
//! * The bulk registry ([`ServiceClient::create_devices`], [`ServiceClient::delete_devices`])
//!   sends up to 100 entries per request and reports each refused entry.
//!
//! No key, token or connection string appears in any `Debug`/`Display` output or log line.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use iothub_service::{IfMatch, ServiceClient, TwinPatch};
//!
//! let connection = std::env::var("IOTHUB_CONNECTION_STRING")?.parse()?;
//! let client = ServiceClient::builder(connection).build()?;
//! let stats = client.registry_statistics().await?;
//! println!("{} devices", stats.total_device_count);
//!
//! let patch = TwinPatch::from_json(Some(serde_json::json!({"location": {"plant": "Redmond43"}})), None)?;
//! client.update_twin("myDeviceId", &patch, &IfMatch::Any).await?;
//!
//! let mut pager = client.query("SELECT * FROM devices WHERE tags.location.plant = 'Redmond43'");
//! while let Some(page) = pager.next_page().await? {
//!     for twin in &page.items {
//!         println!("{}", twin["deviceId"]);
//!     }
//! }
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

mod bulk;
mod client;
mod devices;
mod error;
mod error_body;
mod model;
mod path;
mod query;
mod retry;
mod sas_cache;
mod tls;
mod transport;

pub use bulk::{BulkFailure, BulkOutcome, NewDevice, MAX_BULK_ENTRIES};
pub use client::{ServiceClient, ServiceClientBuilder, USER_AGENT};
pub use devices::{DevicePager, LIST_DEVICES_QUERY};
pub use error::{ErrorKind, HubError, ServiceError};
pub use model::{
    Device, DeviceSummary, IfMatch, PatchSection, RegistryStatistics, Twin, TwinPatch,
    TwinProperties,
};
pub use query::{ItemType, QueryPage, QueryPager};
pub use retry::RetryPolicy;
pub use transport::API_VERSION;
