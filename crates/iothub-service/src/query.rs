//! The query pager: one `POST /devices/query` per page, following `x-ms-continuation` until
//! the hub stops sending it (<https://learn.microsoft.com/rest/api/iothub/service/query/get-twins>,
//! ARCHITECTURE.md#service-rest-api). Pages are handed out as they arrive; nothing
//! accumulates unless the caller keeps the pages.

use std::num::NonZeroU32;
use std::sync::Arc;

use futures_util::Stream;
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::Method;
use serde_json::Value;

use crate::error::ServiceError;
use crate::error_body::truncate;
use crate::transport::{Call, Transport};

const CONTINUATION: &str = "x-ms-continuation";
const MAX_ITEM_COUNT: &str = "x-ms-max-item-count";
const ITEM_TYPE: &str = "x-ms-item-type";
/// Query text beyond this many characters is elided in error messages.
const MAX_QUERY_IN_MESSAGE: usize = 200;

fn shorten(text: &str, max: usize) -> String {
    truncate(&text.split_whitespace().collect::<Vec<_>>().join(" "), max)
}

/// What the rows of a query page are (`x-ms-item-type`, matched case-insensitively).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ItemType {
    /// Whole twins (`SELECT * FROM devices` / `devices.modules`).
    Twin,
    /// Projections, aggregates and `GROUP BY` rows.
    Raw,
    /// `devices.jobs` rows.
    DeviceJob,
    /// Job responses.
    JobResponse,
    /// The header was absent.
    Unknown,
    /// A value this client does not know, kept verbatim.
    Other(String),
}

impl ItemType {
    fn from_header(value: Option<&str>) -> Self {
        let Some(value) = value.map(str::trim) else {
            return ItemType::Unknown;
        };
        match value.to_ascii_lowercase().as_str() {
            "twin" => ItemType::Twin,
            "raw" => ItemType::Raw,
            "devicejob" => ItemType::DeviceJob,
            "jobresponse" => ItemType::JobResponse,
            "" | "unknown" => ItemType::Unknown,
            _ => ItemType::Other(value.to_owned()),
        }
    }

    /// The PascalCase name the hub uses (`Twin`, `Raw`, …).
    pub fn as_str(&self) -> &str {
        match self {
            ItemType::Twin => "Twin",
            ItemType::Raw => "Raw",
            ItemType::DeviceJob => "DeviceJob",
            ItemType::JobResponse => "JobResponse",
            ItemType::Unknown => "Unknown",
            ItemType::Other(s) => s,
        }
    }
}

/// One page of query results.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryPage {
    /// What the items are.
    pub item_type: ItemType,
    /// The rows, as returned (a bare JSON array on the wire).
    pub items: Vec<Value>,
    /// True when this is the last page (no continuation, or the item limit was reached).
    pub is_last: bool,
}

/// Streams the pages of one query. Create it with [`crate::ServiceClient::query`].
pub struct QueryPager {
    transport: Arc<Transport>,
    /// `query '<text>'`, so an error says which query failed.
    operation: String,
    body: Vec<u8>,
    page_size: Option<NonZeroU32>,
    limit: Option<u64>,
    continuation: Option<String>,
    finished: bool,
    pages: u64,
    requests: u64,
    returned: u64,
}

impl QueryPager {
    pub(crate) fn new(transport: Arc<Transport>, query: &str) -> Self {
        let body = serde_json::json!({ "query": query })
            .to_string()
            .into_bytes();
        QueryPager {
            transport,
            operation: format!("query '{}'", shorten(query, MAX_QUERY_IN_MESSAGE)),
            body,
            page_size: None,
            limit: None,
            continuation: None,
            finished: false,
            pages: 0,
            requests: 0,
            returned: 0,
        }
    }

    /// Asks for pages of at most `n` rows (`x-ms-max-item-count`). The hub may return fewer
    /// (its maximum is 100); without it the hub picks its default.
    pub fn page_size(mut self, n: NonZeroU32) -> Self {
        self.page_size = Some(n);
        self
    }

