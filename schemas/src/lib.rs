//! uptake's public contracts, shared by every service.
//!
//! Everything two services must agree on lives here and only here: the canonical [`event::Event`]
//! that ingest writes to Kafka and the aggregator reads, the [`alert::Alert`] on the alert topic,
//! the topic names and the layered configuration loader. (The ClickHouse tables are the `warehouse` crate.)

pub mod alert;
mod error;
pub mod event;
mod fields;
pub mod limits;
pub mod native;
pub mod native_fast;
pub mod outcome;
pub mod privacy;
#[cfg(feature = "runtime")]
pub mod runtime;
pub mod segment;
pub mod settings;
pub mod topics;

pub use error::{FieldError, SchemaError};
