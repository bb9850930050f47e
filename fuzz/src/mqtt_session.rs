//! Target `mqtt_session`: the emulator's MQTT session state machine after CONNECT, fed the
//! packets its own framing decodes from the input, with a fake hub answering twin requests.
//!
//! The first byte sets the scene; the rest is the byte stream the client sends:
//! - bits 0–1, how the hub answers twin requests: 0 and 1 from a fixture twin (GET returns it,
//!   a reported PATCH is applied with the hub's own checks: 204 with the new `$version` or
//!   400), 2 with 429, 3 with 503;
//! - bit 2: after every packet the hub also sends a desired-properties change;
//! - bit 3: when the session closes, the device reconnects with clean session 0 (two desired
//!   changes arrive while it is offline) and the rest of the stream continues on the resumed
//!   session; otherwise a close ends the run;
//! - bit 4: the device id needs percent-encoding in topics (`dev #1`), else `d1`.
//!
//! Invariants: nothing panics; every packet the session emits encodes, decodes back to the
//! same packet with nothing left over, and a PUBLISH has a valid MQTT topic name (1 to 65,535
//! bytes of UTF-8 without `#`, `+` or NUL).

use iothub_emulator::fuzzing::{
    encode_packet, Decoder, MqttSession, Packet, Step, Twin, TwinAnswer,
};
use serde_json::json;

/// Reconnects allowed in one run (each costs a reconnect's replay of the saved session).
const MAX_RECONNECTS: usize = 16;

/// Runs one client byte stream as described in the module documentation.
pub fn mqtt_session(data: &[u8]) {
    let Some((&scene, stream)) = data.split_first() else {
        return;
    };
    let device_id = if scene & 0x10 != 0 { "dev #1" } else { "d1" };
    let mut hub = FakeHub {
        answers: scene & 0b11,
        twin: Twin::new(),
        desired_version: 1,
    };
    let desired_after_packets = scene & 0x04 != 0;
    let reconnects = scene & 0x08 != 0;

    let mut session = MqttSession::connect(device_id);
    let mut decoder = Decoder::new(stream);
    let mut reconnected = 0;
    // A decode error or an incomplete packet ends the connection, as it does in the driver.
    while let Ok(Some(packet)) = decoder.next_packet() {
        let steps = session.on_packet(packet);
        let mut closed = run(&mut session, &mut hub, steps);
        if desired_after_packets && !closed {
            let (version, body) = hub.desired_change();
            let steps = session.on_desired(version, &body);
            closed = run(&mut session, &mut hub, steps);
        }
        if closed {
            if !reconnects || reconnected == MAX_RECONNECTS {
                return;
            }
            reconnected += 1;
            let offline = [hub.desired_change(), hub.desired_change()];
            let (resumed, steps) = session.reconnect(&offline);
            session = resumed;
            if run(&mut session, &mut hub, steps) {
                return;
            }
        }
    }
}

/// Carries out `steps` in order, answering twin requests at once; returns whether the session
/// closed the connection. Every packet sent is checked.
fn run(session: &mut MqttSession, hub: &mut FakeHub, steps: Vec<Step>) -> bool {
    let mut queue = std::collections::VecDeque::from(steps);
    while let Some(step) = queue.pop_front() {
        match step {
            Step::Send(packet) => check_emitted(&packet),
            Step::TwinGet { rid } => {
                let answer = hub.get();
                queue.extend(session.on_twin_answer(&rid, answer));
            }
            Step::TwinPatchReported { rid, patch } => {
                let answer = hub.patch_reported(&patch);
                queue.extend(session.on_twin_answer(&rid, answer));
            }
            Step::Activity | Step::MethodResponse { .. } | Step::MethodReady(_) => {}
            // What was queued before the close is written, nothing after it.
            Step::Close(_) => return true,
        }
    }
    false
}

fn check_emitted(packet: &Packet) {
    if let Packet::Publish(publish) = packet {
        let topic = &publish.topic;
        assert!(!topic.is_empty(), "empty topic name");
        assert!(
            topic.len() <= usize::from(u16::MAX),
            "topic name of {} bytes",
            topic.len()
        );
        assert!(
            !topic.contains(['#', '+', '\0']),
            "topic name with a wildcard or NUL: {topic:?}"
        );
    }
    let bytes = match encode_packet(packet) {
        Ok(bytes) => bytes,
        Err(error) => panic!("emitted packet does not encode ({error}): {packet:?}"),
    };
    let mut decoder = Decoder::new(&bytes);
    match decoder.next_packet() {
        Ok(Some(decoded)) => assert_eq!(&decoded, packet, "re-decoded packet"),
        other => panic!("emitted packet does not decode back: {other:?} from {packet:?}"),
    }
    assert!(
        matches!(decoder.next_packet(), Ok(None)),
        "bytes left over after the emitted packet"
    );
}

/// The hub side: one fixture twin, or a hub that refuses every twin request.
struct FakeHub {
    answers: u8,
    twin: Twin,
    desired_version: u64,
}

impl FakeHub {
    fn refusal(&self) -> Option<TwinAnswer> {
        match self.answers {
            2 => Some(TwinAnswer::Failed(429, "throttled".into())),
            3 => Some(TwinAnswer::Failed(503, "unavailable".into())),
            _ => None,
        }
    }

    fn get(&self) -> TwinAnswer {
        self.refusal()
            .unwrap_or_else(|| TwinAnswer::Document(self.twin.device_view()))
    }

    fn patch_reported(&mut self, patch: &serde_json::Value) -> TwinAnswer {
        if let Some(refusal) = self.refusal() {
            return refusal;
        }
        let Some(patch) = patch.as_object() else {
            return TwinAnswer::Failed(400, "not an object".into());
        };
        match self.twin.patch_reported(patch) {
            Ok(version) => TwinAnswer::Patched(version),
            Err(message) => TwinAnswer::Failed(400, message),
        }
    }

    /// The next desired change: `(version, body)` as the hub notifies it.
    fn desired_change(&mut self) -> (u64, Vec<u8>) {
        self.desired_version += 1;
        let version = self.desired_version;
        let body = json!({"setting": version, "$version": version});
        (version, body.to_string().into_bytes())
    }
}
