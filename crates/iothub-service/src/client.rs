//! [`ServiceClient`]: the operations, each one request through the shared transport.

use std::sync::Arc;
use std::time::Duration;

use iothub_auth::ServiceConnectionString;
use reqwest::header::IF_MATCH;
use reqwest::Method;
use serde::de::DeserializeOwned;

use crate::devices::{DevicePager, LIST_DEVICES_QUERY};
use crate::error::ServiceError;
use crate::model::{Device, IfMatch, RegistryStatistics, Twin, TwinPatch};
use crate::path::segment;
use crate::query::QueryPager;
use crate::retry::RetryPolicy;
use crate::sas_cache::SasCache;
use crate::tls::client_config;
use crate::transport::{Call, Transport};

/// `User-Agent` of every request.
pub const USER_AGENT: &str = concat!("iothub-twins/", env!("CARGO_PKG_VERSION"));

/// Client of the hub's service REST API. Cheap to clone; clones share the connection pool,
/// the cached SAS token and the request counter.
#[derive(Clone)]
pub struct ServiceClient {
    transport: Arc<Transport>,
}

impl std::fmt::Debug for ServiceClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceClient")
            .field("host", &self.transport.host())
            .finish_non_exhaustive()
    }
}

/// Configures a [`ServiceClient`].
pub struct ServiceClientBuilder {
    connection: ServiceConnectionString,
    extra_ca_pem: Option<Vec<u8>>,
    retry: RetryPolicy,
    connect_timeout: Duration,
    request_timeout: Duration,
    sas_ttl: Duration,
}

impl ServiceClientBuilder {
    /// Trusts this PEM CA (one or more certificates) in addition to the system roots.
    pub fn extra_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.extra_ca_pem = Some(pem.into());
        self
    }

    /// Replaces the retry policy (default: [`RetryPolicy::default`]).
    pub fn retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Time allowed to establish a connection (TCP + TLS). Default 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Time allowed for one whole request, from sending to the end of the body. Default 30 s;
    /// each attempt is also capped by what is left of the retry budget.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Lifetime of the SAS tokens the client signs. Default 1 h, as the SDKs use; tokens are
    /// renewed when a fifth of the lifetime (at most 5 min) is left.
    pub fn sas_ttl(mut self, ttl: Duration) -> Self {
        self.sas_ttl = ttl;
        self
    }

    /// Builds the client.
    ///
    /// # Errors
    /// [`ServiceError::InvalidCa`] for an extra CA without usable certificates,
    /// [`ServiceError::InvalidArgument`] for a zero SAS lifetime, [`ServiceError::Build`] if
    /// the HTTP client cannot be built.
    pub fn build(self) -> Result<ServiceClient, ServiceError> {
        if self.sas_ttl < Duration::from_secs(1) {
            return Err(ServiceError::InvalidArgument(
                "SAS token lifetime must be at least 1 s".into(),
            ));
        }
        let tls = client_config(self.extra_ca_pem.as_deref())?;
        // Proxies: reqwest reads HTTPS_PROXY / HTTP_PROXY / ALL_PROXY / NO_PROXY by default.
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .user_agent(USER_AGENT)
            .connect_timeout(self.connect_timeout)
            .timeout(self.request_timeout)
            .build()
            .map_err(|e| ServiceError::Build(e.to_string()))?;
        let host = self.connection.host_name.clone();
        let sas = SasCache::new(self.connection, self.sas_ttl);
        Ok(ServiceClient {
            transport: Arc::new(Transport::new(
                http,
                host,
                sas,
                self.retry,
                self.request_timeout,
            )),
        })
    }
}

impl ServiceClient {
    /// Starts configuring a client for the hub in `connection`.
    pub fn builder(connection: ServiceConnectionString) -> ServiceClientBuilder {
        ServiceClientBuilder {
            connection,
            extra_ca_pem: None,
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            sas_ttl: Duration::from_secs(3600),
        }
    }

    /// A client with default settings, trusting the system roots only.
    ///
    /// # Errors
    /// See [`ServiceClientBuilder::build`].
    pub fn new(connection: ServiceConnectionString) -> Result<Self, ServiceError> {
        Self::builder(connection).build()
    }

    pub(crate) fn transport(&self) -> &Transport {
        &self.transport
    }