    /// Stops after `n` rows in total, shrinking the last request's page size so no more
    /// rows than needed are fetched.
    pub fn limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        if n == 0 {
            self.finished = true;
        }
        self
    }

    /// Pages received so far.
    pub fn pages_fetched(&self) -> u64 {
        self.pages
    }

    /// HTTP requests this pager sent so far, including retries.
    pub fn requests_sent(&self) -> u64 {
        self.requests
    }

    /// Rows handed out so far.
    pub fn rows_returned(&self) -> u64 {
        self.returned
    }

    /// Fetches the next page, or `None` once the last page was returned.
    ///
    /// # Errors
    /// The request's [`ServiceError`]; a 400 carries the hub's message (for a syntax error,
    /// with the position). After an error the pager can be polled again to retry the page.
    pub async fn next_page(&mut self) -> Result<Option<QueryPage>, ServiceError> {
        if self.finished {
            return Ok(None);
        }
        let mut headers = Vec::with_capacity(2);
        if let Some(size) = self.request_size() {
            headers.push((
                HeaderName::from_static(MAX_ITEM_COUNT),
                HeaderValue::from(size),
            ));
        }
        if let Some(token) = &self.continuation {
            let value = HeaderValue::from_str(token).map_err(|_| ServiceError::Protocol {
                operation: self.operation.clone(),
                detail: "continuation token is not a valid header value".into(),
            })?;
            headers.push((HeaderName::from_static(CONTINUATION), value));
        }
        let call = Call {
            method: Method::POST,
            path: "/devices/query".into(),
            body: Some(&self.body),
            headers,
            operation: &self.operation,
        };
        let answer = match self.transport.send(&call).await {
            Ok(answer) => {
                self.requests += u64::from(answer.attempts);
                answer
            }
            Err(err) => {
                self.requests += u64::from(err.attempts());
                return Err(err);
            }
        };

        let item_type =
            ItemType::from_header(answer.headers.get(ITEM_TYPE).and_then(|v| v.to_str().ok()));
        let mut items: Vec<Value> =
            serde_json::from_slice(&answer.body).map_err(|e| ServiceError::Protocol {
                operation: self.operation.clone(),
                detail: format!("the body is not a JSON array: {e}"),
            })?;
        let next = answer
            .headers
            .get(CONTINUATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            // An empty header means "no more" too; sending it back would restart at page 1.
            .filter(|t| !t.is_empty());
        if next.is_some() && next == self.continuation && items.is_empty() {
            return Err(ServiceError::Protocol {
                operation: self.operation.clone(),
                detail: "the hub returned the same continuation token with no rows".into(),
            });
        }
        if let Some(limit) = self.limit {
            let room = limit.saturating_sub(self.returned);
            items.truncate(usize::try_from(room).unwrap_or(usize::MAX));
        }
        self.pages += 1;
        self.returned += items.len() as u64;
        self.continuation = next;
        let limit_reached = self.limit.is_some_and(|l| self.returned >= l);
        self.finished = self.continuation.is_none() || limit_reached;
        tracing::debug!(
            page = self.pages,
            rows = items.len(),
            more = !self.finished,
            "query page"
        );
        Ok(Some(QueryPage {
            item_type,
            items,
            is_last: self.finished,
        }))
    }

    fn request_size(&self) -> Option<u32> {
        let remaining = self
            .limit
            .map(|l| u32::try_from(l.saturating_sub(self.returned)).unwrap_or(u32::MAX));
        match (self.page_size.map(NonZeroU32::get), remaining) {
            (Some(size), Some(rem)) => Some(size.min(rem)),
            (Some(size), None) => Some(size),
            // Only a limit: ask for no more than needed, up to the hub's maximum of 100.
            (None, Some(rem)) => Some(rem.min(100)),
            (None, None) => None,
        }
    }

    /// Turns the pager into a stream of pages.
    pub fn into_stream(self) -> impl Stream<Item = Result<QueryPage, ServiceError>> {
        futures_util::stream::try_unfold(self, |mut pager| async move {
            Ok(pager.next_page().await?.map(|page| (page, pager)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_text_in_messages_is_flattened_and_bounded() {
        assert_eq!(
            shorten("SELECT *\n  FROM devices", 200),
            "SELECT * FROM devices"
        );
        assert_eq!(shorten("abcdef", 3), "abc…");
    }

    #[test]
    fn item_type_is_case_insensitive() {
        assert_eq!(ItemType::from_header(Some("Twin")), ItemType::Twin);
        assert_eq!(ItemType::from_header(Some("twin")), ItemType::Twin);
        assert_eq!(ItemType::from_header(Some("RAW")), ItemType::Raw);
        assert_eq!(
            ItemType::from_header(Some("deviceJob")),
            ItemType::DeviceJob
        );
        assert_eq!(ItemType::from_header(None), ItemType::Unknown);
        assert_eq!(
            ItemType::from_header(Some("enrollment")),
            ItemType::Other("enrollment".into())
        );
        assert_eq!(ItemType::Other("x".into()).as_str(), "x");
    }
}
