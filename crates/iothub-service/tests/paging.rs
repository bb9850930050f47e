use std::collections::BTreeSet;
use std::num::NonZeroU32;

use iothub_emulator::test_support::TestHub;
use iothub_service::ItemType;

use crate::support::ServiceHub;

fn page_size(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).expect("non-zero")
}

#[tokio::test]
async fn thousand_devices_in_ten_requests_each_exactly_once() {
    let hub = TestHub::start().await;
    hub.add_devices((0..1000).map(|i| format!("dev-{i:04}")))
        .await;
    let client = hub.client();
    let sent_before = client.requests_sent();

    let mut pager = client
        .query("SELECT * FROM devices")
        .page_size(page_size(100));
    let mut seen = Vec::new();
    while let Some(page) = pager.next_page().await.unwrap() {
        assert_eq!(page.item_type, ItemType::Twin);
        assert!(page.items.len() <= 100);
        seen.extend(
            page.items
                .iter()
                .map(|t| t["deviceId"].as_str().unwrap().to_owned()),
        );
    }
    assert_eq!(pager.requests_sent(), 10);
    assert_eq!(pager.pages_fetched(), 10);
    assert_eq!(client.requests_sent() - sent_before, 10);
    assert_eq!(seen.len(), 1000);
    let unique: BTreeSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), 1000, "every device exactly once");
    assert!(pager.next_page().await.unwrap().is_none(), "stays finished");
    assert_eq!(client.requests_sent() - sent_before, 10);
}

#[tokio::test]
async fn device_listing_is_not_capped_at_1000() {
    let hub = TestHub::start().await;
    hub.add_devices((0..1005).map(|i| format!("d{i}"))).await;
    let client = hub.client();
    let mut pager = client.list_devices();
    let mut ids = BTreeSet::new();
    while let Some(page) = pager.next_page().await.unwrap() {
        for device in page {
            assert!(ids.insert(device.device_id), "duplicate");
        }
    }
    assert_eq!(ids.len(), 1005);
}

#[tokio::test]
async fn limit_stops_early_and_shrinks_the_last_page() {
    let hub = TestHub::start().await;
    hub.add_devices((0..30).map(|i| format!("d{i:02}"))).await;
    let client = hub.client();
    let mut pager = client
        .query("SELECT * FROM devices")
        .page_size(page_size(10))
        .limit(25);
    let mut sizes = Vec::new();
    while let Some(page) = pager.next_page().await.unwrap() {
        sizes.push(page.items.len());
    }
    assert_eq!(sizes, [10, 10, 5]);
    assert_eq!(pager.requests_sent(), 3);
    assert_eq!(pager.rows_returned(), 25);
}

#[tokio::test]
async fn aggregate_rows_are_raw() {
    let hub = TestHub::start().await;
    hub.add_devices(["a", "b"].map(String::from)).await;
    let client = hub.client();
    let mut pager = client.query("SELECT COUNT() AS n FROM devices");
    let page = pager.next_page().await.unwrap().unwrap();
    assert_eq!(page.item_type, ItemType::Raw);
    assert_eq!(page.items, [serde_json::json!({"n": 2})]);
    assert!(page.is_last);
}

#[tokio::test]
async fn pager_streams() {
    use futures_util::TryStreamExt;
    let hub = TestHub::start().await;
    hub.add_devices((0..7).map(|i| format!("d{i}"))).await;
    let client = hub.client();
    let pages: Vec<_> = client
        .query("SELECT * FROM devices")
        .page_size(page_size(3))
        .into_stream()
        .try_collect()
        .await
        .unwrap();
    let sizes: Vec<_> = pages.iter().map(|p| p.items.len()).collect();
    assert_eq!(sizes, [3, 3, 1]);
    assert!(pages[2].is_last && !pages[0].is_last);
}
