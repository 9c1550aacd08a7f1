//! The Segment Tracking API (https://segment.com/docs/connections/spec/): track, identify,
//! group, page, screen and alias messages, and batches of them, normalised into [`Event`].
//!
//! Like the native format, every problem of a message is reported at once, with its field.

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::event::{Event, EventKind, TicketStatus};
use crate::fields::{IdType, Reader};
use crate::limits::{check_age, MAX_USES, MAX_VOLUME};
use crate::outcome::{trait_outcomes, Outcome};
use crate::{FieldError, SchemaError};

/// Which Segment call a message is. The single-call endpoints say it by their path; in
/// `/v1/batch` and `/v1/import` each message says it in its `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallType {
    Track,
    Identify,
    Group,
    Page,
    Screen,
    Alias,
}

impl CallType {
    const ALL: [CallType; 6] = [Self::Track, Self::Identify, Self::Group, Self::Page, Self::Screen, Self::Alias];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Track => "track",
            Self::Identify => "identify",
            Self::Group => "group",
            Self::Page => "page",
            Self::Screen => "screen",
            Self::Alias => "alias",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Which track event names (case-insensitive) are not feature use: the usage signals, and the
/// recorded outcomes (`churned`, `renewed`, `contracted`) the rules are scored against.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct EventMapping {
    /// Names of a sign-in (counted as logins).
    pub login: Vec<String>,
    /// Names of data brought into the product (`records` and/or `bytes` properties).
    pub data_volume: Vec<String>,
    /// Names of a survey answer (`nps` 0–10 and/or `csat` 1–5 properties).
    pub survey: Vec<String>,
    /// Names of a support ticket opened.
    pub ticket_opened: Vec<String>,
    /// Names of a support ticket closed.
    pub ticket_closed: Vec<String>,
    /// Names of the recorded outcome "the account left" (what rules are scored against).
    pub churned: Vec<String>,
    /// Names of the outcome "the account renewed".
    pub renewed: Vec<String>,
    /// Names of the outcome "the account renewed smaller".
    pub contracted: Vec<String>,
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

impl Default for EventMapping {
    fn default() -> Self {
        Self {
            login: names(&["Signed In", "Logged In", "Login", "User Logged In"]),
            data_volume: names(&["Data Imported", "Records Imported", "Data Synced"]),
            survey: names(&["Survey Submitted", "NPS Survey Submitted", "Survey Completed"]),
            ticket_opened: names(&["Ticket Opened", "Ticket Created", "Support Ticket Opened"]),
            ticket_closed: names(&["Ticket Closed", "Ticket Resolved", "Support Ticket Closed"]),
            churned: names(&["Account Churned", "Subscription Cancelled", "Subscription Canceled", "Customer Churned"]),
            renewed: names(&["Subscription Renewed", "Account Renewed", "Contract Renewed"]),
            contracted: names(&["Subscription Contracted", "Subscription Downgraded", "Account Contracted"]),
        }
    }
}

enum Mapped {
    Login,
    DataVolume,
    Survey,
    Ticket(TicketStatus),
    Outcome(Outcome),
    Feature,
}

impl EventMapping {
    fn classify(&self, event: &str) -> Mapped {
        let is = |list: &[String]| list.iter().any(|n| n.eq_ignore_ascii_case(event));
        if is(&self.login) {
            Mapped::Login
        } else if is(&self.data_volume) {
            Mapped::DataVolume
        } else if is(&self.survey) {
            Mapped::Survey
        } else if is(&self.ticket_opened) {
            Mapped::Ticket(TicketStatus::Opened)
        } else if is(&self.ticket_closed) {
            Mapped::Ticket(TicketStatus::Closed)
        } else if is(&self.churned) {
            Mapped::Outcome(Outcome::Churned)
        } else if is(&self.renewed) {
            Mapped::Outcome(Outcome::Renewed)
        } else if is(&self.contracted) {
            Mapped::Outcome(Outcome::Contracted)
        } else {
            Mapped::Feature
        }
    }
}

pub struct Context<'a> {
    pub received_at: DateTime<Utc>,
    pub source: &'a str,
    pub max_future: Duration,
    /// Events older than this (before `received_at`) are refused with an error on `timestamp`.
    pub max_age: Duration,
    pub mapping: &'a EventMapping,
    /// The account of the user's last `group` call, if ingest remembers one.
    pub group_of_user: &'a (dyn Fn(&str) -> Option<String> + Sync),
}

