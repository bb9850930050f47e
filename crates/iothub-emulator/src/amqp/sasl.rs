//! The SASL layer: the mechanisms the IoT Hub and Event Hubs clients use.
//!
//! - `MSSBCBS` (uamqp-based clients) and `ANONYMOUS` (the Event Hubs clients) authenticate
//!   nothing here; the client then sends its tokens to the `$cbs` node, and no other link is
//!   usable before that.
//! - `PLAIN` (the Azure CLI and the C SDK): authcid `{policy}@sas.root.{hubname}`, password an
//!   IoT Hub SAS token, checked like a CBS token; it grants the whole connection what the
//!   token allows.
//!
//! The mechanism list goes out as an AMQP array of symbols, as uamqp-c requires.

use fe2o3_amqp::acceptor::sasl_acceptor::{SaslAcceptor, SaslServerFrame};
use fe2o3_amqp_types::primitives::{Array, Symbol};
use fe2o3_amqp_types::sasl::{SaslCode, SaslInit, SaslOutcome, SaslResponse};
use iothub_auth::unix_now;
use tracing::debug;

use super::auth::{self, ConnectionAuth};
use crate::hub::Hub;

const MSSBCBS: &str = "MSSBCBS";
const PLAIN: &str = "PLAIN";
const ANONYMOUS: &str = "ANONYMOUS";

/// One connection's SASL negotiation; a PLAIN token's grant lands in `auth`.
#[derive(Debug, Clone)]
pub(crate) struct Sasl {
    hub: Hub,
    auth: ConnectionAuth,
}

impl Sasl {
    pub(crate) fn new(hub: Hub, auth: ConnectionAuth) -> Self {
        Sasl { hub, auth }
    }

    fn plain(&self, init: &SaslInit) -> SaslCode {
        let Some(response) = init.initial_response.as_ref() else {
            return SaslCode::Auth;
        };
        let mut parts = response.as_slice().split(|b| *b == 0);
        let (Some(_authzid), Some(authcid), Some(password)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return SaslCode::Auth;
        };
        let (Ok(authcid), Ok(password)) =
            (std::str::from_utf8(authcid), std::str::from_utf8(password))
        else {
            return SaslCode::Auth;
        };
        // `{policy}@sas.root.{hubname}`: the token names its policy itself (`skn`), which is
        // what the key is looked up by.
        if !authcid.contains("@sas.root.") {
            debug!(%authcid, "SASL PLAIN refused: the user name is not {{policy}}@sas.root.{{hub}}");
            return SaslCode::Auth;
        }
        match auth::verify(&self.hub, password, unix_now()) {
            Ok(grant) => {
                self.auth.add(grant);
                SaslCode::Ok
            }
            Err(refused) => {
                debug!(%authcid, %refused, "SASL PLAIN refused");
                SaslCode::Auth
            }
        }
    }
}

fn outcome(code: SaslCode) -> SaslServerFrame {
    SaslServerFrame::Outcome(SaslOutcome {
        code,
        additional_data: None,
    })
}

impl SaslAcceptor for Sasl {
    fn mechanisms(&self) -> Array<Symbol> {
        Array::from(vec![
            Symbol::from(MSSBCBS),
            Symbol::from(PLAIN),
            Symbol::from(ANONYMOUS),
        ])
    }

    fn on_init(&mut self, init: SaslInit) -> SaslServerFrame {
        match init.mechanism.as_str() {
            MSSBCBS | ANONYMOUS => outcome(SaslCode::Ok),
            PLAIN => outcome(self.plain(&init)),
            other => {
                debug!(mechanism = other, "SASL mechanism not offered");
                outcome(SaslCode::Auth)
            }
        }
    }

    fn on_response(&mut self, _response: SaslResponse) -> SaslServerFrame {
        // None of the offered mechanisms sends a challenge, so a response is out of sequence.
        outcome(SaslCode::Sys)
    }
}
