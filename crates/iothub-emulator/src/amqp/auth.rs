//! Tokens on the AMQP endpoint: SASL PLAIN passwords and CBS `put-token` requests, checked with
//! `iothub-auth` against the hub's shared access policies, and the grants a connection holds.
//!
//! Two signing forms reach this port. IoT Hub tools (the Azure CLI, the service SDKs) sign with
//! the policy key's decoded bytes, as everywhere else on the hub. The Event Hubs clients sign
//! with the UTF-8 bytes of the key *text*
//! (<https://learn.microsoft.com/azure/event-hubs/authenticate-shared-access-signature>), so
//! every policy key is also tried in that form.
//!
//! A token's `sr` scopes it: `{host}` alone (the IoT Hub form, or the Event Hubs namespace)
//! covers every node; `sb://{host}/{entity}/…` covers the nodes its path is a segment prefix
//! of, compared case-insensitively. The host is not checked: a local client may dial the
//! emulator as `localhost`, `127.0.0.1` or the hub's host name. A device-scoped token (no
//! `skn`) is refused.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use iothub_auth::{unix_now, ParsedSas, SharedAccessKey};
use tokio::sync::watch;

use crate::hub::{Hub, Permissions};

/// At most this many grants per connection (one per distinct scope; a client renewing its
/// tokens replaces them). Beyond it the grant expiring first is dropped.
const MAX_GRANTS_PER_CONNECTION: usize = 64;

/// One accepted token: what it covers, with which rights, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Grant {
    /// The path the token covers, lower case, without surrounding `/`; empty = every node.
    scope: String,
    /// The rights of the token's policy.
    permissions: Permissions,
    /// The token's `se` (seconds since the epoch; the grant is valid up to and including it).
    expires_at: u64,
}

/// Why a token was refused (its text never appears here).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Refused(String);

/// Checks `token` against the hub's policies at `now` (Unix seconds).
pub(crate) fn verify(hub: &Hub, token: &str, now: u64) -> Result<Grant, Refused> {
    let sas = ParsedSas::parse(token).map_err(|e| Refused(e.to_string()))?;
    let name = sas
        .policy_name()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| Refused("a device-scoped token cannot use the service endpoint".into()))?;
    let policy = hub
        .policy(name)
        .ok_or_else(|| Refused(format!("unknown shared access policy '{name}'")))?;
    let text_keys: Vec<SharedAccessKey> = [&policy.primary, &policy.secondary]
        .into_iter()
        .filter_map(|key| {
            SharedAccessKey::from_base64(&STANDARD.encode(key.expose_base64().as_bytes())).ok()
        })
        .collect();
    let mut candidates = vec![&policy.primary, &policy.secondary];
    candidates.extend(text_keys.iter());
    sas.verify_signature(&candidates)
        .map_err(|e| Refused(e.to_string()))?;
    sas.check_not_expired(now)
        .map_err(|e| Refused(e.to_string()))?;
    Ok(Grant {
        scope: scope_of(sas.resource()),
        permissions: policy.permissions,
        expires_at: sas.expires_at_unix(),
    })
}

/// The path part of a token resource (`sb://host/eh/x` → `eh/x`, `host` → ``), lower case.
fn scope_of(resource: &str) -> String {
    let without_scheme = resource
        .find("://")
        .map_or(resource, |at| &resource[at + 3..]);
    let path = without_scheme
        .find('/')
        .map_or("", |slash| &without_scheme[slash..]);
    path.trim_matches('/').to_ascii_lowercase()
}

impl Grant {
    /// Whether the token's policy has one of the rights in `needed` (anywhere).
    pub(crate) fn has_any(&self, needed: Permissions) -> bool {
        self.permissions.any_of(needed)
    }

    /// Whether this grant lets its holder use `path` (a node path as [`crate::amqp::address`]
    /// strips it) with one of the rights in `needed`.
    fn allows(&self, path: &str, needed: Permissions) -> bool {
        if !self.permissions.any_of(needed) {
            return false;
        }
        let path = path.trim_matches('/').to_ascii_lowercase();
        if self.scope.is_empty() {
            return true;
        }
        match path.strip_prefix(self.scope.as_str()) {
            Some(rest) => rest.is_empty() || rest.starts_with('/'),
            None => false,
        }
    }
}

