//! Integration tests: the real binary, as PID 1 of a fresh PID namespace
//! wherever PID-1 behaviour is what is being tested. One crate, one file per
//! behaviour, named after SPEC's sections.

mod support;

mod cli;
mod config_errors;
mod control;
mod cron;
mod dev;
mod docs;
mod drain;
mod env_check;
mod examples;
mod exit_codes;
mod faults;
mod health;
mod lease;
mod lifecycle;
mod logs;
mod migrate;
mod reaping;
mod restarts;
mod security;
mod signals;
mod static_binary;
mod tls;
mod tools;
