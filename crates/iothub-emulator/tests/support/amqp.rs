//! An AMQP 1.0 client for the built-in Event Hub-compatible endpoint (the `fe2o3-amqp` client,
//! over TLS trusting the emulator's CA): connections with any SASL mechanism, CBS put-token,
//! `$management` reads and partition receivers with a selector filter.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use fe2o3_amqp::connection::ConnectionHandle;
use fe2o3_amqp::link::{Receiver, Sender};
use fe2o3_amqp::sasl_profile::SaslProfile;
use fe2o3_amqp::session::SessionHandle;
use fe2o3_amqp::{Connection, Session};
use fe2o3_amqp_types::messaging::{
    AmqpValue, ApplicationProperties, Body, Message, MessageId, Properties, Source,
};
use fe2o3_amqp_types::primitives::{SimpleValue, Symbol, Value};
use iothub_auth::{SasToken, SharedAccessKey};
use iothub_emulator::test_support::TestHub;
use rumqttc::TlsConfiguration;
use serde_amqp::described::Described;
use serde_amqp::descriptor::Descriptor;

use super::mqtt::{MqttHub, WAIT};

/// Receiver link names are unique per session: numbered.
static NEXT_LINK: AtomicUsize = AtomicUsize::new(0);

/// One client connection with one session.
pub struct AmqpClient {
    pub connection: ConnectionHandle<()>,
    pub session: SessionHandle<()>,
}

/// A TLS stream to the AMQP port.
pub async fn tls_stream(hub: &TestHub) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let TlsConfiguration::Rustls(config) = hub.tls() else {
        unreachable!("rustls config")
    };
    let tcp = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, hub.emulator().amqp_port()))
        .await
        .expect("TCP connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("server name");
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .expect("TLS handshake")
}

impl AmqpClient {
    /// Connects with SASL `profile` and begins a session.
    pub async fn connect(hub: &TestHub, profile: SaslProfile) -> AmqpClient {
        let stream = tls_stream(hub).await;
        let mut connection = Connection::builder()
            .container_id("iothub-emulator-tests")
            .hostname("localhost")
            .sasl_profile(profile)
            .open_with_stream(stream)
            .await
            .expect("AMQP connection opens");
        let session = Session::begin(&mut connection)
            .await
            .expect("AMQP session begins");
        AmqpClient {
            connection,
            session,
        }
    }

    /// SASL ANONYMOUS, as the Event Hubs clients connect.
    pub async fn anonymous(hub: &TestHub) -> AmqpClient {
        AmqpClient::connect(hub, SaslProfile::Anonymous).await
    }

    /// Sends `token` to `$cbs` for `audience`; returns the response's `status-code`.
    pub async fn put_token(&mut self, token: &str, audience: &str) -> i32 {
        let mut properties = ApplicationProperties::default();
        for (key, value) in [
            ("operation", "put-token"),
            ("type", "servicebus.windows.net:sastoken"),
            ("name", audience),
        ] {
            properties
                .0
                .insert(key.into(), SimpleValue::String(value.into()));
        }
        let request = Message {
            header: None,
            delivery_annotations: None,
            message_annotations: None,
            properties: Some(Properties {
                message_id: Some(MessageId::String("cbs-1".into())),
                reply_to: Some("cbs".into()),
                ..Properties::default()
            }),
            application_properties: Some(properties),
            body: AmqpValue(Value::String(token.into())),
            footer: None,
        };
        let response = self.request("$cbs", request).await;
        assert_eq!(
            response
                .properties
                .as_ref()
                .and_then(|p| p.correlation_id.clone()),
            Some(MessageId::String("cbs-1".into())),
            "the response correlates with the request"
        );
        status_of(&response)
    }

