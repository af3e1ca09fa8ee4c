//! Provider modules. Each knows its API and its wire format and yields samples; none knows
//! Prometheus, the store or the scheduler.

pub mod cdnetworks;
pub mod http;
pub mod scaleengine;
pub mod text;
