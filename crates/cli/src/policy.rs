//! The verify-time policy flags of `token create` and `token update` (DESIGN.md §8):
//! `--metadata JSON`, `--allowed-ip CIDR`, `--rate-limit N/WINDOW`, `--remaining-uses N`,
//! `--refill AMOUNT/daily|monthly`, and on update `--clear FIELD`.
//!
//! The flags are parsed here only far enough to build the request (a JSON text, a number,
//! the shape `N/WINDOW`); every rule about the values — 4 KiB of metadata, CIDR syntax,
//! limits and windows in range — is the server's, whose 422 names the field.

use std::fmt;

use clap::{Args, ValueEnum};
use latchkey_client::proto::{
    CreateTokenRequest, RateLimit, Refill, RefillInterval, UpdateTokenRequest,
};
use serde_json::Value;

/// Seconds in each window unit `--rate-limit` accepts.
const UNITS: [(&str, u64); 4] = [("s", 1), ("m", 60), ("h", 3_600), ("d", 86_400)];

/// `--rate-limit`: `N/WINDOW`, the window a number of seconds with an optional unit
/// (`s`, `m`, `h`, `d`), or a unit alone meaning one of it: `100/60s`, `1000/1h`, `10/s`.
pub fn parse_rate_limit(text: &str) -> Result<RateLimit, String> {
    let usage = || {
        format!(
            "{text:?} is not a rate limit: give N/WINDOW, e.g. 100/60s, 1000/1h or 10/s \
             (units s, m, h, d; a day at most)"
        )
    };
    let (limit, window) = text.trim().split_once('/').ok_or_else(usage)?;
    let limit: u64 = limit.trim().parse().map_err(|_| usage())?;
    let window = window.trim();
    if window.is_empty() {
        return Err(usage());
    }
    let digits = window.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = window.split_at(digits);
    let count: u64 = if number.is_empty() {
        1
    } else {
        number.parse().map_err(|_| usage())?
    };
    let unit = if unit.is_empty() { "s" } else { unit };
    let per = UNITS
        .iter()
        .find_map(|(name, secs)| (*name == unit).then_some(*secs))
        .ok_or_else(usage)?;
    let window_secs = count.checked_mul(per).ok_or_else(usage)?;
    Ok(RateLimit { limit, window_secs })
}

/// `--refill`: `AMOUNT/daily` or `AMOUNT/monthly` (also `/day`, `/month`).
pub fn parse_refill(text: &str) -> Result<Refill, String> {
    let usage = || format!("{text:?} is not a refill: give AMOUNT/daily or AMOUNT/monthly");
    let (amount, interval) = text.trim().split_once('/').ok_or_else(usage)?;
    let amount: u64 = amount.trim().parse().map_err(|_| usage())?;
    let interval = match interval.trim().to_ascii_lowercase().as_str() {
        "daily" | "day" | "d" => RefillInterval::Daily,
        "monthly" | "month" => RefillInterval::Monthly,
        _ => return Err(usage()),
    };
    Ok(Refill { amount, interval })
}

/// `--metadata`: a JSON text, or `@FILE` to read it from a file. Only checked to be JSON
/// here (the server says when it is not an object or too large).
pub fn parse_metadata(text: &str) -> Result<Value, String> {
    let body = match text.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the metadata file {path:?}: {e}"))?,
        None => text.to_owned(),
    };
    serde_json::from_str(&body).map_err(|e| {
        format!("--metadata is not JSON ({e}); give an object such as '{{\"plan\":\"pro\"}}'")
    })
}

