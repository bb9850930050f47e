//! SAS authentication of service requests and the permission check.
//!
//! A request must carry `Authorization: SharedAccessSignature …` signed with a hub-level policy
//! key (`skn`); device-scoped tokens (no `skn`) reach no service endpoint. The token's `sr` must
//! cover `{hostname}{path}` (host case-insensitive, ports ignored, prefix by whole segment).
//!
//! Both sides are compared in one canonical form, the one the router serves: `sr` as the token
//! carries it once its own encoding is undone, the path with each segment percent-decoded exactly
//! as axum decodes `{id}`. So a token for `…/devices/a#b` reaches `/devices/a%23b`, and a token
//! for `…/devices/dev%31` reaches the device named `dev%31`, never `dev1`.
//!
//! Permissions per operation (ARCHITECTURE.md#sas-tokens; the permission names are those of
//! <https://learn.microsoft.com/azure/iot-hub/authenticate-authorize-sas>; where the docs and practice disagree, either is accepted):
//! - registry reads (`GET /devices…`, `GET /statistics/devices`): RegistryRead;
//! - registry writes (`PUT`/`DELETE /devices/{id}`): RegistryWrite;
//! - twin GET: ServiceConnect or RegistryRead; twin PATCH/PUT: ServiceConnect or RegistryWrite
//!   (so `registryRead` cannot write twins: 401);
//! - query and `GET /statistics/service`: ServiceConnect or RegistryRead;
//! - fault-injection admin endpoints: the `iothubowner` policy only.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use iothub_auth::{unix_now, ParsedSas};
use percent_encoding::percent_decode_str;

use super::error::ApiError;
use crate::hub::{Hub, Permissions};

/// An authenticated service caller.
#[derive(Debug, Clone)]
pub struct Caller {
    policy: String,
    permissions: Permissions,
}

/// What an operation needs: any one of these permissions.
pub mod need {
    use crate::hub::Permissions;

    const NONE: Permissions = Permissions {
        registry_read: false,
        registry_write: false,
        service_connect: false,
        device_connect: false,
    };

    /// RegistryRead.
    pub const REGISTRY_READ: Permissions = Permissions {
        registry_read: true,
        ..NONE
    };
    /// RegistryWrite.
    pub const REGISTRY_WRITE: Permissions = Permissions {
        registry_write: true,
        ..NONE
    };
    /// ServiceConnect or RegistryRead.
    pub const SERVICE_OR_READ: Permissions = Permissions {
        registry_read: true,
        service_connect: true,
        ..NONE
    };
    /// ServiceConnect or RegistryWrite.
    pub const SERVICE_OR_WRITE: Permissions = Permissions {
        registry_write: true,
        service_connect: true,
        ..NONE
    };
}

impl Caller {
    /// Succeeds when the caller's policy has any permission of `needed`.
    ///
    /// # Errors
    /// 401 naming the policy.
    pub fn require(&self, needed: Permissions) -> Result<(), ApiError> {
        if self.permissions.any_of(needed) {
            Ok(())
        } else {
            Err(ApiError::unauthorized(format!(
                "Authorization rule '{}' does not allow access for this operation",
                self.policy
            )))
        }
    }

    /// Succeeds for the owner policy only.
    ///
    /// # Errors
    /// 401 for every other policy.
    pub fn require_owner(&self) -> Result<(), ApiError> {
        if self.policy == "iothubowner" {
            Ok(())
        } else {
            Err(ApiError::unauthorized(
                "the emulator admin endpoints need the iothubowner policy",
            ))
        }
    }
}

impl FromRequestParts<Hub> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, hub: &Hub) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get("authorization")
            .ok_or_else(|| ApiError::unauthorized("Authorization header missing"))?
            .to_str()
            .map_err(|_| ApiError::unauthorized("Authorization header is not ASCII"))?;
        let sas = ParsedSas::parse(header).map_err(ApiError::unauthorized)?;
        let name = sas.policy_name().filter(|n| !n.is_empty()).ok_or_else(|| {
            ApiError::unauthorized("a device-scoped token cannot access service endpoints")
        })?;
        let policy = hub.policy(name).ok_or_else(|| {
            ApiError::unauthorized(format!("unknown shared access policy '{name}'"))
        })?;
        sas.verify_signature(&[&policy.primary, &policy.secondary])
            .map_err(ApiError::unauthorized)?;
        sas.check_not_expired(unix_now())
            .map_err(ApiError::unauthorized)?;
        let resource = format!("{}{}", hub.hostname(), decoded_path(parts.uri.path())?);
        if !sas.covers(&resource) {
            return Err(ApiError::unauthorized(format!(
                "the token's resource does not cover '{resource}'"
            )));
        }
        Ok(Caller {
            policy: policy.name,
            permissions: policy.permissions,
        })
    }
}

/// The path as the router sees it: every segment percent-decoded (`+` stays `+`). A `/` that a
/// segment decodes to stays `%2F`, so decoding never moves a segment boundary.
///
/// # Errors
/// 400 `ArgumentInvalid` for a segment that is not UTF-8 once decoded.
fn decoded_path(path: &str) -> Result<String, ApiError> {
    let segments: Result<Vec<String>, ApiError> = path
        .split('/')
        .map(|segment| {
            percent_decode_str(segment)
                .decode_utf8()
                .map(|decoded| decoded.replace('/', "%2F"))
                .map_err(|_| ApiError::invalid_utf8_path(segment))
        })
        .collect();
    Ok(segments?.join("/"))
}

#[cfg(test)]
mod tests {
    use super::decoded_path;

    #[test]
    fn segments_decode_like_the_router() {
        assert_eq!(decoded_path("/devices/a%23b").unwrap(), "/devices/a#b");
        assert_eq!(
            decoded_path("/devices/dev%2531").unwrap(),
            "/devices/dev%31"
        );
        assert_eq!(decoded_path("/devices/a+b").unwrap(), "/devices/a+b");
        assert_eq!(decoded_path("/devices/a%2Fb").unwrap(), "/devices/a%2Fb");
        assert_eq!(decoded_path("/devices/d%C3%A9").unwrap(), "/devices/dé");
        assert!(decoded_path("/devices/%FF").is_err());
    }
}
