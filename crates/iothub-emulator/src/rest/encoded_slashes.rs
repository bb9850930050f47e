//! Paths whose separators arrive percent-encoded. Azure IoT Explorer sends every REST call as
//! `/twins%2F{id}` or `/devices%2F{id}%2Fmessages%2FdeviceBound`, and the real hub answers them
//! as if the slashes were plain. Device and module ids cannot contain `/`, so an encoded slash
//! can only ever be a separator; decoding it before routing never changes which resource a
//! well-formed request names (a `%` in an id reaches the hub as `%25`, which stays as it is).

use axum::http::uri::{PathAndQuery, Uri};
use axum::http::Request;

/// The request with every `%2F` / `%2f` in its path turned into `/`; anything else unchanged.
pub(super) fn decode<B>(mut request: Request<B>) -> Request<B> {
    if let Some(uri) = decoded_uri(request.uri()) {
        *request.uri_mut() = uri;
    }
    request
}

fn decoded_uri(uri: &Uri) -> Option<Uri> {
    let path = uri.path();
    if !path.contains("%2F") && !path.contains("%2f") {
        return None;
    }
    let path = path.replace("%2F", "/").replace("%2f", "/");
    let path_and_query = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(path_and_query).ok()?);
    Uri::from_parts(parts).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path_of(uri: &str) -> String {
        let request = Request::builder().uri(uri).body(()).unwrap();
        decode(request).uri().to_string()
    }

    #[test]
    fn encoded_separators_become_plain_and_the_query_stays() {
        assert_eq!(
            path_of("/twins%2FprobeDev?api-version=2021-04-12"),
            "/twins/probeDev?api-version=2021-04-12"
        );
        assert_eq!(
            path_of("/devices%2fd1%2Fmessages%2FdeviceBound"),
            "/devices/d1/messages/deviceBound"
        );
    }

    #[test]
    fn other_escapes_are_left_alone() {
        assert_eq!(path_of("/devices/a%252Fb"), "/devices/a%252Fb");
        assert_eq!(path_of("/devices/a%23b?x=%2F"), "/devices/a%23b?x=%2F");
    }
}
