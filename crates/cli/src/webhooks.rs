//! `latchkey webhook …`: webhook endpoints for lifecycle events (org admins), over the SDK.

use clap::{Args, Subcommand};
use latchkey_client::proto::{
    CreateWebhookRequest, EventType, Page, UpdateWebhookRequest, Webhook, WebhookDelivery,
};
use latchkey_client::{PageQuery, collect_all};
use time::OffsetDateTime;

use crate::error::{CliError, CliResult, EXIT_OK};
use crate::output::{self, Table, out, outln, print_json};
use crate::remote::{Remote, now};

fn event_type(text: &str) -> Result<EventType, String> {
    EventType::parse(text).ok_or_else(|| {
        let known: Vec<&str> = EventType::ALL.iter().map(|e| e.as_str()).collect();
        format!("unknown event type {text:?}; one of: {}", known.join(", "))
    })
}

/// `latchkey webhook create`.
#[derive(Args)]
pub struct CreateWebhook {
    /// Where deliveries are POSTed (http:// or https://).
    #[arg(value_name = "ENDPOINT_URL")]
    pub endpoint: String,
    /// An event type to deliver (repeat it; `all` for every type).
    #[arg(long = "event", short = 'e', value_name = "TYPE", required = true)]
    pub events: Vec<String>,
    /// A description.
    #[arg(long, short = 'd')]
    pub description: Option<String>,
    #[command(flatten)]
    pub remote: Remote,
}

/// `latchkey webhook update`.
#[derive(Args)]
pub struct UpdateWebhook {
    /// The endpoint's id.
    pub id: String,
    /// A new endpoint URL.
    #[arg(long, value_name = "ENDPOINT_URL")]
    pub endpoint: Option<String>,
    /// The new event types (repeat it; replaces the list).
    #[arg(long = "event", short = 'e', value_name = "TYPE")]
    pub events: Vec<String>,
    /// A new description.
    #[arg(long, short = 'd')]
    pub description: Option<String>,
    /// Pause deliveries.
    #[arg(long, conflicts_with = "enable")]
    pub disable: bool,
    /// Resume deliveries.
    #[arg(long)]
    pub enable: bool,
    #[command(flatten)]
    pub remote: Remote,
}

/// A command on one endpoint.
#[derive(Args)]
pub struct OneWebhook {
    /// The endpoint's id.
    pub id: String,
    #[command(flatten)]
    pub remote: Remote,
}

/// `latchkey webhook redeliver`.
#[derive(Args)]
pub struct Redeliver {
    /// The endpoint's id.
    pub id: String,
    /// The delivery's id (see `latchkey webhook deliveries`).
    pub delivery: String,
    #[command(flatten)]
    pub remote: Remote,
}

/// `latchkey webhook list`.
#[derive(Args)]
pub struct ListWebhooks {
    #[command(flatten)]
    pub remote: Remote,
}

/// `latchkey webhook …`.
#[derive(Subcommand)]
pub enum WebhookCmd {
    /// Create an endpoint; its signing secret (whsec_…) is printed once.
    #[command(after_help = "\
Examples:
  latchkey webhook create https://hooks.example.com/latchkey --event token.expiring --event token.leaked
  latchkey webhook create https://hooks.example.com/all --event all --output json")]
    Create(CreateWebhook),
    /// List the organization's endpoints.
    #[command(after_help = "Example:\n  latchkey webhook list")]
    List(ListWebhooks),
    /// Show one endpoint.
    #[command(after_help = "Example:\n  latchkey webhook get <id> --output json")]
    Get(OneWebhook),
    /// Change an endpoint's URL, event types or description, or pause/resume it.
    #[command(after_help = "Example:\n  latchkey webhook update <id> --disable")]
    Update(UpdateWebhook),
    /// Delete an endpoint and its deliveries.
    #[command(after_help = "Example:\n  latchkey webhook delete <id>")]
    Delete(OneWebhook),
    /// Send a `webhook.test` message to the endpoint.
    #[command(after_help = "Example:\n  latchkey webhook test <id>")]
    Test(OneWebhook),
    /// Deliveries to the endpoint: event, state, attempts, last status, next attempt.
    #[command(after_help = "Example:\n  latchkey webhook deliveries <id> --output json")]
    Deliveries(OneWebhook),
    /// Send a delivery's message again (same webhook-id).
    #[command(after_help = "Example:\n  latchkey webhook redeliver <id> <delivery-id>")]
    Redeliver(Redeliver),
}

fn parse_events(texts: &[String]) -> Result<Vec<EventType>, CliError> {
    if texts.iter().any(|t| t == "all") {
        return Ok(EventType::ALL.to_vec());
    }
    texts
        .iter()
        .map(|t| event_type(t).map_err(CliError::usage))
        .collect()
}

