//! One HTTP exchange with the hub, with retries: builds the request (api-version, SAS,
//! headers), sends it, classifies failures and decides about retrying. Everything above this
//! module deals in paths, JSON and typed errors only.

use std::error::Error as StdError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, StatusCode};

use crate::error::ServiceError;
use crate::error_body::{parse_hub_error, parse_retry_after};
use crate::retry::RetryPolicy;
use crate::sas_cache::SasCache;

/// The REST API version every request carries: the one Microsoft's REST reference documents
/// (<https://learn.microsoft.com/rest/api/iothub/service/devices/get-twin>) and the official
/// C#, Node and Python service SDKs send (ARCHITECTURE.md#service-rest-api).
pub const API_VERSION: &str = "2021-04-12";

const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// A request as the operations describe it.
pub(crate) struct Call<'a> {
    pub method: Method,
    /// Already percent-encoded path, starting with `/`.
    pub path: String,
    /// Borrowed: each attempt copies it into its own request.
    pub body: Option<&'a [u8]>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// For error messages and logs, e.g. `get twin 'd1'`.
    pub operation: &'a str,
}

/// A successful (2xx) answer.
pub(crate) struct Answer {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// HTTP attempts it took, including retries.
    pub attempts: u32,
}

pub(crate) struct Transport {
    http: reqwest::Client,
    /// `host[:port]` as in the connection string; used in URLs and messages.
    host: String,
    sas: SasCache,
    retry: RetryPolicy,
    request_timeout: Duration,
    requests_sent: AtomicU64,
}

enum Failure {
    /// A non-2xx answer.
    Status {
        status: StatusCode,
        headers: HeaderMap,
        body: Vec<u8>,
    },
    /// No answer.
    Transport(reqwest::Error),
}

impl Transport {
    pub(crate) fn new(
        http: reqwest::Client,
        host: String,
        sas: SasCache,
        retry: RetryPolicy,
        request_timeout: Duration,
    ) -> Self {
        Transport {
            http,
            host,
            sas,
            retry,
            request_timeout,
            requests_sent: AtomicU64::new(0),
        }
    }

    pub(crate) fn host(&self) -> &str {
        &self.host
    }

    pub(crate) fn requests_sent(&self) -> u64 {
        self.requests_sent.load(Ordering::Relaxed)
    }

    /// Sends `call`, retrying throttling, unavailability and broken connections within the
    /// retry policy, and returns the 2xx answer or a typed error.
    pub(crate) async fn send(&self, call: &Call<'_>) -> Result<Answer, ServiceError> {
        self.send_accepting(call, None).await
    }

