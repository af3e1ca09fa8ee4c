//! What every provider shares: the HTTP plumbing and the limits each request passes
//! ([`http`]), the cells and bounded lists of answers ([`wire`]) and HMAC signing ([`sign`]).

pub mod http;
pub mod limits;
pub mod sign;
pub mod sigv4;
pub mod simulator;
pub mod wire;
