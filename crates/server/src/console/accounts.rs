//! **Service accounts** (Organization → Service accounts, org admins): create one, open its
//! page to create its personal tokens (shown once) and manage them, deactivate or
//! reactivate it. A service account never signs in; it becomes a workspace member on the
//! workspace's Members page, like anyone.

use askama::Template;
use axum::extract::{OriginalUri, Path, State};
use axum::response::Response;
use latchkey_proto::{CreateUserRequest, TokenType, UpdateUserRequest, User, UserKind};

use super::extract::{Form, OrgAdmin, SignedIn};
use super::page_request;
use super::render::{Choice, Chrome, Flash, View, When, when};
use super::session::encode;
use super::tokens::list::{ListQuery, read_all};
use super::tokens::{CreateForm, TableSpec, TokenPlace, TokenTable, token_table};
use super::workspaces_of;
use crate::error::ApiError;
use crate::state::AppState;

/// A service account as a row.
pub struct AccountRow {
    id: String,
    username: String,
    display_name: String,
    active: bool,
    created: When,
}

/// `/organization/service-accounts`.
#[derive(Template)]
#[template(path = "service_accounts.html")]
pub struct ServiceAccountsPage {
    c: Chrome,
    tab: &'static str,
    owner: bool,
    accounts: Vec<AccountRow>,
    username: String,
    display_name: String,
    next_url: Option<String>,
}

/// `/organization/service-accounts/{id}`.
#[derive(Template)]
#[template(path = "service_account.html")]
pub struct ServiceAccountPage {
    c: Chrome,
    tab: &'static str,
    owner: bool,
    account: User,
    form: Option<CreateForm>,
    refusal: Option<String>,
    table: TokenTable,
}

async fn render_list(state: &AppState, s: &SignedIn, view: View) -> Response {
    let now = state.clock.now();
    let page = async {
        let cursor = view.query().get("cursor").cloned();
        let accounts = state
            .list_users(
                &s.p,
                Some(UserKind::Service),
                &page_request(100, cursor.as_ref()),
            )
            .await?;
        let next_url = accounts
            .next_cursor
            .as_ref()
            .map(|cur| format!("/organization/service-accounts?cursor={}", encode(cur)));
        Ok(ServiceAccountsPage {
            c: s.chrome("Service accounts", "organization", &view),
            tab: "service-accounts",
            owner: s.is_owner(),
            accounts: accounts
                .items
                .into_iter()
                .map(|u| AccountRow {
                    id: u.id,
                    username: u.username,
                    display_name: u.display_name.unwrap_or_default(),
                    active: u.active,
                    created: when(u.created_at, now),
                })
                .collect(),
            username: view.field("username").to_owned(),
            display_name: view.field("display_name").to_owned(),
            next_url,
        })
    }
    .await;
    view.respond(s, "organization", page)
}

/// `GET /organization/service-accounts`.
pub async fn list(
    State(state): State<AppState>,
    OrgAdmin(s): OrgAdmin,
    OriginalUri(uri): OriginalUri,
) -> Response {
    render_list(&state, &s, View::page(&s, &uri)).await
}

/// `POST /organization/service-accounts`: Create service account.
pub async fn create(State(state): State<AppState>, form: Form<OrgAdmin>) -> Response {
    let Form {
        s: OrgAdmin(s),
        data,
    } = form;
    let result = async {
        let mut req = CreateUserRequest::service(data.get("username").unwrap_or("").trim());
        req.display_name = data.text("display_name");
        let user = state.create_user(&s.p, req).await?;
        Ok::<_, ApiError>(user)
    }
    .await;
    match result {
        Ok(user) => s.done(
            &format!("/organization/service-accounts/{}", user.id),
            Flash::new("service-created").subject(user.username),
        ),
        Err(e) => render_list(&state, &s, View::failed(&state, &e, data)).await,
    }
}

/// Renders a service account's page with `view`: its tokens, the form that creates one.
pub async fn render_account(state: &AppState, s: &SignedIn, id: &str, mut view: View) -> Response {
    let page = build_account(state, s, id, &mut view).await;
    view.respond(s, "organization", page)
}

