//! The Rust SDK's own behaviour against a real server (issue 22 "where it applies"): a
//! list walked to its end. (`Client::from_env` refusing a missing token is a unit test in
//! `crates/client`.)

use latchkey_client::proto::TokenType;
use latchkey_client::{PageQuery, collect_all};

use crate::harness::TestServer;

#[tokio::test]
async fn list_all_walks_every_page() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let ws = server.workspace1().await;
    let mut made = Vec::new();
    for i in 0..5 {
        made.push(
            server
                .token(&admin, &ws, &format!("paged-{i}"), TokenType::Client)
                .await
                .meta
                .id,
        );
    }
    let every = admin.tokens().list_all(Some(&ws)).await.unwrap();
    let ids: Vec<&str> = every.iter().map(|t| t.id.as_str()).collect();
    for id in &made {
        assert!(ids.contains(&id.as_str()), "{id} missing from {ids:?}");
    }
    // The same walk two at a time, by hand: the same tokens, in the same order.
    let mut by_hand = Vec::new();
    let mut query = PageQuery::limit(2);
    loop {
        let page = admin.tokens().list(Some(&ws), &query).await.unwrap();
        let next = query.next(&page);
        by_hand.extend(page.items.into_iter().map(|t| t.id));
        match next {
            Some(next) => query = next,
            None => break,
        }
    }
    assert!(by_hand.len() > 2);
    assert_eq!(ids, by_hand.iter().map(String::as_str).collect::<Vec<_>>());
    let users = collect_all(|page| {
        let admin = &admin;
        async move { admin.list_users(&page).await }
    })
    .await
    .unwrap();
    assert!(users.iter().any(|u| u.username == "admin"));
    server.stop().await;
}
