//! Authentication, authorisation and rate limits at the HTTP edge.
//!
//! Every matched route passes [`middleware`]: with auth off the request acts as tenant
//! `default` with every right; with keys it needs `Authorization: Bearer crk_...` (401
//! `unauthorized` otherwise), the key's role must have the route's right ([`RULES`]; 403
//! `forbidden`), and the key (and its tenant) must be within the rate limits (429
//! `rate_limited` with `Retry-After` and the IETF `RateLimit` / `RateLimit-Policy` headers).
//! The [`Principal`] is then put in the request's extensions for the handlers, which scope
//! every store access by its tenant. `/health` needs no key.
//!
//! Keys are looked up by id in the store and cached for at most [`KEY_CACHE_TTL`], so a key
//! revoked anywhere (another process, another replica) stops working within that time; a key
//! revoked through this process stops at once. The presented key never reaches a log, span,
//! metric or error: only its id does.
//!
//! Rate limits are token buckets from `governor` (GCRA), keyed by key id and by tenant.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use crane_core::access::{Principal, Role, parse_key, verify_secret};
use crane_core::store::Store;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::ApiError;

/// Longest a cached key (or a cached "no such key") is trusted before the store is asked again.
pub const KEY_CACHE_TTL: Duration = Duration::from_millis(500);

/// The right each route needs: (method, route template, least role). A route missing here is
/// refused (403) for every key; a unit test checks every route has a rule.
pub const RULES: &[(&str, &str, Role)] = &[
    ("POST", "/runs", Role::Operator),
    ("GET", "/runs", Role::Viewer),
    ("GET", "/runs/{run_id}", Role::Viewer),
    ("POST", "/runs/{run_id}/retry", Role::Operator),
    ("POST", "/runs/{run_id}/cancel", Role::Operator),
    ("POST", "/runs/{run_id}/feedback", Role::Operator),
    ("POST", "/experiments", Role::Admin),
    ("GET", "/experiments", Role::Viewer),
    ("GET", "/experiments/{name}", Role::Viewer),
    ("POST", "/experiments/{name}/stop", Role::Admin),
    ("POST", "/experiments/{name}/promote", Role::Admin),
    ("GET", "/cache", Role::Viewer),
    ("DELETE", "/cache", Role::Admin),
    ("GET", "/tools", Role::Viewer),
    ("GET", "/metrics", Role::Viewer),
    ("GET", "/metrics/planner", Role::Viewer),
    ("GET", "/openapi.json", Role::Viewer),
    ("GET", "/evals", Role::Viewer),
    ("GET", "/evals/{eval_id}", Role::Viewer),
    ("GET", "/planners", Role::Viewer),
    ("GET", "/planners/{name}", Role::Viewer),
    ("GET", "/prompts", Role::Viewer),
    ("GET", "/prompts/{name}/{version}", Role::Viewer),
    ("GET", "/aliases", Role::Viewer),
    ("PUT", "/aliases/{alias}", Role::Admin),
    ("POST", "/aliases/{alias}/rollback", Role::Admin),
    ("GET", "/aliases/{alias}/history", Role::Viewer),
    ("POST", "/keys", Role::Admin),
    ("GET", "/keys", Role::Admin),
    ("DELETE", "/keys/{key_id}", Role::Admin),
    ("GET", "/audit", Role::Admin),
    ("GET", "/budgets", Role::Viewer),
    ("GET", "/analysis/failures", Role::Viewer),
];

/// Routes anyone may call without a key.
pub const PUBLIC: &[(&str, &str)] = &[("GET", "/health")];

/// The least role a route needs, or `None` for a route without a rule.
pub fn rule(method: &Method, route: &str) -> Option<Role> {
    RULES
        .iter()
        .find(|(m, r, _)| *r == route && *m == method.as_str())
        .map(|(_, _, role)| *role)
}

/// Routes that create runs (counted against `runs_per_minute`).
fn creates_runs(method: &Method, route: &str) -> bool {
    method == Method::POST && (route == "/runs" || route == "/runs/{run_id}/retry")
}

/// The rate limits (from `[limits]`), `None` for no limit.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    pub requests_per_second: Option<NonZeroU32>,
    pub runs_per_minute: Option<NonZeroU32>,
    pub tenant_requests_per_second: Option<NonZeroU32>,
    pub tenant_runs_per_minute: Option<NonZeroU32>,
}

