//! Entry points for the fuzz targets in `fuzz/`, and for nothing else (feature `fuzzing`, off by
//! default, hidden from the docs).
//!
//! The MQTT session state machine, its codec and the twin write path are private to the crate:
//! they are not an API, and embedders reach them only through sockets and REST. Fuzzing them
//! through sockets would measure tokio and TLS instead of the code under test, so this module
//! wraps just enough of them, as plain values, for the targets `mqtt_session` and `twin_patch`
//! to drive them in-process: decode and encode packets, step a connected session, and apply
//! service and device twin writes to a bare twin with the hub's own checks.

use bytes::BytesMut;
use serde_json::{json, Map, Value};

use crate::hub::{self, TwinState, TwinWriteMode};
use crate::mqtt::{self, Action, DesiredNotification, Identity, Session, TwinFailure, TwinOutcome};
use crate::rest;

/// The packet types, to build seed inputs with.
pub use rumqttc::mqttbytes::v4::{
    Packet, PubAck, Publish, Subscribe, SubscribeFilter, Unsubscribe,
};
pub use rumqttc::mqttbytes::QoS;

/// Packets taken one by one off a byte stream, by the endpoint's own framing.
#[derive(Debug)]
pub struct Decoder {
    buf: BytesMut,
}

impl Decoder {
    /// A decoder over the bytes a client sent.
    pub fn new(bytes: &[u8]) -> Decoder {
        Decoder {
            buf: BytesMut::from(bytes),
        }
    }

    /// The next whole packet; `Ok(None)` when the rest is an incomplete packet.
    ///
    /// # Errors
    /// Why the endpoint would close the connection (oversized or malformed input).
    pub fn next_packet(&mut self) -> Result<Option<Packet>, String> {
        mqtt::decode(&mut self.buf).map_err(|e| e.to_string())
    }
}

/// The bytes the endpoint writes for `packet`.
///
/// # Errors
/// Why the endpoint could not send it (too large, topic too long, codec refusal).
pub fn encode_packet(packet: &Packet) -> Result<Vec<u8>, String> {
    let mut out = BytesMut::new();
    mqtt::encode(packet, &mut out).map_err(|e| e.to_string())?;
    Ok(out.to_vec())
}

/// One step the session asks its connection driver to take.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Write this packet.
    Send(Packet),
    /// Answer with [`MqttSession::on_twin_answer`]: a twin GET.
    TwinGet {
        /// The request id.
        rid: String,
    },
    /// Answer with [`MqttSession::on_twin_answer`]: a reported-properties PATCH.
    TwinPatchReported {
        /// The request id.
        rid: String,
        /// The parsed JSON object.
        patch: Value,
    },
    /// The device was active.
    Activity,
    /// Close the connection, for this reason.
    Close(String),
    /// The device answered the direct-method request `rid` with `status`.
    MethodResponse {
        /// The request id.
        rid: String,
        /// The status from the response topic.
        status: i32,
    },
    /// The session became ready (`true`) or stopped being ready for direct-method requests.
    MethodReady(bool),
}

/// What the hub answered to a twin request.
#[derive(Debug, Clone, PartialEq)]
pub enum TwinAnswer {
    /// The GET document `{"desired":…,"reported":…}`.
    Document(Value),
    /// The reported PATCH's new `$version`.
    Patched(u64),
    /// A failure with this status and message.
    Failed(u16, String),
}

/// A session of a device that has CONNECTed (the CONNECT checks are not part of it).
#[derive(Debug)]
pub struct MqttSession {
    device_id: String,
    session: Session,
}

impl MqttSession {
    /// A fresh session (clean session, or nothing stored) of device `device_id`.
    pub fn connect(device_id: &str) -> MqttSession {
        let (session, _) = Session::resume(identity(device_id), None);
        MqttSession {
            device_id: device_id.to_string(),
            session,
        }
    }

    /// Disconnects and reconnects with clean session 0: what was saved, plus the desired
    /// patches `(version, body)` that arrived while offline, is resumed. Returns the new session
    /// and the steps that deliver what was pending.
    pub fn reconnect(self, offline_desired: &[(u64, Vec<u8>)]) -> (MqttSession, Vec<Step>) {
        let mut saved = self.session.into_saved();
        for (version, body) in offline_desired {
            saved.queue_desired(notification(*version, body));
        }
        let resumed = (!saved.out_of_step).then_some(saved);
        let (session, actions) = Session::resume(identity(&self.device_id), resumed);
        let session = MqttSession {
            device_id: self.device_id,
            session,
        };
        (session, steps(actions))
    }

    /// Handles one packet from the client.
    pub fn on_packet(&mut self, packet: Packet) -> Vec<Step> {
        let mut out = Vec::new();
        self.session.on_packet(packet, &mut out);
        steps(out)
    }

