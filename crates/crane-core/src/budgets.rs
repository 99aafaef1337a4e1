//! Spend budgets per tenant and window (`[[budgets]]`): the policy types, the UTC window a
//! moment falls in, and [`Budgets`], the ledger the runtime consults and feeds.
//!
//! - Before a run is accepted ([`Budgets::admit`]): a spent budget with
//!   `on_exhausted = "reject"` refuses the tenant's new runs until its window resets.
//! - Before planning ([`Budgets::allowance`]): what is left of the tenant's budgets becomes the
//!   run's planning [`Allowance`], checked before every LLM call beside the per-run budget; a
//!   spent budget means no LLM call at all (the rule planner plans).
//! - After planning ([`Budgets::record`]): the run's planning spend (tokens and USD, failed
//!   planning included) is added to each of its tenant's budgets in the store, and every
//!   threshold ([`THRESHOLDS`]) the new total reached is marked in the same transaction, then
//!   notified once: a WARN log line, the gauge `crane_budget_used_ratio{tenant,window}`, and the
//!   [`AlertSink`] (the webhook, in `crane serve`).
//!
//! The spend lives in the store (`budget_spend`, one row per tenant, window and period). This
//! keeps a copy of each budget's current period in memory: loaded at start, updated by every
//! write, and reloaded by [`Budgets::refresh`] (spend another process recorded on the same data).
//! A run's planning may spend what was left when it started (checked before each LLM call, so a
//! run overshoots by at most its last call); runs planning at the same time each get that
//! remainder, so together they can spend more than it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Datelike, SecondsFormat, TimeZone, Utc};
use serde::Serialize;

use crate::planning::{Allowance, TenantLimit};
use crate::store::{Store, StoreError};

/// Percentages of a budget that are notified, each once per tenant, window and period.
pub const THRESHOLDS: [u8; 4] = [80, 90, 95, 100];

/// A budget's window (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Window {
    Day,
    Month,
}

impl Window {
    /// The window's name as written in crane.toml and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Month => "month",
        }
    }

    /// Start (inclusive) and end (exclusive) of the window `at` falls in.
    pub fn bounds(self, at: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let day = |y, m, d| {
            Utc.with_ymd_and_hms(y, m, d, 0, 0, 0)
                .single()
                .unwrap_or(DateTime::<Utc>::MIN_UTC)
        };
        match self {
            Self::Day => {
                let start = day(at.year(), at.month(), at.day());
                (start, start + chrono::Duration::days(1))
            }
            Self::Month => {
                let start = day(at.year(), at.month(), 1);
                let (y, m) = if at.month() == 12 {
                    (at.year() + 1, 1)
                } else {
                    (at.year(), at.month() + 1)
                };
                (start, day(y, m, 1))
            }
        }
    }
}

/// What happens to new runs when a budget is spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnExhausted {
    /// No LLM call: the rule planner plans.
    RuleOnly,
    /// New runs are refused (429 `budget_exhausted`) until the window resets.
    Reject,
}

/// One tenant's budget over one window.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetPolicy {
    pub tenant: String,
    pub window: Window,
    pub max_usd: Option<f64>,
    pub max_tokens: Option<u64>,
    pub on_exhausted: OnExhausted,
}

