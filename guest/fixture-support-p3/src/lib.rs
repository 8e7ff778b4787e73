//! Helpers shared by the wasi:http p3 test fixtures. Not part of Reprise's guest API.
//!
//! A crate apart from `fixture-support`: the p2 fixtures must not link wasip3, whose bindings
//! would add p3 types to every p2 component.

use wasip3::http::types::{Fields, Request, Response};
use wasip3::wit_bindgen::StreamWriter;
use wasip3::{wit_future, wit_stream};

/// The request's path, without its query.
pub fn path(request: &Request) -> String {
    let path_with_query = request.get_path_with_query().unwrap_or_default();
    match path_with_query.split_once('?') {
        Some((path, _query)) => path.to_owned(),
        None => path_with_query,
    }
}

/// The value of `name` in the request's query, as written; empty if there is none.
pub fn query_value(request: &Request, name: &str) -> String {
    let path_with_query = request.get_path_with_query().unwrap_or_default();
    let query = path_with_query
        .split_once('?')
        .map_or("", |(_, query)| query);
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
        .unwrap_or_default()
        .to_owned()
}

/// A 200 response with `content-type: text/plain` and `extra` headers, without trailers, and
/// the writer of its body: the handler returns the response and writes the body after that, on
/// a task of its own (`wasip3::spawn_local`), since the host reads the body only once it has
/// the response.
pub fn text_response_with(extra: &[(&str, &[u8])]) -> (Response, StreamWriter<u8>) {
    let mut headers = vec![("content-type".to_owned(), b"text/plain".to_vec())];
    headers.extend(
        extra
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_vec())),
    );
    let headers = Fields::from_list(&headers).expect("valid headers");
    let (body_tx, body_rx) = wit_stream::new();
    let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
    drop(trailers_tx);
    let (response, _sent) = Response::new(headers, Some(body_rx), trailers_rx);
    (response, body_tx)
}

/// A 200 `text/plain` response whose body is `body`, written whole once the handler has
/// returned the response.
pub fn text_response(body: Vec<u8>) -> Response {
    let (response, mut body_tx) = text_response_with(&[]);
    wasip3::spawn_local(async move {
        let unwritten = body_tx.write_all(body).await;
        assert!(unwritten.is_empty(), "response body cut short");
    });
    response
}
