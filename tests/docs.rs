//! The docs and examples stay true: every TOML block in README.md and
//! docs/*.md, and every examples/*/supervisor.toml, parses with the real
//! config parser. (Users named in examples, such as `node`, need not exist here.)

use std::path::{Path, PathBuf};

use supervisor::config::{self, ConfigError, Format, Source};

fn toml_blocks(markdown: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (index, line) in markdown.lines().enumerate() {
        match &mut current {
            None if line.trim_start() == "```toml" => current = Some((index + 2, String::new())),
            Some(_) if line.trim_start() == "```" => blocks.extend(current.take()),
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
            None => {}
        }
    }
    blocks
}

fn check(text: &str, origin: &str) {
    let source = Source {
        path: PathBuf::from(origin),
        format: Format::Toml,
    };
    match config::parse(text, source, PathBuf::from(".")) {
        Ok(_) => {}
        Err(ConfigError::Invalid { problems }) => {
            let real: Vec<String> = problems
                .iter()
                .filter(|p| !(p.key.ends_with(".user") && p.message.contains("does not exist")))
                .map(ToString::to_string)
                .collect();
            assert!(real.is_empty(), "{origin} does not parse:\n{}", real.join("\n"));
        }
        Err(other) => panic!("{origin}: {other}"),
    }
}

/// What a newcomer relies on: the README opens with its title and the two
/// commands for a fresh machine (the main job, then the tests), stays a
/// readable size (a scripted edit once inserted a paragraph between every
/// character of it), and its own TOML examples parse.
#[test]
fn the_readme_starts_with_two_commands_and_stays_readable() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("# supervisor"),
        "README.md must start with its title"
    );
    assert_eq!(lines.next(), Some(""));
    assert_eq!(
        lines.next(),
        Some("```sh"),
        "the title is followed by the two-command block"
    );
    let commands: Vec<&str> = lines.by_ref().take_while(|line| *line != "```").collect();
    assert_eq!(commands.len(), 2, "exactly two commands: {commands:?}");
    assert!(commands[0].starts_with("./examples/basic/run.sh"), "{commands:?}");
    assert!(commands[1].starts_with("./scripts/test.sh"), "{commands:?}");
    assert!(root.join("examples/basic/run.sh").exists() && root.join("scripts/test.sh").exists());
    assert!(
        text.len() < 20_000 && text.lines().count() < 400,
        "README.md is {} bytes in {} lines: something rewrote it",
        text.len(),
        text.lines().count()
    );
    let blocks = toml_blocks(&text);
    assert!(!blocks.is_empty(), "README.md shows no supervisor.toml");
    for (line, block) in blocks {
        check(&block, &format!("README.md:{line}"));
    }
}

#[test]
fn every_toml_block_in_the_docs_parses() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for entry in std::fs::read_dir(root.join("docs")).expect("docs/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "md") {
            files.push(path);
        }
    }
    let mut checked = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read");
        for (line, block) in toml_blocks(&text) {
            check(
                &block,
                &format!("{}:{line}", file.strip_prefix(root).unwrap_or(&file).display()),
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} TOML blocks found");
}

#[test]
fn every_example_config_parses() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&root).expect("examples/") {
        let config = entry.expect("entry").path().join("supervisor.toml");
        if config.exists() {
            check(
                &std::fs::read_to_string(&config).expect("read"),
                &config.display().to_string(),
            );
            checked += 1;
        }
    }
    assert!(checked >= 1);
}

/// docs/configuration.md names every key the parser accepts: the fields of
/// the `Raw*` structs in src/config/raw.rs, read from the source so a new key
/// cannot land undocumented.
#[test]
fn the_configuration_reference_names_every_key() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let source = std::fs::read_to_string(root.join("src/config/raw.rs")).expect("raw.rs");
    let reference = std::fs::read_to_string(root.join("docs/configuration.md")).expect("configuration.md");
    let mut keys = Vec::new();
    let mut in_raw_struct = false;
    for line in source.lines() {
        let line = line.trim();
        if line.starts_with("pub struct Raw") {
            in_raw_struct = true;
        } else if line == "}" {
            in_raw_struct = false;
        } else if in_raw_struct {
            if let Some(field) = line.strip_prefix("pub ").and_then(|rest| rest.split(':').next()) {
                keys.push(field.to_string());
            }
        }
    }
    assert!(keys.len() >= 40, "found only {} keys in raw.rs: {keys:?}", keys.len());
    let missing: Vec<&String> = keys
        .iter()
        .filter(|key| {
            // A key, or a section heading such as `[migrate]` or `[process.NAME]`.
            !["`{key}`", "`[{key}]`", "`[{key}."]
                .iter()
                .any(|form| reference.contains(&form.replace("{key}", key)))
        })
        .collect();
    assert!(missing.is_empty(), "docs/configuration.md does not name {missing:?}");
}
