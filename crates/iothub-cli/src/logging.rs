//! Logging on stderr, the same for every binary: quiet by default (warnings only; results go
//! to stdout, failures are one error line), `-v` adds this workspace's info lines (steps,
//! retries, reconnects), `-vv` its debug lines (requests, MQTT traffic), `-vvv` everything
//! including dependencies. `RUST_LOG` replaces the default filter.
//!
//! Every line passes through [`redact_secrets`] before it is written.

use std::io::{IsTerminal, Write};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use crate::redact::redact_secrets;

/// The workspace's crates, as tracing targets: `-v`/`-vv` raise these and leave dependencies
/// (hyper, rustls, rumqttc, ...) at `warn`.
const WORKSPACE_TARGETS: &[&str] = &[
    "add_tags_and_query",
    "report_connectivity",
    "iothub_emulator",
    "iothub_service",
    "iothub_device",
    "iothub_auth",
    "iothub_query",
    "iothub_cli",
];

/// Installs the process's log subscriber for `-v` counted `verbosity` times. Only the first
/// call in a process has an effect.
pub fn init_logging(verbosity: u8) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(default_directives(verbosity)));
    // Ignore "already set": only possible if something else installed one first.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(RedactingStderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// The filter used when `RUST_LOG` is not set.
fn default_directives(verbosity: u8) -> String {
    let (everything, ours) = match verbosity {
        0 => return "warn".to_owned(),
        1 => ("warn", "info"),
        2 => ("warn", "debug"),
        _ => ("debug", "trace"),
    };
    let mut directives = everything.to_owned();
    for target in WORKSPACE_TARGETS {
        directives.push_str(&format!(",{target}={ours}"));
    }
    directives
}

/// Hands tracing one [`RedactingWriter`] per event, on stderr.
struct RedactingStderr;

impl<'a> MakeWriter<'a> for RedactingStderr {
    type Writer = RedactingWriter<std::io::Stderr>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter::new(std::io::stderr())
    }
}

/// Collects one formatted event and writes it, redacted, when dropped (the formatter creates
/// one writer per event), so a secret split across two `write` calls is still seen whole.
struct RedactingWriter<W: Write> {
    inner: W,
    event: Vec<u8>,
}

impl<W: Write> RedactingWriter<W> {
    fn new(inner: W) -> Self {
        RedactingWriter {
            inner,
            event: Vec::new(),
        }
    }
}

impl<W: Write> Write for RedactingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.event.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for RedactingWriter<W> {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.event);
        // A log line that cannot be written (stderr closed) is not worth failing over.
        let _ = self.inner.write_all(redact_secrets(&text).as_bytes());
        let _ = self.inner.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn one_default_filter_per_verbosity() {
        assert_eq!(default_directives(0), "warn");
        let v = default_directives(1);
        assert!(v.starts_with("warn,"), "{v}");
        for target in [
            "add_tags_and_query",
            "report_connectivity",
            "iothub_emulator",
        ] {
            assert!(v.contains(&format!("{target}=info")), "{v}");
        }
        assert!(default_directives(2).contains("iothub_service=debug"));
        let vvv = default_directives(3);
        assert!(vvv.starts_with("debug,") && vvv.contains("iothub_device=trace"));
        assert_eq!(default_directives(9), vvv);
        for verbosity in 0..4 {
            let directives = default_directives(verbosity);
            assert!(
                directives.parse::<EnvFilter>().is_ok(),
                "{verbosity}: {directives}"
            );
        }
    }

    /// A `MakeWriter` into a shared buffer, redacting like [`RedactingStderr`].
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = RedactingWriter<Sink>;
        fn make_writer(&'a self) -> Self::Writer {
            RedactingWriter::new(Sink(self.0.clone()))
        }
    }

    #[test]
    fn events_are_redacted_on_the_way_out() {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new("trace"))
            .with_writer(captured.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(
                password = "SharedAccessSignature sr=h&sig=c2ln&se=1",
                "connecting with HostName=h;DeviceId=d;SharedAccessKey=a2V5"
            );
            tracing::info!("nothing secret here");
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(!text.contains("a2V5") && !text.contains("c2ln"), "{text}");
        assert!(text.contains("SharedAccessKey=<redacted>"), "{text}");
        assert!(text.contains("<redacted SAS token>"), "{text}");
        assert!(text.contains("nothing secret here"), "{text}");
        assert_eq!(text.lines().count(), 2, "{text}");
    }

    #[test]
    fn a_secret_split_across_writes_is_still_redacted() {
        let mut out = Vec::new();
        {
            let mut writer = RedactingWriter::new(&mut out);
            writer.write_all(b"SharedAccessKey=ab").unwrap();
            writer.write_all(b"cd;next\n").unwrap();
        }
        assert_eq!(out, b"SharedAccessKey=<redacted>;next\n");
    }
}