/// One token bucket per key (or tenant), with the quota it was built from (for the headers).
struct Bucket {
    limiter: DefaultKeyedRateLimiter<String>,
    /// Tokens per window and the window, for `RateLimit-Policy`.
    quota: u32,
    window_secs: u64,
    name: &'static str,
}

impl Bucket {
    fn per_second(n: NonZeroU32, name: &'static str) -> Self {
        Self {
            limiter: RateLimiter::keyed(Quota::per_second(n)),
            quota: n.get(),
            window_secs: 1,
            name,
        }
    }

    fn per_minute(n: NonZeroU32, name: &'static str) -> Self {
        Self {
            limiter: RateLimiter::keyed(Quota::per_minute(n)),
            quota: n.get(),
            window_secs: 60,
            name,
        }
    }

    /// Takes a token for `key`, or says how long until one is free.
    fn check(&self, key: &str) -> Result<(), Duration> {
        // `check_key` needs an owned key only when the key is new to the limiter.
        self.limiter
            .check_key(&key.to_owned())
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// A key as cached from the store.
#[derive(Clone)]
struct CachedKey {
    /// `None`: no such key, or revoked.
    key: Option<(String, Role, String)>,
    fetched: Instant,
}

/// What the auth middleware needs: the mode, the store (for keys), the key cache and the rate
/// limiters. Shared by every request.
pub struct AuthState {
    keys_required: bool,
    store: Arc<Store>,
    cache: Mutex<HashMap<String, CachedKey>>,
    per_key_requests: Option<Bucket>,
    per_key_runs: Option<Bucket>,
    per_tenant_requests: Option<Bucket>,
    per_tenant_runs: Option<Bucket>,
}

impl AuthState {
    /// `keys_required`: auth mode `keys` (else every request acts as tenant `default`).
    pub fn new(keys_required: bool, store: Arc<Store>, limits: Limits) -> Self {
        Self {
            keys_required,
            store,
            cache: Mutex::new(HashMap::new()),
            per_key_requests: limits
                .requests_per_second
                .map(|n| Bucket::per_second(n, "requests")),
            per_key_runs: limits
                .runs_per_minute
                .map(|n| Bucket::per_minute(n, "runs")),
            per_tenant_requests: limits
                .tenant_requests_per_second
                .map(|n| Bucket::per_second(n, "tenant-requests")),
            per_tenant_runs: limits
                .tenant_runs_per_minute
                .map(|n| Bucket::per_minute(n, "tenant-runs")),
        }
    }

    /// Whether requests need a key.
    pub fn keys_required(&self) -> bool {
        self.keys_required
    }

    /// Forgets a key at once (it was revoked through this process).
    pub fn forget(&self, key_id: &str) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(key_id);
        }
    }

    /// The tenant and role of a presented key, or `None` when it is unknown or revoked.
    async fn authenticate(&self, presented: &str) -> Result<Option<Principal>, ApiError> {
        let Some((key_id, secret)) = parse_key(presented) else {
            return Ok(None);
        };
        let cached = self
            .cache
            .lock()
            .ok()
            .and_then(|c| c.get(key_id).cloned())
            .filter(|c| c.fetched.elapsed() < KEY_CACHE_TTL);
        let entry = match cached {
            Some(c) => c,
            None => {
                let row = self.store.get_api_key(key_id).await.map_err(|e| {
                    tracing::error!(error = %e, "could not read API keys");
                    ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "unavailable",
                        "could not check the API key; try again",
                    )
                })?;
                let entry = CachedKey {
                    key: row
                        .filter(|r| r.revoked_at.is_none())
                        .map(|r| (r.hash, r.role, r.tenant)),
                    fetched: Instant::now(),
                };
                if let Ok(mut cache) = self.cache.lock() {
                    // Bounded: stale entries go when the cache grows past what live keys need.
                    if cache.len() > 10_000 {
                        cache.retain(|_, c| c.fetched.elapsed() < KEY_CACHE_TTL);
                    }
                    cache.insert(key_id.to_owned(), entry.clone());
                }
                entry
            }
        };
        Ok(entry.key.and_then(|(hash, role, tenant)| {
            verify_secret(secret, &hash).then(|| Principal {
                tenant,
                role,
                key_id: Some(key_id.to_owned()),
            })
        }))
    }
}

