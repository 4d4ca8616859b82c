//! Output: `--output table` (aligned text for people) or `--output json` (the API's
//! objects, one JSON document on stdout, for scripts).
//!
//! Everything a server sent that ends up in a table (names are free text) has its control
//! characters replaced, so a name cannot move the cursor or recolour the terminal.

use std::fmt::Write as _;

use clap::{Args, ValueEnum};
use latchkey_client::RateLimitStatus;
use latchkey_client::proto::{
    CreatedToken, Me, Project, RevealedToken, Token, TokenUsage, VerifyResponse, Workspace,
};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::CliError;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Format {
    /// Aligned columns and `Key  value` lines, for people.
    #[default]
    Table,
    /// The API's JSON objects, one document, for scripts.
    Json,
}

/// The `--output` flag every client and operator command takes.
#[derive(Args, Debug, Clone, Copy)]
pub struct OutputArgs {
    /// Output format: `table` for people, `json` for scripts (the API's objects, one document).
    #[arg(long, short = 'o', value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

impl OutputArgs {
    /// Whether JSON was asked for.
    pub fn json(self) -> bool {
        self.output == Format::Json
    }
}

/// Writes to stdout. A closed pipe (`latchkey token list | head -1`) ends the output quietly
/// where `print!` would panic; any other failure (a full disk) is reported and exits 1, so a
/// secret that could not be written never looks like a success.
pub fn emit(text: &str) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => {
            eprintln!("error: cannot write to stdout: {e}");
            std::process::exit(i32::from(crate::error::EXIT_FAILED));
        }
    }
}

/// `print!` through [`emit`].
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::emit(&format!($($arg)*)) };
}

/// `println!` through [`emit`].
macro_rules! outln {
    () => { $crate::output::emit("\n") };
    ($($arg:tt)*) => { $crate::output::emit(&format!("{}\n", format_args!($($arg)*))) };
}

pub(crate) use {out, outln};

/// Prints `value` as one pretty JSON document on stdout.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::failed(format!("cannot encode the answer as JSON: {e}")))?;
    outln!("{text}");
    Ok(())
}

/// Replaces control characters (ANSI escapes, newlines, ...) with `?`-like marks.
pub fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

/// Joins lines and drops control characters, for one-line error messages.
pub fn one_line(text: &str) -> String {
    let joined = text.split(['\n', '\r']).map(str::trim).collect::<Vec<_>>();
    clean(&joined.join(" "))
}

/// `2027-08-22T10:00:00Z`.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

fn opt_time(t: Option<OffsetDateTime>, none: &str) -> String {
    t.map(rfc3339).unwrap_or_else(|| none.to_owned())
}

fn or_dash(value: Option<&str>) -> String {
    value.map(clean).unwrap_or_else(|| "-".to_owned())
}

/// The short form of an id shown in tables: its last 8 characters (a UUIDv7 begins with
/// its creation time, so the end is what tells ids apart). Commands accept it back.
pub fn short_id(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    chars[chars.len().saturating_sub(SHORT_ID_LEN)..]
        .iter()
        .collect()
}

/// Characters in a [`short_id`].
pub const SHORT_ID_LEN: usize = 8;

/// A saved token as lists show one (`lkp_…a1B2`), never the secret.
pub fn hint_of(token: &str) -> String {
    match token.split_once('_') {
        Some((prefix, rest)) if prefix.len() == 3 && prefix.starts_with("lk") && rest.len() > 8 => {
            let tail: String = rest.chars().skip(rest.chars().count() - 4).collect();
            format!("{prefix}_…{tail}")
        }
        _ => "<redacted>".to_owned(),
    }
}

