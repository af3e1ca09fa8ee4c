//! Synthetic hourly billing history of several kinds of accounts, deterministic from a seed,
//! written as OpenMetrics for `promtool tsdb create-blocks-from openmetrics`.

use std::fmt::Write as _;

use cdn_usage_exporter::timeutil::{civil_from_days, days_from_civil, days_in_month};

/// The `provider` label of every generated series.
pub const PROVIDER: &str = "eval";

/// A small seeded PRNG (SplitMix64): enough for noise and for picking days, and no new crate.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator whose whole sequence follows from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-12);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Uniform integer in `lo..=hi`.
    pub fn between(&mut self, lo: u32, hi: u32) -> u32 {
        lo + (self.next_u64() % u64::from(hi - lo + 1)) as u32
    }
}

/// How usage turns into spend within a month.
#[derive(Debug, Clone, Copy)]
pub enum Pricing {
    /// One price per GB.
    Flat(f64),
    /// Graduated tiers over the month's cumulative GB: 10 TB at $0.08, 40 TB at $0.06, the rest
    /// at $0.04 (so the month's first gigabytes are the dearest).
    Tiered,
}

const TIERS: [(f64, f64); 3] = [(10_000.0, 0.08), (40_000.0, 0.06), (f64::INFINITY, 0.04)];

impl Pricing {
    /// The cost of the month's first `gb` gigabytes.
    pub fn cost(self, gb: f64) -> f64 {
        match self {
            Pricing::Flat(price) => gb * price,
            Pricing::Tiered => {
                let (mut left, mut cost) = (gb, 0.0);
                for (size, price) in TIERS {
                    let here = left.min(size);
                    cost += here * price;
                    left -= here;
                    if left <= 0.0 {
                        break;
                    }
                }
                cost
            }
        }
    }
}

/// One kind of account: its usage pattern and its pricing.
#[derive(Debug, Clone)]
pub struct Kind {
    /// The `account` label value.
    pub name: &'static str,
    /// Not to be used for tuning the rules: reported apart.
    pub held_out: bool,
    pub seed: u64,
    /// Usage of a weekday at the start of the history.
    pub gb_per_day: f64,
    /// Weekend usage relative to a weekday.
    pub weekend: f64,
    /// Standard deviation of the multiplicative daily noise.
    pub noise: f64,
    /// Smooth growth per month (0.05 = 5 %).
    pub growth: f64,
    /// Chance per month of a one-day spike of 5 times a normal day.
    pub spike: f64,
    /// Chance per month of a lasting jump (x1.8) or drop (x0.5) from a day in the middle.
    pub regime: f64,
    pub pricing: Pricing,
    /// A fixed plan price, billed at the month's first hour, as a share of a typical month's usage.
    pub plan_fee: f64,
    /// The account's series begin on day 12 of this month of the history (0: from the start).
    pub start_month: usize,
    /// Month-to-date spend is reported this many hours late (resetting still at month start).
    pub late_hours: i64,
}

impl Kind {
    fn base(name: &'static str, seed: u64) -> Kind {
        Kind {
            name,
            held_out: false,
            seed,
            gb_per_day: 3_000.0,
            weekend: 0.6,
            noise: 0.05,
            growth: 0.0,
            spike: 0.0,
            regime: 0.0,
            pricing: Pricing::Flat(0.05),
            plan_fee: 0.0,
            start_month: 0,
            late_hours: 0,
        }
    }
}

/// Every kind, the held-out ones last. `months` places the new account in the middle.
pub fn all_kinds(months: usize) -> Vec<Kind> {
    let b = Kind::base;
    vec![
        b("steady_weekly", 11),
        Kind { growth: 0.05, ..b("growing", 12) },
        Kind { spike: 0.6, ..b("spike", 13) },
        Kind { pricing: Pricing::Tiered, ..b("tiered", 14) },
        Kind { plan_fee: 0.4, ..b("plan_fee", 15) },
        Kind { start_month: months / 2, ..b("new_account", 16) },
        Kind { regime: 0.5, ..b("regime_change", 17) },
        Kind { late_hours: 24, ..b("late_data", 18) },
        Kind { held_out: true, gb_per_day: 800.0, weekend: 0.7, noise: 0.08, ..b("steady_weekly_b", 101) },
        Kind { held_out: true, pricing: Pricing::Tiered, plan_fee: 0.4, gb_per_day: 2_200.0, ..b("tiered_plan", 102) },
    ]
}