    /// Hands the hub's answer to the twin request `rid` back to the session.
    pub fn on_twin_answer(&mut self, rid: &str, answer: TwinAnswer) -> Vec<Step> {
        let outcome = match answer {
            TwinAnswer::Document(doc) => TwinOutcome::Document(doc),
            TwinAnswer::Patched(version) => TwinOutcome::Patched { version },
            TwinAnswer::Failed(status, message) => {
                TwinOutcome::Failed(TwinFailure { status, message })
            }
        };
        let mut out = Vec::new();
        self.session.on_twin_outcome(rid, &outcome, &mut out);
        steps(out)
    }

    /// Delivers a desired-properties change `(version, body)` to the connected session.
    pub fn on_desired(&mut self, version: u64, body: &[u8]) -> Vec<Step> {
        let mut out = Vec::new();
        self.session
            .on_desired(notification(version, body), &mut out);
        steps(out)
    }
}

fn identity(device_id: &str) -> Identity {
    Identity {
        device_id: device_id.to_string(),
        module_id: None,
    }
}

fn notification(version: u64, body: &[u8]) -> DesiredNotification {
    DesiredNotification {
        version,
        body: bytes::Bytes::copy_from_slice(body),
    }
}

fn steps(actions: Vec<Action>) -> Vec<Step> {
    actions
        .into_iter()
        .filter_map(|action| match action {
            Action::Send(packet) => Some(Step::Send(packet)),
            Action::Twin(mqtt::TwinRequest::Get { rid }) => Some(Step::TwinGet { rid }),
            Action::Twin(mqtt::TwinRequest::PatchReported { rid, patch }) => {
                Some(Step::TwinPatchReported { rid, patch })
            }
            Action::Activity => Some(Step::Activity),
            Action::Close(reason) => Some(Step::Close(reason.to_string())),
            // Cloud-to-device messages and the telemetry buffer are not part of the fuzzed
            // surface.
            Action::CloudToDeviceWanted
            | Action::CloudToDeviceCompleted(_)
            | Action::Telemetry(_) => None,
            Action::MethodResponse { rid, status, .. } => {
                Some(Step::MethodResponse { rid, status })
            }
            Action::MethodSubscription(ready) => Some(Step::MethodReady(ready)),
        })
        .collect()
}

/// One device's twin, written through the hub's own checks and merge, without the device table,
/// the store or MQTT.
#[derive(Debug, Clone)]
pub struct Twin {
    state: TwinState,
}

impl Default for Twin {
    fn default() -> Self {
        Twin::new()
    }
}

impl Twin {
    /// The twin of a newly created device.
    pub fn new() -> Twin {
        Twin {
            state: TwinState::new(&hub::now_iso()),
        }
    }

    /// `PATCH /twins/{id}` (`replace = false`) or `PUT` (`replace = true`) with this body.
    /// Returns the desired patch the device would be sent, if `desired` changed.
    ///
    /// # Errors
    /// The 400 the REST API answers, as text.
    pub fn service_write(&mut self, body: &[u8], replace: bool) -> Result<Option<Value>, String> {
        let mode = if replace {
            TwinWriteMode::Replace
        } else {
            TwinWriteMode::Patch
        };
        let (write, cleared) = rest::parse_twin_write(body, mode).map_err(|e| format!("{e:?}"))?;
        hub::apply_service_write(&mut self.state, write, cleared)
            .map(|change| change.map(|(_, patch)| patch))
            .map_err(|e| e.to_string())
    }

    /// A device's reported-properties PATCH; returns the new reported `$version`.
    ///
    /// # Errors
    /// The 400 the device is answered, as text.
    pub fn patch_reported(&mut self, patch: &Map<String, Value>) -> Result<u64, String> {
        hub::apply_reported_patch(&mut self.state, patch).map_err(|e| e.to_string())
    }

    /// `tags`.
    pub fn tags(&self) -> &Map<String, Value> {
        &self.state.tags
    }

    /// `properties.desired` without `$metadata` and `$version`.
    pub fn desired(&self) -> &Map<String, Value> {
        &self.state.desired.content
    }

    /// `properties.reported` without `$metadata` and `$version`.
    pub fn reported(&self) -> &Map<String, Value> {
        &self.state.reported.content
    }

    /// Twin `version`, and the desired and reported `$version`s.
    pub fn versions(&self) -> (u64, u64, u64) {
        (
            self.state.version,
            self.state.desired.version,
            self.state.reported.version,
        )
    }

    /// What the device's twin GET returns.
    pub fn device_view(&self) -> Value {
        json!({
            "desired": self.state.desired.render_for_device(),
            "reported": self.state.reported.render_for_device(),
        })
    }

    /// Whether every section passes the hub's content rules (names, values, depth, size).
    ///
    /// # Errors
    /// The first rule broken.
    pub fn check_limits(&self) -> Result<(), String> {
        let sections = [
            ("tags", &self.state.tags, hub::MAX_TAGS_BYTES),
            (
                "properties.desired",
                &self.state.desired.content,
                hub::MAX_PROPERTIES_BYTES,
            ),
            (
                "properties.reported",
                &self.state.reported.content,
                hub::MAX_PROPERTIES_BYTES,
            ),
        ];
        for (name, content, max_bytes) in sections {
            hub::validate_twin_patch(name, content).map_err(|e| e.to_string())?;
            hub::validate_twin_section(name, content, max_bytes).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}