fn webhook_details(hook: &Webhook) -> String {
    output::details(&[
        ("ID", hook.id.clone()),
        ("URL", output::clean(&hook.url)),
        (
            "Events",
            hook.events
                .iter()
                .map(|e| e.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        ),
        (
            "Description",
            hook.description
                .as_deref()
                .map_or_else(|| "-".to_owned(), output::clean),
        ),
        ("Enabled", hook.enabled.to_string()),
        ("Created", output::rfc3339(hook.created_at)),
    ])
}

fn webhook_table(items: &[Webhook], now: OffsetDateTime) -> Table {
    let mut table = Table::new(&["ID", "URL", "EVENTS", "ENABLED", "CREATED"]);
    for hook in items {
        table.row(vec![
            hook.id.clone(),
            output::truncate(&output::clean(&hook.url), 40),
            hook.events.len().to_string(),
            hook.enabled.to_string(),
            output::relative(hook.created_at, now),
        ]);
    }
    table
}

fn delivery_table(items: &[WebhookDelivery], now: OffsetDateTime) -> Table {
    let mut table = Table::new(&[
        "ID", "EVENT", "STATE", "ATTEMPTS", "LAST", "ERROR", "NEXT", "CREATED",
    ]);
    for d in items {
        table.row(vec![
            d.id.clone(),
            d.event_type.clone(),
            d.state.as_str().to_owned(),
            d.attempts.to_string(),
            d.last_status
                .map_or_else(|| "-".to_owned(), |s| s.to_string()),
            output::truncate(&output::clean(d.last_error.as_deref().unwrap_or("-")), 20),
            d.next_attempt_at
                .map_or_else(|| "-".to_owned(), |t| output::relative(t, now)),
            output::relative(d.created_at, now),
        ]);
    }
    table
}

fn print_delivery(d: &WebhookDelivery, json: bool) -> Result<(), CliError> {
    if json {
        return print_json(d);
    }
    outln!(
        "Queued {} delivery {} (event {})",
        d.event_type,
        d.id,
        d.event_id
    );
    Ok(())
}

/// Runs a `webhook` command.
pub async fn webhook(cmd: WebhookCmd) -> CliResult {
    match cmd {
        WebhookCmd::Create(args) => {
            let client = args.remote.client(true, true)?;
            let request = CreateWebhookRequest {
                url: args.endpoint,
                events: parse_events(&args.events)?,
                description: args.description,
                enabled: None,
            };
            let created = client.webhooks().create(&request).await?;
            if args.remote.json() {
                print_json(&created)?;
            } else {
                out!("{}", webhook_details(&created.webhook));
                outln!("\nSigning secret (shown only now; verify deliveries with it):");
                outln!("{}", created.secret);
            }
        }
        WebhookCmd::List(args) => {
            let client = args.remote.client(true, true)?;
            let items = collect_all(|q| {
                let client = &client;
                async move { client.webhooks().list(&q).await }
            })
            .await?;
            if args.remote.json() {
                print_json(&Page {
                    items,
                    next_cursor: None,
                })?;
            } else {
                webhook_table(&items, now()).print_or("No webhooks.");
            }
        }
        WebhookCmd::Get(args) => {
            let client = args.remote.client(true, true)?;
            let hook = client.webhooks().get(&args.id).await?;
            if args.remote.json() {
                print_json(&hook)?;
            } else {
                out!("{}", webhook_details(&hook));
            }
        }
        WebhookCmd::Update(args) => {
            let client = args.remote.client(true, true)?;
            let events = if args.events.is_empty() {
                None
            } else {
                Some(parse_events(&args.events)?)
            };
            let enabled = match (args.enable, args.disable) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            };
            let request = UpdateWebhookRequest {
                url: args.endpoint,
                events,
                description: args.description.map(Some),
                enabled,
            };
            let hook = client.webhooks().update(&args.id, &request).await?;
            if args.remote.json() {
                print_json(&hook)?;
            } else {
                out!("{}", webhook_details(&hook));
            }
        }
        WebhookCmd::Delete(args) => {
            let client = args.remote.client(true, true)?;
            client.webhooks().delete(&args.id).await?;
            if !args.remote.json() {
                outln!("Deleted webhook {}", args.id);
            }
        }
        WebhookCmd::Test(args) => {
            let client = args.remote.client(true, true)?;
            let queued = client.webhooks().test(&args.id).await?;
            print_delivery(&queued, args.remote.json())?;
        }
        WebhookCmd::Deliveries(args) => {
            let client = args.remote.client(true, true)?;
            let page = client
                .webhooks()
                .deliveries(&args.id, &PageQuery::limit(200))
                .await?;
            if args.remote.json() {
                print_json(&page)?;
            } else {
                delivery_table(&page.items, now()).print_or("No deliveries.");
            }
        }
        WebhookCmd::Redeliver(args) => {
            let client = args.remote.client(true, true)?;
            let queued = client
                .webhooks()
                .redeliver(&args.id, &args.delivery)
                .await?;
            print_delivery(&queued, args.remote.json())?;
        }
    }
    Ok(EXIT_OK)
}
