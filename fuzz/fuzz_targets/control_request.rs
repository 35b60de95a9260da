//! The control socket's request parser: any bytes a local client sends are
//! refused with a reason or parsed within the limits, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use supervisor::control::protocol::{self, Request};

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = protocol::parse(data) {
        assert!(data.len() <= protocol::MAX_REQUEST);
        if let Request::Logs { lines, .. } = request {
            assert!(lines <= protocol::MAX_LINES);
        }
    }
});
