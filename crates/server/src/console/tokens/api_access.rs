//! **API access** (`/api-access`, org admins): every token of the organization with its
//! workspace, and **New API token** opening the form that creates one in any workspace.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use latchkey_proto::{TokenState, TokenType};

use super::list::ListQuery;
use super::{CreateForm, InventorySpec, TableSpec, TokenPlace, TokenTable, create_from_form};
use super::{TokenRow, project_groups, token_row, token_table, workspace_types};
use super::{form_open, inventory_or_notice};
use crate::console::extract::{Form, OrgAdmin, SignedIn, Visit};
use crate::console::pages::org_admins_only;
use crate::console::render::{Choice, Chrome, View};
use crate::console::workspaces_of;
use crate::error::ApiError;
use crate::service::InventoryQuery;
use crate::state::AppState;

/// `/api-access`.
#[derive(Template)]
#[template(path = "api_access.html")]
pub struct ApiAccessPage {
    c: Chrome,
    form: Option<CreateForm>,
    refusal: Option<String>,
    table: TokenTable,
    /// The **Pending approval** list: tokens waiting for an org admin's decision.
    pending: Vec<TokenRow>,
    /// Where its Approve / Deny post.
    pending_base: String,
}

/// Renders API access with `view` (org admins; others get 403).
pub async fn render(state: &AppState, s: &SignedIn, mut view: View) -> Response {
    if !s.is_org_admin() {
        return org_admins_only(s, "api-access");
    }
    let page = build(state, s, &mut view).await;
    view.respond(s, "api-access", page)
}

async fn build(state: &AppState, s: &SignedIn, view: &mut View) -> Result<ApiAccessPage, ApiError> {
    let place = TokenPlace::ApiAccess;
    let query = ListQuery::from_query(&view.query());
    let open = form_open(view);
    view.here = query.url(&place.url());
    let all_ws = workspaces_of(state, s).await?;
    let inventory = InventorySpec {
        workspace: None,
        workspaces: all_ws
            .iter()
            .map(|w| (w.id.clone(), w.name.clone()))
            .collect(),
    };
    let listed = inventory_or_notice(state, s, &query, &inventory, view).await?;
    let now = state.clock.now();
    let waiting = InventoryQuery {
        state: Some(TokenState::Pending.as_str().to_owned()),
        ..InventoryQuery::default()
    }
    .filter()?;
    let pending = state
        .inventory_all(&s.p, &waiting)
        .await?
        .iter()
        .map(|t| token_row(state, s, t, now))
        .collect();
    let (form, refusal) = match all_ws.first() {
        _ if !open => (None, None),
        None => (None, Some("Create a workspace first.".to_owned())),
        Some(first) => {
            let chosen_ws = match view.field("workspace") {
                "" => first.id.as_str(),
                chosen => chosen,
            };
            let creatable = state.creatable_token_types(&s.p, chosen_ws).await?;
            let allowed = workspace_types(&creatable);
            if allowed.is_empty() {
                (
                    None,
                    Some(
                        "Every token type that can be created here is disabled in Access \
                         Token Settings."
                            .to_owned(),
                    ),
                )
            } else {
                let mut form = CreateForm::new(
                    view,
                    &place,
                    &allowed,
                    state.personal_token_max_days().await?,
                );
                form.workspaces = all_ws
                    .iter()
                    .map(|w| Choice::new(w.id.clone(), w.name.clone(), w.id == chosen_ws))
                    .collect();
                let pairs: Vec<(String, String)> = all_ws
                    .iter()
                    .map(|w| (w.id.clone(), w.name.clone()))
                    .collect();
                form.projects = project_groups(state, s, &pairs, &view.fields("projects")).await?;
                (Some(form), None)
            }
        }
    };
    Ok(ApiAccessPage {
        c: s.chrome("API access", "api-access", view),
        pending,
        pending_base: place.action_base(),
        form,
        refusal,
        table: token_table(
            state,
            s,
            &place,
            TableSpec {
                caption: "Every token in the organization".into(),
                types: TokenType::ALL.to_vec(),
                show_owner: true,
                show_workspace: true,
                empty_text: "No tokens yet.",
                inventory: Some(inventory),
            },
            listed,
            &query,
        ),
    })
}

/// `GET /api-access` (`?new=1` opens the New API token form; `q`, `type`, `state`,
/// `sort`, `page` narrow and order the list).
pub async fn page(v: Visit) -> Response {
    render(&v.state, &v.s, v.view).await
}

/// `POST /api-access`: New API token in the chosen workspace.
pub async fn create(State(state): State<AppState>, Form { s, data }: Form<OrgAdmin>) -> Response {
    let result = create_from_form(&state, &s, &data, None, None).await;
    TokenPlace::ApiAccess
        .answer(&state, &s, data, true, "Token created", result)
        .await
}
