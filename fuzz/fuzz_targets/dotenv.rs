//! Dotenv parsing of arbitrary bytes never panics, and a reported problem
//! never quotes the input: no line of it (of a length that cannot occur in
//! our phrases by chance) appears in a reason. A duplicate names its key,
//! never its value.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(problems) = supervisor::env::dotenv::parse(data) {
        let text = String::from_utf8_lossy(data);
        let lines: Vec<&str> = text.lines().map(str::trim).filter(|line| line.len() >= 12).collect();
        for problem in problems {
            assert!(problem.line >= 1);
            for line in &lines {
                assert!(!problem.reason.contains(line), "a reason quotes the input: {:?}", problem.reason);
            }
        }
    }
});