/// What the generator knows of one month of one account.
#[derive(Debug, Clone)]
pub struct MonthTruth {
    /// Unix seconds of the month's first hour.
    pub start: i64,
    pub days: u32,
    /// Index in the history (0 = first month).
    pub index: usize,
    /// The first hour with data of this account in this month (later than `start` for the
    /// new account's first month).
    pub first_sample: i64,
    /// The month's bill.
    pub final_spend: f64,
    /// The month's budget.
    pub budget: f64,
    /// `[c]`: the bill had nothing unusual happened after day `c` (no change of pace, no spike;
    /// the same days and noise otherwise), for `c` in `0..=days`: what a perfect forecast made
    /// on day `c` could say at best.
    pub final_if_calm_after: Vec<f64>,
    /// The month ends over budget (budget = final / 1.30); else under (budget = final / 0.80).
    pub over_budget: bool,
    /// The day the pace changed (`regime_change`), if it did this month.
    pub pace_change_day: Option<u32>,
    /// The day of a one-day spike (`spike`), if there was one this month.
    pub spike_day: Option<u32>,
}

/// One generated account.
#[derive(Debug, Clone)]
pub struct Account {
    pub kind: Kind,
    pub months: Vec<MonthTruth>,
    mtd: Vec<(i64, f64)>,
    last_month: Vec<(i64, f64)>,
    budget: Vec<(i64, f64)>,
}

/// The calendar of the history: `months` whole UTC months ending before `now`'s month.
#[derive(Debug, Clone)]
pub struct Calendar {
    /// (Unix seconds of the first hour, days) of each month, oldest first.
    pub months: Vec<(i64, u32)>,
}

impl Calendar {
    /// The `months` months before the month of `now` (Unix seconds).
    pub fn ending_before(now: i64, months: usize) -> Calendar {
        let (mut y, mut m, _) = civil_from_days(now.div_euclid(86_400));
        let mut out = Vec::new();
        for _ in 0..months {
            (y, m) = if m == 1 { (y - 1, 12) } else { (y, m - 1) };
            out.push((days_from_civil(y, m, 1) * 86_400, days_in_month(y, m)));
        }
        out.reverse();
        Calendar { months: out }
    }

    /// The first hour of the history.
    pub fn start(&self) -> i64 {
        self.months.first().map_or(0, |m| m.0)
    }

    /// The first second after the history (the current month's start).
    pub fn end(&self) -> i64 {
        self.months.last().map_or(0, |m| m.0 + i64::from(m.1) * 86_400)
    }
}

/// Usage shape over a day (UTC hour), mean 1: busiest in the evening of Europe.
fn diurnal(hour: i64) -> f64 {
    1.0 + 0.35 * (2.0 * std::f64::consts::PI * (hour as f64 - 19.0) / 24.0).cos()
}

