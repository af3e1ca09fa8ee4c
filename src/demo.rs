//! `demo`: the simulator and the exporter in one process, wired by a configuration made of every
//! provider's demo account (see the registry).

use crate::config::{Config, ConfigError};
use crate::providers::registry;

/// How the demo's configuration is named in messages.
pub const SOURCE_NAME: &str = "the embedded demo configuration";

/// The demo configuration's TOML, pointing at a simulator listening on `addr` (`host:port`).
pub fn toml(addr: &str) -> String {
    registry::demo_toml(addr)
}

/// The demo configuration pointing at a simulator listening on `addr`.
pub fn config(addr: &str) -> Result<Config, ConfigError> {
    Config::from_toml_str(&toml(addr), SOURCE_NAME)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulator::demo_state;

    #[test]
    fn demo_credentials_match_the_simulator() {
        let toml = toml("127.0.0.1:1");
        let state = demo_state();
        let (se, cdn) = (state.scaleengine(), state.cdnetworks());
        assert!(!se.is_empty() && !cdn.is_empty(), "the demo serves every provider");
        assert!(se.iter().any(|a| toml.contains(&a.api_key) && toml.contains(&a.api_secret)));
        assert!(cdn.iter().any(|a| toml.contains(&a.api_key) && toml.contains(&a.username)));
        let config = config("127.0.0.1:1").unwrap();
        assert_eq!(config.account_count(), registry::NAMES.len(), "one demo account per provider");
        let domains: usize = cdn.iter().map(|a| a.domains.len()).sum();
        assert_eq!(domains, 2);
    }
}
