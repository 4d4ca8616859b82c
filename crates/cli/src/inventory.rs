//! The org-wide token inventory from the command line (DESIGN.md §8 "Inventory"): the
//! server-side filters of `token list` (`GET /api/v1/tokens`), its CSV export, and
//! `token bulk-revoke`.

use clap::{Args, ValueEnum};
use latchkey_client::proto::{BulkRevokeResponse, Token, TokenState, TokenType};
use latchkey_client::{Client, TokenQuery};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::{CliError, CliResult, EXIT_OK};
use crate::input;
use crate::output::{self, Table, out, outln, print_json};
use crate::remote::Remote;

/// The most ids one bulk revoke request takes (the API's limit): longer lists go in
/// batches of this size, each one transaction.
const BULK_LIMIT: usize = 1000;

/// `--format` of `token list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    /// Every matching token as CSV (the server's export: a header row, no secrets).
    Csv,
}

/// The filters `token list` sends to the inventory route.
#[derive(Args, Debug, Clone, Default)]
pub struct InventoryFilters {
    /// Only tokens of this owner (username or user id).
    #[arg(long, value_name = "USER")]
    pub owner: Option<String>,
    /// Only tokens whose name contains TEXT (ASCII letters compared without case).
    #[arg(long = "name", visible_alias = "q", value_name = "TEXT")]
    pub name: Option<String>,
    /// Only tokens created before TIME (RFC 3339, or YYYY-MM-DD for 00:00 UTC).
    #[arg(long, value_name = "TIME", value_parser = parse_before)]
    pub created_before: Option<OffsetDateTime>,
    /// Only tokens expiring before TIME (tokens that never expire are left out).
    #[arg(long, value_name = "TIME", value_parser = parse_before)]
    pub expires_before: Option<OffsetDateTime>,
    /// Only tokens last used before TIME (tokens never used are left out).
    #[arg(long, value_name = "TIME", value_parser = parse_before)]
    pub last_used_before: Option<OffsetDateTime>,
    /// Only tokens never used.
    #[arg(long)]
    pub never_used: bool,
}

impl InventoryFilters {
    /// Whether any filter only the inventory route has was given.
    pub fn any(&self) -> bool {
        self.owner.is_some()
            || self.name.is_some()
            || self.created_before.is_some()
            || self.expires_before.is_some()
            || self.last_used_before.is_some()
            || self.never_used
    }

    /// The query, with the filters `token list` shares with the other routes.
    pub fn query(
        &self,
        workspace: Option<String>,
        state: Option<TokenState>,
        token_type: Option<TokenType>,
    ) -> TokenQuery {
        TokenQuery {
            token_type,
            state,
            workspace,
            owner: self.owner.clone(),
            q: self.name.clone(),
            created_before: self.created_before,
            expires_before: self.expires_before,
            last_used_before: self.last_used_before,
            never_used: self.never_used.then_some(true),
            limit: None,
            cursor: None,
        }
    }
}

/// A `--…-before` value: an RFC 3339 time, or a date meaning its 00:00 UTC (as the API
/// reads a date).
fn parse_before(text: &str) -> Result<OffsetDateTime, String> {
    let text = text.trim();
    let full = if text.len() == 10 {
        format!("{text}T00:00:00Z")
    } else {
        text.to_owned()
    };
    OffsetDateTime::parse(&full, &Rfc3339).map_err(|_| {
        "expected an RFC 3339 time (2027-01-31T12:00:00Z) or a date (2027-01-31)".into()
    })
}

/// Tokens from the inventory route: every page, or the first `limit` tokens.
pub async fn list(
    client: &Client,
    query: TokenQuery,
    limit: Option<usize>,
) -> Result<Vec<Token>, CliError> {
    let page_size = limit
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(crate::remote::PAGE_SIZE)
        .min(crate::remote::PAGE_SIZE);
    let mut query = TokenQuery {
        limit: Some(page_size),
        ..query
    };
    let mut items = Vec::new();
    loop {
        let page = client.tokens().inventory(&query).await?;
        items.extend(page.items);
        if limit.is_some_and(|n| items.len() >= n) {
            break;
        }
        match page.next_cursor {
            // A server handing back the cursor it was given would loop forever.
            Some(next) if query.cursor.as_deref() != Some(next.as_str()) => {
                query.cursor = Some(next);
            }
            _ => break,
        }
    }
    if let Some(n) = limit {
        items.truncate(n);
    }
    Ok(items)
}