/// Generates one account over the calendar.
pub fn generate(kind: &Kind, cal: &Calendar, seed: u64) -> Account {
    let mut rng = Rng::new(kind.seed ^ seed.wrapping_mul(0xA24B_AED4_963E_E407));
    let weekly_mean = (5.0 + 2.0 * kind.weekend) / 7.0;
    let typical_month = kind.pricing.cost(kind.gb_per_day * weekly_mean * 30.44);
    let plan_fee = kind.plan_fee * typical_month;
    let mut level = 1.0;
    let mut acc = Account { kind: kind.clone(), months: vec![], mtd: vec![], last_month: vec![], budget: vec![] };
    let mut previous_final: Option<f64> = None;
    for (index, &(start, days)) in cal.months.iter().enumerate() {
        if index < kind.start_month {
            continue;
        }
        let first_sample = if index == kind.start_month && kind.start_month > 0 { start + 11 * 86_400 } else { start };
        let spike_day = (rng.uniform() < kind.spike).then(|| rng.between(1, days));
        let regime_day = (rng.uniform() < kind.regime).then(|| rng.between(8, days.min(22)));
        let regime_factor = if level > 1.2 {
            0.5
        } else if level < 0.8 {
            1.8
        } else if rng.uniform() < 0.5 {
            0.5
        } else {
            1.8
        };
        // Spend to date at the start of each hour of the month, true and as reported.
        let mut true_mtd = Vec::with_capacity(days as usize * 24);
        let mut gb = 0.0;
        // Per day: gigabytes, and by how much this month's unusual events (a change of pace,
        // a spike) multiplied them, for the bill of a month calm after some day.
        let mut day_gb = Vec::with_capacity(days as usize);
        for day in 1..=days {
            let gb_before = gb;
            let day_start = start + i64::from(day - 1) * 86_400;
            if regime_day == Some(day) {
                level *= regime_factor;
            }
            let weekday = (day_start.div_euclid(86_400) + 3).rem_euclid(7); // 0 = Monday
            let mut daily = kind.gb_per_day
                * level
                * (1.0 + kind.growth).powf((day_start - cal.start()) as f64 / (30.44 * 86_400.0));
            if weekday >= 5 {
                daily *= kind.weekend;
            }
            if spike_day == Some(day) {
                daily *= 5.0;
            }
            daily *= (1.0 + kind.noise * rng.normal()).max(0.3);
            for hour in 0..24 {
                let t = day_start + hour * 3_600;
                if t < first_sample {
                    true_mtd.push((t, None));
                    continue;
                }
                true_mtd.push((t, Some(plan_fee + kind.pricing.cost(gb))));
                gb += daily * diurnal(hour) / 24.0;
            }
            day_gb.push(gb - gb_before);
        }
        let final_spend = plan_fee + kind.pricing.cost(gb);
        let final_if_calm_after = (0..=days)
            .map(|calm_after| {
                let gb: f64 = (1..=days)
                    .zip(&day_gb)
                    .map(|(day, &g)| {
                        let mut g = g;
                        if day > calm_after && spike_day == Some(day) {
                            g /= 5.0;
                        }
                        if regime_day.is_some_and(|r| r > calm_after && r <= day) {
                            g /= regime_factor;
                        }
                        g
                    })
                    .sum();
                plan_fee + kind.pricing.cost(gb)
            })
            .collect();
        let over_budget = index % 2 == 1;
        let budget = if over_budget { final_spend / 1.30 } else { final_spend / 0.80 };
        let lag = (kind.late_hours as usize).min(true_mtd.len());
        for (i, &(t, value)) in true_mtd.iter().enumerate() {
            if value.is_none() {
                continue;
            }
            // Late data: the figure of `lag` hours ago, but nothing from last month.
            let reported = if i >= lag { true_mtd[i - lag].1.unwrap_or(0.0) } else { 0.0 };
            acc.mtd.push((t, reported));
            acc.budget.push((t, budget));
            // Fastly posts last month's bill early in the month: from the 2nd, 08:00 UTC.
            if let Some(last) = previous_final.filter(|_| t >= start + 86_400 + 8 * 3_600) {
                acc.last_month.push((t, last));
            }
        }
        let pace_change_day = regime_day;
        acc.months.push(MonthTruth {
            start,
            days,
            index,
            first_sample,
            final_spend,
            budget,
            final_if_calm_after,
            over_budget,
            pace_change_day,
            spike_day,
        });
        previous_final = Some(final_spend);
    }
    acc
}

/// Picks one series of an account.
type Samples = fn(&Account) -> &[(i64, f64)];

/// The accounts as one OpenMetrics text, families in order, ending in `# EOF`.
pub fn openmetrics(accounts: &[Account]) -> String {
    let mut out = String::new();
    let families: [(&str, &str, Samples); 3] = [
        ("cdn_billing_month_to_date_spend_usd", "Spend so far this UTC month.", |a| &a.mtd),
        ("cdn_billing_last_month_spend_usd", "Last month's final bill.", |a| &a.last_month),
        ("cdn_billing_budget_usd", "Monthly budget.", |a| &a.budget),
    ];
    for (name, help, samples) in families {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for account in accounts {
            for (t, v) in samples(account) {
                let _ = writeln!(out, "{name}{{provider=\"{PROVIDER}\",account=\"{}\"}} {v} {t}", account.kind.name);
            }
        }
    }
    out.push_str("# EOF\n");
    out
}
