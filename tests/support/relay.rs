//! A TCP relay the test can freeze: a NAT, load balancer or proxy that stops
//! forwarding while keeping both connections open, so neither end ever sees
//! the other go away.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Relay {
    pub port: u16,
    frozen: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    /// Listens on a free loopback port and forwards every connection to `target`.
    pub fn start(target: u16) -> Relay {
        Relay::start_on(0, target)
    }

    /// The same on a given port (0: any free one).
    pub fn start_on(port: u16, target: u16) -> Relay {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the relay");
        let port = listener.local_addr().expect("relay address").port();
        let frozen = Arc::new(AtomicBool::new(false));
        let streams = Arc::new(Mutex::new(Vec::new()));
        let (frozen_for_accept, streams_for_accept) = (frozen.clone(), streams.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let mut all = streams_for_accept.lock().expect("relay streams");
                for (from, to) in [(&client, &server), (&server, &client)] {
                    let (from, to) = (from.try_clone().expect("clone"), to.try_clone().expect("clone"));
                    let frozen = frozen_for_accept.clone();
                    std::thread::spawn(move || pump(from, to, &frozen));
                }
                all.push(client);
                all.push(server);
            }
        });
        Relay { port, frozen, streams }
    }

    /// Stops forwarding; every connection stays open.
    pub fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }

    /// Closes every connection it relays, both sides: the path is gone.
    pub fn cut(&self) {
        for stream in self.streams.lock().expect("relay streams").drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
    }
}

/// Copies `from` → `to` until either closes; while frozen, reads nothing
/// (the kernel's buffers fill, and the sender's writes stall).
fn pump(mut from: TcpStream, mut to: TcpStream, frozen: &AtomicBool) {
    let mut buffer = [0u8; 16 * 1024];
    loop {
        while frozen.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
            if from.peer_addr().is_err() {
                return;
            }
        }
        let _ = from.set_read_timeout(Some(Duration::from_millis(50)));
        match from.read(&mut buffer) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => {
                if frozen.load(Ordering::SeqCst) {
                    // Swallowed, as a frozen middlebox would.
                    continue;
                }
                if to.write_all(&buffer[..n]).is_err() {
                    return;
                }
            }
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => {
                let _ = to.shutdown(Shutdown::Both);
                return;
            }
        }
    }
}
