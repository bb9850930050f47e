//! Helpers of the emulator's tests beyond the shared `iothub_emulator::test_support` hub.

/// AMQP clients of the Event Hub-compatible endpoint: CBS, management, partition receivers.
pub mod amqp;
/// MQTT device clients (rumqttc and raw TLS) and device credentials.
pub mod mqtt;
/// REST requests with any policy or token, and the error-format check.
pub mod rest;
