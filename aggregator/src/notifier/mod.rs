//! The CSM notifier: `usage-alerts` → webhooks.
//!
//! Every alert record goes to each webhook whose route (severity, status, CSM owner) matches it.
//! Exactly once per record and webhook: before delivering, the notifier looks the record up in
//! the `notifications` ledger (ClickHouse) and skips webhooks already served; after delivering
//! (or parking) it writes the ledger row, then commits the Kafka offset. The offset is only a
//! hint, as in the event consumer: a record replayed after a crash, or published twice by the
//! aggregator, finds its ledger rows and is not sent again. The one window left — a crash after
//! the receiver's 2xx and before the ledger write — is covered by the `Idempotency-Key` header.
//!
//! Lifecycle records of the CSM workflow are delivered like the rules' records, with one
//! exception: a record of an episode that was snoozed at the record's own time (its firing,
//! resolution or action time) is not sent — its ledger rows say `snoozed`, so analysts see what
//! was held back (docs/architecture.md#alert-workflow). With `console_base_url` set, every
//! delivered record carries the account page's address (`console_url`).
//!
//! Records are handled one at a time, in partition order, so a CSM sees an episode's `firing`
//! before its `resolved`. Webhooks of one record are served concurrently, so a failing webhook
//! delays the others only by its retries, and never loses them anything.

mod deliver;
pub mod payload;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::producer::FutureProducer;
use rdkafka::{Message, TopicPartitionList};
use schemas::alert::{Alert, AlertStatus};
use schemas::runtime::kafka::DeadLetterWriter;
use schemas::runtime::retry::{self, Backoff};
use schemas::topics::{HEADER_ATTEMPTS, HEADER_ERROR, HEADER_WEBHOOK};
use tokio::sync::watch;
use warehouse::columns::to_datetime;
use warehouse::rows::NotificationRow;
use warehouse::Warehouse;

pub use deliver::Outcome;

use crate::config::{AggregatorConfig, WebhookConfig};
use crate::store::Store;
use crate::telemetry::Telemetry;
use crate::AggregatorError;

/// How long to wait before retrying ClickHouse or the broker when they fail.
const STORE_RETRY: Duration = Duration::from_secs(1);
/// First and longest wait after a Kafka receive error ([`Backoff`]).
const RECEIVE_RETRY: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(30));

pub struct Notifier {
    consumer: StreamConsumer,
    dead_letters: DeadLetterWriter,
    store: Store,
    metrics: Arc<Telemetry>,
    sender: deliver::Sender,
    webhooks: Vec<WebhookConfig>,
    alerts_topic: String,
    /// `notifier.console_base_url` without its trailing `/`.
    console_base: Option<String>,
}

impl Notifier {
    pub fn new(
        cfg: &AggregatorConfig,
        warehouse: Warehouse,
        producer: FutureProducer,
        metrics: Arc<Telemetry>,
    ) -> Result<Self, AggregatorError> {
        let store = Store::new(warehouse);
        let mut consumer_cfg = cfg.kafka.to_rdkafka_consumer();
        consumer_cfg.set("group.id", &cfg.notifier.group_id);
        let consumer: StreamConsumer = consumer_cfg.create()?;
        let sender =
            deliver::Sender::new(&cfg.notifier).map_err(|e| AggregatorError::Task(format!("http client: {e}")))?;
        // Every webhook's series exist from the start, at 0 (deploy/prometheus/: a rate over a
        // series born with the first failure misses that failure).
        for hook in &cfg.notifier.webhooks {
            for outcome in ["delivered", "dead_lettered"] {
                metrics.notifications.with_label_values(&[&hook.name, outcome]);
            }
            metrics.notify_retries.with_label_values(&[&hook.name]);
            metrics.notify_dead_letters.with_label_values(&[&hook.name]);
        }
        Ok(Self {
            consumer,
            dead_letters: DeadLetterWriter::new(producer, cfg.notifier.dlq_topic.clone()),
            store,
            metrics,
            sender,
            webhooks: cfg.notifier.webhooks.clone(),
            alerts_topic: cfg.kafka.alerts_topic.clone(),
            console_base: cfg.notifier.console_base().map(str::to_owned),
        })
    }

