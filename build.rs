//! Records the source revision for `cdn_exporter_build_info`: `CDN_EXPORTER_REVISION` if set
//! (Docker builds without .git pass it), else `git rev-parse`, else "unknown".

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=CDN_EXPORTER_REVISION");
    println!("cargo:rerun-if-changed=.git/HEAD");
    let revision = std::env::var("CDN_EXPORTER_REVISION").ok().filter(|r| !r.is_empty()).or_else(|| {
        Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    });
    println!("cargo:rustc-env=CDN_EXPORTER_REVISION={}", revision.as_deref().unwrap_or("unknown"));
}