/// Splits a `/v1/batch` or `/v1/import` body into its messages. Batch-level `context` and
/// `integrations` are merged into each message (the message's own keys win) and a batch
/// `sentAt` is copied into messages without one, as Segment does.
pub fn split_batch(body: Value) -> Result<Vec<Value>, SchemaError> {
    let invalid = |field: &str, reason: &str| SchemaError::Invalid(vec![FieldError::new(field, reason)]);
    let Value::Object(mut body) = body else {
        return Err(invalid("body", "must be an object with a \"batch\" array"));
    };
    let messages = match body.remove("batch") {
        Some(Value::Array(m)) if !m.is_empty() => m,
        Some(Value::Array(_)) => return Err(invalid("batch", "must hold at least one message")),
        Some(_) => return Err(invalid("batch", "must be an array of messages")),
        None => return Err(invalid("batch", "is required")),
    };
    let shared: Vec<(&str, Value)> = ["context", "integrations"]
        .into_iter()
        .filter_map(|k| body.get(k).filter(|v| v.is_object()).map(|v| (k, v.clone())))
        .collect();
    let sent_at = body.get("sentAt").cloned();
    Ok(messages
        .into_iter()
        .map(|mut m| {
            if let Value::Object(msg) = &mut m {
                for (key, batch_value) in &shared {
                    let merged = match msg.remove(*key) {
                        Some(Value::Object(own)) => {
                            let mut base = batch_value.as_object().cloned().unwrap_or_default();
                            base.extend(own);
                            Value::Object(base)
                        }
                        Some(other) => other,
                        None => batch_value.clone(),
                    };
                    msg.insert((*key).to_owned(), merged);
                }
                if let Some(sent_at) = &sent_at {
                    msg.entry("sentAt").or_insert_with(|| sent_at.clone());
                }
            }
            m
        })
        .collect())
}