/// Rounds away float noise (0.9600000000000001 → 0.96).
fn tidy(x: f64) -> f64 {
    (x * 1e9).round() / 1e9
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl BudgetPolicy {
    /// Used over allowed, the largest over the limits that are set (a limit of 0 is spent from
    /// the start: ratio 1).
    pub fn ratio(&self, used_usd: f64, used_tokens: u64) -> f64 {
        let mut ratio: f64 = 0.0;
        if let Some(max) = self.max_tokens {
            ratio = ratio.max(if max == 0 {
                1.0
            } else {
                used_tokens as f64 / max as f64
            });
        }
        if let Some(max) = self.max_usd {
            ratio = ratio.max(if max <= 0.0 { 1.0 } else { used_usd / max });
        }
        tidy(ratio)
    }

    /// Whether the spend reached `percent` of a limit: exact on tokens, and on USD up to the
    /// 1e-12 rounding of costs.
    pub fn reached(&self, percent: u8, used_usd: f64, used_tokens: u64) -> bool {
        let tokens = self.max_tokens.is_some_and(|max| {
            u128::from(used_tokens) * 100 >= u128::from(percent) * u128::from(max)
        });
        let usd = self
            .max_usd
            .is_some_and(|max| used_usd * 100.0 >= f64::from(percent) * max - 1e-9);
        tokens || usd
    }

    /// Whether the budget is spent (100% of a limit reached).
    pub fn exhausted(&self, used_usd: f64, used_tokens: u64) -> bool {
        self.reached(100, used_usd, used_tokens)
    }

    /// The thresholds the spend reached that are not in `notified`, ascending: a spend that
    /// jumps past several crosses each of them.
    pub fn newly_crossed(&self, used_usd: f64, used_tokens: u64, notified: &[u8]) -> Vec<u8> {
        THRESHOLDS
            .iter()
            .copied()
            .filter(|t| !notified.contains(t) && self.reached(*t, used_usd, used_tokens))
            .collect()
    }

    /// "480 of 500 tokens, 0.000560 of 1.000000 USD": the spend against each limit set.
    pub fn describe(&self, used_usd: f64, used_tokens: u64) -> String {
        let mut parts = Vec::new();
        if let Some(max) = self.max_tokens {
            parts.push(format!("{used_tokens} of {max} tokens"));
        }
        if let Some(max) = self.max_usd {
            parts.push(format!("{used_usd:.6} of {max:.6} USD"));
        }
        parts.join(", ")
    }

    /// "tenant acme's day budget".
    fn name(&self) -> String {
        format!("tenant {}'s {} budget", self.tenant, self.window.as_str())
    }
}

/// One budget's state in its current period (`GET /budgets`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetStatus {
    pub tenant: String,
    pub window: Window,
    pub used_usd: f64,
    pub max_usd: Option<f64>,
    pub used_tokens: u64,
    pub max_tokens: Option<u64>,
    /// Used over allowed, the largest over the limits set.
    pub ratio: f64,
    pub exhausted: bool,
    pub on_exhausted: OnExhausted,
    /// The period's start and end (RFC 3339, UTC).
    pub period_start: String,
    pub resets_at: String,
    /// Thresholds (percent) already notified in this period.
    pub notified: Vec<u8>,
}

/// A threshold crossing: the webhook's JSON body (with a Slack-compatible `text`) and the
/// fields of the WARN log line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetAlert {
    pub tenant: String,
    pub window: Window,
    /// The threshold crossed, in percent (80, 90, 95 or 100).
    pub threshold: u8,
    pub used_usd: f64,
    pub max_usd: Option<f64>,
    pub used_tokens: u64,
    pub max_tokens: Option<u64>,
    pub ratio: f64,
    pub exhausted: bool,
    pub on_exhausted: OnExhausted,
    pub period_start: String,
    pub resets_at: String,
    /// One line for humans (Slack shows it as the message).
    pub text: String,
}

impl BudgetAlert {
    fn new(policy: &BudgetPolicy, threshold: u8, status: &BudgetStatus) -> Self {
        let spent = policy.describe(status.used_usd, status.used_tokens);
        let percent = (status.ratio * 100.0).floor();
        let text = if threshold >= 100 {
            let then = match policy.on_exhausted {
                OnExhausted::RuleOnly => "runs are planned by the rule planner only (no LLM calls)",
                OnExhausted::Reject => "new runs are refused (429 budget_exhausted)",
            };
            format!(
                "crane: tenant {} has spent its {} budget ({percent}% used: {spent}). Until it resets at {}, {then}.",
                policy.tenant,
                policy.window.as_str(),
                status.resets_at
            )
        } else {
            format!(
                "crane: tenant {} crossed {threshold}% of its {} budget ({percent}% used: {spent}). It resets at {}.",
                policy.tenant,
                policy.window.as_str(),
                status.resets_at
            )
        };
        Self {
            tenant: status.tenant.clone(),
            window: status.window,
            threshold,
            used_usd: status.used_usd,
            max_usd: status.max_usd,
            used_tokens: status.used_tokens,
            max_tokens: status.max_tokens,
            ratio: status.ratio,
            exhausted: status.exhausted,
            on_exhausted: status.on_exhausted,
            period_start: status.period_start.clone(),
            resets_at: status.resets_at.clone(),
            text,
        }
    }
}

/// Where threshold crossings go besides the log and the gauge (the webhook sender). Called on
/// the run's worker: it must not block (queue the alert and return).
pub trait AlertSink: Send + Sync {
    fn notify(&self, alert: &BudgetAlert);
}

