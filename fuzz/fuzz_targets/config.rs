//! supervisor.toml: parsing, validation and `${VAR}` templates never panic.
#![no_main]

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use supervisor::config::{self, interpolate::Template, Format, Source};
use supervisor::environment::Environment;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let source = Source {
        path: PathBuf::from("supervisor.toml"),
        format: Format::Toml,
    };
    let _ = config::parse(text, source, PathBuf::from("."));
    if let Ok(template) = Template::parse(text) {
        let env: Environment = [("A", "1"), ("EMPTY", "")].into_iter().collect();
        let _ = template.expand(&env);
    }
});
