//! Dotenv parsing of arbitrary bytes never panics, and a reported problem
//! never quotes the input: every reason is one of our fixed phrases, where
//! only a line number or, for a duplicate, the variable's name (never its
//! value) is filled in.
#![no_main]

use libfuzzer_sys::fuzz_target;

const FIXED: [&str; 5] = [
    "unexpected text after the closing quote",
    "expected KEY=VALUE",
    "a variable name cannot start with a digit",
    "expected KEY=VALUE (this line has no `=`)",
    "expected KEY=VALUE (names use letters, digits and `_`)",
];

fn is_number(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

fn is_ours(reason: &str) -> bool {
    if FIXED.contains(&reason) {
        return true;
    }
    if let Some(line) = reason
        .strip_prefix("the quote opened on line ")
        .and_then(|rest| rest.strip_suffix(" is never closed"))
    {
        return is_number(line);
    }
    if let Some((name, line)) = reason.split_once(" is already set on line ") {
        return !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') && is_number(line);
    }
    false
}

fuzz_target!(|data: &[u8]| {
    if let Err(problems) = supervisor::env::dotenv::parse(data) {
        for problem in problems {
            assert!(problem.line >= 1);
            assert!(is_ours(&problem.reason), "not one of our phrases: {:?}", problem.reason);
        }
    }
});
