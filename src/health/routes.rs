//! Requests → responses. Pure: a request and a snapshot in, a response out.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};

use super::status::{self, Board, Status};

pub fn answer<B>(request: &Request<B>, board: &Board) -> Response<Full<Bytes>> {
    let is_head = request.method() == Method::HEAD;
    if request.method() != Method::GET && !is_head {
        let mut response = reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "method not allowed\n".into(),
            false,
        );
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let snapshot = board.snapshot();
    let (status, reason) = snapshot.status();
    let code = if status == Status::Ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    match request.uri().path() {
        "/health" => reply(
            code,
            "application/json",
            status::health_json(&snapshot, board.uptime_seconds()),
            is_head,
        ),
        "/readyz" => {
            let body = match (status, reason) {
                (Status::Ok, _) => "ok\n".to_string(),
                (_, Some(reason)) => format!("{reason}\n"),
                (_, None) => "not ready\n".to_string(),
            };
            reply(code, "text/plain", body, is_head)
        }
        // Answering at all proves the runtime that also runs supervision is not stuck.
        "/livez" => reply(StatusCode::OK, "text/plain", "ok\n".into(), is_head),
        "/metrics" => reply(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            status::metrics_text(&snapshot, board.uptime_seconds()),
            is_head,
        ),
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n".into(), is_head),
    }
}

fn reply(code: StatusCode, content_type: &'static str, body: String, is_head: bool) -> Response<Full<Bytes>> {
    let length = body.len();
    let body = if is_head { Bytes::new() } else { Bytes::from(body) };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = code;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if is_head {
        headers.insert(hyper::header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    response
}
