//! The router, its middleware, and `serve` with background tasks and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
use crate::state::AppState;

/// The whole HTTP application over `state`.
pub fn app(state: AppState) -> Router {
    let body_limit = state.config.max_body_bytes;
    let mut router = crate::api::routes().merge(crate::console::routes());
    // With `[metrics] listen` set, `/metrics` lives on that address only (see
    // [`metrics_app`]); the main address answers 404 there.
    if state.config.metrics.listen.is_none() {
        router = router.route("/metrics", axum::routing::get(crate::api::system::metrics));
    }
    let router = router
        .fallback(not_found)
        // 405 with the error body; the router adds `Allow` with the route's methods.
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(state.clone(), observe));
    // Request spans cost a layer on every request: only when someone will see them
    // (`RUST_LOG=tower_http=debug`; the filter is fixed at start).
    let router = if tracing::enabled!(target: "tower_http::trace", tracing::Level::DEBUG) {
        router.layer(TraceLayer::new_for_http())
    } else {
        router
    };
    router.with_state(state)
}

/// The application served on `[metrics] listen`: `/metrics` alone (with the same caller
/// checks as on the main address), 404 for everything else.
pub fn metrics_app(state: AppState) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(crate::api::system::metrics))
        .fallback(|| async { ApiError::NotFound("route") })
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Unknown routes: a JSON error for API clients, a readable page for a browser (one that
/// asks for HTML, outside the machine-facing prefixes).
async fn not_found(req: Request) -> Response {
    let path = req.uri().path();
    let machine_facing = ["/api/", "/auth/", "/oauth/", "/.well-known/"]
        .iter()
        .any(|prefix| path.starts_with(prefix));
    let wants_html = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if wants_html && !machine_facing {
        return crate::console::session::message_page(
            axum::http::StatusCode::NOT_FOUND,
            "Not found",
            "There is no page at this address.",
        );
    }
    axum::response::IntoResponse::into_response(ApiError::NotFound("route"))
}

/// The one middleware every request passes: authenticates it (see
/// [`crate::auth::authenticate_request`]), records metrics and sets the headers every
/// response carries. One layer rather than two saves a boxed service and future per
/// request.
async fn observe(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    // `MatchedPath` is an `Arc<str>` and a standard `Method` is a tag: neither clone allocates.
    let route = req.extensions().get::<MatchedPath>().cloned();
    let method = req.method().clone();
    let expiration = crate::auth::authenticate_request(&state, &mut req).await;
    // Query parameters the operation does not declare are refused, for every route the
    // OpenAPI document describes (one check here rather than one per handler).
    let refused = match (route.as_ref(), req.uri().query()) {
        (Some(route), Some(query)) => {
            crate::api::spec::check_query(&method, route.as_str(), query).err()
        }
        _ => None,
    };
    let mut response = match refused {
        Some(error) => axum::response::IntoResponse::into_response(error),
        None => next.run(req).await,
    };
    if let Some(value) = expiration {
        response
            .headers_mut()
            .insert(crate::auth::TOKEN_EXPIRATION_HEADER, value);
    }
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Every HTML answer, console route or not (the 404 page too), gets the console's CSP.
    let html = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if html && !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(crate::console::CONTENT_SECURITY_POLICY),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    if route.starts_with("/api/") && !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    state.metrics.observe_request(
        route,
        &method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// Serves until `shutdown` resolves, then drains in-flight requests, stops the background
/// tasks and flushes buffered last-used times.
///
/// With `[metrics] listen` set, `/metrics` is served there (bound here; see
/// [`serve_with_metrics`] to bind it earlier).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let metrics = match state.config.metrics.listen {
        Some(addr) => Some(TcpListener::bind(addr).await?),
        None => None,
    };
    serve_with_metrics(listener, metrics, state, shutdown).await
}

/// Like [`serve`], with the `[metrics] listen` address already bound (`None`: `/metrics`
/// on the main listener, unless the config names its own address).
pub async fn serve_with_metrics(
    listener: TcpListener,
    metrics: Option<TcpListener>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = spawn_background(state.clone(), stop_rx.clone());
    if let Some(metrics) = metrics {
        let router = metrics_app(state.clone());
        let mut stop = stop_rx;
        tasks.push(tokio::spawn(async move {
            let served = axum::serve(
                metrics,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|stopped| *stopped).await;
            })
            .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "the metrics listener failed");
            }
        }));
    }
    let router = app(state.clone());
    let result = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    let _ = stop_tx.send(true);
    for task in tasks {
        let _ = task.await;
    }
    // Blocks of uses this node leased go back, so the cluster can spend them.
    if let Err(e) = state
        .budgets
        .settle(state.store.as_ref(), state.clock.now_secs(), true)
        .await
    {
        tracing::warn!(error = %e, "could not give leased uses back at shutdown");
    }
    match state.flush_usage().await {
        Ok(n) => tracing::info!(flushed = n, "last-used times flushed at shutdown"),
        Err(e) => tracing::error!(error = %e, "could not flush last-used times at shutdown"),
    }
    result
}

