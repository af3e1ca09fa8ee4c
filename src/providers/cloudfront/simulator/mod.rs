//! Placeholder until the simulated AWS APIs land (branch cf-sim).

use std::sync::Arc;

use crate::providers::common::simulator::SimState;
use crate::providers::registry::{SimPart, SimRouter};

/// Where the simulator serves the AWS APIs.
pub const BASE_PATH: &str = "/aws";

/// A simulated AWS account.
#[derive(Debug, Clone, Default)]
pub struct SimAccount;

/// The routes (none yet).
pub fn routes(router: SimRouter) -> SimRouter {
    router
}

/// Nothing to describe yet.
pub fn describe(_: &SimState, _: &str) -> String {
    String::new()
}

/// No demo account yet.
pub fn demo_toml(_: &str) -> String {
    String::new()
}

/// The part.
pub fn part(accounts: Vec<SimAccount>) -> SimPart {
    Box::new(Arc::new(accounts))
}

/// No demo accounts yet.
pub fn demo_accounts() -> Vec<SimAccount> {
    Vec::new()
}
