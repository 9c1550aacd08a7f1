//! Default Kafka topic names (docs/architecture.md#contracts). Every name is configurable per service; these
//! are the defaults both services and the deploy scripts start from.

/// Canonical usage events, key = account id (user id when the event is unattributed).
pub const USAGE_EVENTS: &str = "usage-events";
/// Churn-risk alerts as JSON ([`crate::alert::Alert`]), key = account id.
pub const USAGE_ALERTS: &str = "usage-alerts";
/// Records the aggregator could not store, with the reason in the `error` header.
pub const USAGE_EVENTS_DLQ: &str = "usage-events-dlq";
/// Alert records the notifier could not deliver to a webhook after its retries, verbatim, with
/// the webhook in the `webhook` header and the last failure in `error`.
pub const USAGE_ALERTS_DLQ: &str = "usage-alerts-dlq";
/// Privacy suppressions (docs/privacy.md): one record per subject, key = `user:ID` or
/// `account:ID`, compacted; every ingest instance and aggregator reads it whole.
pub const USAGE_SUPPRESSIONS: &str = "usage-suppressions";

/// Kafka header that carries the reason a record was dead-lettered.
pub const HEADER_ERROR: &str = "error";
/// Kafka header that names the source (write key owner) a dead-lettered event came from.
pub const HEADER_SOURCE: &str = "source";
/// Kafka header that names the webhook a parked alert was meant for.
pub const HEADER_WEBHOOK: &str = "webhook";
/// Kafka header with the number of delivery attempts made before an alert was parked.
pub const HEADER_ATTEMPTS: &str = "attempts";
