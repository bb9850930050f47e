//! Direct methods: `--method-response` values refused as usage errors before any connection.

use std::time::Duration;

use iothub_emulator::test_support::{RefusedPort, TestHub};

use crate::support::{run, unreachable_connection_string, CliHub};

#[tokio::test(flavor = "multi_thread")]
async fn bad_method_responses_are_usage_errors_naming_the_value() {
    let hub = TestHub::start().await;
    // Nothing listens there: a run that got past validation would end with exit 5 instead.
    let refused = RefusedPort::reserve();
    let conn = unreachable_connection_string(&refused);
    for (value, needle) in [
        ("reboot", "'reboot': no '='"),
        ("reboot=ok", "the status is not an integer"),
        ("reboot=200:{bad", "invalid JSON"),
        (
            "reboot=200:@/nonexistent/answer.json",
            "/nonexistent/answer.json",
        ),
    ] {
        let mut cmd = hub.command(&conn);
        cmd.args(["--timeout", "2s", "--method-response", value]);
        let out = run(cmd, Duration::from_secs(30)).await;
        assert_eq!(out.code, Some(2), "{value}: {}", out.stderr);
        assert!(
            out.stderr
                .starts_with("report-connectivity: error: --method-response"),
            "{value}: {}",
            out.stderr
        );
        assert!(out.stderr.contains(needle), "{value}: {}", out.stderr);
    }
    let mut cmd = hub.command(&conn);
    cmd.args(["--once", "--method-response", "reboot=200"]);
    let out = run(cmd, Duration::from_secs(30)).await;
    assert_eq!(out.code, Some(2), "--once conflicts: {}", out.stderr);
}
