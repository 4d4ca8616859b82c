//! A workspace's **API Access Tokens** (`/workspaces/{ws}/settings/tokens`): the tokens
//! this user may see there, and **New token** opening the create form with the types this
//! user may create there.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use latchkey_proto::TokenType;

use super::list::ListQuery;
use super::{CreateForm, InventorySpec, TableSpec, TokenPlace, TokenTable, create_from_form};
use super::{form_open, inventory_or_notice};
use super::{project_groups, scope_choices, token_table, workspace_types};
use crate::console::extract::{Form, SignedIn, Visit};
use crate::console::render::{Chrome, View};
use crate::error::ApiError;
use crate::state::AppState;

/// `/workspaces/{ws}/settings/tokens`.
#[derive(Template)]
#[template(path = "tokens.html")]
pub struct WorkspaceTokensPage {
    c: Chrome,
    ws_id: String,
    ws_name: String,
    /// The create form, when open.
    form: Option<CreateForm>,
    /// This user may create a token here (offer New token).
    can_create: bool,
    refusal: Option<String>,
    table: Option<TokenTable>,
}

/// Renders the page of workspace `ws_ref` with `view`.
pub async fn render(state: &AppState, s: &SignedIn, ws_ref: &str, mut view: View) -> Response {
    let page = build(state, s, ws_ref, &mut view).await;
    view.respond(s, "workspaces", page)
}

async fn build(
    state: &AppState,
    s: &SignedIn,
    ws_ref: &str,
    view: &mut View,
) -> Result<WorkspaceTokensPage, ApiError> {
    let ws = state.get_workspace(&s.p, ws_ref).await?;
    let place = TokenPlace::Workspace(ws.id.clone());
    let query = ListQuery::from_query(&view.query());
    let open = form_open(view);
    view.here = query.url(&place.url());
    let inventory = InventorySpec {
        workspace: Some(ws.id.clone()),
        workspaces: Vec::new(),
    };
    let listed = inventory_or_notice(state, s, &query, &inventory, view).await;
    let (table, list_refusal) = match listed {
        Ok(listed) => (
            Some(token_table(
                state,
                s,
                &place,
                TableSpec {
                    caption: format!("Tokens in {}", ws.name),
                    types: TokenType::ALL
                        .into_iter()
                        .filter(|t| *t != TokenType::Legacy)
                        .collect(),
                    show_owner: true,
                    show_workspace: false,
                    empty_text: "No tokens yet.",
                    inventory: Some(inventory),
                },
                listed,
                &query,
            )),
            None,
        ),
        Err(ApiError::Forbidden(m)) => (None, Some(m)),
        Err(e) => return Err(e),
    };
    let creatable = state.creatable_token_types(&s.p, &ws.id).await?;
    let allowed = workspace_types(&creatable);
    let refusal = allowed.is_empty().then(|| {
        let why = creatable
            .refused
            .iter()
            .find(|(t, _)| *t == TokenType::Personal)
            .map(|(_, m)| m.clone())
            .unwrap_or_else(|| "you may not create tokens here".into());
        format!("You cannot create tokens here: {why}.")
    });
    let form = if open && !allowed.is_empty() {
        let mut form = CreateForm::new(
            view,
            &place,
            &allowed,
            state.personal_token_max_days().await?,
        );
        if form.binding {
            form.projects = project_groups(
                state,
                s,
                &[(ws.id.clone(), ws.name.clone())],
                &view.fields("projects"),
            )
            .await?;
        }
        form.scopes = scope_choices(creatable.scope_ceiling, &view.fields("scopes"));
        Some(form)
    } else {
        None
    };
    Ok(WorkspaceTokensPage {
        c: s.chrome(
            format!("API Access Tokens · {}", ws.name),
            "workspaces",
            view,
        ),
        ws_id: ws.id,
        ws_name: ws.name,
        form,
        can_create: !allowed.is_empty(),
        refusal: list_refusal
            .map(|m| format!("You cannot see this workspace's tokens: {m}."))
            .or(refusal),
        table,
    })
}

/// `GET /workspaces/{ws}/settings/tokens` (`?new=1` opens the create form; `q`, `type`,
/// `state`, `sort`, `page` narrow and order the list).
pub async fn page(Path(ws): Path<String>, v: Visit) -> Response {
    render(&v.state, &v.s, &ws, v.view).await
}

/// `POST /workspaces/{ws}/settings/tokens`: create; the answer shows the secret once.
pub async fn create(
    State(state): State<AppState>,
    Path(ws): Path<String>,
    Form { s, data }: Form,
) -> Response {
    let result = create_from_form(&state, &s, &data, None, Some(&ws)).await;
    TokenPlace::Workspace(ws)
        .answer(&state, &s, data, true, "Token created", result)
        .await
}