/// A new run refused because a budget with `on_exhausted = "reject"` is spent.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct BudgetRefusal {
    pub message: String,
    /// The spent budget (the one that resets last, when several are spent).
    pub status: BudgetStatus,
    /// Seconds until it resets (at least 1).
    pub retry_after_secs: u64,
}

/// A budget's current period as kept in memory.
#[derive(Debug, Clone, PartialEq)]
struct Period {
    start: DateTime<Utc>,
    used_usd: f64,
    used_tokens: u64,
    notified: Vec<u8>,
}

impl Period {
    fn empty(start: DateTime<Utc>) -> Self {
        Self {
            start,
            used_usd: 0.0,
            used_tokens: 0,
            notified: Vec::new(),
        }
    }
}

/// The spend ledger over the configured budgets (see the module docs).
pub struct Budgets {
    policies: Vec<BudgetPolicy>,
    store: Arc<Store>,
    periods: Mutex<HashMap<(String, Window), Period>>,
    sink: OnceLock<Arc<dyn AlertSink>>,
}

impl Budgets {
    /// The ledger over `policies`, with each budget's current period loaded from the store.
    pub async fn load(
        store: Arc<Store>,
        policies: Vec<BudgetPolicy>,
    ) -> Result<Arc<Self>, StoreError> {
        Self::load_at(store, policies, Utc::now()).await
    }

    /// [`Budgets::load`] as of `now`.
    pub async fn load_at(
        store: Arc<Store>,
        policies: Vec<BudgetPolicy>,
        now: DateTime<Utc>,
    ) -> Result<Arc<Self>, StoreError> {
        let budgets = Self {
            policies,
            store,
            periods: Mutex::new(HashMap::new()),
            sink: OnceLock::new(),
        };
        budgets.refresh_at(now).await?;
        Ok(Arc::new(budgets))
    }

    /// Sets where crossings are sent; false when a sink is already set.
    pub fn set_sink(&self, sink: Arc<dyn AlertSink>) -> bool {
        self.sink.set(sink).is_ok()
    }

    /// The configured budgets.
    pub fn policies(&self) -> &[BudgetPolicy] {
        &self.policies
    }

