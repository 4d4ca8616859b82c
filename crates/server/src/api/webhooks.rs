//! Webhook endpoint routes (org admins only; DESIGN.md §8 "Lifecycle events").

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use latchkey_proto::{
    CreateWebhookRequest, CreatedWebhook, ErrorBody, Page, UpdateWebhookRequest, Webhook,
    WebhookDelivery,
};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, PageParams};
use crate::state::AppState;

/// Create a webhook endpoint; the answer holds its signing secret (`whsec_…`), shown once.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks",
    request_body = CreateWebhookRequest,
    responses((status = 201, body = CreatedWebhook), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    p: Principal,
    ApiJson(req): ApiJson<CreateWebhookRequest>,
) -> Result<(StatusCode, Json<CreatedWebhook>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(state.create_webhook(&p, req).await?),
    ))
}

/// Webhook endpoints of the org, newest first.
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks",
    params(("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = Page<Webhook>), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    p: Principal,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<Page<Webhook>>, ApiError> {
    Ok(Json(state.list_webhooks(&p, &page.to_page()?).await?))
}

/// One webhook endpoint (never its secret).
#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path)),
    responses((status = 200, body = Webhook), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Webhook>, ApiError> {
    Ok(Json(state.get_webhook(&p, &id).await?))
}

/// Change a webhook endpoint's URL, event types, description, or pause it.
#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path)), request_body = UpdateWebhookRequest,
    responses((status = 200, body = Webhook), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 415, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateWebhookRequest>,
) -> Result<Json<Webhook>, ApiError> {
    Ok(Json(state.update_webhook(&p, &id, req).await?))
}

/// Delete a webhook endpoint and its deliveries.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.delete_webhook(&p, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Queue a `webhook.test` message to the endpoint; answers the queued delivery.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/test", tag = "webhooks",
    params(("id" = String, Path)),
    responses((status = 202, body = WebhookDelivery), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn test(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<WebhookDelivery>), ApiError> {
    Ok((
        StatusCode::ACCEPTED,
        Json(state.test_webhook(&p, &id).await?),
    ))
}

/// Deliveries to the endpoint, newest first: event, attempts, last status, next attempt.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path), ("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = Page<WebhookDelivery>), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn deliveries(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<Page<WebhookDelivery>>, ApiError> {
    Ok(Json(
        state
            .list_webhook_deliveries(&p, &id, &page.to_page()?)
            .await?,
    ))
}

/// Send a delivery's message again (same `webhook-id`), as a new delivery.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/deliveries/{delivery}/redeliver",
    tag = "webhooks", params(("id" = String, Path), ("delivery" = String, Path)),
    responses((status = 202, body = WebhookDelivery), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn redeliver(
    State(state): State<AppState>,
    p: Principal,
    Path((id, delivery)): Path<(String, String)>,
) -> Result<(StatusCode, Json<WebhookDelivery>), ApiError> {
    Ok((
        StatusCode::ACCEPTED,
        Json(state.redeliver(&p, &id, &delivery).await?),
    ))
}
