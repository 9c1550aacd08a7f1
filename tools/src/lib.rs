//! uptake's tools that are not services: the load generator (`loadgen`) and the benchmark
//! (`bench`).

pub mod bench;
pub mod ingest_client;
pub mod loadgen;
