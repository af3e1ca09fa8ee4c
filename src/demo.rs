//! `demo`: the simulator and the exporter in one process, wired by an embedded configuration.

use crate::config::{Config, ConfigError};
use crate::simulator::demo_accounts;

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
"#;

/// The demo configuration pointing at a simulator's ScaleEngine URL.
pub fn config(scaleengine_url: &str) -> Result<Config, ConfigError> {
    // The demo's credentials must match the simulator's accounts.
    debug_assert!(demo_accounts().iter().any(|a| DEMO_CONFIG.contains(&a.api_key)));
    Config::from_toml_str(&DEMO_CONFIG.replace("{base_url}", scaleengine_url), "the embedded demo configuration")
}
