//! cdn-usage-exporter: polls CDN provider APIs (ScaleEngine, CDNetworks) and serves their
//! usage and billing figures as Prometheus gauges.
//!
//! Data flows one way: [`config`] → [`scheduler`] runs one task per [`job`] → a provider in
//! [`providers`] fetches and normalizes → [`store`] keeps each job's samples and renders the
//! exposition once per change → [`server`] hands out the cached body.

#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod app;
pub mod backfill;
pub mod bill;
pub mod config;
pub mod currency;
pub mod demo;
pub mod exposition;
pub mod families;
pub mod focus;
pub mod forecast;
pub mod html;
pub mod job;
pub mod memory;
pub mod process;
pub mod providers;
pub mod ratelimit;
pub mod scheduler;
pub mod secret;
pub mod server;
pub mod shard;
pub mod simulator;
pub mod spend;
pub mod status;
pub mod store;
pub mod text;
pub mod timeutil;
pub mod validate;
pub mod web;
