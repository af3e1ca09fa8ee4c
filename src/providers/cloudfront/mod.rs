//! Amazon CloudFront (stub; the real module comes from main).

pub mod simulator;
