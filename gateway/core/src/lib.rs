//! The exchange core: registry, the SMEV operations, the request card, global IDs and
//! checksums, attachments. No HTTP and no SQL: the store is behind
//! [`mezhved_store::Store`] and the transport hands in bytes and files.
//!
//! Architecture invariant: nothing here reads the wall clock ([`clock::Clock`] is
//! injected) or knows a fault code outside [`error`].

#![forbid(unsafe_code)]

pub mod attachments;
pub mod calendar;
pub mod card;
pub mod checksum;
pub mod clock;
pub mod deadlines;
pub mod envelope;
pub mod error;
pub mod exchange;
pub mod ids;
pub mod jobs;
pub mod journal;
pub mod monitoring;
pub mod paper;
pub mod payload;
pub mod push;
pub mod registry;
pub mod report;
pub mod xmlw;
