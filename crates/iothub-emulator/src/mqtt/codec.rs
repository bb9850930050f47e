//! Framing: bytes ↔ MQTT 3.1.1 packets, through rumqttc's v4 codec (`Packet::read` / `write`).
//!
//! Nothing here encodes packets by hand; this layer only decides when a buffer holds a whole
//! packet, enforces the size limit, and keeps idle connections from holding large buffers.

use bytes::BytesMut;
use rumqttc::mqttbytes::v4::Packet;
use rumqttc::mqttbytes::Error as CodecError;

/// Largest packet accepted or sent: IoT Hub's 256 KiB message limit plus room for the topic
/// (telemetry property bags travel in the topic name) and the fixed header.
pub const MAX_PACKET_SIZE: usize = 256 * 1024 + 16 * 1024;

/// Spare read capacity kept while waiting for bytes: enough for every control packet and most
/// twin traffic, small enough that thousands of idle connections stay cheap.
const READ_CHUNK: usize = 2 * 1024;

/// A buffer this much larger than [`READ_CHUNK`] is given back once it is drained, so one large
/// telemetry message does not pin a quarter megabyte for the rest of the connection's life.
const SHRINK_ABOVE: usize = 32 * 1024;

/// Why a byte stream could not be turned into packets; the connection is closed.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The fixed header announces a packet beyond [`MAX_PACKET_SIZE`].
    #[error("packet of {0} bytes exceeds the {MAX_PACKET_SIZE}-byte limit")]
    TooLarge(usize),
    /// A topic name longer than MQTT's 65,535-byte limit (never sent).
    #[error("topic of {0} bytes exceeds MQTT's 65535-byte limit")]
    TopicTooLong(usize),
    /// The bytes are not a valid MQTT 3.1.1 packet.
    #[error("malformed packet: {0}")]
    Malformed(CodecError),
}

/// Takes the next whole packet off the front of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed ("not enough yet" is not an error), after
/// reserving room for the rest of the packet.
///
/// # Errors
/// [`FrameError`] for oversized or malformed input.
pub fn decode(buf: &mut BytesMut) -> Result<Option<Packet>, FrameError> {
    match Packet::read(buf, MAX_PACKET_SIZE) {
        Ok(packet) => Ok(Some(packet)),
        Err(CodecError::InsufficientBytes(missing)) => {
            buf.reserve(missing);
            Ok(None)
        }
        Err(CodecError::PayloadSizeLimitExceeded(size)) => Err(FrameError::TooLarge(size)),
        Err(other) => Err(FrameError::Malformed(other)),
    }
}

/// Appends the encoding of `packet` to `out`.
///
/// # Errors
/// [`FrameError`] when the packet is larger than [`MAX_PACKET_SIZE`] (a twin document or a
/// desired patch can never be, since the hub caps sections at 32 KB).
pub fn encode(packet: &Packet, out: &mut BytesMut) -> Result<(), FrameError> {
    if let Packet::Publish(publish) = packet {
        // The codec writes the topic's length as 16 bits without checking; a longer topic would
        // wrap into a corrupt packet.
        if publish.topic.len() > usize::from(u16::MAX) {
            return Err(FrameError::TopicTooLong(publish.topic.len()));
        }
    }
    match packet.write(out, MAX_PACKET_SIZE) {
        Ok(_) => Ok(()),
        Err(CodecError::OutgoingPacketTooLarge { pkt_size, .. }) => {
            Err(FrameError::TooLarge(pkt_size))
        }
        Err(other) => Err(FrameError::Malformed(other)),
    }
}

/// Prepares `buf` for the next read: keeps a small spare capacity, and drops an oversized
/// allocation once everything in it has been decoded.
pub fn prepare_read(buf: &mut BytesMut) {
    if buf.is_empty() && buf.capacity() > SHRINK_ABOVE {
        *buf = BytesMut::new();
    }
    if buf.capacity() - buf.len() < READ_CHUNK / 2 {
        buf.reserve(READ_CHUNK);
    }
}

/// Drops an oversized output buffer once it has been written out.
pub fn shrink_idle(buf: &mut BytesMut) {
    if buf.is_empty() && buf.capacity() > SHRINK_ABOVE {
        *buf = BytesMut::new();
    }
}

