//! Can we reach it? A TCP connect or an HTTP GET, each bounded by a
//! timeout. Used by probes, `wait_for` and `supervisor healthcheck`.
//! Errors say what failed in a few words; they never hold a body.

use std::time::Duration;

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Why a target could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ReachError {
    #[error("{0}")]
    Connect(#[source] std::io::Error),
    #[error("no connection within {}", humantime::format_duration(*.0))]
    ConnectTimeout(Duration),
    #[error("no answer within {}", humantime::format_duration(*.0))]
    AnswerTimeout(Duration),
    #[error("not a valid URL")]
    BadUrl,
    #[error("only http:// URLs are supported")]
    NotHttp,
    #[error("the URL has no host")]
    NoHost,
    #[error("{0}")]
    Http(#[source] hyper::Error),
    #[error("{0}")]
    Request(#[source] hyper::http::Error),
    #[error("answered {0}")]
    Status(u16),
    #[error("not a reachable target")]
    NotATarget,
}

/// Connects to `host:port`.
pub async fn tcp(address: &str, timeout: Duration) -> Result<(), ReachError> {
    match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) => Err(ReachError::Connect(err)),
        Err(_) => Err(ReachError::ConnectTimeout(timeout)),
    }
}

/// GETs `url` (http:// only) and returns the status code.
pub async fn http_status(url: &str, timeout: Duration) -> Result<u16, ReachError> {
    http_get(url, timeout, 0).await.map(|(status, _)| status)
}

/// GETs `url` and returns the status and the first `limit` bytes of the body.
pub async fn http_get(url: &str, timeout: Duration, limit: usize) -> Result<(u16, Vec<u8>), ReachError> {
    let uri: hyper::Uri = url.parse().map_err(|_| ReachError::BadUrl)?;
    if uri.scheme_str() != Some("http") {
        return Err(ReachError::NotHttp);
    }
    let authority = uri.authority().ok_or(ReachError::NoHost)?.clone();
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
            .map_err(ReachError::Connect)?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(ReachError::Http)?;
        tokio::spawn(connection);
        let request = Request::get(path)
            .header(hyper::header::HOST, authority.as_str())
            .header(hyper::header::USER_AGENT, "supervisor")
            .body(Empty::<Bytes>::new())
            .map_err(ReachError::Request)?;
        let mut response = sender.send_request(request).await.map_err(ReachError::Http)?;
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
        Err(_) => Err(ReachError::AnswerTimeout(timeout)),
    }
}

/// The `host:port` a `tcp://` target or a service URL names
/// (`redis://:pw@cache:6379/0`, `postgres://app@db/app`, `amqp://…`), with
/// the scheme's usual port when none is given, so the `${REDIS_URL}` the app
/// uses can be waited on as it is. `tcp://` needs its port.
pub fn service_address(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let usual_port = match scheme {
        "tcp" => None,
        "redis" | "rediss" | "valkey" => Some(6379),
        "postgres" | "postgresql" => Some(5432),
        "mysql" | "mariadb" => Some(3306),
        "amqp" => Some(5672),
        "amqps" => Some(5671),
        "mongodb" => Some(27017),
        "nats" => Some(4222),
        "memcached" => Some(11211),
        "kafka" => Some(9092),
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let (host, port) = match host_port.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']')?;
            (format!("[{host}]"), after.strip_prefix(':'))
        }
        None => match host_port.rsplit_once(':') {
            Some((host, port)) => (host.to_string(), Some(port)),
            None => (host_port.to_string(), None),
        },
    };
    if host.is_empty() || host.contains(',') {
        return None;
    }
    let port = match port {
        Some(port) => port.parse::<u16>().ok()?,
        None => usual_port?,
    };
    Some(format!("{host}:{port}"))
}

/// A URL as it may be shown: `redis://***@cache:6379` for `redis://:pw@cache:6379`.
pub fn without_credentials(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => url.to_string(),
    }
}

/// A `wait_for` or probe target is reachable: TCP connects (`tcp://`, a
/// service URL), HTTP answers 2xx/3xx.
pub async fn target(target: &str, timeout: Duration) -> Result<(), ReachError> {
    if !target.starts_with("http://") {
        let address = service_address(target).ok_or(ReachError::NotATarget)?;
        return tcp(&address, timeout).await;
    }
    match http_status(target, timeout).await? {
        200..=399 => Ok(()),
        code => Err(ReachError::Status(code)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_urls_name_their_host_and_port() {
        let cases = [
            ("tcp://redis:6379", Some("redis:6379")),
            ("tcp://redis", None),
            ("redis://:s3cret@cache.internal:6380/0", Some("cache.internal:6380")),
            ("rediss://default:pw@cache", Some("cache:6379")),
            ("postgres://app:pw@db/app?sslmode=require", Some("db:5432")),
            ("mysql://root@[::1]:3307/shop", Some("[::1]:3307")),
            ("amqp://guest:guest@rabbit", Some("rabbit:5672")),
            ("mongodb://a,b,c/db", None),
            ("ftp://x:21", None),
            ("redis://:pw@", None),
        ];
        for (url, expected) in cases {
            assert_eq!(service_address(url).as_deref(), expected, "{url}");
        }
        assert_eq!(
            without_credentials("redis://:s3cret@cache:6379/0"),
            "redis://***@cache:6379/0"
        );
        assert_eq!(without_credentials("tcp://redis:6379"), "tcp://redis:6379");
    }
}
