//! `crane serve`: metrics recorder, runtime, optional MLflow run export, budget alerts, crash
//! recovery, then the HTTP server until a graceful shutdown.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use crane_settings::Settings;

use crate::cli::Common;

pub async fn serve(common: Common) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(&common.overrides())?;
    super::init_logging(&settings, "info");
    // Auth off on an address other hosts reach: refused unless asked for explicitly.
    if settings.access.check_exposure(settings.addr)? {
        tracing::warn!(
            addr = %settings.addr,
            "serving WITHOUT authentication on an address other hosts can reach (CRANE_AUTH=off): anyone who can connect can read every run and spend the LLM budget"
        );
    }
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(&[
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            30.0,
        ])
        .context("invalid histogram buckets")?
        .install_recorder()
        .context("could not install the metrics recorder")?;
    crane_telemetry::metrics_help::describe();
    // The exporter buffers raw histogram samples until upkeep folds them into buckets; without
    // this task they pile up between scrapes (RSS grew ~100 bytes per run when unscraped).
    let upkeep = metrics.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    metrics::gauge!("crane_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    let (runtime, prompts) = super::open_runtime(&settings).await?;
    runtime.spawn_alias_refresh(settings.registry.alias_refresh());
    // Experiments: the running ones re-read every half second (any replica may start, stop
    // or promote one), outcomes flushed once a second.
    let experiments = crane_core::experiments::service::Experiments::load(runtime.store().clone())
        .await
        .context("could not load the experiments")?;
    experiments.spawn(
        std::time::Duration::from_millis(500),
        std::time::Duration::from_secs(1),
    );
    if let Some(exporter) =
        crane_tracking::experiment_export::ExperimentExporter::new(&settings.tracking)
    {
        experiments.set_observer(std::sync::Arc::new(exporter));
    }
    runtime.set_experiments(experiments);
    if let Some(semantic) = &settings.semantic {
        super::semantic::enable(&runtime, semantic).await?;
    }
    // Budget alerts (before recovery: resumed runs spend too), and the spend other processes
    // record on the same data dir.
    let alerts = super::start_alerts(&runtime, &settings)?;
    if let Some(budgets) = runtime.budgets() {
        // Several replicas share one PostgreSQL: spend recorded by the others counts within
        // half a second.
        budgets.spawn_refresh(if runtime.store().postgres().is_some() {
            std::time::Duration::from_millis(500)
        } else {
            std::time::Duration::from_secs(5)
        });
        tracing::info!(
            budgets = budgets.policies().len(),
            webhook = alerts.is_some(),
            "spend budgets enforced"
        );
    }
    // Before recovery, so runs resumed after a restart are exported too.
    let exporter = crane_tracking::run_export::RunExporter::start(&settings.tracking);
    if let Some(exporter) = &exporter {
        runtime.set_observer(exporter.observer());
    }
    let recovered = runtime.recover().await?;
    // PostgreSQL: keep the leases of the runs executing here; resume the runs of replicas
    // that died, once their lease lapses.
    runtime.spawn_leases(std::time::Duration::from_millis(500));
    let listener = tokio::net::TcpListener::bind(settings.addr)
        .await
        .with_context(|| format!("could not listen on {}", settings.addr))?;
    let local = listener.local_addr()?;
    match runtime.store().postgres() {
        Some(pg) => {
            tracing::info!(addr = %local, store = "postgres", replica = pg.replica(), recovered, "crane listening")
        }
        None => {
            tracing::info!(addr = %local, data_dir = %settings.data_dir.display(), recovered, "crane listening")
        }
    }
    // Tests and scripts read the bound address (useful with --addr 127.0.0.1:0) from stdout.
    println!("crane listening on http://{local}");
    let rate = settings.access.limits;
    let nz = |v: Option<u32>| v.and_then(std::num::NonZeroU32::new);
    let auth = crane_server::auth::AuthState::new(
        settings.access.auth == crane_settings::access::AuthMode::Keys,
        runtime.store().clone(),
        crane_server::auth::Limits {
            requests_per_second: nz(rate.requests_per_second),
            runs_per_minute: nz(rate.runs_per_minute),
            tenant_requests_per_second: nz(rate.tenant_requests_per_second),
            tenant_runs_per_minute: nz(rate.tenant_runs_per_minute),
        },
    );
    tracing::info!(
        auth = if auth.keys_required() { "keys" } else { "off" },
        "authentication"
    );
    let state = crane_server::AppState {
        runtime,
        metrics: Some(Arc::new(metrics)),
        wait_timeout: settings.wait_timeout,
        prompts,
        auth: Arc::new(auth),
    };
    let limits = crane_server::HttpLimits {
        header_read_timeout: settings.server.header_read_timeout,
        request_timeout: settings.server.request_timeout,
        max_connections: settings.server.max_connections,
        max_header_bytes: settings.server.max_header_bytes,
    };
    crane_server::serve(
        listener,
        state,
        settings.max_body_bytes,
        settings.drain_timeout,
        &limits,
    )
    .await?;
    // After the drain: the runs it finished are queued too.
    if let Some(exporter) = exporter {
        exporter.shutdown().await;
    }
    if let Some(alerts) = alerts {
        alerts.shutdown(super::ALERTS_FLUSH).await;
    }
    Ok(ExitCode::SUCCESS)
}
