//! A token's verify-time policy in the console (DESIGN.md §8): the **Advanced** part of the
//! create form, the facts on a token's page and its **Save policy** form
//! (`POST {list}/{id}/policy`).
//!
//! Both forms use the same fields: **Metadata (JSON)**, **Allowed IPs** (one CIDR per line),
//! **Rate limit (uses)** with **Window (seconds)**, **Remaining uses**, **Refill** with
//! **Refill amount**. Here they are only read into the API's request (a JSON text, whole
//! numbers); every rule about the values is the service's, and its 422 names the field.
//! The edit form sends only what was changed (each field carries what it showed, `*_was`),
//! so saving the metadata does not reset `remaining_uses` to a count that went stale while
//! the page was open.

use axum::extract::{OriginalUri, State};
use axum::response::Response;
use latchkey_proto::{
    CreateTokenRequest, RateLimit, Refill, RefillInterval, Token, UpdateTokenRequest,
};

use super::actions::TokenTarget;
use super::detail;
use crate::console::extract::{Form, FormData};
use crate::console::render::{Choice, Flash, View};
use crate::error::ApiError;
use crate::state::AppState;

/// The form fields, in the order of the form.
const FIELDS: [&str; 7] = [
    "metadata",
    "allowed_ips",
    "rate_limit_limit",
    "rate_limit_window_secs",
    "remaining_uses",
    "refill_amount",
    "refill_interval",
];

/// What the policy fields show: a token's values, or what a failed form held.
#[derive(Debug, Clone, Default)]
pub struct PolicyFields {
    /// Metadata (JSON), pretty-printed.
    pub metadata: String,
    /// Allowed IPs, one per line.
    pub allowed_ips: String,
    /// Rate limit (uses).
    pub rate_limit_limit: String,
    /// Window (seconds).
    pub rate_limit_window_secs: String,
    /// Remaining uses.
    pub remaining_uses: String,
    /// Refill amount.
    pub refill_amount: String,
    /// Refill: never, daily, monthly.
    pub refill_interval: Vec<Choice>,
    /// What each field showed before editing (`(name, value)`, sent back as `{name}_was`).
    pub was: Vec<(&'static str, String)>,
    /// Open the Advanced part (something is filled in).
    pub open: bool,
}

fn interval_choices(selected: &str) -> Vec<Choice> {
    [("", "Never"), ("daily", "Daily"), ("monthly", "Monthly")]
        .into_iter()
        .map(|(value, label)| Choice::new(value, label, value == selected))
        .collect()
}

impl PolicyFields {
    fn from_values(values: [String; 7]) -> PolicyFields {
        let [
            metadata,
            allowed_ips,
            rate_limit_limit,
            rate_limit_window_secs,
            remaining_uses,
            refill_amount,
            refill_interval,
        ] = values;
        let open = [
            &metadata,
            &allowed_ips,
            &rate_limit_limit,
            &rate_limit_window_secs,
            &remaining_uses,
            &refill_amount,
            &refill_interval,
        ]
        .iter()
        .any(|v| !v.trim().is_empty());
        PolicyFields {
            metadata,
            allowed_ips,
            rate_limit_limit,
            rate_limit_window_secs,
            remaining_uses,
            refill_amount,
            refill_interval: interval_choices(&refill_interval),
            was: Vec::new(),
            open,
        }
    }

    /// The fields as a failed form held them (empty for a new form).
    pub fn from_view(view: &View) -> PolicyFields {
        PolicyFields::from_values(FIELDS.map(|f| view.field(f).to_owned()))
    }

