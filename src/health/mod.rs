//! The health server (SPEC §5): `/health`, `/livez`, `/readyz`, `/metrics`.
//!
//! It is started before `wait_for` and migrations, so an orchestrator sees
//! `starting` rather than a refused connection. It reads only the latest
//! [`status::Snapshot`] from the [`status::Board`]: answering never waits
//! on a probe or on the supervise loop. Connections are capped and every
//! connection has a deadline, so idle sockets, half-sent requests and
//! garbage cannot pile up or stall anything.

pub mod routes;
pub mod status;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

pub use status::{Board, Phase};

/// Open connections beyond this are closed at once: well above what probes
/// need, well below what could exhaust descriptors.
const MAX_CONNECTIONS: usize = 1024;
/// A request's headers must arrive within this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// No connection lives longer than this, keep-alive or not.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
#[error("health.listen: cannot listen on {address}: {source}{}", hint(source))]
pub struct ListenError {
    pub address: String,
    #[source]
    pub source: std::io::Error,
}

/// Binds `address` and serves in the background; returns the bound address
/// (useful with port 0).
pub async fn serve(address: &str, board: Board) -> Result<SocketAddr, ListenError> {
    let error = |source| ListenError {
        address: address.to_string(),
        source,
    };
    let listener = TcpListener::bind(address).await.map_err(error)?;
    let local = listener.local_addr().map_err(error)?;
    tokio::spawn(accept_loop(listener, board));
    Ok(local)
}

async fn accept_loop(listener: TcpListener, board: Board) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, _peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(error = %err, "health server cannot accept");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let board = board.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _ = stream.set_nodelay(true);
            let service = hyper::service::service_fn(move |request| {
                let board = board.clone();
                async move { Ok::<_, std::convert::Infallible>(routes::answer(&request, &board)) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(16 * 1024)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
        });
    }
}

/// Turns a listen address into one we can connect to (`0.0.0.0` → loopback).
pub fn local_url(listen: &str) -> String {
    let address = match listen.parse::<SocketAddr>() {
        Ok(SocketAddr::V4(v4)) if v4.ip().is_unspecified() => format!("127.0.0.1:{}", v4.port()),
        Ok(SocketAddr::V6(v6)) if v6.ip().is_unspecified() => format!("[::1]:{}", v6.port()),
        _ => listen.to_string(),
    };
    format!("http://{address}/health")
}

/// In development a second project's supervisor often holds the default port.
fn hint(source: &std::io::Error) -> &'static str {
    if source.kind() == std::io::ErrorKind::AddrInUse {
        "\nhint: another program (a second project's supervisor?) listens there: set [health] listen = \"127.0.0.1:9091\" \
         (or SUPERVISOR_HEALTH_LISTEN=9091), or \"off\""
    } else {
        ""
    }
}
