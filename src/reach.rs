//! Can we reach it? A TCP connect or an HTTP GET, each bounded by a
//! timeout. Used by probes, `wait_for` and `supervisor healthcheck`.
//! Errors are short strings naming what failed; they never hold a body.

use std::time::Duration;

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Connects to `host:port`.
pub async fn tcp(address: &str, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err(format!("no connection within {}", humantime::format_duration(timeout))),
    }
}

/// GETs `url` (http:// only) and returns the status code.
pub async fn http_status(url: &str, timeout: Duration) -> Result<u16, String> {
    get(url, timeout, 0).await.map(|(status, _)| status)
}

/// GETs `url` and returns the status and the first `limit` bytes of the body.
pub async fn http_get(url: &str, timeout: Duration, limit: usize) -> Result<(u16, Vec<u8>), String> {
    get(url, timeout, limit).await
}

async fn get(url: &str, timeout: Duration, limit: usize) -> Result<(u16, Vec<u8>), String> {
    let uri: hyper::Uri = url.parse().map_err(|_| "not a valid URL".to_string())?;
    if uri.scheme_str() != Some("http") {
        return Err("only http:// URLs are supported".to_string());
    }
    let authority = uri
        .authority()
        .ok_or_else(|| "the URL has no host".to_string())?
        .clone();
    let port = uri.port_u16().unwrap_or(80);
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let attempt = async move {
        let stream = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|err| err.to_string())?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|err| err.to_string())?;
        tokio::spawn(connection);
        let request = Request::get(path)
            .header(hyper::header::HOST, authority.as_str())
            .header(hyper::header::USER_AGENT, "supervisor")
            .body(Empty::<Bytes>::new())
            .map_err(|err| err.to_string())?;
        let mut response = sender.send_request(request).await.map_err(|err| err.to_string())?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        while body.len() < limit {
            use http_body_util::BodyExt;
            match response.body_mut().frame().await {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        body.extend_from_slice(&data[..data.len().min(limit - body.len())]);
                    }
                }
                _ => break,
            }
        }
        Ok((status, body))
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {}", humantime::format_duration(timeout))),
    }
}

/// A `wait_for` or probe target is reachable: TCP connects, HTTP answers 2xx/3xx.
pub async fn target(target: &str, timeout: Duration) -> Result<(), String> {
    if let Some(address) = target.strip_prefix("tcp://") {
        return tcp(address, timeout).await;
    }
    match http_status(target, timeout).await? {
        200..=399 => Ok(()),
        code => Err(format!("answered {code}")),
    }
}
