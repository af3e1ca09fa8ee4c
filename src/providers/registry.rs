//! The one place that lists the providers. The configuration reads their sections, the app
//! starts their accounts' jobs, backfill walks their history, the simulator serves their APIs
//! and the demo configures them, all by looping over what is here; nothing else names a
//! provider. Adding one is a line in each function below (docs/architecture.md).

use std::sync::Arc;

use crate::timeutil::Clock;
use crate::validate::{Table, Validator};

use super::common::simulator::SimState;
use super::{AccountRef, CheckLimits, Provider, bunny, cdnetworks, fastly, scaleengine};
use bunny::simulator::SimAccount as BunnySimAccount;
use cdnetworks::simulator::CdnAccount;
use fastly::simulator::FastlySim;
use scaleengine::simulator::SeAccount;

/// The simulator's router, before its state is given.
pub type SimRouter = axum::Router<Arc<SimState>>;

/// Every provider's name (`provider` label, configuration table), in registry order.
pub const NAMES: &[&str] =
    &[scaleengine::ScaleEngine::NAME, cdnetworks::Cdnetworks::NAME, fastly::Fastly::NAME, bunny::Bunny::NAME];

/// Reads every provider's `[[name]]` tables out of the top-level table `root`, each account
/// validated by its provider; names must be unique within a provider.
pub fn parse_accounts(v: &mut Validator, root: &mut Table<'_>) -> Vec<AccountRef> {
    let mut accounts = Vec::new();
    section::<scaleengine::ScaleEngine>(v, root, &mut accounts);
    section::<cdnetworks::Cdnetworks>(v, root, &mut accounts);
    section::<fastly::Fastly>(v, root, &mut accounts);
    section::<bunny::Bunny>(v, root, &mut accounts);
    accounts
}

/// Runs every provider's checks over all of its accounts (budgets the accounts share).
pub fn check_accounts(v: &mut Validator, accounts: &[AccountRef], limits: &CheckLimits) {
    check::<scaleengine::ScaleEngine>(v, accounts, limits);
    check::<cdnetworks::Cdnetworks>(v, accounts, limits);
    check::<fastly::Fastly>(v, accounts, limits);
    check::<bunny::Bunny>(v, accounts, limits);
}

fn section<P: Provider>(v: &mut Validator, root: &mut Table<'_>, out: &mut Vec<AccountRef>) {
    let accounts = v.accounts(root, P::NAME, |v, i, value| {
        let mut t = v.table(format!("{}[{i}]", P::NAME), value)?;
        let before = v.count();
        let account = P::parse(v, &mut t);
        v.unknown(t);
        if v.count() > before { None } else { account }
    });
    out.extend(accounts.into_iter().map(|a| Arc::new(a) as AccountRef));
}

fn check<P: Provider>(v: &mut Validator, accounts: &[AccountRef], limits: &CheckLimits) {
    let mine: Vec<&P::Account> = accounts.iter().filter_map(|a| a.as_any().downcast_ref::<P::Account>()).collect();
    P::check(v, &mine, limits);
}

/// The simulator's routes of every provider's API, on one address.
pub fn simulator_routes(router: SimRouter) -> SimRouter {
    let router = scaleengine::simulator::routes(router);
    let router = cdnetworks::simulator::routes(router);
    let router = fastly::simulator::routes(router);
    bunny::simulator::routes(router)
}

/// The base URL to configure for `provider` against a simulator at `addr` (`host:port`).
pub fn simulator_url(provider: &str, addr: &str) -> Option<String> {
    match provider {
        scaleengine::PROVIDER => Some(format!("http://{addr}{}", scaleengine::simulator::BASE_PATH)),
        cdnetworks::PROVIDER => Some(format!("http://{addr}")),
        fastly::PROVIDER => Some(format!("http://{addr}")),
        bunny::PROVIDER => Some(format!("http://{addr}{}", bunny::simulator::BASE_PATH)),
        _ => None,
    }
}

/// What `simulate` prints about every provider: where each listens, and its accounts.
pub fn describe_simulator(state: &SimState, addr: &str) -> String {
    scaleengine::simulator::describe(state, addr)
        + &cdnetworks::simulator::describe(state, addr)
        + &fastly::simulator::describe(state, addr)
        + &bunny::simulator::describe(state, addr)
}

/// The demo configuration (every provider's demo account) against a simulator at `addr`.
pub fn demo_toml(addr: &str) -> String {
    scaleengine::simulator::demo_toml(addr)
        + &cdnetworks::simulator::demo_toml(addr)
        + &fastly::simulator::demo_toml(addr)
        + &bunny::simulator::demo_toml(addr)
        + DEMO_RATES
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
    SimState::with_all(
        scaleengine::simulator::demo_accounts(),
        cdnetworks::simulator::demo_accounts(),
        fastly::simulator::demo_accounts(),
        bunny::simulator::demo_accounts(),
        Clock::system(),
    )
}

impl SimState {
    /// State with these ScaleEngine accounts and no faults.
    pub fn new(scaleengine: Vec<SeAccount>) -> Arc<Self> {
        Self::with(scaleengine, Vec::new())
    }

    /// State with accounts of both providers and no faults.
    pub fn with(scaleengine: Vec<SeAccount>, cdnetworks: Vec<CdnAccount>) -> Arc<Self> {
        Self::with_clock(scaleengine, cdnetworks, Clock::system())
    }

    /// State with accounts of both providers, no faults, and the data answering by `clock`.
    pub fn with_clock(scaleengine: Vec<SeAccount>, cdnetworks: Vec<CdnAccount>, clock: Clock) -> Arc<Self> {
        Self::with_all(scaleengine, cdnetworks, Vec::new(), Vec::new(), clock)
    }

    /// State with these Fastly accounts only, answering by `clock`.
    pub fn with_fastly(fastly: Vec<FastlySim>, clock: Clock) -> Arc<Self> {
        Self::with_all(Vec::new(), Vec::new(), fastly, Vec::new(), clock)
    }

    /// State with these bunny.net accounts only, no faults, answering by `clock`.
    pub fn with_bunny(bunny: Vec<BunnySimAccount>, clock: Clock) -> Arc<Self> {
        Self::with_all(Vec::new(), Vec::new(), Vec::new(), bunny, clock)
    }

    /// State with accounts of every provider, no faults, and the data answering by `clock`.
    pub fn with_all(
        scaleengine: Vec<SeAccount>,
        cdnetworks: Vec<CdnAccount>,
        fastly: Vec<FastlySim>,
        bunny: Vec<BunnySimAccount>,
        clock: Clock,
    ) -> Arc<Self> {
        let parts = vec![
            scaleengine::simulator::part(scaleengine),
            cdnetworks::simulator::part(cdnetworks),
            fastly::simulator::part(fastly),
            bunny::simulator::part(bunny),
        ];
        SimState::from_parts(parts, clock)
    }
}
