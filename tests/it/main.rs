//! Integration tests, one binary (STYLE.md 12).

mod backfill;
mod cdnetworks;
mod cli;
mod docs;
mod e2e;
mod exporter;
mod fixtures;
mod openmetrics;
mod operations;
mod props;
mod rules;
mod secrets;
mod signing;
mod simulator;
mod soak;
mod support;
mod tools;
mod web;