    fn of<'a>(&'a self, tenant: &'a str) -> impl Iterator<Item = &'a BudgetPolicy> + 'a {
        self.policies.iter().filter(move |p| p.tenant == tenant)
    }

    /// Takes `period` into the in-memory copy: a later period replaces an earlier one; within a
    /// period spend only grows, so the larger figures and every mark are kept.
    fn merge(&self, policy: &BudgetPolicy, period: Period) {
        let Ok(mut periods) = self.periods.lock() else {
            return;
        };
        let key = (policy.tenant.clone(), policy.window);
        match periods.get_mut(&key) {
            Some(have) if have.start == period.start => {
                have.used_usd = have.used_usd.max(period.used_usd);
                have.used_tokens = have.used_tokens.max(period.used_tokens);
                for t in period.notified {
                    if !have.notified.contains(&t) {
                        have.notified.push(t);
                    }
                }
                have.notified.sort_unstable();
            }
            Some(have) if have.start > period.start => {}
            _ => {
                periods.insert(key, period);
            }
        }
    }

    /// The budget's period `now` falls in (empty when nothing was spent in it yet).
    fn period(&self, policy: &BudgetPolicy, now: DateTime<Utc>) -> Period {
        let (start, _) = policy.window.bounds(now);
        self.periods
            .lock()
            .ok()
            .and_then(|p| p.get(&(policy.tenant.clone(), policy.window)).cloned())
            .filter(|p| p.start == start)
            .unwrap_or_else(|| Period::empty(start))
    }

    fn status_of(policy: &BudgetPolicy, period: &Period) -> BudgetStatus {
        let (start, end) = policy.window.bounds(period.start);
        BudgetStatus {
            tenant: policy.tenant.clone(),
            window: policy.window,
            used_usd: period.used_usd,
            max_usd: policy.max_usd,
            used_tokens: period.used_tokens,
            max_tokens: policy.max_tokens,
            ratio: policy.ratio(period.used_usd, period.used_tokens),
            exhausted: policy.exhausted(period.used_usd, period.used_tokens),
            on_exhausted: policy.on_exhausted,
            period_start: rfc3339(start),
            resets_at: rfc3339(end),
            notified: period.notified.clone(),
        }
    }

    /// The state of `tenant`'s budgets now.
    pub fn statuses(&self, tenant: &str) -> Vec<BudgetStatus> {
        self.statuses_at(tenant, Utc::now())
    }

    /// [`Budgets::statuses`] as of `now`.
    pub fn statuses_at(&self, tenant: &str, now: DateTime<Utc>) -> Vec<BudgetStatus> {
        self.of(tenant)
            .map(|p| Self::status_of(p, &self.period(p, now)))
            .collect()
    }

    /// What `tenant`'s budgets leave for a run's planning now.
    pub fn allowance(&self, tenant: &str) -> Allowance {
        self.allowance_at(tenant, Utc::now())
    }

    /// [`Budgets::allowance`] as of `now`: `Exhausted` when any of the tenant's budgets is
    /// spent, else the smallest remainder of each limit over its budgets (named after the
    /// budget closest to its limit).
    pub fn allowance_at(&self, tenant: &str, now: DateTime<Utc>) -> Allowance {
        let mut limit: Option<(f64, TenantLimit)> = None;
        for policy in self.of(tenant) {
            let period = self.period(policy, now);
            let status = Self::status_of(policy, &period);
            if status.exhausted {
                return Allowance::Exhausted(format!(
                    "{} is spent ({}); no LLM call until it resets at {}",
                    policy.name(),
                    policy.describe(period.used_usd, period.used_tokens),
                    status.resets_at
                ));
            }
            let tokens = policy
                .max_tokens
                .map(|max| max.saturating_sub(period.used_tokens));
            let usd = policy
                .max_usd
                .map(|max| tidy((max - period.used_usd).max(0.0)));
            let min_u64 = |a: Option<u64>, b: Option<u64>| match (a, b) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let min_f64 = |a: Option<f64>, b: Option<f64>| match (a, b) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            limit = Some(match limit {
                None => (
                    status.ratio,
                    TenantLimit {
                        max_tokens: tokens,
                        max_cost_usd: usd,
                        budget: policy.name(),
                        resets_at: status.resets_at,
                    },
                ),
                Some((ratio, have)) => {
                    let closest = status.ratio > ratio;
                    (
                        ratio.max(status.ratio),
                        TenantLimit {
                            max_tokens: min_u64(have.max_tokens, tokens),
                            max_cost_usd: min_f64(have.max_cost_usd, usd),
                            budget: if closest { policy.name() } else { have.budget },
                            resets_at: if closest {
                                status.resets_at
                            } else {
                                have.resets_at
                            },
                        },
                    )
                }
            });
        }
        limit.map_or(Allowance::Unlimited, |(_, l)| Allowance::Limited(l))
    }

    /// Whether `tenant` may start a new run now.
    pub fn admit(&self, tenant: &str) -> Result<(), Box<BudgetRefusal>> {
        self.admit_at(tenant, Utc::now())
    }

    /// [`Budgets::admit`] as of `now`: refused while a budget with `on_exhausted = "reject"`
    /// is spent (a spent `rule_only` budget lets runs in; they plan without the LLM).
    pub fn admit_at(&self, tenant: &str, now: DateTime<Utc>) -> Result<(), Box<BudgetRefusal>> {
        let spent = self
            .of(tenant)
            .filter(|p| p.on_exhausted == OnExhausted::Reject)
            .map(|p| (p, Self::status_of(p, &self.period(p, now))))
            .filter(|(_, s)| s.exhausted)
            .max_by(|a, b| a.1.resets_at.cmp(&b.1.resets_at));
        let Some((policy, status)) = spent else {
            return Ok(());
        };
        let (_, end) = policy.window.bounds(now);
        let secs = (end - now).num_milliseconds().max(0) as u64;
        let retry_after_secs = secs.div_ceil(1000).max(1);
        Err(Box::new(BudgetRefusal {
            message: format!(
                "{} is spent ({}); new runs are refused until it resets at {} (in {retry_after_secs} s)",
                policy.name(),
                policy.describe(status.used_usd, status.used_tokens),
                status.resets_at
            ),
            status,
            retry_after_secs,
        }))
    }

    /// Adds a run's planning spend to each of `tenant`'s budgets and notifies the thresholds it
    /// crossed; returns them.
    pub async fn record(
        &self,
        tenant: &str,
        tokens: u64,
        usd: f64,
    ) -> Result<Vec<BudgetAlert>, StoreError> {
        self.record_at(tenant, tokens, usd, Utc::now()).await
    }

    /// [`Budgets::record`] as of `now`.
    pub async fn record_at(
        &self,
        tenant: &str,
        tokens: u64,
        usd: f64,
        now: DateTime<Utc>,
    ) -> Result<Vec<BudgetAlert>, StoreError> {
        let usd = if usd.is_finite() && usd > 0.0 {
            usd
        } else {
            0.0
        };
        let mut alerts = Vec::new();
        if tokens == 0 && usd == 0.0 {
            return Ok(alerts);
        }
        for policy in self.of(tenant) {
            let (start, _) = policy.window.bounds(now);
            let decide = {
                let policy = policy.clone();
                move |used_usd: f64, used_tokens: u64, notified: &[u8]| {
                    policy.newly_crossed(used_usd, used_tokens, notified)
                }
            };
            let update = self
                .store
                .add_budget_spend(
                    tenant,
                    policy.window.as_str(),
                    &rfc3339(start),
                    tokens,
                    usd,
                    decide,
                )
                .await?;
            let period = Period {
                start,
                used_usd: update.row.used_usd,
                used_tokens: update.row.used_tokens,
                notified: update.row.notified.clone(),
            };
            self.merge(policy, period.clone());
            let status = Self::status_of(policy, &period);
            gauge(&status);
            for threshold in update.newly {
                let alert = BudgetAlert::new(policy, threshold, &status);
                tracing::warn!(
                    tenant = %alert.tenant,
                    window = alert.window.as_str(),
                    threshold = alert.threshold,
                    used_usd = alert.used_usd,
                    max_usd = ?alert.max_usd,
                    used_tokens = alert.used_tokens,
                    max_tokens = ?alert.max_tokens,
                    ratio = alert.ratio,
                    resets_at = %alert.resets_at,
                    "spend budget threshold crossed: {}",
                    alert.text
                );
                if let Some(sink) = self.sink.get() {
                    sink.notify(&alert);
                }
                alerts.push(alert);
            }
        }
        Ok(alerts)
    }

    /// Reloads every budget's current period from the store (spend recorded by another process
    /// on the same data) and updates the gauges.
    pub async fn refresh(&self) -> Result<(), StoreError> {
        self.refresh_at(Utc::now()).await
    }

    /// [`Budgets::refresh`] as of `now`.
    pub async fn refresh_at(&self, now: DateTime<Utc>) -> Result<(), StoreError> {
        for policy in &self.policies {
            let (start, _) = policy.window.bounds(now);
            let row = self
                .store
                .budget_spend(&policy.tenant, policy.window.as_str(), &rfc3339(start))
                .await?;
            let period = row.map_or_else(
                || Period::empty(start),
                |r| Period {
                    start,
                    used_usd: r.used_usd,
                    used_tokens: r.used_tokens,
                    notified: r.notified,
                },
            );
            self.merge(policy, period);
        }
        self.publish_gauges_at(now);
        Ok(())
    }

    /// Sets `crane_budget_used_ratio` of every budget to its current period's ratio (0 after a
    /// window resets).
    pub fn publish_gauges(&self) {
        self.publish_gauges_at(Utc::now());
    }

    /// [`Budgets::publish_gauges`] as of `now`.
    pub fn publish_gauges_at(&self, now: DateTime<Utc>) {
        for policy in &self.policies {
            gauge(&Self::status_of(policy, &self.period(policy, now)));
        }
    }

    /// Reloads from the store every `every` (see [`Budgets::refresh`]) until the ledger is
    /// dropped.
    pub fn spawn_refresh(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(budgets) = weak.upgrade() else {
                    return;
                };
                if let Err(error) = budgets.refresh().await {
                    tracing::debug!(%error, "could not reload the budgets' spend");
                }
            }
        })
    }
}

