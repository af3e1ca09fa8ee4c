//! How a backfill reports progress: a bar per account on a terminal, log lines otherwise.

use std::collections::BTreeMap;

use super::Progress;

/// Progress as one bar per account (windows done / total), for a terminal.
pub struct BarProgress {
    bars: indicatif::MultiProgress,
    accounts: std::sync::Mutex<BTreeMap<String, indicatif::ProgressBar>>,
}

fn account_of(unit: &str) -> String {
    unit.split('/').take(2).collect::<Vec<_>>().join("/")
}

impl BarProgress {
    /// Bars drawn on standard error.
    pub fn new() -> Self {
        BarProgress { bars: indicatif::MultiProgress::new(), accounts: Default::default() }
    }
}

impl Default for BarProgress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for BarProgress {
    fn add(&self, unit: &str, windows: usize) {
        let account = account_of(unit);
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        let bar = accounts.entry(account.clone()).or_insert_with(|| {
            let bar = self.bars.add(indicatif::ProgressBar::new(0));
            let style = indicatif::ProgressStyle::with_template("{prefix:40} [{bar:30}] {pos}/{len} windows {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(account);
            bar
        });
        bar.inc_length(windows as u64);
    }

    fn done(&self, unit: &str, ok: bool) {
        let accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bar) = accounts.get(&account_of(unit)) {
            bar.inc(1);
            if !ok {
                bar.set_message("(some failed)");
            }
        }
    }

    fn finish(&self) {
        for bar in self.accounts.lock().unwrap_or_else(|e| e.into_inner()).values() {
            bar.finish();
        }
    }
}

/// Progress as log lines, for logs and pipes: one per unit started and finished.
#[derive(Default)]
pub struct LogProgress {
    units: std::sync::Mutex<BTreeMap<String, (usize, usize)>>,
}

impl Progress for LogProgress {
    fn add(&self, unit: &str, windows: usize) {
        self.units.lock().unwrap_or_else(|e| e.into_inner()).insert(unit.to_owned(), (0, windows));
        tracing::info!(unit, windows, "Backfill unit starts");
    }

    fn done(&self, unit: &str, _ok: bool) {
        let mut units = self.units.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((done, total)) = units.get_mut(unit) {
            *done += 1;
            if done == total {
                tracing::info!(unit, windows = *total, "Backfill unit done");
            }
        }
    }

    fn finish(&self) {}
}
