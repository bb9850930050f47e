//! Device listing through the query API: `SELECT * FROM devices`, paged, mapped to
//! [`DeviceSummary`]. Unlike `GET /devices?top=N` it has no 1,000-device cap.

use std::num::NonZeroU32;

use crate::error::ServiceError;
use crate::model::DeviceSummary;
use crate::query::QueryPager;

/// The query the listing runs.
pub const LIST_DEVICES_QUERY: &str = "SELECT * FROM devices";

/// Streams the device list page by page. Create it with [`crate::ServiceClient::list_devices`].
pub struct DevicePager {
    pager: QueryPager,
}

impl DevicePager {
    pub(crate) fn new(pager: QueryPager) -> Self {
        DevicePager { pager }
    }

    /// See [`QueryPager::page_size`].
    pub fn page_size(self, n: NonZeroU32) -> Self {
        DevicePager {
            pager: self.pager.page_size(n),
        }
    }

    /// See [`QueryPager::limit`].
    pub fn limit(self, n: u64) -> Self {
        DevicePager {
            pager: self.pager.limit(n),
        }
    }

    /// HTTP requests sent so far, including retries.
    pub fn requests_sent(&self) -> u64 {
        self.pager.requests_sent()
    }

    /// The next page of devices, or `None` after the last one.
    ///
    /// # Errors
    /// The request's [`ServiceError`], or [`ServiceError::Protocol`] for a row that is not a
    /// twin with a `deviceId`.
    pub async fn next_page(&mut self) -> Result<Option<Vec<DeviceSummary>>, ServiceError> {
        let Some(page) = self.pager.next_page().await? else {
            return Ok(None);
        };
        page.items
            .into_iter()
            .map(|item| {
                serde_json::from_value::<DeviceSummary>(item).map_err(|e| ServiceError::Protocol {
                    operation: "list devices".into(),
                    detail: format!("a row is not a device twin: {e}"),
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}
