//! **Account & Settings** (`/account`): the profile, **Personal Access Tokens** (my tokens
//! in every workspace; **New token** opens the form) and the one **Legacy Token**.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use latchkey_proto::{CreateTokenRequest, TokenType};

use super::list::{ListQuery, read_all};
use super::{CreateForm, TableSpec, TokenPlace, TokenRow, TokenTable, create_from_form};
use super::{form_open, token_row, token_table};
use crate::console::extract::{Form, SignedIn, Visit};
use crate::console::render::{Choice, Chrome, View};
use crate::console::workspaces_of;
use crate::error::ApiError;
use crate::state::AppState;

/// `/account`.
#[derive(Template)]
#[template(path = "account.html")]
pub struct AccountPage {
    c: Chrome,
    username: String,
    role: &'static str,
    memberships: Vec<(String, String, &'static str)>,
    form: Option<CreateForm>,
    /// This user may create a personal token somewhere (offer New token).
    can_create: bool,
    refusal: Option<String>,
    table: Option<TokenTable>,
    legacy: Option<TokenRow>,
    legacy_can_create: bool,
}

/// Renders Account & Settings with `view`.
pub async fn render(state: &AppState, s: &SignedIn, mut view: View) -> Response {
    let page = build(state, s, &mut view).await;
    view.respond(s, "account", page)
}

async fn build(state: &AppState, s: &SignedIn, view: &mut View) -> Result<AccountPage, ApiError> {
    let now = state.clock.now();
    let place = TokenPlace::Account;
    let query = ListQuery::from_query(&view.query());
    let open = form_open(view);
    view.here = query.url(&place.url());
    let me = state.me(&s.p).await?;
    let (mine, truncated) =
        read_all(|page| async move { state.list_my_tokens(&s.p, &page).await }).await?;
    let legacy = mine
        .iter()
        .find(|t| t.token_type == TokenType::Legacy)
        .map(|t| token_row(state, s, t, now));
    let personal = mine
        .into_iter()
        .filter(|t| t.token_type == TokenType::Personal)
        .collect();
    let all_ws = workspaces_of(state, s).await?;
    let mut workspaces = Vec::new();
    let mut legacy_can_create = false;
    let mut refusal = None;
    for ws in &all_ws {
        let creatable = state.creatable_token_types(&s.p, &ws.id).await?;
        if creatable.allowed.contains(&TokenType::Personal) {
            let selected = view.field("workspace") == ws.id;
            workspaces.push(Choice::new(ws.id.clone(), ws.name.clone(), selected));
        } else if refusal.is_none() {
            refusal = creatable
                .refused
                .iter()
                .find(|(t, _)| *t == TokenType::Personal)
                .map(|(_, m)| m.clone());
        }
        legacy_can_create |= creatable.allowed.contains(&TokenType::Legacy);
    }
    let can_create = !workspaces.is_empty();
    let form = if open && can_create {
        let mut form = CreateForm::new(
            view,
            &place,
            &[TokenType::Personal],
            state.personal_token_max_days().await?,
        );
        form.workspaces = workspaces;
        Some(form)
    } else {
        None
    };
    let refusal = (!can_create).then(|| {
        format!(
            "You cannot create personal access tokens: {}.",
            refusal.unwrap_or_else(|| "you are not a member of any workspace".into())
        )
    });
    Ok(AccountPage {
        c: s.chrome("Account & Settings", "account", view),
        username: me.user.username,
        role: me.user.role.as_str(),
        memberships: me
            .memberships
            .into_iter()
            .map(|m| (m.workspace_id, m.workspace_name, m.role.as_str()))
            .collect(),
        form,
        can_create,
        refusal,
        table: Some(token_table(
            state,
            s,
            &place,
            TableSpec {
                caption: "My personal access tokens".into(),
                types: vec![TokenType::Personal],
                show_owner: false,
                show_workspace: true,
                empty_text: "You have no personal access tokens.",
                inventory: None,
            },
            (personal, truncated),
            &query,
        )),
        legacy,
        legacy_can_create,
    })
}

/// `GET /account` (`?new=1` opens the New token form).
pub async fn page(v: Visit) -> Response {
    render(&v.state, &v.s, v.view).await
}

/// `POST /account/tokens`: a personal access token in the chosen workspace.
pub async fn create_personal(State(state): State<AppState>, Form { s, data }: Form) -> Response {
    let result = create_from_form(&state, &s, &data, Some(TokenType::Personal), None).await;
    TokenPlace::Account
        .answer(&state, &s, data, true, "Token created", result)
        .await
}

/// `POST /account/legacy`: the user's one legacy token.
pub async fn create_legacy(State(state): State<AppState>, Form { s, data }: Form) -> Response {
    let result = match state.workspace_for_own_token(&s.p, TokenType::Legacy).await {
        Ok(Some(ws)) => {
            state
                .create_token(
                    &s.p,
                    &ws,
                    CreateTokenRequest::new("Legacy token", TokenType::Legacy),
                )
                .await
        }
        Ok(None) => Err(ApiError::forbidden(
            "legacy tokens are disabled, or your role does not allow creating one",
        )),
        Err(e) => Err(e),
    };
    let result = result.map(|created| (created, Vec::new()));
    TokenPlace::Account
        .answer(&state, &s, data, false, "Legacy token created", result)
        .await
}
