//! `demo`: the simulator and the exporter in one process, wired by an embedded configuration.

use crate::config::{Config, ConfigError};

/// The embedded configuration; `{base_url}` is the simulator's address.
pub const DEMO_CONFIG: &str = r#"
[[scaleengine]]
name = "demo"
cdn = 158
api_key = "DEMOKEY0RKQLSP2FBO1ROPKSSW47DZE"
api_secret = "demo-secret-8fc8c48da81e6a2a06a9556379bf798a"
base_url = "{base_url}"
summary_interval = "15s"
billing_interval = "15s"
disk_interval = "30s"
video_interval = "30s"
timeout = "5s"
video_apps = ["live", "vod/archive"]
video_top_n = 10
# Below the simulator's estimated month-end spend, so the budget alert fires in the demo.
budget_usd = 400

[[cdnetworks]]
name = "demo"
base_url = "{cdn_base_url}"
username = "demo-user"
api_key = "demo-cdn-api-key"
time_zone = "GMT+09:00"
granularity = "h"
interval = "30s"
timeout = "5s"
traffic_interval = "30s"
# Below the simulator's 95th percentile (about 1.5 Gbit/s over both domains), so the commitment
# alert fires in the demo.
bandwidth_commit_mbps = 500
domains = [
  { domain = "static.demo.example", contract = "CT-1001" },
  { domain = "video.demo.example", contract = "CT-1001" },
]
"#;

/// How the demo's configuration is named in messages.
pub const SOURCE_NAME: &str = "the embedded demo configuration";

/// The demo configuration's TOML, pointing at a simulator's URLs.
pub fn toml(scaleengine_url: &str, cdnetworks_url: &str) -> String {
    DEMO_CONFIG.replace("{base_url}", scaleengine_url).replace("{cdn_base_url}", cdnetworks_url)
}

/// The demo configuration pointing at a simulator's URLs.
pub fn config(scaleengine_url: &str, cdnetworks_url: &str) -> Result<Config, ConfigError> {
    Config::from_toml_str(&toml(scaleengine_url, cdnetworks_url), SOURCE_NAME)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulator::{demo_accounts, demo_cdn_accounts};

    #[test]
    fn demo_credentials_match_the_simulator() {
        assert!(
            demo_accounts().iter().any(|a| DEMO_CONFIG.contains(&a.api_key) && DEMO_CONFIG.contains(&a.api_secret))
        );
        assert!(
            demo_cdn_accounts().iter().any(|a| DEMO_CONFIG.contains(&a.api_key) && DEMO_CONFIG.contains(&a.username))
        );
        let config = config("http://127.0.0.1:1/stable/", "http://127.0.0.1:1").unwrap();
        assert_eq!(config.cdnetworks[0].domains.len(), 2);
    }
}
