//! The whole tutorial, as a user runs it, through the two built binaries against an
//! in-process emulator: the device is listed under Redmond43 only until it reports cellular
//! connectivity, then under both headings.

use crate::support::{
    device_connection_string, listed_under, run, stderr, stdout, tutorial_hub, DEVICE_ID,
};

const PLANT_HEADING: &str = "Devices in Redmond43:";
const CELLULAR_HEADING: &str = "Devices in Redmond43 using cellular network:";

#[tokio::test(flavor = "multi_thread")]
async fn tutorial_transcript_before_and_after_the_device_reports() {
    let hub = tutorial_hub().await;
    let service = hub.emulator().service_connection_string();
    let device = device_connection_string(&hub);
    let ca = hub.emulator().ca_file().to_string_lossy().into_owned();
    let env = [("IOTHUB_CA_FILE", ca.as_str())];

    // 1. The back end tags the device and queries: Redmond43 only.
    let first = run("add-tags-and-query", &["-c", &service], &env).await;
    let first_out = stdout(&first);
    assert!(first.status.success(), "{}{}", first_out, stderr(&first));
    assert!(first_out.contains("Total device count                       : 1"));
    assert!(first_out.contains("Enabled device count                     : 1"));
    assert!(first_out.contains("Disabled device count                    : 0"));
    assert_eq!(listed_under(&first_out, PLANT_HEADING), [DEVICE_ID]);
    assert!(listed_under(&first_out, CELLULAR_HEADING).is_empty());

    // 2. The device reports cellular connectivity and the hub acknowledges it.
    let report = run("report-connectivity", &["-c", &device, "--once"], &env).await;
    let report_out = stdout(&report);
    assert!(report.status.success(), "{}{}", report_out, stderr(&report));
    assert!(
        report_out.contains("Confirmation for reported state called with:"),
        "{report_out}"
    );
    assert!(report_out.contains("status_code: 204"), "{report_out}");

    // 3. The same back-end run now lists the device under both headings.
    let second = run("add-tags-and-query", &["-c", &service], &env).await;
    let second_out = stdout(&second);
    assert!(second.status.success(), "{}{}", second_out, stderr(&second));
    assert_eq!(listed_under(&second_out, PLANT_HEADING), [DEVICE_ID]);
    assert_eq!(listed_under(&second_out, CELLULAR_HEADING), [DEVICE_ID]);

    // No step printed a key.
    for output in [&first, &report, &second] {
        let text = format!("{}{}", stdout(output), stderr(output));
        for secret in hub.secrets() {
            assert!(!text.contains(&secret), "a key leaked into:\n{text}");
        }
        assert!(!text.contains("sig="), "a SAS token leaked into:\n{text}");
    }
}
