//! Access settings: the auth mode (`[auth] mode`, `CRANE_AUTH`), rate limits per key and per
//! tenant (`[limits]`), spend budgets per tenant (`[[budgets]]`) and where budget alerts go
//! (`[alerts] webhook_url`, `CRANE_ALERTS_WEBHOOK_URL`).
//!
//! Auth defaults to `off` on a loopback address; on any other address `crane serve` refuses to
//! start with auth off unless `CRANE_AUTH=off` (or `[auth] mode = "off"`) says so explicitly
//! ([`AccessSettings::check_exposure`]).

use std::net::SocketAddr;

use crane_core::access::check_tenant;
use crane_core::budgets::{BudgetPolicy, OnExhausted, Window};
use serde::Deserialize;

use crate::error::{Result, SettingsError};

/// `[auth]` in crane.toml.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    /// `off` or `keys` (`CRANE_AUTH` wins).
    pub mode: Option<String>,
}

/// One `[[budgets]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetFile {
    pub tenant: String,
    /// `day` or `month` (UTC).
    pub window: String,
    pub max_usd: Option<f64>,
    pub max_tokens: Option<u64>,
    /// `rule_only` (default: keep serving with the rule planner) or `reject` (429).
    pub on_exhausted: Option<String>,
}

/// `[alerts]` in crane.toml.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsFile {
    /// Budget threshold notifications are POSTed here as JSON (Slack-compatible `text`).
    pub webhook_url: Option<String>,
}

/// How requests are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Every request acts as tenant `default` with every right.
    Off,
    /// Every request but `/health` needs `Authorization: Bearer KEY`.
    Keys,
}

/// Rate limits (token buckets); `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RateLimits {
    /// Requests per second per key.
    pub requests_per_second: Option<u32>,
    /// Runs created (POST /runs, retries) per minute per key.
    pub runs_per_minute: Option<u32>,
    /// Requests per second of all a tenant's keys together.
    pub tenant_requests_per_second: Option<u32>,
    /// Runs per minute of all a tenant's keys together.
    pub tenant_runs_per_minute: Option<u32>,
}

/// The resolved access settings.
#[derive(Debug, Clone)]
pub struct AccessSettings {
    pub auth: AuthMode,
    /// Whether the mode was set explicitly (environment or file) rather than defaulted.
    pub auth_explicit: bool,
    pub limits: RateLimits,
    pub budgets: Vec<BudgetPolicy>,
    pub webhook_url: Option<String>,
}

impl Default for AccessSettings {
    fn default() -> Self {
        Self {
            auth: AuthMode::Off,
            auth_explicit: false,
            limits: RateLimits::default(),
            budgets: Vec::new(),
            webhook_url: None,
        }
    }
}

fn parse_mode(value: &str, source: &str) -> Result<AuthMode> {
    match value.trim().to_ascii_lowercase().as_str() {
        "off" => Ok(AuthMode::Off),
        "keys" => Ok(AuthMode::Keys),
        other => Err(SettingsError::new(format!(
            "{source}='{other}' is not an auth mode (use off or keys)"
        ))),
    }
}

fn positive(name: &str, v: Option<u32>) -> Result<Option<u32>> {
    match v {
        Some(0) => Err(SettingsError::new(format!(
            "[limits] {name} = 0 would refuse every request; leave it out for no limit"
        ))),
        other => Ok(other),
    }
}

/// A budget from its `[[budgets]]` entry.
fn budget(b: &BudgetFile) -> Result<BudgetPolicy> {
    let at = |msg: String| SettingsError::new(format!("[[budgets]] tenant {}: {msg}", b.tenant));
    check_tenant(&b.tenant).map_err(&at)?;
    let window = match b.window.trim().to_ascii_lowercase().as_str() {
        "day" => Window::Day,
        "month" => Window::Month,
        other => return Err(at(format!("window '{other}' (use day or month)"))),
    };
    let on_exhausted = match b.on_exhausted.as_deref().map(str::trim) {
        None | Some("rule_only") => OnExhausted::RuleOnly,
        Some("reject") => OnExhausted::Reject,
        Some(other) => {
            return Err(at(format!(
                "on_exhausted '{other}' (use rule_only or reject)"
            )));
        }
    };
    if let Some(usd) = b.max_usd
        && !(usd.is_finite() && usd >= 0.0)
    {
        return Err(at(format!("max_usd {usd} must be a number >= 0")));
    }
    if b.max_usd.is_none() && b.max_tokens.is_none() {
        return Err(at("set max_usd, max_tokens or both".into()));
    }
    Ok(BudgetPolicy {
        tenant: b.tenant.clone(),
        window,
        max_usd: b.max_usd,
        max_tokens: b.max_tokens,
        on_exhausted,
    })
}

