//! Helpers shared by the wasi:http p2 test fixtures. Not part of Reprise's guest API.

use std::io::Write as _;

use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

/// The request's path, without its query.
pub fn path(request: &IncomingRequest) -> String {
    let path_with_query = request.path_with_query().unwrap_or_default();
    match path_with_query.split_once('?') {
        Some((path, _query)) => path.to_owned(),
        None => path_with_query,
    }
}

/// Answers 200 with `content-type: text/plain` and `body`.
pub fn respond(out: ResponseOutparam, body: &str) {
    respond_bytes(out, body.as_bytes());
}

/// Answers 200 with `content-type: text/plain` and the raw `body`.
pub fn respond_bytes(out: ResponseOutparam, body: &[u8]) {
    respond_with_status(out, 200, body);
}

/// Answers `status` with `content-type: text/plain` and the raw `body`.
pub fn respond_with_status(out: ResponseOutparam, status: u16, body: &[u8]) {
    let headers = Fields::from_list(&[("content-type".to_owned(), b"text/plain".to_vec())])
        .expect("valid header");
    let response = OutgoingResponse::new(headers);
    response.set_status_code(status).expect("valid status");
    let outgoing_body = response.body().expect("body taken once");
    ResponseOutparam::set(out, Ok(response));
    let mut stream = outgoing_body.write().expect("stream taken once");
    stream.write_all(body).expect("write body");
    stream.flush().expect("flush body");
    drop(stream);
    OutgoingBody::finish(outgoing_body, None).expect("finish body");
}