    /// Like [`Transport::send`], with `accept` answered as a success too: the bulk registry
    /// answers 400 with per-entry results in the body.
    pub(crate) async fn send_accepting(
        &self,
        call: &Call<'_>,
        accept: Option<reqwest::StatusCode>,
    ) -> Result<Answer, ServiceError> {
        let started = Instant::now();
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let timeout = self
                .request_timeout
                .min(self.retry.remaining(started.elapsed()))
                .max(Duration::from_millis(100));
            let auth = self.sas.header()?;
            let failure = match self.send_once(call, auth, timeout, accept).await {
                Ok((headers, body)) => {
                    return Ok(Answer {
                        headers,
                        body,
                        attempts,
                    })
                }
                Err(f) => f,
            };
            let (retryable, retry_after) = match &failure {
                Failure::Status {
                    status, headers, ..
                } => (is_retryable_status(*status), retry_after(headers)),
                Failure::Transport(err) => (is_transient(err), None),
            };
            let delay = if retryable {
                self.retry.next_delay(
                    attempts,
                    started.elapsed(),
                    retry_after,
                    rand::random::<f64>(),
                )
            } else {
                None
            };
            match delay {
                Some(delay) => {
                    // Info, not a warning: a retry that succeeds is routine, and one that
                    // runs out ends in an error that counts the attempts.
                    tracing::info!(
                        operation = call.operation,
                        attempt = attempts,
                        delay_ms = delay.as_millis() as u64,
                        reason = %failure_summary(&failure),
                        "retrying"
                    );
                    tokio::time::sleep(delay).await;
                }
                None => return Err(self.to_error(call.operation, failure, attempts)),
            }
        }
    }

    async fn send_once(
        &self,
        call: &Call<'_>,
        auth: HeaderValue,
        timeout: Duration,
        accept: Option<reqwest::StatusCode>,
    ) -> Result<(HeaderMap, Vec<u8>), Failure> {
        let url = format!(
            "https://{}{}?api-version={API_VERSION}",
            self.host, call.path
        );
        let mut req = self
            .http
            .request(call.method.clone(), &url)
            .timeout(timeout)
            .header(ACCEPT, "application/json")
            .header(reqwest::header::AUTHORIZATION, auth);
        for (name, value) in &call.headers {
            req = req.header(name, value.clone());
        }
        if let Some(body) = call.body {
            req = req
                .header(CONTENT_TYPE, JSON_CONTENT_TYPE)
                .body(body.to_vec());
        }
        self.requests_sent.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(method = %call.method, path = %call.path, "request");
        let response = req.send().await.map_err(Failure::Transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(Failure::Transport)?.to_vec();
        tracing::debug!(status = status.as_u16(), bytes = body.len(), "response");
        if status.is_success() || Some(status) == accept {
            Ok((headers, body))
        } else {
            Err(Failure::Status {
                status,
                headers,
                body,
            })
        }
    }

    fn to_error(&self, operation: &str, failure: Failure, attempts: u32) -> ServiceError {
        match failure {
            Failure::Status {
                status,
                headers,
                body,
            } => {
                let code = headers
                    .get("iothub-errorcode")
                    .and_then(|v| v.to_str().ok());
                ServiceError::Hub {
                    operation: operation.to_owned(),
                    error: Box::new(parse_hub_error(
                        status.as_u16(),
                        code,
                        retry_after(&headers),
                        &body,
                    )),
                    attempts,
                }
            }
            Failure::Transport(err) => self.transport_error(operation, &err, attempts),
        }
    }

    fn transport_error(
        &self,
        operation: &str,
        err: &reqwest::Error,
        attempts: u32,
    ) -> ServiceError {
        let operation = operation.to_owned();
        let host = self.host.clone();
        if let Some(tls) = find_source::<rustls::Error>(err) {
            return ServiceError::Tls {
                operation,
                host,
                detail: tls.to_string(),
            };
        }
        if err.is_timeout() {
            let detail = if err.is_connect() {
                "connect timeout"
            } else {
                "request timeout"
            };
            return ServiceError::Timeout {
                operation,
                host,
                detail: detail.to_owned(),
                attempts,
            };
        }
        if err.is_connect() || err.is_request() || io_kind(err).is_some() {
            return ServiceError::Unreachable {
                operation,
                host,
                detail: root_cause(err),
                attempts,
            };
        }
        ServiceError::Protocol {
            operation,
            detail: root_cause(err),
        }
    }
}

/// 429 (throttled) and 503 (unavailable) are the hub's "try again later"; 500 is not
/// retried because the hub also uses it for requests it cannot process
/// (ARCHITECTURE.md#service-rest-api).
fn is_retryable_status(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE
}

/// The hub's `Retry-After` in seconds, if present and readable.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after)
}

/// Refused or reset connections and requests that died mid-flight are retried; timeouts are
/// not (the time budget is already spent) and TLS failures are not (they would repeat).
fn is_transient(err: &reqwest::Error) -> bool {
    if err.is_timeout() || find_source::<rustls::Error>(err).is_some() {
        return false;
    }
    if err.is_connect() || err.is_request() {
        return true;
    }
    matches!(
        io_kind(err),
        Some(
            std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::UnexpectedEof
        )
    )
}

fn io_kind(err: &reqwest::Error) -> Option<std::io::ErrorKind> {
    find_source::<std::io::Error>(err).map(std::io::Error::kind)
}

fn find_source<'a, T: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        // `io::Error::source()` skips the error it wraps (it returns the inner error's
        // source), which is where TLS errors hide; step into it explicitly.
        current = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => e.source(),
        };
    }
    None
}

/// The innermost cause's text (e.g. `Connection refused (os error 111)`); reqwest's own
/// Display includes the URL, which carries nothing secret but is noise in a one-line error.
fn root_cause(err: &(dyn StdError + 'static)) -> String {
    let mut current = err;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

fn failure_summary(failure: &Failure) -> String {
    match failure {
        Failure::Status { status, .. } => status.to_string(),
        Failure::Transport(err) => root_cause(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_statuses() {
        assert!(is_retryable_status(StatusCode::TOO_MANY_REQUESTS));
        assert!(is_retryable_status(StatusCode::SERVICE_UNAVAILABLE));
        assert!(!is_retryable_status(StatusCode::INTERNAL_SERVER_ERROR));
        assert!(!is_retryable_status(StatusCode::PRECONDITION_FAILED));
        assert!(!is_retryable_status(StatusCode::NOT_FOUND));
    }

    #[test]
    fn root_cause_walks_the_chain() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("outer")
            }
        }
        impl StdError for Outer {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                Some(&self.0)
            }
        }
        let e = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "reset by peer",
        ));
        assert_eq!(root_cause(&e), "reset by peer");
        assert_eq!(
            find_source::<std::io::Error>(&e).map(std::io::Error::kind),
            Some(std::io::ErrorKind::ConnectionReset)
        );
    }
}
