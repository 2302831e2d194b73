//! The gateway server: typed configuration, the HTTP surfaces (SOAP endpoint, WSDL and
//! schemas, REST), and [`server::run`], the library side of `mezhved serve`.
//!
//! Architecture invariant: this crate is transport only. It turns HTTP into
//! [`mezhved_core::exchange::Call`]s and answers back; every decision about a message is
//! the core's, and every fault comes from `ExchangeError::fault`.

#![forbid(unsafe_code)]

pub mod alerts;
pub mod config;
pub mod dashboard;
pub mod jobs;
pub mod journal_api;
pub mod metrics;
pub mod monitoring_api;
pub mod push;
pub mod report_api;
pub mod rest;
pub mod schemas;
pub mod server;
pub mod soap;

pub use config::Config;
pub use server::{run, Gateway};