/// `text` cut to `max` characters, ending in `…` when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `t` relative to `now`, as people say it: `just now`, `5m ago`, `3h ago`, `12d ago`,
/// `in 29d`, `2y ago`.
pub fn relative(t: OffsetDateTime, now: OffsetDateTime) -> String {
    let seconds = (t - now).whole_seconds();
    let (future, magnitude) = (seconds > 0, seconds.unsigned_abs());
    if magnitude < 60 {
        return "just now".to_owned();
    }
    let amount = match magnitude {
        m if m < 3_600 => format!("{}m", m / 60),
        m if m < 86_400 => format!("{}h", m / 3_600),
        m if m < 2 * 365 * 86_400 => format!("{}d", m / 86_400),
        m => format!("{}y", m / (365 * 86_400)),
    };
    if future {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

fn relative_or(t: Option<OffsetDateTime>, now: OffsetDateTime, none: &str) -> String {
    t.map(|t| relative(t, now))
        .unwrap_or_else(|| none.to_owned())
}

/// A table with a header row; columns are padded to their widest cell.
#[derive(Debug, Default)]
pub struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headings.
    pub fn new(header: &[&'static str]) -> Table {
        Table {
            header: header.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (cells are cleaned of control characters).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells.iter().map(|c| clean(c)).collect());
    }

    /// The rendered text, ending in a newline.
    pub fn render(&self) -> String {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let mut line = |cells: &mut dyn Iterator<Item = &str>| {
            let mut text = String::new();
            for (i, cell) in cells.enumerate().take(columns) {
                if i + 1 == columns {
                    text.push_str(cell);
                } else {
                    let pad = widths[i].saturating_sub(cell.chars().count());
                    let _ = write!(text, "{cell}{}  ", " ".repeat(pad));
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        };
        line(&mut self.header.iter().copied());
        for row in &self.rows {
            line(&mut row.iter().map(String::as_str));
        }
        out
    }

    /// Prints the table, or a note when it has no rows.
    pub fn print_or(&self, empty: &str) {
        if self.rows.is_empty() {
            outln!("{empty}");
        } else {
            out!("{}", self.render());
        }
    }
}

/// `Key   value` lines for one object.
pub fn details(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (key, value) in pairs {
        let _ = writeln!(out, "{key:<width$}  {}", clean(value));
    }
    out
}

fn scopes_of(token: &Token) -> String {
    if token.scopes.is_empty() {
        "-".to_owned()
    } else {
        token
            .scopes
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn workspace_of(token: &Token) -> String {
    match (&token.workspace_name, &token.workspace_id) {
        (Some(name), _) => clean(name),
        (None, Some(id)) => id.clone(),
        (None, None) => "(all)".to_owned(),
    }
}

fn owner_of(token: &Token) -> String {
    match (&token.owner_username, &token.owner_id) {
        (Some(name), _) => clean(name),
        (None, Some(id)) => id.clone(),
        (None, None) => "(workspace)".to_owned(),
    }
}

/// One token's metadata as `Key  value` lines.
pub fn token_details(token: &Token) -> String {
    let mut pairs = vec![
        ("ID", token.id.clone()),
        ("Name", token.name.clone()),
        ("Type", token.token_type.as_str().to_owned()),
        ("State", token.state.as_str().to_owned()),
        ("Hint", token.hint.clone()),
        ("Workspace", workspace_of(token)),
        ("Owner", owner_of(token)),
        ("Scopes", scopes_of(token)),
    ];
    if !token.projects.is_empty() {
        pairs.push(("Projects", token.projects.join(" ")));
    }
    if let Some(env) = &token.environment {
        pairs.push(("Environment", env.clone()));
    }
    pairs.push(("Created", rfc3339(token.created_at)));
    pairs.push(("Expires", opt_time(token.expires_at, "never")));
    let last_used = match (&token.last_used_at, &token.last_used_ip) {
        (Some(at), Some(ip)) => format!("{} from {ip}", rfc3339(*at)),
        (Some(at), None) => rfc3339(*at),
        _ => "never".to_owned(),
    };
    pairs.push(("Last used", last_used));
    pairs.extend(policy_lines(token));
    if token.recoverable {
        pairs.push(("Recoverable", "yes (latchkey token reveal)".to_owned()));
    }
    details(&pairs)
}

/// The verify-time policy lines of [`token_details`], only for what the token has.
fn policy_lines(token: &Token) -> Vec<(&'static str, String)> {
    let mut pairs = Vec::new();
    if let Some(m) = &token.metadata {
        pairs.push((
            "Metadata",
            serde_json::to_string(m).unwrap_or_else(|_| "{}".to_owned()),
        ));
    }
    if let Some(ips) = &token.allowed_ips {
        pairs.push(("Allowed IPs", ips.join(" ")));
    }
    if let Some(r) = token.rate_limit {
        pairs.push(("Rate limit", rate_limit_text(r.limit, r.window_secs)));
    }
    if let Some(n) = token.remaining_uses {
        pairs.push(("Remaining uses", n.to_string()));
    }
    if let Some(r) = token.refill {
        pairs.push(("Refill", format!("to {} {}", r.amount, r.interval.as_str())));
    }
    pairs
}

/// "100 per 60 s" (as `--rate-limit 100/60s` sets it).
pub fn rate_limit_text(limit: u64, window_secs: u64) -> String {
    format!("{limit} per {window_secs} s")
}

/// A list of tokens as a table: short ids, relative times, long cells shortened so a row
/// fits 120 columns; `wide` shows full ids, RFC 3339 times, scopes and every character.
pub fn token_table(tokens: &[Token], now: OffsetDateTime, wide: bool) -> Table {
    if wide {
        let mut table = Table::new(&[
            "ID",
            "NAME",
            "TYPE",
            "STATE",
            "HINT",
            "WORKSPACE",
            "OWNER",
            "SCOPES",
            "CREATED",
            "EXPIRES",
            "LAST USED",
        ]);
        for t in tokens {
            table.row(vec![
                t.id.clone(),
                t.name.clone(),
                t.token_type.as_str().to_owned(),
                t.state.as_str().to_owned(),
                t.hint.clone(),
                workspace_of(t),
                owner_of(t),
                scopes_of(t),
                rfc3339(t.created_at),
                opt_time(t.expires_at, "never"),
                opt_time(t.last_used_at, "never"),
            ]);
        }
        return table;
    }
    // 8 + 22 + 8 + 13 + 10 + 14 + 12 + 8 + 9 + 2 × 8 separators = 120.
    let mut table = Table::new(&[
        "ID",
        "NAME",
        "TYPE",
        "STATE",
        "HINT",
        "WORKSPACE",
        "OWNER",
        "EXPIRES",
        "LAST USED",
    ]);
    for t in tokens {
        table.row(vec![
            short_id(&t.id),
            truncate(&clean(&t.name), 22),
            t.token_type.as_str().to_owned(),
            t.state.as_str().to_owned(),
            truncate(&t.hint, 10),
            truncate(&workspace_of(t), 14),
            truncate(&owner_of(t), 12),
            truncate(&relative_or(t.expires_at, now, "never"), 8),
            truncate(&relative_or(t.last_used_at, now, "never"), 9),
        ]);
    }
    table
}

/// The label of the line that carries a new secret in table output.
pub const SECRET_LABEL: &str = "Token:";

/// A created or rotated token: its metadata, then the secret on its own labelled line
/// (stdout), and a reminder that it is shown once (stderr, so `grep '^Token:'` is enough).
pub fn print_created(created: &CreatedToken, json: bool, verb: &str) -> Result<(), CliError> {
    if json {
        return print_json(created);
    }
    out!(
        "{}\n{SECRET_LABEL} {}\n",
        token_details(&created.meta),
        created.token
    );
    eprintln!(
        "{verb} token {:?}. Copy the token now: it is shown only this once.",
        clean(&created.meta.name)
    );
    Ok(())
}

/// A revealed secret: on its own labelled line (stdout) in table output, so
/// `grep '^Token:'` finds it as after a create; `{"token": …}` as JSON.
pub fn print_revealed(revealed: &RevealedToken, json: bool) -> Result<(), CliError> {
    if json {
        return print_json(revealed);
    }
    out!("{SECRET_LABEL} {}\n", revealed.token);
    eprintln!("The reveal is recorded in the audit log (token.revealed).");
    Ok(())
}

/// A token's usage: the last use, then the recent addresses and the days with uses as
/// tables (JSON: the whole answer, all 90 days).
pub fn print_usage(usage: &TokenUsage, now: OffsetDateTime, json: bool) -> Result<(), CliError> {
    if json {
        return print_json(usage);
    }
    let total: u64 = usage.daily.iter().map(|d| d.count).sum();
    out!(
        "{}",
        details(&[
            ("Last used", opt_time(usage.last_used_at, "never")),
            ("Uses (90 days)", total.to_string()),
        ])
    );
    outln!("");
    let mut ips = Table::new(&["ADDRESS", "LAST SEEN", ""]);
    for seen in &usage.last_ips {
        ips.row(vec![
            seen.ip.clone(),
            rfc3339(seen.last_seen_at),
            relative(seen.last_seen_at, now),
        ]);
    }
    ips.print_or("No client addresses recorded.");
    outln!("");
    let mut days = Table::new(&["DATE (UTC)", "USES"]);
    for day in usage.daily.iter().filter(|d| d.count > 0) {
        days.row(vec![day.date.clone(), day.count.to_string()]);
    }
    days.print_or("No uses in the last 90 days.");
    Ok(())
}

/// `whoami` as text.
pub fn me_details(me: &Me) -> String {
    let u = &me.user;
    let mut out = details(&[
        ("Username", u.username.clone()),
        ("User ID", u.id.clone()),
        ("Display name", or_dash(u.display_name.as_deref())),
        ("Email", or_dash(u.email.as_deref())),
        ("Org role", u.role.as_str().to_owned()),
        ("Active", if u.active { "yes" } else { "no" }.to_owned()),
        ("Organization", format!("{} ({})", me.org.name, me.org.id)),
    ]);
    out.push('\n');
    let mut table = Table::new(&["WORKSPACE", "WORKSPACE ID", "ROLE"]);
    for m in &me.memberships {
        table.row(vec![
            m.workspace_name.clone(),
            m.workspace_id.clone(),
            m.role.as_str().to_owned(),
        ]);
    }
    if me.memberships.is_empty() {
        out.push_str("No workspace memberships.\n");
    } else {
        out.push_str(&table.render());
    }
    out
}

/// Workspaces as a table (full ids: commands take them, or the name).
pub fn workspace_table(items: &[Workspace], now: OffsetDateTime) -> Table {
    let mut table = Table::new(&["ID", "NAME", "CREATED"]);
    for w in items {
        table.row(vec![
            w.id.clone(),
            truncate(&clean(&w.name), 60),
            relative(w.created_at, now),
        ]);
    }
    table
}

/// One project as `Key  value` lines.
pub fn project_details(p: &Project) -> String {
    details(&[
        ("ID", p.id.clone()),
        ("Name", p.name.clone()),
        ("Description", or_dash(p.description.as_deref())),
        ("Workspace ID", p.workspace_id.clone()),
        ("Created by", or_dash(p.created_by.as_deref())),
        ("Created", rfc3339(p.created_at)),
    ])
}

/// Projects as a table that fits 120 columns (full project ids: `--project` takes
/// them, or the name).
pub fn project_table(items: &[Project], now: OffsetDateTime) -> Table {
    // 36 + 24 + 36 + 10 + 2 × 3 separators = 112.
    let mut table = Table::new(&["ID", "NAME", "DESCRIPTION", "CREATED"]);
    for p in items {
        table.row(vec![
            p.id.clone(),
            truncate(&clean(&p.name), 24),
            truncate(&or_dash(p.description.as_deref()), 36),
            truncate(&relative(p.created_at, now), 10),
        ]);
    }
    table
}

/// A verify answer as text: `valid` and the token, or `invalid: <reason>`.
pub fn verify_text(answer: &VerifyResponse, rate_limit: Option<RateLimitStatus>) -> String {
    match (&answer.token, answer.valid) {
        (Some(token), true) => format!("valid\n\n{}", token_details(token)),
        (None, true) => "valid\n".to_owned(),
        (_, false) => {
            let retry = rate_limit
                .and_then(|r| r.retry_after)
                .map(|s| format!(" (retry in {s} s)"))
                .unwrap_or_default();
            format!(
                "invalid: {}{retry}\n",
                answer.reason.map(|r| r.as_str()).unwrap_or("unknown")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_clean() {
        let mut t = Table::new(&["ID", "NAME", "STATE"]);
        t.row(vec!["1".into(), "ci\x1b[31m".into(), "active".into()]);
        t.row(vec!["22".into(), "x".into(), "revoked".into()]);
        let text = t.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "ID  NAME     STATE");
        assert_eq!(lines[1], "1   ci\u{fffd}[31m  active");
        assert_eq!(lines[2], "22  x        revoked");
        assert!(!text.contains('\x1b'));
    }

    #[test]
    fn details_align() {
        let text = details(&[("ID", "1".into()), ("Name", "a\nb".into())]);
        assert_eq!(text, "ID    1\nName  a\u{fffd}b\n");
    }

    #[test]
    fn one_line_joins() {
        assert_eq!(one_line("a\nb\r\n c"), "a b  c");
    }

    #[test]
    fn short_ids_truncation_and_relative_times() {
        assert_eq!(short_id("01a24f85-1c56-70b5-9970-03a5c63d4610"), "c63d4610");
        assert_eq!(short_id("abc"), "abc");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abcd", 4), "abcd");
        let now = time::macros::datetime!(2027-08-22 10:00:00 UTC);
        let at = |secs: i64| now + time::Duration::seconds(secs);
        assert_eq!(relative(at(-30), now), "just now");
        assert_eq!(relative(at(-300), now), "5m ago");
        assert_eq!(relative(at(-3 * 3600), now), "3h ago");
        assert_eq!(relative(at(29 * 86_400 + 60), now), "in 29d");
        assert_eq!(relative(at(-800 * 86_400), now), "2y ago");
    }

    #[test]
    fn a_token_table_fits_120_columns_whatever_the_names() {
        let now = time::macros::datetime!(2027-08-22 10:00:00 UTC);
        let long = "x".repeat(200);
        let token: Token = serde_json::from_value(serde_json::json!({
            "id": "01a24f85-1c56-70b5-9970-03a5c63d4610",
            "name": long,
            "type": "client",
            "hint": "lkc_…a1B2",
            "state": "type_disabled",
            "scopes": ["projects:read"],
            "projects": [],
            "workspace_id": "01a24f85-1bfc-719e-bcac-33da38ee79b7",
            "workspace_name": long,
            "owner_id": null,
            "owner_username": null,
            "created_by": null,
            "environment": null,
            "created_at": "2027-08-01T10:00:00Z",
            "expires_at": "2029-08-01T10:00:00Z",
            "last_used_at": "2027-08-22T09:55:00Z",
            "last_used_ip": null
        }))
        .unwrap();
        let text = token_table(std::slice::from_ref(&token), now, false).render();
        for line in text.lines() {
            assert!(
                line.chars().count() <= 120,
                "{} columns: {line}",
                line.chars().count()
            );
        }
        assert!(text.contains("c63d4610") && text.contains("5m ago") && text.contains("in 710d"));
        let wide = token_table(&[token], now, true).render();
        assert!(wide.contains(&long) && wide.contains("01a24f85-1c56-70b5-9970-03a5c63d4610"));
    }

    #[test]
    fn dates() {
        let t = time::macros::datetime!(2027-08-02 09:05:07 UTC);
        assert_eq!(rfc3339(t), "2027-08-02T09:05:07Z");
    }
}
