//! uptake's tools that are not services: the load generator (`loadgen`), the benchmark
//! (`bench`) and the signal-quality run (`signal`).

pub mod bench;
pub mod cli;
pub mod drill;
mod error;
mod ingest_client;
pub mod loadgen;
pub mod signal;

pub use error::ToolsError;