/// The grants of one connection; link tasks watch it to close their links when the grant they
/// rely on expires, and to stay open when the client renews it in time.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionAuth {
    grants: Arc<watch::Sender<Vec<Grant>>>,
}

impl Default for ConnectionAuth {
    fn default() -> Self {
        ConnectionAuth {
            grants: Arc::new(watch::Sender::new(Vec::new())),
        }
    }
}

impl ConnectionAuth {
    /// Adds a grant (replacing one with the same scope and rights).
    pub(crate) fn add(&self, grant: Grant) {
        self.grants.send_modify(|grants| {
            grants.retain(|g| g.scope != grant.scope || g.permissions != grant.permissions);
            if grants.len() >= MAX_GRANTS_PER_CONNECTION {
                if let Some(first) = grants
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, g)| g.expires_at)
                    .map(|(i, _)| i)
                {
                    grants.remove(first);
                }
            }
            grants.push(grant);
        });
    }

    /// Until when (Unix seconds, inclusive) the connection may use `path` with one of `needed`,
    /// counting only grants still valid at `now`; `None` if it may not.
    pub(crate) fn authorized_until(
        &self,
        path: &str,
        needed: Permissions,
        now: u64,
    ) -> Option<u64> {
        self.grants
            .borrow()
            .iter()
            .filter(|g| g.expires_at >= now && g.allows(path, needed))
            .map(|g| g.expires_at)
            .max()
    }

    /// Resolves once no grant of this connection covers `path` with one of `needed` any more
    /// (at once if none does); a grant added in the meantime extends the wait.
    pub(crate) async fn expired(&self, path: &str, needed: Permissions) {
        let mut changes = self.grants.subscribe();
        loop {
            let now = unix_now();
            let Some(until) = self.authorized_until(path, needed, now) else {
                return;
            };
            // Valid up to and including second `until`.
            let wait = Duration::from_secs(until.saturating_add(1).saturating_sub(now));
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                // The sender lives in `self`, so this never fails.
                _ = changes.changed() => {}
            }
        }
    }
}

/// Reading events (and the management reads about them): ServiceConnect; the owner policy has
/// it too.
pub(crate) const READ_EVENTS: Permissions = Permissions {
    registry_read: false,
    registry_write: false,
    service_connect: true,
    device_connect: false,
};

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(scope: &str) -> Grant {
        Grant {
            scope: scope.into(),
            permissions: Permissions::ALL,
            expires_at: 100,
        }
    }

    #[test]
    fn token_resources_scope_by_path_segment_ignoring_scheme_host_and_case() {
        assert_eq!(scope_of("localhost"), "");
        assert_eq!(scope_of("h.azure-devices.net/"), "");
        assert_eq!(
            scope_of("sb://localhost:5671/Hub/ConsumerGroups/$Default"),
            "hub/consumergroups/$default"
        );
        let consumer = grant("hub/consumergroups/$default");
        assert!(consumer.allows("hub/ConsumerGroups/$Default/Partitions/0", READ_EVENTS));
        assert!(!consumer.allows("hub/ConsumerGroups/other/Partitions/0", READ_EVENTS));
        assert!(!consumer.allows("hub/$management", READ_EVENTS));
        assert!(grant("hub").allows("hub/$management", READ_EVENTS));
        assert!(!grant("hu").allows("hub/$management", READ_EVENTS));
        assert!(grant("").allows("anything", READ_EVENTS));
    }

    #[test]
    fn the_latest_grant_for_a_path_sets_the_deadline() {
        let auth = ConnectionAuth::default();
        assert_eq!(
            auth.authorized_until("hub/$management", READ_EVENTS, 50),
            None
        );
        auth.add(grant("hub"));
        auth.add(Grant {
            expires_at: 200,
            ..grant("hub")
        });
        assert_eq!(
            auth.authorized_until("hub/$management", READ_EVENTS, 50),
            Some(200)
        );
        assert_eq!(
            auth.authorized_until("hub/$management", READ_EVENTS, 201),
            None
        );
        let read_only = Grant {
            permissions: Permissions {
                registry_read: true,
                ..Permissions::default()
            },
            ..grant("")
        };
        let auth = ConnectionAuth::default();
        auth.add(read_only);
        assert_eq!(
            auth.authorized_until("hub/$management", READ_EVENTS, 50),
            None
        );
    }
}
