//! Procfile parsing never panics and never reports line 0.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(problems) = supervisor::config::procfile::parse(text) {
        assert!(problems.iter().all(|(line, _)| *line >= 1));
    }
});
