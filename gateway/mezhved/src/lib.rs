//! The mezhved gateway's library side of the command line: argument definitions and the
//! commands themselves, kept here (not in `main.rs`) so tests call them directly.

#![forbid(unsafe_code)]

pub mod adapter_cmd;
pub mod bench;
pub mod cli;
pub mod dashboard_cmd;
pub mod demo;
pub mod demo_agency;
pub mod demo_summary;
pub mod gateway_cmd;
pub mod journal_cmd;
pub mod paper_cmd;
pub mod report_cmd;
