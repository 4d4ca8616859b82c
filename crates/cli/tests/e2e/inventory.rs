//! The token inventory (DESIGN.md §8): `GET /api/v1/tokens` with every filter, alone and
//! combined, over pages; what each caller lists is what it may read by id; the CSV export;
//! bulk revoke with partial skips, its bounds, bad input and permissions.

use std::collections::BTreeSet;

use latchkey_client::proto::{
    CreateTokenRequest, OrgRole, Scope, SkipReason, Token, TokenState, TokenType,
    UpdateTokenSettingsRequest, WorkspaceRole,
};
use latchkey_client::{AuditQuery, Client, PageQuery, TokenQuery};
use time::OffsetDateTime;

use crate::harness::{ADMIN_PASSWORD, TestServer};

const DAY: i64 = 86_400;

/// Every id `query` lists, walking pages of `limit`; checks each page before the last is
/// full and no id comes twice.
async fn walk(client: &Client, query: &TokenQuery, limit: u32) -> Vec<Token> {
    let mut all = Vec::new();
    let mut page = PageQuery::limit(limit);
    loop {
        let got = client.tokens().inventory(&query.at(&page)).await.unwrap();
        if got.next_cursor.is_some() {
            assert_eq!(got.items.len(), limit as usize, "{query:?}");
        }
        let next = page.next(&got);
        all.extend(got.items);
        match next {
            Some(next) => page = next,
            None => break,
        }
    }
    let ids: BTreeSet<&str> = all.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids.len(), all.len(), "no token twice: {query:?}");
    all
}

fn ids(tokens: &[Token]) -> BTreeSet<String> {
    tokens.iter().map(|t| t.id.clone()).collect()
}

/// What `query` keeps, decided in Rust from a token's wire form (the filters' contract).
fn keeps(query: &TokenQuery, t: &Token) -> bool {
    query.token_type.is_none_or(|ty| t.token_type == ty)
        && query.state.is_none_or(|s| t.state == s)
        && query.workspace.as_ref().is_none_or(|w| {
            t.workspace_id.as_deref() == Some(w.as_str())
                || t.workspace_name.as_deref() == Some(w.as_str())
        })
        && query.owner.as_ref().is_none_or(|o| {
            t.owner_id.as_deref() == Some(o.as_str())
                || t.owner_username.as_deref() == Some(o.as_str())
        })
        && query.q.as_ref().is_none_or(|q| {
            t.name
                .to_ascii_lowercase()
                .contains(&q.to_ascii_lowercase())
        })
        && query.created_before.is_none_or(|b| t.created_at < b)
        && query
            .expires_before
            .is_none_or(|b| t.expires_at.is_some_and(|e| e < b))
        && query
            .last_used_before
            .is_none_or(|b| t.last_used_at.is_some_and(|u| u < b))
        && query
            .never_used
            .is_none_or(|never| t.last_used_at.is_none() == never)
}

struct Fixture {
    server: TestServer,
    owner: Client,
    member: Client,
    member_id: String,
    ws1: String,
    ws2: String,
    /// Instants between the batches of tokens made.
    marks: Vec<OffsetDateTime>,
    /// Every token of the org.
    all: Vec<Token>,
}

