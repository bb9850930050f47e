//! Integration tests of the emulator, one binary (linked once); each module has one subject.
//! The hub under test is `iothub_emulator::test_support::TestHub`, as in every crate's tests.

// A failed expectation in a test or its helpers is the test failing, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// Test clients beyond the shared hub: MQTT devices and REST requests with any credentials.
mod support;

/// The AMQP front door: CBS, `$management`, partition receivers and filters, the redirect.
mod amqp;
/// The bulk registry operation `POST /devices`: import modes, per-entry errors, atomicity.
mod bulk_registry;
/// Cloud-to-device messages: REST send, MQTT delivery, PUBACK, redelivery, bounds, feedback.
mod c2d;
/// IoT Edge registry fields: generated scopes, children, parentScopes, the rules.
mod edge;
/// Percent-encoded path separators (IoT Explorer) reach the plain paths' resources.
mod encoded_paths;
/// The event log behind the built-in Event Hub-compatible endpoint: telemetry and the hub's own
/// events, partitions, order, retention, durability.
mod event_log;
/// Hardening of the HTTPS and MQTT listeners: timeouts, connection ceilings, shutdown.
mod hardening_https;
/// Hub hardening: private state files, section clearing reaches the device.
mod hardening_hub;
/// MQTT hardening: revocation, bounded sessions, `$rid`, CONNACK for every CONNECT.
mod hardening_mqtt;
/// Hardening of REST: token scopes, number range, invalid UTF-8 in paths.
mod hardening_rest;
/// The emulator's lifetime: shutdown ends every session before the store closes; certificate renewal.
mod lifecycle;
/// Direct methods over REST, answered by an MQTT device: wire, timeouts, disconnects, limits.
mod methods;
/// Module identities and module twins over REST and MQTT, `devices.modules` queries.
mod modules;
/// MQTT CONNECT and the connection lifecycle: refusals, takeover, expiry, keep-alive, faults.
mod mqtt_connect;
/// The device twin over MQTT: GET, reported PATCH, desired pushes, topic and QoS rules.
mod mqtt_twin;
/// MQTT over WebSockets on the HTTPS port.
mod mqtt_websocket;
/// `--query-lag`: queries trail writes, GETs stay current.
mod query_lag;
/// Registry statistics through creates, disables, deletes, rollbacks and restarts.
mod registry_statistics;
/// REST: statistics, devices, authentication, error format, fault injection, shutdown.
mod rest_api;
/// The emulator binary: ready file, exports, SIGKILL durability, SIGTERM.
mod rest_durability;
/// `POST /devices/query`: paging, projections, aggregates, errors.
mod rest_query;
/// Twins over REST: merge semantics, versions, etags, limits.
mod rest_twins;
/// Device-to-cloud telemetry in the hub's telemetry buffer.
mod telemetry;
/// The shared test hub's own promises (the refusing port).
mod test_support;
