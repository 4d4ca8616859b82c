//! Email notices to token owners over SMTP (`[smtp]`), with lettre on rustls + ring.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::Value;

use crate::config::{SmtpConfig, SmtpSecurity};

/// Why the mailer cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum MailerError {
    /// A setting is wrong.
    #[error("smtp: {0}")]
    Config(String),
}

/// What became of one message.
#[derive(Debug)]
pub enum Sent {
    /// Accepted by the server.
    Accepted,
    /// Refused for good (a 5xx answer, a bad address): do not retry.
    Permanent(String),
    /// Failed for now (connection, timeout, 4xx): retry later.
    Transient(String),
}

/// A configured SMTP sender.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    public_url: String,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer").field("from", &self.from).finish()
    }
}

impl Mailer {
    /// Builds the transport from `[smtp]` (connections are made per message).
    pub fn new(config: &SmtpConfig, public_url: &str) -> Result<Mailer, MailerError> {
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| MailerError::Config(format!("from {:?}: {e}", config.from)))?;
        let host = config.host.trim();
        let builder = match config.security {
            SmtpSecurity::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                .map_err(|e| MailerError::Config(e.to_string()))?,
            SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
                .map_err(|e| MailerError::Config(e.to_string()))?,
            SmtpSecurity::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
        };
        let port = config.port.unwrap_or(match config.security {
            SmtpSecurity::Starttls => 587,
            SmtpSecurity::Tls => 465,
            SmtpSecurity::None => 25,
        });
        let mut builder = builder
            .port(port)
            .timeout(Some(Duration::from_secs(config.timeout_secs.max(1))));
        if let Some(username) = &config.username {
            let password = match (&config.password, &config.password_file) {
                (Some(password), _) => password.clone(),
                (None, Some(path)) => std::fs::read_to_string(path)
                    .map_err(|e| MailerError::Config(format!("password_file: {e}")))?
                    .trim_end_matches(['\r', '\n'])
                    .to_owned(),
                (None, None) => String::new(),
            };
            builder = builder.credentials(Credentials::new(username.clone(), password));
        }
        Ok(Mailer {
            transport: builder.build(),
            from,
            public_url: public_url.trim_end_matches('/').to_owned(),
        })
    }

    /// Sends the notice for one event (`body`: the whole event message) to `to`.
    pub async fn send(&self, to: &str, event_type: &str, body: &str) -> Sent {
        let Ok(to) = to.parse::<Mailbox>() else {
            return Sent::Permanent(format!("{to:?} is not an email address"));
        };
        let event: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let (subject, text) = notice_text(event_type, &event["data"], &self.public_url);
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(text);
        let message = match message {
            Ok(message) => message,
            Err(e) => return Sent::Permanent(format!("message: {e}")),
        };
        match self.transport.send(message).await {
            Ok(_) => Sent::Accepted,
            Err(e) if e.is_permanent() => Sent::Permanent(e.to_string()),
            Err(e) => Sent::Transient(e.to_string()),
        }
    }
}

/// Subject and plain text of a notice.
pub fn notice_text(event_type: &str, data: &Value, public_url: &str) -> (String, String) {
    let token = &data["token"];
    let name = token["name"].as_str().unwrap_or("(unnamed)");
    let (subject, what) = match event_type {
        "token.expiring" => {
            let days = data["days_left"].as_i64().unwrap_or(0);
            let unit = if days == 1 { "day" } else { "days" };
            (
                format!("Your API token \"{name}\" expires in {days} {unit}"),
                format!(
                    "Your API token \"{name}\" expires in {days} {unit}. Requests using it will \
                     fail with 401 from then on: rotate it or create a new one before then."
                ),
            )
        }
        "token.expired" => (
            format!("Your API token \"{name}\" has expired"),
            format!("Your API token \"{name}\" has expired and no longer works."),
        ),
        "token.leaked" => (
            format!("Your API token \"{name}\" was reported leaked and revoked"),
            format!(
                "Someone holding the secret of your API token \"{name}\" reported it as leaked, \
                 so it was revoked at once. Rotate it to get a new secret."
            ),
        ),
        "token.revoked" => (
            format!("Your API token \"{name}\" was revoked by an administrator"),
            format!("An administrator revoked your API token \"{name}\"; it no longer works."),
        ),
        other => (
            format!("Latchkey: {other}"),
            format!("Event {other} about your API token \"{name}\"."),
        ),
    };
    let field = |key: &str| token[key].as_str().unwrap_or("-").to_owned();
    let text = format!(
        "{what}\n\nToken:     {name}\nType:      {}\nWorkspace: {}\nHint:      {}\nExpires:   {}\n\n\
         Manage your tokens: {public_url}/account\n",
        field("type"),
        field("workspace_name"),
        field("hint"),
        field("expires_at"),
    );
    (subject, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn notices_name_the_token_and_the_days() {
        let data = json!({"token": {"name": "ci", "type": "personal"}, "days_left": 7});
        let (subject, text) = notice_text("token.expiring", &data, "https://lk.example.com");
        assert_eq!(subject, "Your API token \"ci\" expires in 7 days");
        assert!(text.contains("Type:      personal"));
        assert!(text.contains("https://lk.example.com/account"));
        let (subject, _) = notice_text("token.leaked", &data, "");
        assert!(subject.contains("leaked"));
    }
}