    /// Sends a management READ of `kind` (`com.microsoft:eventhub` or `…:partition`) to
    /// `$management`; returns the status and the body.
    pub async fn read(&mut self, name: &str, kind: &str, partition: Option<&str>) -> (i32, Value) {
        let mut properties = ApplicationProperties::default();
        properties
            .0
            .insert("operation".into(), SimpleValue::String("READ".into()));
        properties
            .0
            .insert("name".into(), SimpleValue::String(name.into()));
        properties
            .0
            .insert("type".into(), SimpleValue::String(kind.into()));
        if let Some(partition) = partition {
            properties
                .0
                .insert("partition".into(), SimpleValue::String(partition.into()));
        }
        let request = Message {
            header: None,
            delivery_annotations: None,
            message_annotations: None,
            properties: Some(Properties {
                message_id: Some(MessageId::Ulong(7)),
                ..Properties::default()
            }),
            application_properties: Some(properties),
            body: AmqpValue(Value::Null),
            footer: None,
        };
        let response = self.request("$management", request).await;
        assert_eq!(
            response
                .properties
                .as_ref()
                .and_then(|p| p.correlation_id.clone()),
            Some(MessageId::Ulong(7)),
            "the correlation id keeps the message id's type"
        );
        let status = status_of(&response);
        let body = match response.body {
            Body::Value(AmqpValue(value)) => value,
            other => panic!("management response body: {other:?}"),
        };
        (status, body)
    }

    async fn request(
        &mut self,
        node: &str,
        request: Message<AmqpValue<Value>>,
    ) -> Message<Body<Value>> {
        let mut sender = Sender::attach(&mut self.session, format!("{node}-sender"), node)
            .await
            .expect("request link attaches");
        let mut receiver = Receiver::attach(&mut self.session, format!("{node}-receiver"), node)
            .await
            .expect("reply link attaches");
        sender.send(request).await.expect("request accepted");
        let delivery = tokio::time::timeout(WAIT, receiver.recv::<Body<Value>>())
            .await
            .expect("a reply in time")
            .expect("reply");
        receiver.accept(&delivery).await.expect("reply settled");
        let _ = sender.close().await;
        let _ = receiver.close().await;
        delivery.into_message()
    }

    /// Attaches a receiver on `address` with the selector filter `filter` (if any).
    pub async fn receiver(
        &mut self,
        address: &str,
        filter: Option<&str>,
    ) -> Result<Receiver, fe2o3_amqp::link::ReceiverAttachError> {
        let mut source = Source::builder().address(address);
        if let Some(expression) = filter {
            let selector = Described {
                descriptor: Descriptor::Name(Symbol::from("apache.org:selector-filter:string")),
                value: Value::String(expression.into()),
            };
            source =
                source.add_to_filter(Symbol::from("apache.org:selector-filter:string"), selector);
        }
        Receiver::builder()
            .name(format!(
                "receiver-{}",
                NEXT_LINK.fetch_add(1, Ordering::Relaxed)
            ))
            .source(source.build())
            .attach(&mut self.session)
            .await
    }

    pub async fn close(mut self) {
        let _ = self.session.end().await;
        let _ = self.connection.close().await;
    }
}

fn status_of(response: &Message<Body<Value>>) -> i32 {
    match response
        .application_properties
        .as_ref()
        .and_then(|p| p.0.get("status-code"))
    {
        Some(SimpleValue::Int(code)) => *code,
        other => panic!("status-code must be an AMQP int, got {other:?}"),
    }
}

/// An Event Hubs-style token (HMAC keyed with the key text's bytes) for `resource`, signed with
/// `policy`'s primary key, expiring at `se`.
pub fn eventhub_token(hub: &TestHub, policy: &str, resource: &str, se: u64) -> String {
    let key_text = hub
        .policy_connection(policy)
        .shared_access_key
        .expose_base64()
        .to_string();
    let text_key = SharedAccessKey::from_base64(&STANDARD.encode(key_text.as_bytes()))
        .expect("a key text of 16 to 64 bytes");
    SasToken::generate(resource, &text_key, Some(policy), se)
        .as_str()
        .to_string()
}