/// Converts one message. `call` is given by the single-call endpoints; `None` reads `type`.
pub fn parse_message(call: Option<CallType>, msg: &Value, ctx: &Context<'_>) -> Result<Event, Vec<FieldError>> {
    let Value::Object(obj) = msg else {
        return Err(vec![FieldError::new("message", "must be a JSON object")]);
    };
    let mut r = Reader::new(obj);
    let call = match call {
        Some(c) => c,
        None => match obj.get("type").and_then(Value::as_str).and_then(CallType::parse) {
            Some(c) => c,
            None => {
                r.fail("type", "must be one of track, identify, group, page, screen, alias");
                return Err(r.errors);
            }
        },
    };

    let user_id = r.id_or_number("userId");
    let anonymous_id = r.id_or_number("anonymousId");
    let user = user_id.clone().or(anonymous_id).unwrap_or_default();
    if user.is_empty() && !r.errors.iter().any(|e| e.field == "userId" || e.field == "anonymousId") {
        r.fail("userId", "userId or anonymousId is required");
    }
    let message_id = r.id_or_number("messageId").unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let own_properties = r.object("properties").unwrap_or_default();
    let context = r.object("context");
    let traits = r.object("traits");
    let mut properties = own_properties.clone();
    for key in ["context", "integrations"] {
        if let Some(v) = obj.get(key).filter(|v| v.is_object()) {
            properties.entry(key).or_insert_with(|| v.clone());
        }
    }
    let timestamp = r.event_time(ctx, &mut properties);

    // Every id the attribution chain may use is held to the id rule, wherever it sits: a
    // 32 KiB `context.groupId` is refused with its path, never stored or remembered.
    let ctx_group =
        context.as_ref().and_then(|c| r.id_at("context.groupId", c.get("groupId"), false, IdType::StringOrNumber));
    let prop_account = r.account_in(&own_properties, "properties");
    let trait_account = traits.as_ref().and_then(|t| r.account_in(t, "traits"));

    let mut event = Event::new(
        EventKind::FeatureUsed,
        message_id,
        String::new(),
        user.clone(),
        timestamp,
        ctx.received_at,
        ctx.source.to_owned(),
    );
    event.event = call.as_str().to_owned();
    // Attribution chain (docs/architecture.md#contracts): context.groupId → properties.account_id/accountId →
    // (identify: traits.account_id/accountId) → the user's last group call → unattributed.
    let chain = |extra: Option<String>| {
        ctx_group.clone().or(prop_account.clone()).or(extra).or_else(|| (ctx.group_of_user)(&user)).unwrap_or_default()
    };
    match call {
        CallType::Track => {
            let name = r.required_str("event");
            event.account_id = chain(None);
            if let Some(name) = name {
                event.event = name.clone();
                r.track(&mut event, ctx.mapping.classify(&name), &own_properties, name);
            }
            event.properties = properties;
        }
        CallType::Identify => {
            event.kind = EventKind::User;
            event.account_id = chain(trait_account);
            event.traits = traits
                .or_else(|| context.as_ref().and_then(|c| c.get("traits")).and_then(|t| t.as_object().cloned()))
                .unwrap_or_default();
            event.properties = without(&properties, &own_properties);
        }
        CallType::Group => {
            event.kind = EventKind::Account;
            if let Some(g) = r.id_at("groupId", obj.get("groupId"), true, IdType::StringOrNumber) {
                event.account_id = g;
            }
            event.traits = traits.unwrap_or_default();
            r.errors.extend(trait_outcomes(&event.traits).err().unwrap_or_default());
            event.properties = without(&properties, &own_properties);
        }
        CallType::Page | CallType::Screen => {
            // The label becomes the feature name, so it is held to the id rule, under the
            // name of the field it came from.
            let label = [
                ("name", obj.get("name")),
                ("properties.name", own_properties.get("name")),
                ("properties.path", own_properties.get("path")),
            ]
            .into_iter()
            .find(|(_, v)| v.is_some_and(Value::is_string))
            .and_then(|(path, v)| r.name_at(path, v))
            .unwrap_or_else(|| "unknown".to_owned());
            event.account_id = chain(None);
            event.feature = Some(format!("{}:{label}", call.as_str()));
            event.module = r.name_at("category", obj.get("category"));
            event.count = Some(1);
            event.properties = properties;
        }
        CallType::Alias => {
            event.kind = EventKind::User;
            if user_id.is_none() {
                r.fail("userId", "is required for alias");
            }
            if let Some(p) = r.id_at("previousId", obj.get("previousId"), true, IdType::StringOrNumber) {
                event.properties = without(&properties, &own_properties);
                event.properties.insert("alias_previous_id".into(), Value::String(p));
            }
            event.account_id = chain(None);
        }
    }
    r.finish(event)
}

