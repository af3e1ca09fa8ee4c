//! Integration tests, one binary (STYLE.md 12).

mod cdnetworks;
mod cli;
mod docs;
mod exporter;
mod fixtures;
mod operations;
mod signing;
mod simulator;
mod support;
mod tools;
mod web;
