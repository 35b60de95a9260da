//! Dotenv parsing of arbitrary bytes never panics, and a reported problem
//! never quotes the input (its reason is one of our fixed phrases).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(problems) = supervisor::env::dotenv::parse(data) {
        for problem in problems {
            assert!(problem.line >= 1);
            // Reasons are short fixed phrases (a duplicate names its key): never the line.
            assert!(problem.reason.len() < 200);
        }
    }
});