    /// Runs until `shutdown` turns true. A record whose deliveries were cut short by shutdown
    /// is neither recorded nor committed, so the next start delivers what it still owes.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<(), AggregatorError> {
        self.consumer.subscribe(&[&self.alerts_topic])?;
        tracing::info!(topic = %self.alerts_topic, webhooks = self.webhooks.len(), "notifier started");
        let mut receive = Backoff::new(RECEIVE_RETRY.0, RECEIVE_RETRY.1);
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            let message = tokio::select! {
                _ = shutdown.changed() => return Ok(()),
                m = self.consumer.recv() => m,
            };
            // Never fatal: counted, and retried ever more slowly while it persists.
            let message = match message {
                Ok(m) => {
                    receive.succeed();
                    m
                }
                Err(e) => {
                    self.metrics.notify_receive_errors.inc();
                    let wait = receive.fail();
                    tracing::warn!(error = %e, in_a_row = receive.failures(), wait_ms = wait.as_millis() as u64, "alerts topic: receive failed; retrying");
                    if !retry::sleep_unless_shutdown(wait, &mut shutdown).await {
                        return Ok(());
                    }
                    continue;
                }
            };
            let payload = message.payload().unwrap_or_default();
            let handled = match serde_json::from_slice::<Alert>(payload) {
                Ok(alert) => self.notify(&alert, payload, &mut shutdown).await?,
                Err(e) => {
                    // Not an alert (another producer on the topic): parked whole, never retried.
                    self.metrics.notifications.with_label_values(&["", "malformed"]).inc();
                    self.park(payload, message.key(), "", 0, &format!("not an alert record: {e}"), &mut shutdown).await
                }
            };
            if !handled {
                return Ok(()); // shutdown mid-record: redelivered after the restart
            }
            // Async: the ledger already holds the outcome; a lost commit only means a replay.
            let mut tpl = TopicPartitionList::new();
            let next = rdkafka::Offset::Offset(message.offset() + 1);
            let committed = tpl
                .add_partition_offset(message.topic(), message.partition(), next)
                .and_then(|()| self.consumer.commit(&tpl, CommitMode::Async));
            if let Err(e) = committed {
                tracing::warn!(error = %e, "offset commit failed (the ledger prevents redelivery)");
            }
        }
    }

    /// Serves every webhook routed for `alert` that the ledger has no row for. False when
    /// shutdown interrupted it.
    async fn notify(
        &self,
        alert: &Alert,
        payload: &[u8],
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<bool, AggregatorError> {
        let id = payload::delivery_id(alert);
        let routed: Vec<&WebhookConfig> = self.webhooks.iter().filter(|w| w.routes(alert)).collect();
        if routed.is_empty() {
            return Ok(true);
        }
        let Some(done) = self.until_ok(shutdown, || self.store.served_webhooks(&id)).await else {
            return Ok(false);
        };
        let done: HashSet<String> = done.into_iter().collect();
        let (served, todo): (Vec<&WebhookConfig>, Vec<&WebhookConfig>) =
            routed.into_iter().partition(|w| done.contains(&w.name));
        for hook in served {
            self.metrics.notifications.with_label_values(&[&hook.name, "already_delivered"]).inc();
        }
        if todo.is_empty() {
            return Ok(true);
        }
        match self.snoozed(alert, shutdown).await {
            None => return Ok(false),
            Some(true) => {
                // Held back, and recorded as such: a replay finds the rows and does not send it.
                for hook in todo {
                    if !self.record(hook, alert, &id, ("snoozed", 0, String::new()), shutdown.clone()).await {
                        return Ok(false);
                    }
                }
                return Ok(true);
            }
            Some(false) => {}
        }
        let mut linked;
        let alert = match &self.console_base {
            Some(base) => {
                linked = alert.clone();
                linked.console_url = Some(payload::console_url(base, &alert.account_id));
                &linked
            }
            None => alert,
        };
        let served =
            join_all(todo.into_iter().map(|hook| self.serve(hook, alert, payload, &id, shutdown.clone()))).await;
        Ok(served.into_iter().all(|done| done))
    }

    /// Whether `alert`'s episode was snoozed at the record's own time, as `alert_actions` says;
    /// `None` when shutdown came first. The `snoozed`, `snooze_ended` and `closed` records are
    /// never held: they are the news about the snooze itself.
    async fn snoozed(&self, alert: &Alert, shutdown: &mut watch::Receiver<bool>) -> Option<bool> {
        let at = match alert.status {
            AlertStatus::Snoozed | AlertStatus::SnoozeEnded | AlertStatus::Closed => return Some(false),
            AlertStatus::Firing => alert.fired_at,
            AlertStatus::Resolved => alert.resolved_at.unwrap_or(alert.fired_at),
            AlertStatus::Acknowledged | AlertStatus::Assigned => alert.action.as_ref().map_or(alert.fired_at, |a| a.at),
        };
        let until = self.until_ok(shutdown, || self.store.snoozed_until_at(&alert.alert_id, at)).await?;
        Some(i64::from(until) > at.timestamp())
    }

    /// Delivers to one webhook (parking the record when that fails for good) and writes its
    /// ledger row straight away — not after the other webhooks — so a crash while another
    /// webhook is still retrying never makes this one receive the record twice. False when
    /// shutdown interrupted it.
    async fn serve(
        &self,
        hook: &WebhookConfig,
        alert: &Alert,
        payload: &[u8],
        id: &str,
        mut shutdown: watch::Receiver<bool>,
    ) -> bool {
        let (outcome, attempts, error) = match self.sender.deliver(hook, alert, &self.metrics, &mut shutdown).await {
            Outcome::Delivered { attempts } => ("delivered", attempts, String::new()),
            Outcome::Failed { attempts, error } => {
                tracing::error!(webhook = %hook.name, delivery = %id, attempts, %error, "webhook delivery failed for good; parking the alert");
                let key = Some(alert.account_id.as_bytes());
                if !self.park(payload, key, &hook.name, attempts, &error, &mut shutdown).await {
                    return false;
                }
                self.metrics.notify_dead_letters.with_label_values(&[&hook.name]).inc();
                ("dead_lettered", attempts, error)
            }
            Outcome::Interrupted => return false,
        };
        self.record(hook, alert, id, (outcome, attempts, error), shutdown).await
    }

    /// Counts how a record ended for one webhook — `(outcome, attempts, error)` — and writes its
    /// ledger row. False when shutdown came before the row was written.
    async fn record(
        &self,
        hook: &WebhookConfig,
        alert: &Alert,
        id: &str,
        (outcome, attempts, error): (&str, u32, String),
        mut shutdown: watch::Receiver<bool>,
    ) -> bool {
        self.metrics.notifications.with_label_values(&[&hook.name, outcome]).inc();
        let row = NotificationRow {
            delivery_id: id.to_owned(),
            alert_id: alert.alert_id.clone(),
            status: alert.status.as_str().into(),
            webhook: hook.name.clone(),
            account_id: alert.account_id.clone(),
            rule_id: alert.rule_id.clone(),
            severity: alert.severity.as_str().into(),
            outcome: outcome.into(),
            attempts,
            error,
            recorded_at: to_datetime(chrono::Utc::now()),
        };
        let rows = [row];
        if self.until_ok(&mut shutdown, || async { Ok(self.store.insert_rows(&rows).await?) }).await.is_none() {
            // Shutdown while ClickHouse is down: rather than hang, accept one repeat after the
            // restart (the Idempotency-Key lets receivers drop it).
            tracing::error!(webhook = %hook.name, delivery = %id, "shutdown before the delivery ledger was written; this webhook will get the alert again");
            return false;
        }
        true
    }

    /// Puts a record on the alerts dead-letter topic with the webhook and the reason in headers.
    /// Retries until the broker takes it; false when shutdown came first.
    async fn park(
        &self,
        payload: &[u8],
        key: Option<&[u8]>,
        webhook: &str,
        attempts: u32,
        error: &str,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        let attempts = attempts.to_string();
        let headers = [(HEADER_WEBHOOK, webhook), (HEADER_ERROR, error), (HEADER_ATTEMPTS, attempts.as_str())];
        let mut backoff = Backoff::constant(STORE_RETRY);
        self.dead_letters.write_until_shutdown(key, payload, &headers, &mut backoff, shutdown).await
    }

    /// Runs `op` until it succeeds, once a second; `None` when shutdown came first.
    async fn until_ok<T, F, Fut>(&self, shutdown: &mut watch::Receiver<bool>, op: F) -> Option<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, AggregatorError>>,
    {
        let mut backoff = Backoff::constant(STORE_RETRY);
        retry::until_ok(
            &mut backoff,
            shutdown,
            op,
            |e, _| tracing::warn!(error = %e, "notifier: ClickHouse or broker failed; retrying"),
        )
        .await
    }
}