impl AccessSettings {
    /// Resolves the files' tables and the environment (`env` reads a variable).
    pub fn resolve(
        auth: &AuthFile,
        limits: &crate::LimitsFile,
        budgets: &[BudgetFile],
        alerts: &AlertsFile,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let env_mode = env("CRANE_AUTH").filter(|v| !v.trim().is_empty());
        let (auth, auth_explicit) = match (&env_mode, &auth.mode) {
            (Some(v), _) => (parse_mode(v, "CRANE_AUTH")?, true),
            (None, Some(v)) => (parse_mode(v, "[auth] mode")?, true),
            (None, None) => (AuthMode::Off, false),
        };
        let limits = RateLimits {
            requests_per_second: positive("requests_per_second", limits.requests_per_second)?,
            runs_per_minute: positive("runs_per_minute", limits.runs_per_minute)?,
            tenant_requests_per_second: positive(
                "tenant_requests_per_second",
                limits.tenant_requests_per_second,
            )?,
            tenant_runs_per_minute: positive(
                "tenant_runs_per_minute",
                limits.tenant_runs_per_minute,
            )?,
        };
        let mut policies: Vec<BudgetPolicy> = Vec::new();
        for b in budgets {
            let p = budget(b)?;
            if policies
                .iter()
                .any(|q| q.tenant == p.tenant && q.window == p.window)
            {
                return Err(SettingsError::new(format!(
                    "[[budgets]] tenant {} has two {} budgets; keep one",
                    p.tenant,
                    p.window.as_str()
                )));
            }
            policies.push(p);
        }
        let webhook_url = env("CRANE_ALERTS_WEBHOOK_URL")
            .or_else(|| alerts.webhook_url.clone())
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty());
        if let Some(url) = &webhook_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(SettingsError::new(
                "[alerts] webhook_url must be an http:// or https:// URL",
            ));
        }
        Ok(Self {
            auth,
            auth_explicit,
            limits,
            budgets: policies,
            webhook_url,
        })
    }

    /// Refuses auth off on an address other hosts can reach, unless it was asked for
    /// explicitly; returns whether to warn (auth explicitly off on such an address).
    pub fn check_exposure(&self, addr: SocketAddr) -> Result<bool> {
        if self.auth == AuthMode::Keys || addr.ip().is_loopback() {
            return Ok(false);
        }
        if self.auth_explicit {
            return Ok(true);
        }
        Err(SettingsError::new(format!(
            "refusing to serve on {addr} without authentication: anyone who can reach it could read every run and spend the LLM budget. Set CRANE_AUTH=keys (and create a key with `crane keys create --tenant T --role admin`), or CRANE_AUTH=off to serve without auth on purpose"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    fn resolve(
        auth: AuthFile,
        budgets: &[BudgetFile],
        e: &'static [(&'static str, &'static str)],
    ) -> Result<AccessSettings> {
        AccessSettings::resolve(
            &auth,
            &crate::LimitsFile::default(),
            budgets,
            &AlertsFile::default(),
            env(e),
        )
    }

    #[test]
    fn auth_off_is_refused_on_a_public_address_unless_explicit() {
        let public: SocketAddr = "0.0.0.0:8000".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:8000".parse().unwrap();
        let s = resolve(AuthFile::default(), &[], &[]).unwrap();
        assert_eq!(s.auth, AuthMode::Off);
        assert_eq!(s.check_exposure(local), Ok(false));
        let err = s.check_exposure(public).unwrap_err().to_string();
        assert!(err.contains("CRANE_AUTH"), "{err}");
        let s = resolve(AuthFile::default(), &[], &[("CRANE_AUTH", "off")]).unwrap();
        assert_eq!(
            s.check_exposure(public),
            Ok(true),
            "explicit: start with a warning"
        );
        let s = resolve(AuthFile::default(), &[], &[("CRANE_AUTH", "keys")]).unwrap();
        assert_eq!(s.auth, AuthMode::Keys);
        assert_eq!(s.check_exposure(public), Ok(false));
        let file = AuthFile {
            mode: Some("keys".into()),
        };
        assert_eq!(resolve(file, &[], &[]).unwrap().auth, AuthMode::Keys);
        let err = resolve(AuthFile::default(), &[], &[("CRANE_AUTH", "yes")]).unwrap_err();
        assert!(err.to_string().contains("off or keys"), "{err}");
    }

    #[test]
    fn budgets_are_checked() {
        let b = |tenant: &str, window: &str, usd: Option<f64>, on: Option<&str>| BudgetFile {
            tenant: tenant.into(),
            window: window.into(),
            max_usd: usd,
            max_tokens: None,
            on_exhausted: on.map(str::to_owned),
        };
        let s = resolve(
            AuthFile::default(),
            &[
                b("acme", "day", Some(5.0), None),
                b("acme", "month", Some(50.0), Some("reject")),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(s.budgets.len(), 2);
        assert_eq!(s.budgets[0].on_exhausted, OnExhausted::RuleOnly);
        assert_eq!(s.budgets[1].on_exhausted, OnExhausted::Reject);
        for (bad, why) in [
            (b("acme", "week", Some(1.0), None), "day or month"),
            (b("Acme", "day", Some(1.0), None), "invalid tenant"),
            (b("acme", "day", Some(-1.0), None), ">= 0"),
            (b("acme", "day", None, None), "max_usd, max_tokens"),
            (
                b("acme", "day", Some(1.0), Some("stop")),
                "rule_only or reject",
            ),
        ] {
            let err = resolve(AuthFile::default(), &[bad], &[])
                .unwrap_err()
                .to_string();
            assert!(err.contains(why), "{err}");
        }
        let err = resolve(
            AuthFile::default(),
            &[
                b("acme", "day", Some(1.0), None),
                b("acme", "day", Some(2.0), None),
            ],
            &[],
        )
        .unwrap_err();
        assert!(err.to_string().contains("two day budgets"), "{err}");
    }
}