/// A short name for a packet, for logs. Packets are never logged with `{:?}`: a CONNECT's
/// `Debug` output contains the SAS token.
pub fn kind(packet: &Packet) -> &'static str {
    match packet {
        Packet::Connect(_) => "CONNECT",
        Packet::ConnAck(_) => "CONNACK",
        Packet::Publish(_) => "PUBLISH",
        Packet::PubAck(_) => "PUBACK",
        Packet::PubRec(_) => "PUBREC",
        Packet::PubRel(_) => "PUBREL",
        Packet::PubComp(_) => "PUBCOMP",
        Packet::Subscribe(_) => "SUBSCRIBE",
        Packet::SubAck(_) => "SUBACK",
        Packet::Unsubscribe(_) => "UNSUBSCRIBE",
        Packet::UnsubAck(_) => "UNSUBACK",
        Packet::PingReq => "PINGREQ",
        Packet::PingResp => "PINGRESP",
        Packet::Disconnect => "DISCONNECT",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::mqttbytes::v4::{PubAck, Publish};
    use rumqttc::mqttbytes::QoS;

    fn encoded(packet: &Packet) -> BytesMut {
        let mut out = BytesMut::new();
        encode(packet, &mut out).expect("encodes");
        out
    }

    #[test]
    fn decodes_packets_split_at_every_byte() {
        let mut publish = Publish::new("$iothub/twin/GET/?$rid=1", QoS::AtLeastOnce, " ");
        publish.pkid = 7;
        let packet = Packet::Publish(publish);
        let bytes = encoded(&packet);
        let mut buf = BytesMut::new();
        for (i, byte) in bytes.iter().enumerate() {
            buf.extend_from_slice(&[*byte]);
            let got = decode(&mut buf).expect("valid prefix");
            if i + 1 < bytes.len() {
                assert!(
                    got.is_none(),
                    "packet complete after {} of {} bytes",
                    i + 1,
                    bytes.len()
                );
            } else {
                assert_eq!(got, Some(packet.clone()));
            }
        }
        assert!(buf.is_empty());
    }

    #[test]
    fn decodes_several_packets_from_one_read() {
        let mut buf = encoded(&Packet::PingReq);
        buf.extend_from_slice(&encoded(&Packet::PubAck(PubAck::new(3))));
        assert_eq!(decode(&mut buf).expect("ok"), Some(Packet::PingReq));
        assert_eq!(
            decode(&mut buf).expect("ok"),
            Some(Packet::PubAck(PubAck::new(3)))
        );
        assert_eq!(decode(&mut buf).expect("ok"), None);
    }

    #[test]
    fn accepts_a_256_kib_message_and_refuses_more() {
        let mut ok = Publish::new(
            "devices/d/messages/events/",
            QoS::AtLeastOnce,
            vec![0u8; 256 * 1024],
        );
        ok.pkid = 1;
        let mut buf = encoded(&Packet::Publish(ok));
        assert!(matches!(decode(&mut buf), Ok(Some(Packet::Publish(_)))));

        // Only the fixed header is needed to refuse: the size check runs before the body arrives.
        let big = Publish::new(
            "devices/d/messages/events/",
            QoS::AtMostOnce,
            vec![0u8; MAX_PACKET_SIZE],
        );
        let mut out = BytesMut::new();
        big.write(&mut out).expect("raw write has no limit");
        let mut head = BytesMut::from(&out[..5]);
        assert!(matches!(decode(&mut head), Err(FrameError::TooLarge(_))));
    }

    #[test]
    fn a_topic_beyond_16_bits_is_never_encoded() {
        let long = Publish::new("t".repeat(65_536), QoS::AtMostOnce, "x");
        let mut out = BytesMut::new();
        assert!(matches!(
            encode(&Packet::Publish(long), &mut out),
            Err(FrameError::TopicTooLong(65_536))
        ));
        assert!(out.is_empty(), "nothing half-written");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut buf = BytesMut::from(&[0xF0u8, 0x00][..]);
        assert!(matches!(decode(&mut buf), Err(FrameError::Malformed(_))));
    }

    #[test]
    fn prepare_read_shrinks_drained_large_buffers() {
        let mut buf = BytesMut::with_capacity(300 * 1024);
        prepare_read(&mut buf);
        assert!(buf.capacity() <= SHRINK_ABOVE);
        assert!(buf.capacity() >= READ_CHUNK / 2);
    }
}