async fn build_account(
    state: &AppState,
    s: &SignedIn,
    id: &str,
    view: &mut View,
) -> Result<ServiceAccountPage, ApiError> {
    let account = state.user_for_admin(&s.p, id).await?;
    if account.kind != UserKind::Service {
        return Err(ApiError::NotFound("service account"));
    }
    let place = TokenPlace::ServiceAccount(account.id.clone());
    let query = ListQuery::from_query(&view.query());
    view.here = query.url(&place.url());
    let account_id = account.id.as_str();
    let listed =
        read_all(|page| async move { state.list_tokens_owned_by(&s.p, account_id, &page).await })
            .await?;
    let all_ws = workspaces_of(state, s).await?;
    let (form, refusal) = if !account.active {
        (
            None,
            Some("Reactivate the service account to create tokens for it.".to_owned()),
        )
    } else if all_ws.is_empty() {
        (None, Some("Create a workspace first.".to_owned()))
    } else if view.secret.is_some() {
        (None, None)
    } else {
        let mut form = CreateForm::new(
            view,
            &place,
            &[TokenType::Personal],
            state.personal_token_max_days().await?,
        );
        let chosen = view.field("workspace").to_owned();
        form.workspaces = all_ws
            .iter()
            .map(|w| Choice::new(w.id.clone(), w.name.clone(), w.id == chosen))
            .collect();
        form.autofocus = false;
        (Some(form), None)
    };
    let table = token_table(
        state,
        s,
        &place,
        TableSpec {
            caption: format!("Tokens of {}", account.username),
            types: vec![TokenType::Personal],
            show_owner: false,
            show_workspace: true,
            empty_text: "No tokens yet.",
            inventory: None,
        },
        listed,
        &query,
    );
    Ok(ServiceAccountPage {
        c: s.chrome(
            format!("Service account {}", account.username),
            "organization",
            view,
        ),
        tab: "service-accounts",
        owner: s.is_owner(),
        account,
        form,
        refusal,
        table,
    })
}

/// `GET /organization/service-accounts/{id}`.
pub async fn page(
    State(state): State<AppState>,
    OrgAdmin(s): OrgAdmin,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> Response {
    render_account(&state, &s, &id, View::page(&s, &uri)).await
}

/// `POST /organization/service-accounts/{id}`: Create Token (a personal token it owns).
pub async fn create_token(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: Form<OrgAdmin>,
) -> Response {
    let Form {
        s: OrgAdmin(s),
        data,
    } = form;
    let result = async {
        let account = state.user_for_admin(&s.p, &id).await?;
        if account.kind != UserKind::Service {
            return Err(ApiError::NotFound("service account"));
        }
        super::tokens::create_owned_from_form(&state, &s, &data, &account.id).await
    }
    .await;
    TokenPlace::ServiceAccount(id)
        .answer(&state, &s, data, true, "Token created", result)
        .await
}

async fn set_active(state: AppState, id: String, form: Form<OrgAdmin>, active: bool) -> Response {
    let Form {
        s: OrgAdmin(s),
        data,
    } = form;
    let back = data.back_or("/organization/service-accounts");
    let result = async {
        let account = state.user_for_admin(&s.p, &id).await?;
        if account.kind != UserKind::Service {
            return Err(ApiError::NotFound("service account"));
        }
        let req = UpdateUserRequest {
            active: Some(active),
            ..UpdateUserRequest::default()
        };
        state.update_user(&s.p, &id, req).await
    }
    .await;
    answer(&state, &s, back, active, result).await
}

async fn answer(
    state: &AppState,
    s: &SignedIn,
    back: String,
    active: bool,
    result: Result<User, ApiError>,
) -> Response {
    match result {
        Ok(user) => s.done(
            &back,
            Flash::new(if active {
                "service-reactivated"
            } else {
                "service-deactivated"
            })
            .subject(user.username),
        ),
        Err(e) => render_list(state, s, View::refused(state, &e, back)).await,
    }
}

/// `POST /organization/service-accounts/{id}/deactivate`: its tokens stop at once.
pub async fn deactivate(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: Form<OrgAdmin>,
) -> Response {
    set_active(state, id, form, false).await
}

/// `POST /organization/service-accounts/{id}/reactivate`.
pub async fn reactivate(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: Form<OrgAdmin>,
) -> Response {
    set_active(state, id, form, true).await
}
