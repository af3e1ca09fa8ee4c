//! The one place that lists the providers: [`PROVIDERS`], one [`Entry`] each. The configuration
//! reads their sections, the app starts their accounts' jobs, backfill walks their history, the
//! simulator serves their APIs and the demo configures them, all by looping over it; nothing
//! else names a provider. Adding one is its `ENTRY` and one line in [`PROVIDERS`]
//! (docs/architecture.md).

use std::sync::Arc;

use crate::timeutil::Clock;
use crate::validate::{Table, Validator};

use std::any::Any;

use super::common::simulator::SimState;
use super::{AccountRef, CheckLimits, Provider, bunny, cdnetworks, cloudfront, fastly, scaleengine};

/// The simulator's router, before its state is given.
pub type SimRouter = axum::Router<Arc<SimState>>;

/// A provider's part of a [`SimState`] (its accounts and request log), found by type.
pub type SimPart = Box<dyn Any + Send + Sync>;

/// One provider: everything the rest of the program does with it, each a function of the
/// provider's own modules. A provider declares its entry (`ENTRY` in `providers/<p>/mod.rs`);
/// [`PROVIDERS`] lists them.
#[derive(Clone, Copy)]
pub struct Entry {
    /// The table's name and the `provider` label.
    pub name: &'static str,
    /// Reads its `[[name]]` tables out of the top level into accounts ([`section`]).
    pub parse: fn(&mut Validator, &mut Table<'_>, &mut Vec<AccountRef>),
    /// Checks what involves all of its accounts together ([`check`]).
    pub check: fn(&mut Validator, &[AccountRef], &CheckLimits),
    /// Adds its simulator's routes.
    pub routes: fn(SimRouter) -> SimRouter,
    /// Where its simulated API is served under the simulator's address (`/stable/`, or `""`).
    pub base_path: &'static str,
    /// What `simulate` prints about it.
    pub describe: fn(&SimState, &str) -> String,
    /// Its demo account's configuration table, against a simulator at the address given.
    pub demo_toml: fn(&str) -> String,
    /// Its simulator part holding the demo account.
    pub demo_part: fn() -> SimPart,
}

/// Every provider, in the order of the configuration's tables, the exposition and the demo.
/// Adding a provider is one line here (docs/architecture.md).
pub const PROVIDERS: &[Entry] =
    &[scaleengine::ENTRY, cdnetworks::ENTRY, fastly::ENTRY, bunny::ENTRY, cloudfront::ENTRY];

/// Every provider's name (`provider` label, configuration table), in registry order.
pub const NAMES: [&str; PROVIDERS.len()] = {
    let mut names = [""; PROVIDERS.len()];
    let mut i = 0;
    while i < PROVIDERS.len() {
        names[i] = PROVIDERS[i].name;
        i += 1;
    }
    names
};

/// Reads every provider's `[[name]]` tables out of the top-level table `root`, each account
/// validated by its provider; names must be unique within a provider.
pub fn parse_accounts(v: &mut Validator, root: &mut Table<'_>) -> Vec<AccountRef> {
    let mut accounts = Vec::new();
    for p in PROVIDERS {
        (p.parse)(v, root, &mut accounts);
    }
    accounts
}

/// Runs every provider's checks over all of its accounts (budgets the accounts share).
pub fn check_accounts(v: &mut Validator, accounts: &[AccountRef], limits: &CheckLimits) {
    for p in PROVIDERS {
        (p.check)(v, accounts, limits);
    }
}

/// A provider's [`Entry::parse`]: its `[[P::NAME]]` tables, each validated by `P::parse`.
pub fn section<P: Provider>(v: &mut Validator, root: &mut Table<'_>, out: &mut Vec<AccountRef>) {
    let accounts = v.accounts(root, P::NAME, |v, i, value| {
        let mut t = v.table(format!("{}[{i}]", P::NAME), value)?;
        let before = v.count();
        let account = P::parse(v, &mut t);
        v.unknown(t);
        if v.count() > before { None } else { account }
    });
    out.extend(accounts.into_iter().map(|a| Arc::new(a) as AccountRef));
}

/// A provider's [`Entry::check`]: `P::check` over its accounts among `accounts`.
pub fn check<P: Provider>(v: &mut Validator, accounts: &[AccountRef], limits: &CheckLimits) {
    let mine: Vec<&P::Account> = accounts.iter().filter_map(|a| a.as_any().downcast_ref::<P::Account>()).collect();
    P::check(v, &mine, limits);
}

/// The simulator's routes of every provider's API, on one address.
pub fn simulator_routes(router: SimRouter) -> SimRouter {
    PROVIDERS.iter().fold(router, |router, p| (p.routes)(router))
}

/// The base URL to configure for `provider` against a simulator at `addr` (`host:port`).
pub fn simulator_url(provider: &str, addr: &str) -> Option<String> {
    PROVIDERS.iter().find(|p| p.name == provider).map(|p| format!("http://{addr}{}", p.base_path))
}

/// What `simulate` prints about every provider: where each listens, and its accounts.
pub fn describe_simulator(state: &SimState, addr: &str) -> String {
    PROVIDERS.iter().map(|p| (p.describe)(state, addr)).collect()
}

/// The demo configuration (every provider's demo account) against a simulator at `addr`.
pub fn demo_toml(addr: &str) -> String {
    PROVIDERS.iter().map(|p| (p.demo_toml)(addr)).collect::<String>() + DEMO_RATES
}

/// The demo's `[exchange_rates]`: the CDNetworks demo contract is in euros. Last in the file, so
/// that no provider's table falls under it.
pub const DEMO_RATES: &str = "
[exchange_rates]
# US dollars per euro.
EUR = 1.08
";

/// The simulator state `demo` and `simulate` use: the demo accounts of every provider.
pub fn demo_state() -> Arc<SimState> {
    PROVIDERS.iter().fold(SimState::builder(), |b, p| b.with((p.demo_part)())).build()
}

/// Builds a [`SimState`]: the parts of the providers it simulates (each provider's
/// `simulator::part(accounts)`; a provider without one has no accounts), and its clock.
#[derive(Default)]
pub struct SimBuilder {
    parts: Vec<SimPart>,
    clock: Option<Clock>,
}

impl SimBuilder {
    /// Adds a provider's part.
    pub fn with(mut self, part: SimPart) -> Self {
        self.parts.push(part);
        self
    }

    /// Answers by `clock` (default: the system clock).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The state, with no faults.
    pub fn build(self) -> Arc<SimState> {
        SimState::from_parts(self.parts, self.clock.unwrap_or_else(Clock::system))
    }
}

impl SimState {
    /// A [`SimBuilder`] with no provider and the system clock.
    pub fn builder() -> SimBuilder {
        SimBuilder::default()
    }
}