/// The policy flags both `token create` and `token update` take.
#[derive(Args, Clone, Debug, Default)]
pub struct PolicyArgs {
    /// Metadata returned by every check of the token: a JSON object (at most 4 KiB), or
    /// `@FILE` to read it from a file.
    #[arg(long, value_name = "JSON", value_parser = parse_metadata)]
    pub metadata: Option<Value>,
    /// A network the token may be used from, IPv4 or IPv6 CIDR or a single address (repeat
    /// for more); uses from anywhere else fail with `ip_not_allowed`.
    #[arg(long = "allowed-ip", value_name = "CIDR")]
    pub allowed_ips: Vec<String>,
    /// At most N uses per window: `N/WINDOW`, e.g. `100/60s`, `1000/1h`, `10/s` (units s,
    /// m, h, d; a day at most).
    #[arg(long, value_name = "N/WINDOW", value_parser = parse_rate_limit)]
    pub rate_limit: Option<RateLimit>,
    /// Uses left; each use takes one and at 0 checks fail with `usage_exceeded`.
    #[arg(long, value_name = "N")]
    pub remaining_uses: Option<i64>,
    /// Set the remaining uses back to AMOUNT every day or month (00:00 UTC):
    /// `AMOUNT/daily` or `AMOUNT/monthly`.
    #[arg(long, value_name = "AMOUNT/INTERVAL", value_parser = parse_refill)]
    pub refill: Option<Refill>,
}

/// A policy field `token update --clear` removes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum PolicyField {
    /// No metadata.
    Metadata,
    /// Usable from any address.
    AllowedIps,
    /// No rate limit.
    RateLimit,
    /// Unlimited uses (the refill goes with it).
    RemainingUses,
    /// No refill.
    Refill,
}

impl PolicyField {
    /// The field's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyField::Metadata => "metadata",
            PolicyField::AllowedIps => "allowed_ips",
            PolicyField::RateLimit => "rate_limit",
            PolicyField::RemainingUses => "remaining_uses",
            PolicyField::Refill => "refill",
        }
    }

    /// The flag that sets it.
    fn flag(self) -> &'static str {
        match self {
            PolicyField::Metadata => "--metadata",
            PolicyField::AllowedIps => "--allowed-ip",
            PolicyField::RateLimit => "--rate-limit",
            PolicyField::RemainingUses => "--remaining-uses",
            PolicyField::Refill => "--refill",
        }
    }
}

impl fmt::Display for PolicyField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PolicyArgs {
    /// The fields the flags set.
    pub fn set_fields(&self) -> Vec<PolicyField> {
        let mut set = Vec::new();
        if self.metadata.is_some() {
            set.push(PolicyField::Metadata);
        }
        if !self.allowed_ips.is_empty() {
            set.push(PolicyField::AllowedIps);
        }
        if self.rate_limit.is_some() {
            set.push(PolicyField::RateLimit);
        }
        if self.remaining_uses.is_some() {
            set.push(PolicyField::RemainingUses);
        }
        if self.refill.is_some() {
            set.push(PolicyField::Refill);
        }
        set
    }

    /// Puts the fields set into a create request.
    pub fn apply_to_create(&self, request: &mut CreateTokenRequest) {
        request.metadata = self.metadata.clone();
        request.allowed_ips = (!self.allowed_ips.is_empty()).then(|| self.allowed_ips.clone());
        request.rate_limit = self.rate_limit;
        request.remaining_uses = self.remaining_uses;
        request.refill = self.refill;
    }