/// Two workspaces; tokens of every type, several owners, names, creation times, states
/// (revoked, expired, type disabled, suspended, pending, denied) and uses.
async fn fixture() -> Fixture {
    let server = TestServer::start().await;
    let owner = server.signed_in("admin", ADMIN_PASSWORD).await;
    let ws1 = server.workspace1().await;
    let ws2 = owner.create_workspace("Second").await.unwrap().id;
    let (member_id, member) = server.user("member", OrgRole::Member).await;
    let (leaver_id, leaver) = server.user("leaver", OrgRole::Member).await;
    owner
        .put_member(&ws1, &member_id, WorkspaceRole::Member)
        .await
        .unwrap();
    owner
        .put_member(&ws2, &member_id, WorkspaceRole::Viewer)
        .await
        .unwrap();
    owner
        .put_member(&ws1, &leaver_id, WorkspaceRole::Member)
        .await
        .unwrap();
    let clock = &server.state.clock;
    let mut marks = Vec::new();
    let make = |client: &Client, ws: &str, name: &str, t: TokenType, days: Option<i64>| {
        let mut req = CreateTokenRequest::new(name, t);
        req.expires_in_days = days;
        let (client, ws) = (client.clone(), ws.to_owned());
        async move { client.tokens().create(&ws, &req).await.unwrap() }
    };
    // Batch 1.
    let deploy = make(&owner, &ws1, "Deploy CI", TokenType::Client, Some(30)).await;
    make(&owner, &ws1, "web frontend", TokenType::Frontend, None).await;
    make(&owner, &ws2, "ops ADMIN", TokenType::Admin, Some(5)).await;
    clock.advance(100);
    marks.push(clock.now());
    clock.advance(100);
    // Batch 2.
    let member_ci = make(&member, &ws1, "member ci_1", TokenType::Personal, Some(10)).await;
    make(&member, &ws1, "member legacy", TokenType::Legacy, None).await;
    make(&owner, &ws2, "deploy 100%", TokenType::Client, Some(60)).await;
    let short = make(&owner, &ws1, "short-lived", TokenType::Client, Some(1)).await;
    make(
        &leaver,
        &ws1,
        "leaver deploy",
        TokenType::Personal,
        Some(20),
    )
    .await;
    clock.advance(100);
    marks.push(clock.now());
    clock.advance(100);
    // Batch 3.
    let revoked = make(&member, &ws1, "old member token", TokenType::Personal, None).await;
    member.tokens().revoke(&revoked.meta.id).await.unwrap();
    let mut for_member = CreateTokenRequest::new("Deploy for member", TokenType::Personal);
    for_member.owner_id = Some(member_id.clone());
    owner.tokens().create(&ws1, &for_member).await.unwrap();
    make(&owner, &ws1, "owner laptop", TokenType::Personal, None).await;
    // Approval: two of the member's personal tokens wait; one is denied.
    let org = owner.me().await.unwrap().org.id;
    let approval = |types: Vec<TokenType>| UpdateTokenSettingsRequest {
        approval_required_types: Some(types),
        ..UpdateTokenSettingsRequest::default()
    };
    owner
        .update_token_settings(&org, &approval(vec![TokenType::Personal]))
        .await
        .unwrap();
    make(&member, &ws1, "member waiting", TokenType::Personal, None).await;
    let refused = make(&member, &ws1, "member refused", TokenType::Personal, None).await;
    owner.tokens().deny(&refused.meta.id).await.unwrap();
    owner
        .update_token_settings(&org, &approval(Vec::new()))
        .await
        .unwrap();
    // Uses: the deploy token, then the member's.
    server.with_token(&deploy.token).me().await.ok();
    clock.advance(100);
    marks.push(clock.now());
    clock.advance(100);
    server.with_token(&member_ci.token).me().await.unwrap();
    // States: the short-lived token expires, frontend tokens are disabled, the leaver is
    // deactivated (their token is suspended).
    clock.advance(2 * DAY);
    marks.push(clock.now());
    // Sessions idle out over two days: sign in again.
    let owner = server.signed_in("admin", ADMIN_PASSWORD).await;
    let member = server.signed_in("member", "password-of-member").await;
    let org = owner.me().await.unwrap().org.id;
    owner
        .update_token_settings(
            &org,
            &UpdateTokenSettingsRequest {
                enabled_types: Some(
                    TokenType::ALL
                        .into_iter()
                        .filter(|t| *t != TokenType::Frontend)
                        .collect(),
                ),
                ..UpdateTokenSettingsRequest::default()
            },
        )
        .await
        .unwrap();
    owner
        .update_user(
            &leaver_id,
            &latchkey_client::proto::UpdateUserRequest {
                active: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let all = walk(&owner, &TokenQuery::default(), 200).await;
    let states: BTreeSet<&str> = all.iter().map(|t| t.state.as_str()).collect();
    assert_eq!(
        states.len(),
        TokenState::ALL.len(),
        "every state: {states:?}"
    );
    assert_eq!(
        all.iter().find(|t| t.id == short.meta.id).unwrap().state,
        TokenState::Expired
    );
    Fixture {
        server,
        owner,
        member,
        member_id,
        ws1,
        ws2,
        marks,
        all,
    }
}

/// Queries exercising every filter alone and in combination.
fn queries(f: &Fixture) -> Vec<TokenQuery> {
    let q = TokenQuery::default;
    let mut list = vec![q()];
    for t in TokenType::ALL {
        list.push(TokenQuery {
            token_type: Some(t),
            ..q()
        });
    }
    for s in TokenState::ALL {
        list.push(TokenQuery {
            state: Some(s),
            ..q()
        });
    }
    list.extend([
        TokenQuery {
            workspace: Some(f.ws1.clone()),
            ..q()
        },
        TokenQuery {
            workspace: Some("Second".into()),
            ..q()
        },
        TokenQuery {
            owner: Some(f.member_id.clone()),
            ..q()
        },
        TokenQuery {
            owner: Some("member".into()),
            ..q()
        },
        TokenQuery {
            q: Some("DEPLOY".into()),
            ..q()
        },
        TokenQuery {
            q: Some("ci_".into()),
            ..q()
        },
        TokenQuery {
            q: Some("100%".into()),
            ..q()
        },
        TokenQuery {
            created_before: Some(f.marks[0]),
            ..q()
        },
        TokenQuery {
            created_before: Some(f.marks[1]),
            ..q()
        },
        TokenQuery {
            expires_before: Some(f.marks[3] + time::Duration::days(15)),
            ..q()
        },
        TokenQuery {
            last_used_before: Some(f.marks[2]),
            ..q()
        },
        TokenQuery {
            never_used: Some(true),
            ..q()
        },
        TokenQuery {
            never_used: Some(false),
            ..q()
        },
        TokenQuery {
            token_type: Some(TokenType::Personal),
            state: Some(TokenState::Active),
            workspace: Some(f.ws1.clone()),
            owner: Some("member".into()),
            q: Some("member".into()),
            ..q()
        },
        TokenQuery {
            token_type: Some(TokenType::Client),
            created_before: Some(f.marks[1]),
            expires_before: Some(f.marks[3] + time::Duration::days(40)),
            never_used: Some(false),
            ..q()
        },
        TokenQuery {
            q: Some("deploy".into()),
            state: Some(TokenState::Suspended),
            last_used_before: None,
            never_used: Some(true),
            ..q()
        },
        TokenQuery {
            state: Some(TokenState::Revoked),
            owner: Some(f.member_id.clone()),
            created_before: Some(f.marks[3]),
            ..q()
        },
        TokenQuery {
            workspace: Some("no such workspace".into()),
            ..q()
        },
        TokenQuery {
            owner: Some("nobody".into()),
            ..q()
        },
    ]);
    list
}

/// Every filter alone and combined, over pages of 1, 2 and 200, lists exactly what the
/// filter's contract keeps of what the caller sees — for an org owner, a member (whose
/// view is its own tokens and its workspace's client and frontend tokens, as reads by id
/// say) and a client token.
#[tokio::test]
async fn every_filter_alone_and_combined_over_pages() {
    let f = fixture().await;
    let client_token = f
        .owner
        .tokens()
        .create(&f.ws1, &{
            let mut r = CreateTokenRequest::new("reader", TokenType::Client);
            r.scopes = Some(vec![Scope::TokensRead]);
            r
        })
        .await
        .unwrap();
    let mut all = f.all.clone();
    all.push(client_token.meta.clone());
    let callers = [
        ("owner", f.owner.clone()),
        ("member", f.member.clone()),
        ("client token", f.server.with_token(&client_token.token)),
    ];
    let mut nonempty = 0;
    for (who, caller) in &callers {
        // What it sees at all is exactly what it may read by id.
        let seen = walk(caller, &TokenQuery::default(), 200).await;
        let mut readable = BTreeSet::new();
        for t in &all {
            if caller.tokens().get(&t.id).await.is_ok() {
                readable.insert(t.id.clone());
            }
        }
        assert_eq!(ids(&seen), readable, "{who} lists what it reads by id");
        for query in queries(&f) {
            let expected: BTreeSet<String> = seen
                .iter()
                .filter(|t| keeps(&query, t))
                .map(|t| t.id.clone())
                .collect();
            if !expected.is_empty() && expected.len() < seen.len() {
                nonempty += 1;
            }
            for limit in [1, 2, 200] {
                let listed = walk(caller, &query, limit).await;
                assert_eq!(
                    ids(&listed),
                    expected,
                    "{who}: {query:?} in pages of {limit}"
                );
                let newest_first: Vec<&str> = listed.iter().map(|t| t.id.as_str()).collect();
                let mut sorted = newest_first.clone();
                sorted.sort_unstable_by(|a, b| b.cmp(a));
                assert_eq!(newest_first, sorted, "newest first");
            }
        }
    }
    assert!(nonempty > 40, "the queries discriminate ({nonempty})");
    // The member's view, spelled out: its own tokens (not the viewer workspace's client
    // token, nor the admin token), and the first workspace's client and frontend ones.
    let member_sees = walk(&f.member, &TokenQuery::default(), 200).await;
    assert!(member_sees.iter().all(|t| t.token_type != TokenType::Admin));
    assert!(
        member_sees
            .iter()
            .all(|t| t.owner_id.as_deref() == Some(f.member_id.as_str())
                || t.workspace_id.as_deref() == Some(f.ws1.as_str())
                    && !t.token_type.is_user_owned())
    );
    assert!(
        member_sees
            .iter()
            .all(|t| t.workspace_id.as_deref() != Some(f.ws2.as_str())),
        "a viewer of the second workspace sees none of its tokens"
    );
}

/// A minimal CSV reader (RFC 4180: quoted cells, doubled quotes, CRLF rows).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => cell.push(c),
        }
    }
    assert!(
        cell.is_empty() && row.is_empty(),
        "the file ends with a row end"
    );
    rows
}

