//! Usage details of a token (DESIGN.md §8): what the nodes counted and flushed.

use latchkey_proto::{DailyUse, IpUse, Scope, TokenUsage};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::AppState;
use crate::usage::{USAGE_DAYS, first_usage_day};

impl AppState {
    /// `GET /api/v1/tokens/{id}/usage`: for whoever may see the token (404 otherwise, as
    /// for the token itself; a token caller needs `tokens:read`). This node's pending uses
    /// are flushed first, so the answer includes them; other nodes' arrive with their next
    /// flush.
    pub async fn token_usage(&self, p: &Principal, id: &str) -> Result<TokenUsage, ApiError> {
        let token = self.visible_token(p, id).await?;
        p.require_token_scope(Scope::TokensRead, token.workspace_id.as_deref())?;
        self.flush_usage().await?;
        let now = self.clock.now();
        let first = first_usage_day(now);
        let stored = self.store.token_usage(&token.id, first).await?;
        // Read again: the flush may just have moved it.
        let last_used_at = self.store.get_token(&token.id).await?.last_used_at;
        let mut counts = stored.daily.into_iter().peekable();
        let daily = (0..USAGE_DAYS)
            .map(|i| {
                let date = first + time::Duration::days(i);
                let mut count = 0;
                while let Some((day, n)) = counts.next_if(|(day, _)| *day <= date) {
                    if day == date {
                        count += n;
                    }
                }
                DailyUse {
                    date: date.to_string(),
                    count,
                }
            })
            .collect();
        Ok(TokenUsage {
            last_used_at,
            last_ips: stored
                .last_ips
                .into_iter()
                .map(|(ip, last_seen_at)| IpUse { ip, last_seen_at })
                .collect(),
            daily,
        })
    }
}