    /// The `PATCH` body: the fields set, and each of `clear` as `null`. A field both set
    /// and cleared, or nothing at all to change, is a usage error.
    pub fn update_request(&self, clear: &[PolicyField]) -> Result<UpdateTokenRequest, String> {
        let set = self.set_fields();
        if let Some(both) = clear.iter().find(|f| set.contains(f)) {
            return Err(format!(
                "{} and --clear {both} contradict each other",
                both.flag()
            ));
        }
        if set.is_empty() && clear.is_empty() {
            return Err(
                "nothing to change: pass --metadata, --allowed-ip, --rate-limit, \
                        --remaining-uses, --refill or --clear FIELD"
                    .to_owned(),
            );
        }
        // `Some(None)` sends `null` (clear), `None` leaves the field out (keep).
        fn pick<T: Clone>(value: Option<T>, cleared: bool) -> Option<Option<T>> {
            match (value, cleared) {
                (Some(v), _) => Some(Some(v)),
                (None, true) => Some(None),
                (None, false) => None,
            }
        }
        let cleared = |f: PolicyField| clear.contains(&f);
        Ok(UpdateTokenRequest {
            metadata: pick(self.metadata.clone(), cleared(PolicyField::Metadata)),
            allowed_ips: pick(
                (!self.allowed_ips.is_empty()).then(|| self.allowed_ips.clone()),
                cleared(PolicyField::AllowedIps),
            ),
            rate_limit: pick(self.rate_limit, cleared(PolicyField::RateLimit)),
            remaining_uses: pick(self.remaining_uses, cleared(PolicyField::RemainingUses)),
            refill: pick(self.refill, cleared(PolicyField::Refill)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits() {
        let rl = |t: &str| parse_rate_limit(t).map(|r| (r.limit, r.window_secs));
        assert_eq!(rl("100/60s"), Ok((100, 60)));
        assert_eq!(rl("100/60"), Ok((100, 60)));
        assert_eq!(rl("1000/1h"), Ok((1000, 3600)));
        assert_eq!(rl("10/s"), Ok((10, 1)));
        assert_eq!(rl(" 5 / 2m "), Ok((5, 120)));
        assert_eq!(rl("1/d"), Ok((1, 86_400)));
        // The server judges ranges (0, over a day); the CLI only the shape.
        assert_eq!(rl("0/2d"), Ok((0, 172_800)));
        for bad in [
            "100",
            "x/60s",
            "100/60x",
            "100/",
            "-1/60s",
            "100/1.5h",
            "1/99999999999999999999d",
        ] {
            assert!(parse_rate_limit(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn refills() {
        let r = |t: &str| parse_refill(t).map(|r| (r.amount, r.interval));
        assert_eq!(r("1000/daily"), Ok((1000, RefillInterval::Daily)));
        assert_eq!(r("50/Monthly"), Ok((50, RefillInterval::Monthly)));
        assert_eq!(r("50/month"), Ok((50, RefillInterval::Monthly)));
        for bad in ["1000", "1000/weekly", "x/daily", "-5/daily"] {
            assert!(parse_refill(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn metadata_is_json_or_a_file() {
        assert_eq!(
            parse_metadata(r#"{"plan":"pro"}"#),
            Ok(serde_json::json!({"plan": "pro"}))
        );
        // Not an object: left to the server's 422.
        assert_eq!(parse_metadata("[1]"), Ok(serde_json::json!([1])));
        assert!(parse_metadata("{plan: pro}").is_err());
        assert!(parse_metadata("@/nonexistent/metadata.json").is_err());
        let dir = tempfile::tempdir().ok();
        let path = dir.as_ref().map(|d| d.path().join("m.json"));
        if let Some(path) = &path {
            assert!(std::fs::write(path, r#"{"tier": 2}"#).is_ok());
            assert_eq!(
                parse_metadata(&format!("@{}", path.display())),
                Ok(serde_json::json!({"tier": 2}))
            );
        }
    }

    #[test]
    fn bodies_set_and_clear() {
        let args = PolicyArgs {
            allowed_ips: vec!["10.0.0.0/8".into(), "2001:db8::/32".into()],
            rate_limit: Some(RateLimit {
                limit: 5,
                window_secs: 60,
            }),
            ..PolicyArgs::default()
        };
        let body = args
            .update_request(&[PolicyField::Refill])
            .map_err(|e| e.to_string())
            .and_then(|r| serde_json::to_value(r).map_err(|e| e.to_string()));
        assert_eq!(
            body,
            Ok(serde_json::json!({
                "allowed_ips": ["10.0.0.0/8", "2001:db8::/32"],
                "rate_limit": {"limit": 5, "window_secs": 60},
                "refill": null,
            }))
        );
        let clash = args.update_request(&[PolicyField::RateLimit]);
        assert!(clash.is_err_and(|e| e.contains("--rate-limit and --clear rate_limit")));
        assert!(PolicyArgs::default().update_request(&[]).is_err());

        let mut create = CreateTokenRequest::new("x", latchkey_client::proto::TokenType::Client);
        args.apply_to_create(&mut create);
        assert_eq!(create.allowed_ips.as_ref().map(Vec::len), Some(2));
        assert_eq!(create.remaining_uses, None);
    }
}