fn gauge(status: &BudgetStatus) {
    metrics::gauge!(
        "crane_budget_used_ratio",
        "tenant" => status.tenant.clone(),
        "window" => status.window.as_str()
    )
    .set(status.ratio);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreConfig;

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, s).unwrap()
    }

    fn policy(tenant: &str, window: Window, tokens: u64, on: OnExhausted) -> BudgetPolicy {
        BudgetPolicy {
            tenant: tenant.into(),
            window,
            max_usd: None,
            max_tokens: Some(tokens),
            on_exhausted: on,
        }
    }

    /// Collects what the ledger sends.
    #[derive(Default)]
    struct Collect(Mutex<Vec<(String, u8)>>);

    impl AlertSink for Collect {
        fn notify(&self, alert: &BudgetAlert) {
            self.0.lock().unwrap().push((
                format!("{}/{}", alert.tenant, alert.window.as_str()),
                alert.threshold,
            ));
        }
    }

    impl Collect {
        fn take(&self) -> Vec<(String, u8)> {
            std::mem::take(&mut *self.0.lock().unwrap())
        }
    }

    fn sent(list: &[(&str, u8)]) -> Vec<(String, u8)> {
        list.iter().map(|(k, t)| ((*k).to_owned(), *t)).collect()
    }

    #[test]
    fn windows_are_utc_days_and_months() {
        let at = Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 59).unwrap();
        let (s, e) = Window::Day.bounds(at);
        assert_eq!(s.to_rfc3339(), "2026-12-31T00:00:00+00:00");
        assert_eq!(e.to_rfc3339(), "2027-01-01T00:00:00+00:00");
        let (s, e) = Window::Month.bounds(at);
        assert_eq!(s.to_rfc3339(), "2026-12-01T00:00:00+00:00");
        assert_eq!(e.to_rfc3339(), "2027-01-01T00:00:00+00:00");
        let feb = Utc.with_ymd_and_hms(2028, 2, 29, 12, 0, 0).unwrap();
        assert_eq!(
            Window::Month.bounds(feb).1.to_rfc3339(),
            "2028-03-01T00:00:00+00:00"
        );
    }

    #[test]
    fn thresholds_are_crossed_once_each_and_several_at_a_time() {
        let p = policy("acme", Window::Day, 500, OnExhausted::RuleOnly);
        assert_eq!(p.newly_crossed(0.0, 399, &[]), Vec::<u8>::new());
        assert_eq!(p.newly_crossed(0.0, 400, &[]), vec![80], "exactly 80%");
        // One spend from 79% to 96% crosses three thresholds at once.
        assert_eq!(p.newly_crossed(0.0, 480, &[]), vec![80, 90, 95]);
        assert_eq!(p.newly_crossed(0.0, 480, &[80]), vec![90, 95]);
        assert_eq!(p.newly_crossed(0.0, 480, &[80, 90, 95]), Vec::<u8>::new());
        assert_eq!(p.newly_crossed(0.0, 600, &[80, 90, 95]), vec![100]);
        assert!(!p.exhausted(0.0, 499) && p.exhausted(0.0, 500));
        assert_eq!(p.ratio(0.0, 480), 0.96);
        assert_eq!(p.ratio(0.0, 600), 1.2);

        // USD: the ratio is the larger of the two; sums of rounded costs reach a threshold
        // exactly (0.00014 * 4 = 0.00056 = 80% of 0.0007).
        let usd = BudgetPolicy {
            max_usd: Some(0.0007),
            max_tokens: Some(1_000_000),
            ..p.clone()
        };
        let four = crane_llm::add_usd(
            crane_llm::add_usd(Some(0.00014), Some(0.00014)),
            crane_llm::add_usd(Some(0.00014), Some(0.00014)),
        )
        .unwrap();
        assert_eq!(usd.newly_crossed(four, 480, &[]), vec![80]);
        assert_eq!(usd.ratio(four, 480), 0.8);
        assert_eq!(
            usd.describe(four, 480),
            "480 of 1000000 tokens, 0.000560 of 0.000700 USD"
        );

        // A zero budget is spent from the start.
        let zero = policy("acme", Window::Day, 0, OnExhausted::RuleOnly);
        assert!(zero.exhausted(0.0, 0));
        assert_eq!(zero.ratio(0.0, 0), 1.0);
    }

    async fn open(dir: &std::path::Path) -> Arc<Store> {
        Store::open(dir, &StoreConfig::default()).unwrap()
    }

    #[tokio::test]
    async fn spend_is_limited_notified_once_and_rejected_or_rule_only_when_spent() {
        let dir = tempfile::tempdir().unwrap();
        let now = at(2026, 5, 1, 12, 0, 0);
        let budgets = Budgets::load_at(
            open(dir.path()).await,
            vec![
                policy("acme", Window::Day, 500, OnExhausted::RuleOnly),
                BudgetPolicy {
                    max_usd: Some(1.0),
                    ..policy("acme", Window::Month, 10_000, OnExhausted::Reject)
                },
                policy("beta", Window::Day, 300, OnExhausted::Reject),
            ],
            now,
        )
        .await
        .unwrap();
        let sink = Arc::new(Collect::default());
        assert!(budgets.set_sink(sink.clone()));

        // Nothing spent: the smallest remainder of each limit; unknown tenants are unlimited.
        let Allowance::Limited(limit) = budgets.allowance_at("acme", now) else {
            panic!("limited");
        };
        assert_eq!(limit.max_tokens, Some(500));
        assert_eq!(limit.max_cost_usd, Some(1.0));
        assert_eq!(budgets.allowance_at("gamma", now), Allowance::Unlimited);
        assert!(budgets.statuses_at("gamma", now).is_empty());

        // 79%: nothing to notify; then one spend crosses 80, 90 and 95 — each notified once.
        let alerts = budgets.record_at("acme", 395, 0.01, now).await.unwrap();
        assert!(alerts.is_empty());
        let alerts = budgets.record_at("acme", 85, 0.01, now).await.unwrap();
        assert_eq!(
            alerts.iter().map(|a| a.threshold).collect::<Vec<_>>(),
            [80, 90, 95]
        );
        assert_eq!(
            sink.take(),
            sent(&[("acme/day", 80), ("acme/day", 90), ("acme/day", 95)])
        );
        let alert = &alerts[0];
        assert_eq!(alert.used_tokens, 480);
        assert_eq!(alert.ratio, 0.96);
        assert_eq!(alert.period_start, "2026-05-01T00:00:00Z");
        assert_eq!(alert.resets_at, "2026-05-02T00:00:00Z");
        assert!(
            alert.text.contains("tenant acme crossed 80%"),
            "{}",
            alert.text
        );
        assert!(
            budgets
                .record_at("acme", 1, 0.0, now)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(sink.take().is_empty(), "no threshold twice");

        // What is left limits the next run's planning; the month budget is further off.
        let Allowance::Limited(limit) = budgets.allowance_at("acme", now) else {
            panic!("limited");
        };
        assert_eq!(limit.max_tokens, Some(19));
        assert_eq!(limit.max_cost_usd, Some(0.98));
        assert_eq!(limit.budget, "tenant acme's day budget");

        // Spent with rule_only: no LLM call, but new runs are let in.
        let alerts = budgets.record_at("acme", 40, 0.0, now).await.unwrap();
        assert_eq!(alerts.len(), 1);
        assert!(alerts[0].exhausted && alerts[0].text.contains("rule planner only"));
        let Allowance::Exhausted(why) = budgets.allowance_at("acme", now) else {
            panic!("exhausted");
        };
        assert!(
            why.contains("tenant acme's day budget is spent (521 of 500 tokens)")
                && why.contains("2026-05-02T00:00:00Z"),
            "{why}"
        );
        assert_eq!(budgets.admit_at("acme", now), Ok(()));
        let status = &budgets.statuses_at("acme", now)[0];
        assert!(status.exhausted && status.ratio == 1.042);
        assert_eq!(status.notified, vec![80, 90, 95, 100]);

        // Spent with reject: refused until the window resets, and tenants are separate.
        assert!(matches!(
            budgets.allowance_at("beta", now),
            Allowance::Limited(_)
        ));
        budgets.record_at("beta", 300, 0.0, now).await.unwrap();
        let refusal = budgets.admit_at("beta", now).unwrap_err();
        assert_eq!(refusal.retry_after_secs, 12 * 3600);
        assert_eq!(refusal.status.resets_at, "2026-05-02T00:00:00Z");
        assert!(
            refusal
                .message
                .contains("new runs are refused until it resets at 2026-05-02T00:00:00Z"),
            "{}",
            refusal.message
        );
        assert!(matches!(
            budgets.allowance_at("beta", now),
            Allowance::Exhausted(_)
        ));
        assert_eq!(
            sink.take(),
            sent(&[
                ("acme/day", 100),
                ("beta/day", 80),
                ("beta/day", 90),
                ("beta/day", 95),
                ("beta/day", 100)
            ])
        );
    }

    #[tokio::test]
    async fn a_new_window_starts_from_zero_and_notifies_again() {
        let dir = tempfile::tempdir().unwrap();
        let last_second = at(2026, 5, 31, 23, 59, 59);
        let budgets = Budgets::load_at(
            open(dir.path()).await,
            vec![
                policy("acme", Window::Day, 100, OnExhausted::Reject),
                policy("acme", Window::Month, 1000, OnExhausted::Reject),
            ],
            last_second,
        )
        .await
        .unwrap();
        let sink = Arc::new(Collect::default());
        budgets.set_sink(sink.clone());
        budgets
            .record_at("acme", 100, 0.0, last_second)
            .await
            .unwrap();
        assert_eq!(
            sink.take(),
            sent(&[
                ("acme/day", 80),
                ("acme/day", 90),
                ("acme/day", 95),
                ("acme/day", 100)
            ])
        );
        let refusal = budgets.admit_at("acme", last_second).unwrap_err();
        assert_eq!(refusal.retry_after_secs, 1);

        // Midnight UTC at the end of May: both windows reset.
        let next = at(2026, 6, 1, 0, 0, 0);
        assert_eq!(budgets.admit_at("acme", next), Ok(()));
        let statuses = budgets.statuses_at("acme", next);
        for s in &statuses {
            assert_eq!((s.used_tokens, s.ratio, s.exhausted), (0, 0.0, false));
            assert!(s.notified.is_empty());
        }
        assert_eq!(statuses[0].period_start, "2026-06-01T00:00:00Z");
        assert_eq!(statuses[0].resets_at, "2026-06-02T00:00:00Z");
        assert_eq!(statuses[1].resets_at, "2026-07-01T00:00:00Z");
        let Allowance::Limited(limit) = budgets.allowance_at("acme", next) else {
            panic!("limited");
        };
        assert_eq!(limit.max_tokens, Some(100));
        // The new period notifies its thresholds again.
        budgets.record_at("acme", 85, 0.0, next).await.unwrap();
        assert_eq!(sink.take(), sent(&[("acme/day", 80)]));

        // A day rolls over inside a month: the month keeps its spend.
        let day2 = at(2026, 6, 2, 0, 0, 1);
        let statuses = budgets.statuses_at("acme", day2);
        assert_eq!(statuses[0].used_tokens, 0);
        assert_eq!(statuses[1].used_tokens, 85);
    }

    #[tokio::test]
    async fn spend_and_notified_marks_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let now = at(2026, 5, 1, 12, 0, 0);
        let policies = vec![BudgetPolicy {
            max_usd: Some(0.001),
            max_tokens: None,
            ..policy("acme", Window::Month, 0, OnExhausted::RuleOnly)
        }];
        {
            let store = open(dir.path()).await;
            let budgets = Budgets::load_at(store.clone(), policies.clone(), now)
                .await
                .unwrap();
            let alerts = budgets.record_at("acme", 10, 0.00085, now).await.unwrap();
            assert_eq!(alerts.len(), 1);
            store.close().await;
        }
        // A new process: the spend and the 80% mark come from the store.
        let budgets = Budgets::load_at(open(dir.path()).await, policies, now)
            .await
            .unwrap();
        let sink = Arc::new(Collect::default());
        budgets.set_sink(sink.clone());
        let status = &budgets.statuses_at("acme", now)[0];
        assert_eq!(status.used_usd, 0.00085);
        assert_eq!(status.used_tokens, 10);
        assert_eq!(status.notified, vec![80]);
        // Still under 90%: 80% is not notified a second time.
        assert!(
            budgets
                .record_at("acme", 1, 0.00002, now)
                .await
                .unwrap()
                .is_empty()
        );
        // Past 90%: only 90.
        budgets.record_at("acme", 1, 0.00005, now).await.unwrap();
        assert_eq!(sink.take(), sent(&[("acme/month", 90)]));
        assert_eq!(budgets.statuses_at("acme", now)[0].used_usd, 0.00092);
    }

    #[tokio::test]
    async fn refresh_sees_spend_recorded_by_another_process() {
        let dir = tempfile::tempdir().unwrap();
        let now = at(2026, 5, 1, 12, 0, 0);
        let policies = vec![policy("acme", Window::Day, 100, OnExhausted::Reject)];
        let store = open(dir.path()).await;
        let ours = Budgets::load_at(store.clone(), policies.clone(), now)
            .await
            .unwrap();
        let theirs = Budgets::load_at(store, policies, now).await.unwrap();
        theirs.record_at("acme", 100, 0.0, now).await.unwrap();
        assert_eq!(ours.admit_at("acme", now), Ok(()), "not reloaded yet");
        ours.refresh_at(now).await.unwrap();
        assert!(ours.admit_at("acme", now).is_err());
    }
}