/// A boxed tick of a background task.
type Tick = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

fn every(
    period: Duration,
    stop: watch::Receiver<bool>,
    mut tick: impl FnMut() -> Tick + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    every_or_woken(period, None, stop, move |_woken| tick())
}

/// Like [`every`], and also at once whenever `wake` changes (the store's change notices:
/// another node committed a change), so a revocation elsewhere is applied here within
/// milliseconds; the period stays as the catch-up for notices lost or not sent. `tick`
/// is told whether a notice woke it.
fn every_or_woken(
    period: Duration,
    mut wake: Option<watch::Receiver<i64>>,
    mut stop: watch::Receiver<bool>,
    mut tick: impl FnMut(bool) -> Tick + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(period.max(Duration::from_millis(10)));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => tick(false).await,
                woken = async {
                    match wake.as_mut() {
                        Some(rx) => rx.changed().await,
                        None => std::future::pending().await,
                    }
                } => match woken {
                    Ok(()) => tick(true).await,
                    // The notices are gone (the store closed them): poll only.
                    Err(_) => wake = None,
                },
                _ = stop.changed() => break,
            }
        }
    })
}

fn spawn_background(
    state: AppState,
    stop: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let v = &state.config.verifier;
    let poll = Duration::from_millis(v.poll_interval_ms);
    let flush = Duration::from_secs(v.last_used_flush_secs.max(1));
    let sweep = Duration::from_secs(v.expiry_sweep_secs.max(1));
    let s1 = state.clone();
    let s2 = state.clone();
    let s3 = state.clone();
    let s4 = state.clone();
    let notices = s1.store.change_notices();
    vec![
        // Leased uses: report what was spent, renew what is held, give back idle blocks.
        every(
            Duration::from_millis(v.budget_settle_ms.max(100)),
            stop.clone(),
            move || {
                let s = s4.clone();
                Box::pin(async move {
                    if let Err(e) = s
                        .budgets
                        .settle(s.store.as_ref(), s.clock.now_secs(), false)
                        .await
                    {
                        tracing::warn!(error = %e, "settling leased uses failed; will retry");
                    }
                })
            },
        ),
        tokio::spawn(crate::events::run(state.clone(), stop.clone())),
        // The known set loads in the background: until it is in, misses read the store.
        tokio::spawn(async move {
            let max = state.config.verifier.known_hashes_max;
            if let Err(e) = state.verifier.load_known(max).await {
                tracing::warn!(error = %e, "loading the known secret hashes failed; unknown tokens are looked up one by one");
            }
        }),
        every_or_woken(poll, notices, stop.clone(), move |woken| {
            let s = s1.clone();
            let noticed = Instant::now();
            Box::pin(async move {
                let synced = s.verifier.sync().await;
                if woken && synced.is_ok() {
                    // Notice received → change applied here (the notices carry no commit
                    // time, so this is the part of the cross-node lag this node adds).
                    s.metrics.observe_notification_lag(noticed.elapsed());
                }
                match synced {
                    Ok(summary) if summary.signing_keys_changed => {
                        if let Err(e) = s.jwt.reload(s.clock.now()).await {
                            tracing::warn!(error = %e, "signing key reload failed");
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "change feed read failed"),
                }
            })
        }),
        every(flush, stop.clone(), move || {
            let s = s2.clone();
            Box::pin(async move {
                if let Err(e) = s.flush_usage().await {
                    tracing::warn!(error = %e, "last-used flush failed; will retry");
                }
            })
        }),
        every(sweep, stop, move || {
            let s = s3.clone();
            Box::pin(async move {
                match s.sweep_expired().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(expired = n, "expiry sweep marked tokens expired"),
                    Err(e) => tracing::warn!(error = %e, "expiry sweep failed"),
                }
                match s.sweep_idle().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(revoked = n, "idle sweep revoked unused tokens"),
                    Err(e) => tracing::warn!(error = %e, "idle sweep failed"),
                }
            })
        }),
    ]
}