/// `all` without the keys of `own` (the message's own `properties`, which only track, page and
/// screen calls carry as event properties).
fn without(all: &Map<String, Value>, own: &Map<String, Value>) -> Map<String, Value> {
    all.iter()
        .filter(|(k, _)| !own.contains_key(*k) || *k == "context" || *k == "integrations")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

impl Reader<'_> {
    /// A top-level id as Segment libraries send it: a string, or a number (stringified).
    fn id_or_number(&mut self, field: &str) -> Option<String> {
        self.id_at(field, self.obj.get(field), false, IdType::StringOrNumber)
    }

    fn required_str(&mut self, field: &str) -> Option<String> {
        self.id_at(field, self.obj.get(field), true, IdType::String)
    }

    /// A free-form name (module, object, priority, page name) used only when it is a string:
    /// Segment leaves these loosely typed, so another type is ignored as before, but a string
    /// is held to the id rule, since it is stored and grouped by like an id.
    fn name_at(&mut self, path: &str, value: Option<&Value>) -> Option<String> {
        value.filter(|v| v.is_string()).and_then(|v| self.id_at(path, Some(v), false, IdType::String))
    }

    /// The account id a `properties` or `traits` object names (`account_id`, else `accountId`).
    fn account_in(&mut self, obj: &Map<String, Value>, prefix: &str) -> Option<String> {
        ["account_id", "accountId"]
            .into_iter()
            .find(|k| obj.get(*k).is_some_and(|v| !v.is_null()))
            .and_then(|k| self.id_at(&format!("{prefix}.{k}"), obj.get(k), false, IdType::StringOrNumber))
    }

    /// Segment's rule: with `sentAt`, the client's clock offset is removed —
    /// timestamp = receivedAt − (sentAt − client time). Far-future results are clamped.
    fn event_time(&mut self, ctx: &Context<'_>, properties: &mut Map<String, Value>) -> DateTime<Utc> {
        let field =
            if self.obj.get("timestamp").is_some_and(|v| !v.is_null()) { "timestamp" } else { "originalTimestamp" };
        let client = self.timestamp(field);
        let sent_at = self.timestamp("sentAt");
        let t = match (client, sent_at) {
            (Some(c), Some(s)) => ctx.received_at - (s - c),
            (Some(c), None) => c,
            (None, _) => ctx.received_at,
        };
        if t > ctx.received_at + ctx.max_future {
            properties.insert("uptake_client_timestamp".into(), Value::String(t.to_rfc3339()));
            return ctx.received_at;
        }
        if let Some(reason) = check_age(t, ctx.received_at, ctx.max_age) {
            self.fail(field, &reason);
        }
        t
    }

    fn prop_uint(&mut self, props: &Map<String, Value>, name: &str, min: u64, max: u64) -> Option<u64> {
        self.count_at(&format!("properties.{name}"), props.get(name), min, max)
    }

    fn track(&mut self, e: &mut Event, mapped: Mapped, props: &Map<String, Value>, name: String) {
        match mapped {
            Mapped::Login => e.kind = EventKind::Login,
            Mapped::DataVolume => {
                e.kind = EventKind::DataVolume;
                e.records = self.prop_uint(props, "records", 0, MAX_VOLUME);
                e.bytes = self.prop_uint(props, "bytes", 0, MAX_VOLUME);
                e.object = self.name_at("properties.object", props.get("object"));
                if !props.contains_key("records") && !props.contains_key("bytes") {
                    self.fail(
                        "properties.records",
                        "a data volume event needs properties.records and/or properties.bytes",
                    );
                }
            }
            Mapped::Survey => {
                e.kind = EventKind::Survey;
                e.nps = self.prop_uint(props, "nps", 0, 10).map(|v| v as u8);
                e.csat = self.prop_uint(props, "csat", 1, 5).map(|v| v as u8);
                if !props.contains_key("nps") && !props.contains_key("csat") {
                    self.fail(
                        "properties.nps",
                        "a survey event needs properties.nps (0-10) and/or properties.csat (1-5)",
                    );
                }
            }
            Mapped::Ticket(status) => {
                e.kind = EventKind::SupportTicket;
                e.ticket_status = Some(status);
                let key = ["ticket_id", "ticketId"].into_iter().find(|k| props.get(*k).is_some_and(|v| !v.is_null()));
                match key {
                    Some(k) => {
                        e.ticket_id =
                            self.id_at(&format!("properties.{k}"), props.get(k), false, IdType::StringOrNumber)
                    }
                    None => self.fail("properties.ticket_id", "a ticket event needs properties.ticket_id"),
                }
                e.priority = self.name_at("properties.priority", props.get("priority"));
            }
            Mapped::Outcome(outcome) => {
                e.kind = EventKind::Outcome;
                e.outcome = Some(outcome);
                // An outcome of nobody's account scores nothing and could never be attributed
                // later: refused, naming where the account was looked for.
                if e.account_id.is_empty() {
                    self.fail(
                        "context.groupId",
                        "an outcome track needs an account: context.groupId, properties.account_id or an earlier group call",
                    );
                }
            }
            Mapped::Feature => {
                e.kind = EventKind::FeatureUsed;
                e.module = self.name_at("properties.module", props.get("module"));
                e.count = Some(self.prop_uint(props, "count", 1, MAX_USES).unwrap_or(1));
                e.feature = Some(name);
            }
        }
    }
}