    /// The hub's `host[:port]`.
    pub fn host(&self) -> &str {
        self.transport.host()
    }

    /// HTTP requests this client (and its clones and pagers) sent, including retries.
    pub fn requests_sent(&self) -> u64 {
        self.transport.requests_sent()
    }

    /// `GET /statistics/devices`.
    ///
    /// # Errors
    /// Any [`ServiceError`].
    pub async fn registry_statistics(&self) -> Result<RegistryStatistics, ServiceError> {
        self.get_json("/statistics/devices".into(), "get registry statistics")
            .await
    }

    /// `GET /devices/{id}`. A missing device is an error whose
    /// [`is_not_found`](ServiceError::is_not_found) is true.
    ///
    /// # Errors
    /// Any [`ServiceError`].
    pub async fn get_device(&self, device_id: &str) -> Result<Device, ServiceError> {
        let path = format!("/devices/{}", segment(device_id)?);
        self.get_json(path, &format!("get device '{device_id}'"))
            .await
    }

    /// Lists all devices by paging through `SELECT * FROM devices` (no 1,000 cap).
    pub fn list_devices(&self) -> DevicePager {
        DevicePager::new(self.query(LIST_DEVICES_QUERY))
    }

    /// `GET /twins/{id}`.
    ///
    /// # Errors
    /// Any [`ServiceError`]; not found as for [`get_device`](Self::get_device).
    pub async fn get_twin(&self, device_id: &str) -> Result<Twin, ServiceError> {
        let path = format!("/twins/{}", segment(device_id)?);
        self.get_json(path, &format!("get twin '{device_id}'"))
            .await
    }

    /// `PATCH /twins/{id}`: merges tags and desired properties (a `null` value deletes a
    /// key) and returns the updated twin.
    ///
    /// # Errors
    /// Any [`ServiceError`]; a stale etag is a 412 `PreconditionFailed`
    /// ([`ErrorKind::Conflict`](crate::ErrorKind::Conflict)).
    pub async fn update_twin(
        &self,
        device_id: &str,
        patch: &TwinPatch,
        if_match: &IfMatch,
    ) -> Result<Twin, ServiceError> {
        self.write_twin(Method::PATCH, "update", device_id, patch, if_match)
            .await
    }

    /// `PUT /twins/{id}`: replaces tags and desired properties (sections the patch does not
    /// set are sent absent, which the hub treats as empty) and returns the updated twin.
    ///
    /// # Errors
    /// As for [`update_twin`](Self::update_twin).
    pub async fn replace_twin(
        &self,
        device_id: &str,
        twin: &TwinPatch,
        if_match: &IfMatch,
    ) -> Result<Twin, ServiceError> {
        self.write_twin(Method::PUT, "replace", device_id, twin, if_match)
            .await
    }

    /// A pager over the results of `query` (IoT Hub query language).
    pub fn query(&self, query: &str) -> QueryPager {
        QueryPager::new(Arc::clone(&self.transport), query)
    }

    async fn write_twin(
        &self,
        method: Method,
        verb: &str,
        device_id: &str,
        patch: &TwinPatch,
        if_match: &IfMatch,
    ) -> Result<Twin, ServiceError> {
        let path = format!("/twins/{}", segment(device_id)?);
        let body = serde_json::to_vec(&patch.to_body())
            .map_err(|e| ServiceError::InvalidArgument(format!("twin patch: {e}")))?;
        let operation = format!("{verb} twin '{device_id}'");
        let call = Call {
            method,
            path,
            body: Some(&body),
            headers: vec![(IF_MATCH, if_match.header_value()?)],
            operation: &operation,
        };
        let answer = self.transport.send(&call).await?;
        parse_json(&answer.body, &operation)
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        path: String,
        operation: &str,
    ) -> Result<T, ServiceError> {
        let call = Call {
            method: Method::GET,
            path,
            body: None,
            headers: Vec::new(),
            operation,
        };
        let answer = self.transport.send(&call).await?;
        parse_json(&answer.body, operation)
    }
}

fn parse_json<T: DeserializeOwned>(body: &[u8], operation: &str) -> Result<T, ServiceError> {
    serde_json::from_slice(body).map_err(|e| ServiceError::Protocol {
        operation: operation.to_owned(),
        detail: format!("cannot parse the JSON body: {e}"),
    })
}
