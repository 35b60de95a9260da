//! Arbitrary bytes sent to the health server's request handling (hyper's
//! parser plus our routes) never panic, never hang it (the connection ends
//! within a second of the client closing), and whatever it answers is HTTP.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use libfuzzer_sys::fuzz_target;
use supervisor::health::{routes, Board};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    let board = Board::new();
    runtime().block_on(async {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let service = hyper::service::service_fn(move |request| {
            let board = board.clone();
            async move { Ok::<_, std::convert::Infallible>(routes::answer(&request, &board)) }
        });
        let connection = http1::Builder::new().serve_connection(TokioIo::new(server), service);
        // The client writes, closes, and reads the answer while the server runs.
        let client_side = async {
            let _ = client.write_all(data).await;
            let _ = client.shutdown().await;
            let mut answer = Vec::new();
            let _ = client.read_to_end(&mut answer).await;
            answer
        };
        let (served, answer) = tokio::join!(tokio::time::timeout(Duration::from_secs(1), connection), client_side);
        assert!(
            served.is_ok(),
            "the connection did not end within 1 s of the client closing"
        );
        assert!(
            answer.is_empty() || answer.starts_with(b"HTTP/1.1 ") || answer.starts_with(b"HTTP/1.0 "),
            "not an HTTP answer: {:?}",
            String::from_utf8_lossy(&answer[..answer.len().min(80)])
        );
    });
});