/// `format=csv`: `text/csv` with a header row and every matching token (beyond one page),
/// filters applied, no secrets, cells that a spreadsheet would run as formulas defused.
#[tokio::test]
async fn csv_export_holds_every_matching_token_and_no_secret() {
    let server = TestServer::start().await;
    let owner = server.signed_in("admin", ADMIN_PASSWORD).await;
    let ws = server.workspace1().await;
    let mut secrets = Vec::new();
    for i in 0..60 {
        let name = match i {
            0 => "=HYPERLINK(\"http://evil\",\"x\")".to_owned(),
            1 => "+1".to_owned(),
            2 => "-2, with a comma".to_owned(),
            3 => "@SUM(A1) \"quoted\"".to_owned(),
            _ => format!("batch {i}"),
        };
        let made = owner
            .tokens()
            .create(&ws, &CreateTokenRequest::new(name, TokenType::Client))
            .await
            .unwrap();
        secrets.push(made.token);
    }
    let csv = owner
        .tokens()
        .export_csv(&TokenQuery::default())
        .await
        .unwrap();
    for secret in &secrets {
        assert!(!csv.contains(secret.as_str()), "no secret in the export");
    }
    let rows = parse_csv(&csv);
    assert_eq!(
        rows[0],
        [
            "id",
            "name",
            "type",
            "state",
            "workspace_id",
            "workspace_name",
            "owner_id",
            "owner_username",
            "created_by",
            "scopes",
            "projects",
            "environment",
            "hint",
            "created_at",
            "expires_at",
            "last_used_at",
            "last_used_ip"
        ]
    );
    let every = owner
        .tokens()
        .inventory_all(&TokenQuery::default())
        .await
        .unwrap();
    assert!(every.len() > 50, "more than one default page");
    assert_eq!(rows.len() - 1, every.len());
    for (row, token) in rows[1..].iter().zip(&every) {
        assert_eq!(row.len(), 17);
        assert_eq!(row[0], token.id);
        assert_eq!(row[2], token.token_type.as_str());
        assert_eq!(row[3], token.state.as_str());
        let shown = if token.name.starts_with(['=', '+', '-', '@']) {
            format!("'{}", token.name)
        } else {
            token.name.clone()
        };
        assert_eq!(row[1], shown);
        assert!(!row.iter().any(|c| c.starts_with(['=', '+', '-', '@'])));
    }
    // Filters apply; the raw answer is text/csv.
    let only = TokenQuery {
        q: Some("batch 1".into()),
        ..TokenQuery::default()
    };
    let filtered = parse_csv(&owner.tokens().export_csv(&only).await.unwrap());
    let want = owner.tokens().inventory_all(&only).await.unwrap();
    assert_eq!(filtered.len() - 1, want.len());
    assert!(want.len() >= 10);
    let raw = server
        .http()
        .get(format!(
            "{}/api/v1/tokens?format=csv&type=client",
            server.url
        ))
        .bearer_auth(server.admin_token.as_deref().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 200);
    assert!(
        raw.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    // A CSV export is every matching token: a page asked for is not used (but checked).
    for (extra, status) in [
        ("limit=5", 200),
        ("cursor=0190a0b0-0000-7000-8000-000000000000", 200),
        ("limit=500", 422),
    ] {
        let resp = server
            .http()
            .get(format!("{}/api/v1/tokens?format=csv&{extra}", server.url))
            .bearer_auth(server.admin_token.as_deref().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{extra}");
        if status == 200 {
            let rows = parse_csv(&resp.text().await.unwrap());
            assert_eq!(rows.len() - 1, every.len(), "{extra}");
        }
    }
}

/// Every bad value is a 422 naming its parameter; unknown parameters too; no credential is
/// 401; a token without `tokens:read` is 403.
#[tokio::test]
async fn bad_inventory_queries_are_422_naming_the_parameter() {
    let server = TestServer::start().await;
    let http = server.http();
    let token = server.admin_token.clone().unwrap();
    let long_q = format!("q={}", "x".repeat(201));
    for (query, field) in [
        ("type=root", "type"),
        ("state=dead", "state"),
        ("owner=has%20space", "owner"),
        (long_q.as_str(), "q"),
        ("created_before=yesterday", "created_before"),
        ("expires_before=2030-02-30", "expires_before"),
        ("last_used_before=12", "last_used_before"),
        ("never_used=yes", "never_used"),
        ("format=xml", "format"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("cursor=abc", "cursor"),
        ("typo=1", "typo"),
    ] {
        let resp = http
            .get(format!("{}/api/v1/tokens?{query}", server.url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 422, "{query}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_field", "{query}");
        assert_eq!(body["error"]["field"], field, "{query}");
    }
    for query in [
        "type=",
        "q=",
        "never_used=",
        "workspace=",
        "owner=",
        "created_before=",
    ] {
        let resp = http
            .get(format!("{}/api/v1/tokens?{query}", server.url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 422, "an empty value is a bad value: {query}");
    }
    // Dates and RFC 3339 times both work.
    let admin = server.admin();
    for query in [
        "created_before=2999-01-01",
        "created_before=2999-01-01T00:00:00Z",
        "expires_before=2030-01-01T10:00:00.5%2B02:00",
        "never_used=false",
    ] {
        let resp = http
            .get(format!("{}/api/v1/tokens?{query}", server.url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{query}");
    }
    let anonymous = server.anonymous();
    assert_eq!(
        anonymous
            .tokens()
            .inventory(&TokenQuery::default())
            .await
            .unwrap_err()
            .status(),
        Some(401)
    );
    let ws = server.workspace1().await;
    let mut req = CreateTokenRequest::new("projects only", TokenType::Personal);
    req.scopes = Some(vec![Scope::ProjectsRead]);
    let narrow = admin.tokens().create(&ws, &req).await.unwrap();
    let e = server
        .with_token(&narrow.token)
        .tokens()
        .inventory(&TokenQuery::default())
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(403), "{e}");
}

/// Bulk revoke: what the caller may revoke is revoked (one audit event each, and it stops
/// working at once); everything else is skipped with why, in the order asked; 0 or more
/// than 1000 ids and malformed bodies are 422 and change nothing; no credential is 401; a
/// token without `tokens:write` is 403.
#[tokio::test]
async fn bulk_revoke_revokes_what_it_may_and_says_why_for_the_rest() {
    let server = TestServer::start().await;
    let owner = server.signed_in("admin", ADMIN_PASSWORD).await;
    let ws = server.workspace1().await;
    let (member_id, member) = server.user("member", OrgRole::Member).await;
    owner
        .put_member(&ws, &member_id, WorkspaceRole::Member)
        .await
        .unwrap();
    let mine = server
        .token(&member, &ws, "mine", TokenType::Personal)
        .await;
    let mine2 = server
        .token(&member, &ws, "mine too", TokenType::Personal)
        .await;
    let already = server
        .token(&member, &ws, "already", TokenType::Personal)
        .await;
    member.tokens().revoke(&already.meta.id).await.unwrap();
    let mut short = CreateTokenRequest::new("short", TokenType::Personal);
    short.expires_in_days = Some(1);
    let short = member.tokens().create(&ws, &short).await.unwrap();
    let owners = server
        .token(&owner, &ws, "owner's", TokenType::Personal)
        .await;
    let client = server
        .token(&owner, &ws, "workspace client", TokenType::Client)
        .await;
    server.state.clock.advance(2 * 86_400);
    // Sessions idle out over two days: sign in again.
    let owner = server.signed_in("admin", ADMIN_PASSWORD).await;
    let member = server.signed_in("member", "password-of-member").await;
    let unknown = "0190a0b0-0000-7000-8000-000000000000".to_owned();
    let ids = vec![
        mine.meta.id.clone(),
        owners.meta.id.clone(),
        client.meta.id.clone(),
        already.meta.id.clone(),
        short.meta.id.clone(),
        unknown.clone(),
        "not-an-id".to_owned(),
        mine.meta.id.clone(),
        mine2.meta.id.clone(),
    ];
    let answer = member.tokens().bulk_revoke(&ids).await.unwrap();
    assert_eq!(
        answer.revoked,
        [mine.meta.id.clone(), mine2.meta.id.clone()]
    );
    let skipped: Vec<(String, SkipReason)> = answer
        .skipped
        .iter()
        .map(|s| (s.id.clone(), s.reason))
        .collect();
    assert_eq!(
        skipped,
        [
            (owners.meta.id.clone(), SkipReason::NotFound),
            (client.meta.id.clone(), SkipReason::Forbidden),
            (already.meta.id.clone(), SkipReason::AlreadyRevoked),
            (short.meta.id.clone(), SkipReason::Expired),
            (unknown.clone(), SkipReason::NotFound),
            ("not-an-id".to_owned(), SkipReason::NotFound),
            (mine.meta.id.clone(), SkipReason::Duplicate),
        ]
    );
    // Revoked at once, one audit event each; the skipped ones untouched.
    for t in [&mine, &mine2] {
        let check = server.anonymous().verify(&t.token).await.unwrap();
        assert!(!check.valid);
        let events = owner
            .audit_events(&AuditQuery {
                token: Some(t.meta.id.clone()),
                action: Some("token.revoked".into()),
                ..AuditQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(events.items.len(), 1);
        assert_eq!(
            events.items[0].actor_id.as_deref(),
            Some(member_id.as_str())
        );
    }
    for t in [&owners, &client] {
        assert_eq!(
            owner.tokens().get(&t.meta.id).await.unwrap().state,
            TokenState::Active
        );
        assert!(server.anonymous().verify(&t.token).await.unwrap().valid);
    }
    let already_events = owner
        .audit_events(&AuditQuery {
            token: Some(already.meta.id.clone()),
            action: Some("token.revoked".into()),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(already_events.items.len(), 1, "no second event for a skip");

    // Bounds: 0 and 1001 ids are refused; 1000 are taken.
    let many: Vec<String> = (0..1001)
        .map(|i| format!("0190a0b0-0000-7000-8000-{i:012}"))
        .collect();
    for bad in [Vec::new(), many.clone()] {
        let e = owner.tokens().bulk_revoke(&bad).await.unwrap_err();
        assert_eq!(e.status(), Some(422));
        assert_eq!(e.field(), Some("ids"));
    }
    let mut thousand = many[..999].to_vec();
    thousand.push(client.meta.id.clone());
    let answer = owner.tokens().bulk_revoke(&thousand).await.unwrap();
    assert_eq!(answer.revoked, std::slice::from_ref(&client.meta.id));
    assert_eq!(answer.skipped.len(), 999);
    assert!(
        answer
            .skipped
            .iter()
            .all(|s| s.reason == SkipReason::NotFound)
    );

    // Malformed bodies, no credential, a token without tokens:write.
    let http = server.http();
    let url = format!("{}/api/v1/tokens/bulk-revoke", server.url);
    let token = server.admin_token.clone().unwrap();
    for (body, status) in [
        (r#"{"ids": "x"}"#, 422),
        (r#"{"ids": [1]}"#, 422),
        (r#"{"ids": [], "x": 1}"#, 422),
        (r#"{}"#, 422),
        (r#"{"ids": ["#, 400),
    ] {
        let resp = http
            .post(&url)
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{body}");
    }
    let e = server
        .anonymous()
        .tokens()
        .bulk_revoke(std::slice::from_ref(&owners.meta.id))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(401));
    let mut read_only = CreateTokenRequest::new("read only", TokenType::Personal);
    read_only.scopes = Some(vec![Scope::TokensRead]);
    let read_only = owner.tokens().create(&ws, &read_only).await.unwrap();
    let e = server
        .with_token(&read_only.token)
        .tokens()
        .bulk_revoke(std::slice::from_ref(&owners.meta.id))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(403));
    assert_eq!(
        owner.tokens().get(&owners.meta.id).await.unwrap().state,
        TokenState::Active,
        "refused bulk revokes change nothing"
    );
}