    /// The fields of `token` as it is, for its edit form: what a failed edit held if
    /// there was one, and what the token holds as the `*_was` values either way.
    pub fn for_token(token: &Token, view: &View) -> PolicyFields {
        let shown = token_values(token);
        let mut fields = match &view.sticky {
            Some(_) => PolicyFields::from_view(view),
            None => PolicyFields::from_values(shown.clone()),
        };
        fields.was = FIELDS.into_iter().zip(shown).collect();
        // Opened after a failed edit only: the facts above already show the policy.
        fields.open = view.sticky.is_some();
        fields
    }
}

/// A token's policy as the form's texts.
fn token_values(token: &Token) -> [String; 7] {
    let metadata = token
        .metadata
        .as_ref()
        .and_then(|m| serde_json::to_string_pretty(m).ok())
        .unwrap_or_default();
    let allowed_ips = token
        .allowed_ips
        .as_ref()
        .map(|ips| ips.join("\n"))
        .unwrap_or_default();
    let (limit, window) = token
        .rate_limit
        .map_or((String::new(), String::new()), |r| {
            (r.limit.to_string(), r.window_secs.to_string())
        });
    let remaining = token
        .remaining_uses
        .map(|n| n.to_string())
        .unwrap_or_default();
    let (amount, interval) = token.refill.map_or((String::new(), String::new()), |r| {
        (r.amount.to_string(), r.interval.as_str().to_owned())
    });
    [
        metadata,
        allowed_ips,
        limit,
        window,
        remaining,
        amount,
        interval,
    ]
}

/// The policy facts a token's page shows.
#[derive(Debug, Clone)]
pub struct PolicyFacts {
    /// Metadata, pretty-printed (`None`: none).
    pub metadata: Option<String>,
    /// Allowed networks (empty: any address).
    pub allowed_ips: Vec<String>,
    /// "100 uses per 60 seconds" (`None`: no limit).
    pub rate_limit: Option<String>,
    /// Uses left (`None`: unlimited).
    pub remaining_uses: Option<u64>,
    /// "Back to 1000 uses every day" (`None`: never).
    pub refill: Option<String>,
}

impl PolicyFacts {
    /// `token`'s policy, as its page states it.
    pub fn of(token: &Token) -> PolicyFacts {
        PolicyFacts {
            metadata: token
                .metadata
                .as_ref()
                .and_then(|m| serde_json::to_string_pretty(m).ok()),
            allowed_ips: token.allowed_ips.clone().unwrap_or_default(),
            rate_limit: token.rate_limit.map(|r| {
                format!(
                    "{} {} per {} {}",
                    r.limit,
                    plural(r.limit, "use", "uses"),
                    r.window_secs,
                    plural(r.window_secs, "second", "seconds")
                )
            }),
            remaining_uses: token.remaining_uses,
            refill: token.refill.map(|r| {
                let every = match r.interval {
                    RefillInterval::Daily => "every day",
                    RefillInterval::Monthly => "on the first of every month",
                };
                format!(
                    "Back to {} {} {every} (00:00 UTC)",
                    r.amount,
                    plural(r.amount, "use", "uses")
                )
            }),
        }
    }
}

fn plural<'a>(n: u64, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

// --- reading the forms ----------------------------------------------------------------

/// The policy a form asks for, each group `None` when left empty.
#[derive(Debug, Clone, Default, PartialEq)]
struct Asked {
    metadata: Option<serde_json::Value>,
    allowed_ips: Option<Vec<String>>,
    rate_limit: Option<RateLimit>,
    remaining_uses: Option<i64>,
    refill: Option<Refill>,
}

fn whole<T: std::str::FromStr>(
    form: &FormData,
    name: &str,
    field: &str,
) -> Result<Option<T>, ApiError> {
    form.text(name)
        .map(|t| {
            t.parse::<T>()
                .map_err(|_| ApiError::field(field.to_owned(), "give a whole number (0 or more)"))
        })
        .transpose()
}

/// Two fields that go together: both or neither. One alone is an error naming the other
/// (`need_b` when `b` is missing, `need_a` when `a` is).
fn both<A, B>(
    a: Option<A>,
    b: Option<B>,
    need_b: (&str, &str),
    need_a: (&str, &str),
) -> Result<Option<(A, B)>, ApiError> {
    match (a, b) {
        (None, None) => Ok(None),
        (Some(a), Some(b)) => Ok(Some((a, b))),
        (Some(_), None) => Err(ApiError::field(need_b.0, need_b.1)),
        (None, Some(_)) => Err(ApiError::field(need_a.0, need_a.1)),
    }
}

fn read(form: &FormData) -> Result<Asked, ApiError> {
    let metadata = form
        .text("metadata")
        .map(|t| {
            serde_json::from_str::<serde_json::Value>(&t).map_err(|e| {
                ApiError::field(
                    "metadata",
                    format!("not valid JSON ({e}); give an object such as {{\"plan\": \"pro\"}}"),
                )
            })
        })
        .transpose()?;
    let ips: Vec<String> = form
        .get("allowed_ips")
        .unwrap_or("")
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let limit = whole::<u64>(form, "rate_limit_limit", "rate_limit.limit")?;
    let window = whole::<u64>(form, "rate_limit_window_secs", "rate_limit.window_secs")?;
    let rate_limit = both(
        limit,
        window,
        (
            "rate_limit.window_secs",
            "give the window the rate limit counts in, in seconds",
        ),
        ("rate_limit.limit", "give how many uses each window allows"),
    )?
    .map(|(limit, window_secs)| RateLimit { limit, window_secs });
    let remaining_uses = form
        .text("remaining_uses")
        .map(|t| {
            t.parse::<i64>()
                .map_err(|_| ApiError::field("remaining_uses", "give a whole number of uses"))
        })
        .transpose()?;
    let amount = whole::<u64>(form, "refill_amount", "refill.amount")?;
    let interval =
        match form.text("refill_interval") {
            None => None,
            Some(name) => Some(RefillInterval::parse(&name).ok_or_else(|| {
                ApiError::field("refill.interval", "choose Never, Daily or Monthly")
            })?),
        };
    let refill = both(
        amount,
        interval,
        (
            "refill.interval",
            "choose when the uses are refilled (Daily or Monthly)",
        ),
        ("refill.amount", "give how many uses each refill sets"),
    )?
    .map(|(amount, interval)| Refill { amount, interval });
    Ok(Asked {
        metadata,
        allowed_ips: (!ips.is_empty()).then_some(ips),
        rate_limit,
        remaining_uses,
        refill,
    })
}

/// Puts the create form's Advanced fields into `req`.
pub fn apply_to_create(form: &FormData, req: &mut CreateTokenRequest) -> Result<(), ApiError> {
    let asked = read(form)?;
    req.metadata = asked.metadata;
    req.allowed_ips = asked.allowed_ips;
    req.rate_limit = asked.rate_limit;
    req.remaining_uses = asked.remaining_uses;
    req.refill = asked.refill;
    Ok(())
}

/// The `PATCH` the edit form asks for: each group whose texts differ from what the form
/// showed (`*_was`), an emptied group as `null`.
fn update_request(form: &FormData) -> Result<UpdateTokenRequest, ApiError> {
    let asked = read(form)?;
    let changed = |names: &[&str]| {
        names.iter().any(|n| {
            let now = form.get(n).unwrap_or("").trim();
            let was = form.get(&format!("{n}_was")).unwrap_or("").trim();
            // Line endings differ between browsers; compare what the lines say.
            now.lines().map(str::trim).ne(was.lines().map(str::trim))
        })
    };
    let pick = |names: &[&str]| changed(names);
    Ok(UpdateTokenRequest {
        metadata: pick(&["metadata"]).then_some(asked.metadata),
        allowed_ips: pick(&["allowed_ips"]).then_some(asked.allowed_ips),
        rate_limit: pick(&["rate_limit_limit", "rate_limit_window_secs"])
            .then_some(asked.rate_limit),
        remaining_uses: pick(&["remaining_uses"]).then_some(asked.remaining_uses),
        refill: pick(&["refill_amount", "refill_interval"]).then_some(asked.refill),
    })
}

/// `POST {list}/{id}/policy`: saves the edit form, back to the token's page with a banner;
/// a refusal shows the page with the message and the form as it was sent.
pub async fn save(
    State(state): State<AppState>,
    target: TokenTarget,
    OriginalUri(uri): OriginalUri,
    Form { s, data }: Form,
) -> Response {
    let result = match update_request(&data) {
        Ok(req) => state.update_token(&s.p, &target.id, req).await,
        Err(e) => Err(e),
    };
    let page = uri.path().trim_end_matches("/policy").to_owned();
    match result {
        Ok(token) => s.done(
            &page,
            Flash::new("policy-saved")
                .subject(token.name)
                .anchor("policy-heading"),
        ),
        Err(e) => {
            let view = View::failed(&state, &e, data);
            detail::render(&state, &s, &target, view).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> FormData {
        FormData::of(pairs)
    }

    fn field_of(e: ApiError) -> String {
        match e {
            ApiError::InvalidField { field, .. } => field.to_string(),
            other => format!("not a field error: {other:?}"),
        }
    }

    #[test]
    fn an_empty_form_asks_for_nothing() {
        assert_eq!(read(&form(&[])).ok(), Some(Asked::default()));
        assert_eq!(
            read(&form(&[("metadata", "  "), ("refill_interval", "")])).ok(),
            Some(Asked::default())
        );
    }

    #[test]
    fn every_field_is_read() {
        let asked = read(&form(&[
            ("metadata", r#"{"plan": "pro"}"#),
            ("allowed_ips", "10.0.0.0/8\r\n2001:db8::/32, 192.0.2.1"),
            ("rate_limit_limit", "100"),
            ("rate_limit_window_secs", "60"),
            ("remaining_uses", "5"),
            ("refill_amount", "5"),
            ("refill_interval", "daily"),
        ]));
        let Ok(asked) = asked else {
            panic!("{asked:?}")
        };
        assert_eq!(asked.metadata, Some(serde_json::json!({"plan": "pro"})));
        assert_eq!(
            asked.allowed_ips.as_deref(),
            Some(
                &[
                    "10.0.0.0/8".to_owned(),
                    "2001:db8::/32".into(),
                    "192.0.2.1".into()
                ][..]
            )
        );
        assert_eq!(
            asked.rate_limit,
            Some(RateLimit {
                limit: 100,
                window_secs: 60
            })
        );
        assert_eq!(asked.remaining_uses, Some(5));
        assert_eq!(
            asked.refill,
            Some(Refill {
                amount: 5,
                interval: RefillInterval::Daily
            })
        );
    }

    #[test]
    fn errors_name_the_field() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("metadata", "{plan}")], "metadata"),
            (&[("rate_limit_limit", "5")], "rate_limit.window_secs"),
            (&[("rate_limit_window_secs", "5")], "rate_limit.limit"),
            (
                &[("rate_limit_limit", "-1"), ("rate_limit_window_secs", "5")],
                "rate_limit.limit",
            ),
            (&[("remaining_uses", "lots")], "remaining_uses"),
            (&[("refill_amount", "5")], "refill.interval"),
            (&[("refill_interval", "weekly")], "refill.interval"),
            (&[("refill_interval", "monthly")], "refill.amount"),
        ];
        for (pairs, field) in cases {
            let named = read(&form(pairs)).err().map(field_of);
            assert_eq!(named.as_deref(), Some(*field), "{pairs:?}");
        }
    }

    #[test]
    fn the_edit_form_sends_only_what_changed() {
        let req = update_request(&form(&[
            ("metadata", "{\n  \"a\": 1\n}"),
            ("metadata_was", "{\r\n  \"a\": 1\r\n}"),
            ("allowed_ips", ""),
            ("allowed_ips_was", "10.0.0.0/8"),
            ("rate_limit_limit", "5"),
            ("rate_limit_limit_was", "10"),
            ("rate_limit_window_secs", "60"),
            ("rate_limit_window_secs_was", "60"),
            ("remaining_uses", "3"),
            ("remaining_uses_was", "3"),
        ]));
        let body = req.map(|r| serde_json::to_value(r).ok());
        assert_eq!(
            body.ok().flatten(),
            Some(serde_json::json!({
                "allowed_ips": null,
                "rate_limit": {"limit": 5, "window_secs": 60},
            }))
        );
    }
}
