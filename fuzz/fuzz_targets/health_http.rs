//! Arbitrary bytes sent to the health server's request handling (hyper's
//! parser plus our routes) never panic, and never hang it.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use libfuzzer_sys::fuzz_target;
use supervisor::health::{routes, Board};
use tokio::io::AsyncWriteExt;

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
        let _ = client.write_all(data).await;
        let _ = client.shutdown().await;
        let _ = tokio::time::timeout(Duration::from_secs(1), connection).await;
    });
});
