//! The service REST API: one file per resource, an auth extractor, Format A errors.

mod admin;
mod api_version;
mod auth;
mod bulk;
mod devices;
mod encoded_slashes;
mod error;
mod messages;
mod methods;
mod modules;
mod query;
mod request;
mod response;
mod statistics;
mod twins;

use axum::extract::ws::WebSocketUpgrade;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, get, post};
use axum::Extension;
use axum::Router;
use tower::ServiceExt;

pub use error::ApiError;
#[cfg(feature = "fuzzing")]
pub(crate) use twins::parse_write as parse_twin_write;

use crate::hub::Hub;
use crate::mqtt::Endpoint;

/// The whole HTTPS application: service API, MQTT-over-WebSockets (through `mqtt`), emulator
/// admin.
pub fn router(hub: Hub, mqtt: Endpoint) -> Router {
    let direct_methods = Extension(mqtt.methods());
    let service = Router::new()
        .route("/statistics/devices", get(statistics::devices))
        .route("/statistics/service", get(statistics::service))
        .route("/devices", get(devices::list).post(bulk::apply))
        .route("/devices/", get(devices::list).post(bulk::apply))
        .route("/devices/query", post(query::query))
        .route("/devices/query/", post(query::query))
        .route(
            "/devices/{id}",
            get(devices::get).put(devices::put).delete(devices::delete),
        )
        .route(
            "/twins/{id}",
            get(twins::get).patch(twins::patch).put(twins::put),
        )
        .route("/devices/{id}/messages/deviceBound", post(messages::send))
        .route("/devices/{id}/messages/devicebound", post(messages::send))
        .route("/devices/{id}/commands", delete(messages::purge))
        .route(
            "/messages/serviceBound/feedback",
            get(messages::receive_feedback),
        )
        .route(
            "/messages/serviceBound/feedback/{lock}",
            delete(messages::complete_feedback),
        )
        .route(
            "/messages/serviceBound/feedback/{lock}/abandon",
            post(messages::abandon_feedback),
        )
        .route(
            "/twins/{id}/methods",
            post(methods::invoke_device).layer(direct_methods.clone()),
        )
        .route(
            "/twins/{id}/modules/{mid}/methods",
            post(methods::invoke_module).layer(direct_methods),
        )
        .route("/devices/{id}/modules", get(modules::list))
        .route(
            "/devices/{id}/modules/{mid}",
            get(modules::get).put(modules::put).delete(modules::delete),
        )
        .route(
            "/twins/{id}/modules/{mid}",
            get(twins::get_module)
                .patch(twins::patch_module)
                .put(twins::put_module),
        )
        .route_layer(axum::middleware::from_fn(api_version::require_api_version));
    let admin = Router::new()
        .route(
            "/$emulator/faults/drop-connection/{id}",
            post(admin::drop_connection),
        )
        .route(
            "/$emulator/faults/refuse-connections",
            post(admin::refuse_connections),
        )
        .route(
            "/$emulator/faults/fail-twin-operations",
            post(admin::fail_twin_operations),
        );
    let routes = service
        .merge(admin)
        .route(
            "/$iothub/websocket",
            get(move |headers: HeaderMap, ws: WebSocketUpgrade| async move {
                mqtt.websocket_upgrade(ws, &headers)
            }),
        )
        .fallback(not_found)
        .with_state(hub);
    // Routing happens on the path as sent, so encoded separators are decoded before it.
    Router::new().fallback_service(routes.map_request(encoded_slashes::decode))
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NotFound",
        "The requested resource does not exist on this hub",
    )
}
