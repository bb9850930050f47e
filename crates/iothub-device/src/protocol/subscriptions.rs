//! The optional subscriptions (direct methods, cloud-to-device messages): which ones the
//! application asked for, which the hub granted on this connection, and pairing SUBACKs with
//! the SUBSCRIBE they answer. No I/O.
//!
//! They are opt-in, like in the official SDKs, because the hub treats a device subscribed to
//! `$iothub/methods/POST/#` as reachable for method calls. Once asked for, a feature is
//! subscribed again on every CONNACK. rumqttc reports the packet id of each SUBSCRIBE it
//! writes, in hand-over order, so the n-th `Outgoing::Subscribe` belongs to the n-th packet
//! handed over (the twin SUBSCRIBE included, with no features).

use std::collections::{BTreeSet, HashMap, VecDeque};

/// A feature that needs a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Feature {
    Methods,
    CloudToDevice,
}

/// The outcome of one feature's subscription on this connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Granted {
    Yes,
    /// The hub answered the filter with the SUBACK failure code 0x80.
    Refused,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct Subscriptions {
    connected: bool,
    wanted: BTreeSet<Feature>,
    granted: BTreeSet<Feature>,
    /// Features of each SUBSCRIBE handed over whose packet id is not known yet, in order.
    handed: VecDeque<Vec<Feature>>,
    by_pkid: HashMap<u16, Vec<Feature>>,
}

impl Subscriptions {
    /// The application asked for `feature`. Returns the features to subscribe now (empty
    /// when already wanted, or when offline: the next CONNACK subscribes).
    pub(crate) fn enable(&mut self, feature: Feature) -> Vec<Feature> {
        if !self.wanted.insert(feature) || !self.connected {
            return Vec::new();
        }
        vec![feature]
    }

    /// Whether the hub granted `feature` on the current connection.
    pub(crate) fn is_granted(&self, feature: Feature) -> bool {
        self.granted.contains(&feature)
    }

    /// A CONNACK arrived: every wanted feature is subscribed again.
    pub(crate) fn on_connected(&mut self) -> Vec<Feature> {
        self.connected = true;
        self.wanted.iter().copied().collect()
    }

    /// The connection is gone, and with it whatever was granted on it.
    pub(crate) fn on_disconnected(&mut self) {
        self.connected = false;
        self.granted.clear();
        self.handed.clear();
        self.by_pkid.clear();
    }

    /// The driver handed a SUBSCRIBE with these features (in filter order) to rumqttc.
    pub(crate) fn handed(&mut self, features: Vec<Feature>) {
        self.handed.push_back(features);
    }

    /// rumqttc wrote the oldest handed-over SUBSCRIBE with packet id `pkid`.
    pub(crate) fn on_outgoing_subscribe(&mut self, pkid: u16) {
        if let Some(features) = self.handed.pop_front() {
            if !features.is_empty() {
                self.by_pkid.insert(pkid, features);
            }
        }
    }

    /// A SUBACK with one success flag per filter (features go in their own packet, one
    /// filter each, in order). Returns each feature's outcome.
    pub(crate) fn on_suback(&mut self, pkid: u16, granted: &[bool]) -> Vec<(Feature, Granted)> {
        let Some(features) = self.by_pkid.remove(&pkid) else {
            return Vec::new();
        };
        features
            .into_iter()
            .enumerate()
            .map(|(i, feature)| {
                if granted.get(i).copied().unwrap_or(false) {
                    self.granted.insert(feature);
                    (feature, Granted::Yes)
                } else {
                    (feature, Granted::Refused)
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_feature_is_subscribed_once_now_and_again_on_every_connack() {
        let mut s = Subscriptions::default();
        assert!(s.enable(Feature::Methods).is_empty(), "offline: on CONNACK");
        assert_eq!(s.on_connected(), vec![Feature::Methods]);
        assert_eq!(
            s.enable(Feature::CloudToDevice),
            vec![Feature::CloudToDevice]
        );
        assert!(
            s.enable(Feature::CloudToDevice).is_empty(),
            "already wanted"
        );
        s.on_disconnected();
        assert_eq!(
            s.on_connected(),
            vec![Feature::Methods, Feature::CloudToDevice]
        );
    }

    #[test]
    fn subacks_are_paired_by_hand_over_order() {
        let mut s = Subscriptions::default();
        s.on_connected();
        s.handed(Vec::new()); // the twin SUBSCRIBE
        s.handed(vec![Feature::Methods, Feature::CloudToDevice]);
        s.on_outgoing_subscribe(1);
        s.on_outgoing_subscribe(2);
        assert!(s.on_suback(1, &[true, true]).is_empty());
        assert_eq!(
            s.on_suback(2, &[true, false]),
            vec![
                (Feature::Methods, Granted::Yes),
                (Feature::CloudToDevice, Granted::Refused)
            ]
        );
        assert!(s.is_granted(Feature::Methods));
        assert!(!s.is_granted(Feature::CloudToDevice));
        s.on_disconnected();
        assert!(!s.is_granted(Feature::Methods));
    }

    #[test]
    fn a_lost_connection_forgets_unanswered_subscribes() {
        let mut s = Subscriptions::default();
        s.on_connected();
        s.handed(vec![Feature::Methods]);
        s.on_disconnected();
        s.on_connected();
        s.handed(Vec::new());
        s.on_outgoing_subscribe(1);
        assert!(s.on_suback(1, &[true]).is_empty());
    }
}
