//! Integration tests, one binary (STYLE.md 12).

mod backfill;
mod bunny;
mod cdnetworks;
mod cli;
mod config_hostile;
mod container;
mod docs;
mod e2e;
mod exporter;
mod fixtures;
mod hostile_clients;
mod hostile_upstreams;
mod mixin;
mod openmetrics;
mod operations;
mod props;
mod rules;
mod secrets;
mod shard;
mod signing;
mod simulator;
mod soak;
mod support;
mod tools;
mod traffic;
mod web;