fn unauthorized(message: &str) -> Response {
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

fn rate_limited(bucket: &Bucket, wait: Duration, whose: &str) -> Response {
    let retry = wait.as_secs_f64().ceil().max(1.0) as u64;
    let mut response = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!(
            "{whose} is over its limit of {} {} per {} s; retry after {retry} s",
            bucket.quota,
            if bucket.name.ends_with("runs") {
                "runs"
            } else {
                "requests"
            },
            bucket.window_secs
        ),
    )
    .into_response();
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from(retry));
    if let Ok(v) = HeaderValue::from_str(&format!(
        "\"{}\";q={};w={}",
        bucket.name, bucket.quota, bucket.window_secs
    )) {
        headers.insert("ratelimit-policy", v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\";r=0;t={retry}", bucket.name)) {
        headers.insert("ratelimit", v);
    }
    response
}

/// The middleware (see the module docs). Runs after routing, so the route template is known.
pub async fn middleware(
    State(auth): State<Arc<AuthState>>,
    matched: Option<MatchedPath>,
    mut request: Request,
    next: Next,
) -> Response {
    let route = matched.as_ref().map_or("", MatchedPath::as_str);
    let method = request.method().clone();
    if PUBLIC
        .iter()
        .any(|(m, r)| *r == route && *m == method.as_str())
    {
        return next.run(request).await;
    }
    if !auth.keys_required {
        request
            .extensions_mut()
            .insert(Principal::unauthenticated());
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    let Some(presented) = presented else {
        return unauthorized("send an API key: Authorization: Bearer crk_...");
    };
    let principal = match auth.authenticate(presented).await {
        Ok(Some(p)) => p,
        Ok(None) => return unauthorized("unknown or revoked API key"),
        Err(e) => return e.into_response(),
    };
    match rule(&method, route) {
        Some(needed) if principal.role.allows(needed) => {}
        needed => {
            let message = match needed {
                Some(needed) => format!(
                    "{method} {route} needs the {needed} role; this key is {}",
                    principal.role
                ),
                None => format!("{method} {route} is not open to API keys"),
            };
            return ApiError::new(StatusCode::FORBIDDEN, "forbidden", message).into_response();
        }
    }
    let key_id = principal.key_id.as_deref().unwrap_or_default();
    let runs = creates_runs(&method, route);
    let checks = [
        (&auth.per_key_requests, key_id, "this API key", true),
        (
            &auth.per_tenant_requests,
            principal.tenant.as_str(),
            "this tenant",
            true,
        ),
        (&auth.per_key_runs, key_id, "this API key", runs),
        (
            &auth.per_tenant_runs,
            principal.tenant.as_str(),
            "this tenant",
            runs,
        ),
    ];
    for (bucket, key, whose, applies) in checks {
        if let (Some(bucket), true) = (bucket, applies)
            && let Err(wait) = bucket.check(key)
        {
            return rate_limited(bucket, wait, whose);
        }
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_has_a_rule() {
        for (method, route) in crate::ROUTES {
            let public = PUBLIC.iter().any(|(m, r)| m == method && r == route);
            let method: Method = method.parse().unwrap();
            assert!(
                public || rule(&method, route).is_some(),
                "{method} {route} has no auth rule: add it to auth::RULES"
            );
        }
        for (method, route, _) in RULES {
            assert!(
                crate::ROUTES.contains(&(method, route)),
                "auth rule for {method} {route}, which is not a route"
            );
        }
    }

    #[test]
    fn writes_need_operator_or_admin() {
        for (method, route, role) in RULES {
            if *method == "GET" && !matches!(*route, "/keys" | "/audit") {
                assert_eq!(*role, Role::Viewer, "{method} {route}");
            } else {
                assert!(*role >= Role::Operator, "{method} {route}");
            }
        }
    }

    #[test]
    fn buckets_refuse_over_the_quota_and_say_how_long() {
        let bucket = Bucket::per_minute(NonZeroU32::new(2).unwrap(), "runs");
        assert!(bucket.check("k").is_ok());
        assert!(bucket.check("k").is_ok());
        let wait = bucket.check("k").unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        assert!(bucket.check("other").is_ok(), "keys have their own buckets");
        let response = rate_limited(&bucket, wait, "this API key");
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let h = response.headers();
        assert!(h.get(header::RETRY_AFTER).is_some());
        assert_eq!(h.get("ratelimit-policy").unwrap(), "\"runs\";q=2;w=60");
        assert!(
            h.get("ratelimit")
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("\"runs\";r=0;t=")
        );
    }
}
