//! Where webhooks may be sent: URL checks and the address rule against SSRF.
//!
//! A webhook URL whose host is, or resolves to, a loopback, private, link-local (cloud
//! metadata lives there), shared (CGNAT), unspecified, multicast or otherwise reserved
//! address is refused — when it is configured (422) and again at every delivery, inside
//! the HTTP client's resolver, so a name that resolved to a public address when it was
//! checked and to `127.0.0.1` later (DNS rebinding) is refused at the connection itself.
//! `webhooks.allow_private_addresses = true` turns the rule off (tests, private networks).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// Longest accepted URL.
pub const MAX_URL_LEN: usize = 2000;

/// Whether `ip` is one webhooks must not reach (unless private addresses are allowed).
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_v4(v4);
            }
            let segments = v6.segments();
            // NAT64 (64:ff9b::/96) embeds an IPv4 address.
            if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [a, b] = segments[6].to_be_bytes();
                let [c, d] = segments[7].to_be_bytes();
                return forbidden_v4(Ipv4Addr::new(a, b, c, d));
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (segments[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (segments[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (segments[0] & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated)
                || segments[..2] == [0x2001, 0x0db8] // documentation
                || v6 == Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 1)
        }
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()             // 127.0.0.0/8
        || ip.is_private()       // 10/8, 172.16/12, 192.168/16
        || ip.is_link_local()    // 169.254/16, the cloud metadata service
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0                // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240 // reserved
}

/// Why a URL is refused (the message is for the client; the field is `url`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UrlRefused(pub String);

/// Checks a URL's form: `http` or `https`, a host, no credentials, at most
/// [`MAX_URL_LEN`] characters. Returns it parsed.
pub fn parse_url(text: &str) -> Result<reqwest::Url, UrlRefused> {
    let refused = |why: &str| UrlRefused(why.to_owned());
    if text.len() > MAX_URL_LEN {
        return Err(refused("url must be at most 2000 characters"));
    }
    let url = reqwest::Url::parse(text.trim())
        .map_err(|e| UrlRefused(format!("url is not a valid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(refused("url must start with http:// or https://"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(refused("url must name a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refused(
            "url must not hold credentials; verify the signature instead",
        ));
    }
    Ok(url)
}

/// The IP a URL's host is written as, if it is a literal.
fn literal_ip(url: &reqwest::Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

/// Checks where a URL leads: its host (a literal, or every address its name resolves to)
/// must not be forbidden, unless `allow_private`. A name that does not resolve is refused.
pub async fn check_destination(url: &reqwest::Url, allow_private: bool) -> Result<(), UrlRefused> {
    if allow_private {
        return Ok(());
    }
    if let Some(ip) = literal_ip(url) {
        return if is_forbidden(ip) {
            Err(refused_ip(ip))
        } else {
            Ok(())
        };
    }
    let host = url.host_str().unwrap_or_default();
    let port = url.port_or_known_default().unwrap_or(443);
    resolve_allowed(host, port).await.map(|_| ())
}

fn refused_ip(ip: IpAddr) -> UrlRefused {
    UrlRefused(format!(
        "url leads to {ip}, a loopback, private, link-local or reserved address; \
         set webhooks.allow_private_addresses = true to allow it"
    ))
}

/// Resolves `host` and refuses if any address is forbidden (a name with one public and
/// one private address is refused: the client could pick either).
async fn resolve_allowed(host: &str, port: u16) -> Result<Vec<SocketAddr>, UrlRefused> {
    let found: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| UrlRefused(format!("url host {host:?} does not resolve: {e}")))?
        .collect();
    if found.is_empty() {
        return Err(UrlRefused(format!("url host {host:?} does not resolve")));
    }
    if let Some(bad) = found.iter().find(|a| is_forbidden(a.ip())) {
        return Err(refused_ip(bad.ip()));
    }
    Ok(found)
}

/// The HTTP client's resolver for deliveries: resolves, then refuses forbidden addresses,
/// so the check holds for the very addresses the connection uses.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            // The port is replaced by the client with the URL's.
            let found = resolve_allowed(name.as_str(), 0).await?;
            let addrs: reqwest::dns::Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

/// The HTTP client deliveries use: no redirects followed, no proxy from the environment
/// (it would bypass the address rule), the attempt timeout, and the guarded resolver
/// unless private addresses are allowed.
pub fn delivery_client(
    timeout: std::time::Duration,
    allow_private: bool,
) -> Result<reqwest::Client, reqwest::Error> {
    let builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("Latchkey-Webhooks/", env!("CARGO_PKG_VERSION")));
    let builder = if allow_private {
        builder
    } else {
        builder.dns_resolver(Arc::new(GuardedResolver))
    };
    builder.build()
}

/// Checks a delivery's URL just before sending (literal addresses never reach the
/// resolver, so they are checked here).
pub fn check_literal(url: &reqwest::Url, allow_private: bool) -> Result<(), UrlRefused> {
    match literal_ip(url) {
        Some(ip) if !allow_private && is_forbidden(ip) => Err(refused_ip(ip)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn forbidden_addresses() {
        for text in [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(
                is_forbidden(text.parse().unwrap()),
                "{text} should be refused"
            );
        }
        for text in ["93.184.215.14", "8.8.8.8", "172.32.0.1", "2606:4700::1111"] {
            assert!(!is_forbidden(text.parse().unwrap()), "{text} should pass");
        }
    }

    #[test]
    fn url_forms() {
        assert!(parse_url("https://hooks.example.com/x?y=1").is_ok());
        assert!(parse_url("http://[2606:4700::1111]:8080/").is_ok());
        for bad in [
            "ftp://example.com/",
            "example.com",
            "https://user:pw@example.com/",
            "http://",
            "not a url",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
        assert!(parse_url(&format!("https://e.com/{}", "a".repeat(2000))).is_err());
    }

    #[tokio::test]
    async fn destinations_checked_by_literal_and_by_name() {
        let url = parse_url("http://127.0.0.1:9/").unwrap();
        assert!(check_destination(&url, false).await.is_err());
        assert!(check_destination(&url, true).await.is_ok());
        let url = parse_url("http://localhost:9/").unwrap();
        assert!(check_destination(&url, false).await.is_err());
        let url = parse_url("http://[::ffff:10.0.0.1]/").unwrap();
        assert!(check_literal(&url, false).is_err());
    }
}