/// `--format csv`: the server's export, as it sent it.
pub async fn print_csv(client: &Client, query: &TokenQuery) -> CliResult {
    let csv = client.tokens().export_csv(query).await?;
    out!("{csv}");
    if !csv.is_empty() && !csv.ends_with('\n') {
        outln!();
    }
    Ok(EXIT_OK)
}

/// `latchkey token bulk-revoke`.
#[derive(Args)]
pub struct BulkRevoke {
    /// Token ids (full ids, as `token list --wide` or `-o json` shows them).
    #[arg(value_name = "ID")]
    pub ids: Vec<String>,
    /// Also read ids from FILE (`-`: stdin): whitespace or commas between them, or the CSV
    /// of `token list --format csv` (its `id` column).
    #[arg(long, value_name = "FILE")]
    pub from_file: Option<String>,
    #[command(flatten)]
    pub remote: Remote,
}

/// Ids in a file: the `id` column of a CSV export, else every word (split at whitespace
/// and commas).
fn ids_in(text: &str) -> Vec<String> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty()).peekable();
    let header = lines.peek().map(|l| l.trim().to_owned());
    if let Some(column) = header.as_deref().and_then(|h| {
        let cells: Vec<&str> = h.split(',').map(str::trim).collect();
        cells
            .iter()
            .position(|c| *c == "id")
            .filter(|_| cells.len() > 1)
    }) {
        return lines
            .skip(1)
            .filter_map(|l| l.split(',').nth(column))
            .map(|id| id.trim().trim_matches('"').to_owned())
            .filter(|id| !id.is_empty())
            .collect();
    }
    text.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Revokes every id given (in batches of [`BULK_LIMIT`], each one transaction), then
/// prints what was revoked and what was skipped with why.
pub async fn bulk_revoke(args: BulkRevoke) -> CliResult {
    let mut ids = args.ids.clone();
    let from_stdin = args.from_file.as_deref() == Some("-");
    if let Some(path) = &args.from_file {
        let text = if from_stdin {
            input::all_of_stdin()?
        } else {
            std::fs::read_to_string(path).map_err(|e| {
                CliError::usage(format!("cannot read {:?}: {e}", output::clean(path)))
            })?
        };
        ids.extend(ids_in(&text));
    }
    if ids.is_empty() {
        return Err(CliError::usage(
            "no token ids: give them as arguments or with --from-file FILE (- for stdin)",
        ));
    }
    let client = args.remote.client(true, !from_stdin)?;
    let mut result = BulkRevokeResponse {
        revoked: Vec::new(),
        skipped: Vec::new(),
    };
    for batch in ids.chunks(BULK_LIMIT) {
        let answer = client.tokens().bulk_revoke(batch).await?;
        result.revoked.extend(answer.revoked);
        result.skipped.extend(answer.skipped);
    }
    if args.remote.json() {
        print_json(&result)?;
        return Ok(EXIT_OK);
    }
    let mut table = Table::new(&["ID", "RESULT", "REASON"]);
    for id in &result.revoked {
        table.row(vec![id.clone(), "revoked".into(), String::new()]);
    }
    for skipped in &result.skipped {
        table.row(vec![
            skipped.id.clone(),
            "skipped".into(),
            skipped.reason.as_str().into(),
        ]);
    }
    out!("{}", table.render());
    outln!(
        "Revoked {}, skipped {}.",
        result.revoked.len(),
        result.skipped.len()
    );
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_from_words_or_the_id_column_of_a_csv() {
        assert_eq!(ids_in("a b,c\n d\n"), ["a", "b", "c", "d"]);
        assert_eq!(
            ids_in("name,id,type\nx,0197-a,client\ny,\"0197-b\",personal\n"),
            ["0197-a", "0197-b"]
        );
        assert!(ids_in("\n \n").is_empty());
    }

    #[test]
    fn a_date_means_its_midnight_utc() {
        let day = parse_before("2027-01-31").unwrap();
        assert_eq!(day, parse_before("2027-01-31T00:00:00Z").unwrap());
        assert!(parse_before("31/01/2027").is_err());
        assert!(parse_before("2027-01-31T12:00:00+02:00").is_ok());
    }
}
