//! Where to dial and who to claim to be: derived from the connection string and transport.
//!
//! `HostName` is the identity (MQTT username, SAS `sr`); `GatewayHostName`, when present, is
//! where the TCP/TLS connection goes and the TLS server name. Either may carry `:port`; the
//! dial port is the gateway's, else the host name's, else the transport default.

use iothub_auth::DeviceConnectionString;

use crate::error::Error;
use crate::options::TransportKind;

/// The api-version our topics and payloads follow (what the docs and the Node SDK send).
pub(crate) const API_VERSION: &str = "2021-04-12";

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// Hub host name without port: the identity in the username.
    identity_host: String,
    device_id: String,
    module_id: Option<String>,
    pub(crate) dial_host: String,
    pub(crate) dial_port: u16,
    transport: TransportKind,
}

impl Endpoint {
    pub(crate) fn new(
        conn: &DeviceConnectionString,
        transport: TransportKind,
    ) -> Result<Endpoint, Error> {
        let (dial_host, explicit_port) = match conn.gateway_host_name.as_deref() {
            Some(gateway) => {
                let (host, port) = split_host_port(gateway)?;
                (host.to_owned(), port.or(conn.port()))
            }
            None => (conn.host().to_owned(), conn.port()),
        };
        if dial_host.is_empty() {
            return Err(Error::Config("empty host name".into()));
        }
        Ok(Endpoint {
            identity_host: conn.host().to_owned(),
            device_id: conn.device_id.clone(),
            module_id: conn.module_id.clone(),
            dial_host,
            dial_port: explicit_port.unwrap_or(transport.default_port()),
            transport,
        })
    }

    /// MQTT client id: `{device}` or `{device}/{module}`.
    pub(crate) fn client_id(&self) -> String {
        match &self.module_id {
            Some(m) => format!("{}/{m}", self.device_id),
            None => self.device_id.clone(),
        }
    }

    /// `{host}/{client id}/?api-version=…&DeviceClientType=…`
    /// (<https://learn.microsoft.com/azure/iot/iot-mqtt-connect-to-iot-hub>).
    pub(crate) fn username(&self, product_info: &str) -> String {
        let mut u = format!(
            "{}/{}/?api-version={API_VERSION}",
            self.identity_host,
            self.client_id()
        );
        if !product_info.is_empty() {
            u.push_str("&DeviceClientType=");
            u.push_str(&iothub_auth::encode_component(product_info));
        }
        u
    }

    /// What rumqttc takes as broker address: the host for TLS, the URL for WebSockets.
    pub(crate) fn broker_addr(&self) -> String {
        match self.transport {
            TransportKind::Mqtt => self.dial_host.clone(),
            TransportKind::MqttWebSockets => format!(
                "wss://{}:{}/$iothub/websocket",
                bracket_ipv6(&self.dial_host),
                self.dial_port
            ),
        }
    }

    /// `host:port (transport)`, for messages.
    pub(crate) fn label(&self) -> String {
        format!(
            "{}:{} ({})",
            self.dial_host,
            self.dial_port,
            self.transport.as_str()
        )
    }
}

fn split_host_port(s: &str) -> Result<(&str, Option<u16>), Error> {
    // A bare IPv6 literal has several colons and no port.
    if s.matches(':').count() > 1 && !s.starts_with('[') {
        return Ok((s, None));
    }
    match s.rsplit_once(':') {
        Some((host, port)) => {
            let port = port
                .parse::<u16>()
                .map_err(|_| Error::Config(format!("GatewayHostName has an invalid port: {s}")))?;
            Ok((
                host.trim_start_matches('[').trim_end_matches(']'),
                Some(port),
            ))
        }
        None => Ok((s, None)),
    }
}

fn bracket_ipv6(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(s: &str) -> DeviceConnectionString {
        s.parse().expect("test connection string")
    }

    const KEY: &str = "NMgJDvdKTxjLi+xBxxkDDEwDJxEvOE5u8BiT0mVgPeg=";

    #[test]
    fn plain_host_uses_transport_default_ports() {
        let c = conn(&format!(
            "HostName=myhub.azure-devices.net;DeviceId=dev1;SharedAccessKey={KEY}"
        ));
        let e = Endpoint::new(&c, TransportKind::Mqtt).unwrap();
        assert_eq!(
            (e.dial_host.as_str(), e.dial_port),
            ("myhub.azure-devices.net", 8883)
        );
        assert_eq!(e.broker_addr(), "myhub.azure-devices.net");
        assert_eq!(e.client_id(), "dev1");
        assert_eq!(
            e.username("iothub-twins/0.1.0"),
            "myhub.azure-devices.net/dev1/?api-version=2021-04-12&DeviceClientType=iothub-twins%2F0.1.0"
        );
        let ws = Endpoint::new(&c, TransportKind::MqttWebSockets).unwrap();
        assert_eq!(ws.dial_port, 443);
        assert_eq!(
            ws.broker_addr(),
            "wss://myhub.azure-devices.net:443/$iothub/websocket"
        );
    }

    #[test]
    fn host_name_port_is_dialled_but_not_part_of_the_identity() {
        let c = conn(&format!(
            "HostName=localhost:18883;DeviceId=d;SharedAccessKey={KEY}"
        ));
        let e = Endpoint::new(&c, TransportKind::Mqtt).unwrap();
        assert_eq!((e.dial_host.as_str(), e.dial_port), ("localhost", 18883));
        assert_eq!(e.username(""), "localhost/d/?api-version=2021-04-12");
        let ws = Endpoint::new(&c, TransportKind::MqttWebSockets).unwrap();
        assert_eq!(ws.broker_addr(), "wss://localhost:18883/$iothub/websocket");
    }

    #[test]
    fn gateway_is_dialled_and_host_name_is_the_identity() {
        let c = conn(&format!(
            "HostName=myhub.azure-devices.net;DeviceId=d;GatewayHostName=localhost:18883;SharedAccessKey={KEY}"
        ));
        let e = Endpoint::new(&c, TransportKind::Mqtt).unwrap();
        assert_eq!((e.dial_host.as_str(), e.dial_port), ("localhost", 18883));
        assert!(e.username("").starts_with("myhub.azure-devices.net/d/?"));

        let c = conn(&format!(
            "HostName=myhub.azure-devices.net;DeviceId=d;GatewayHostName=edge.local;SharedAccessKey={KEY}"
        ));
        let e = Endpoint::new(&c, TransportKind::Mqtt).unwrap();
        assert_eq!((e.dial_host.as_str(), e.dial_port), ("edge.local", 8883));
    }

    #[test]
    fn modules_use_device_slash_module() {
        let c = conn(&format!(
            "HostName=h.net;DeviceId=d;ModuleId=m;SharedAccessKey={KEY}"
        ));
        let e = Endpoint::new(&c, TransportKind::Mqtt).unwrap();
        assert_eq!(e.client_id(), "d/m");
        assert_eq!(e.username(""), "h.net/d/m/?api-version=2021-04-12");
    }

    #[test]
    fn bad_gateway_port_is_a_config_error() {
        // The auth parser already refuses this; a struct built in code can still carry it.
        let mut c = conn(&format!("HostName=h.net;DeviceId=d;SharedAccessKey={KEY}"));
        c.gateway_host_name = Some("gw:http".into());
        assert!(matches!(
            Endpoint::new(&c, TransportKind::Mqtt),
            Err(Error::Config(_))
        ));
    }

    #[test]
    fn product_info_is_percent_encoded() {
        assert_eq!(
            iothub_auth::encode_component("a b/(c);é"),
            "a%20b%2F%28c%29%3B%C3%A9"
        );
    }
}
