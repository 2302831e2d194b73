//! XML digital signatures for mezhved.
//!
//! Architecture invariant: nothing in this crate trusts a byte it has not verified.
//! [`xmldsig::verify`] is told *which* element must be signed and *where* the signature
//! must stand; it fails unless the single Reference resolves to exactly that element, and
//! it hands back only the canonical bytes that were digested, so the caller never reads
//! content from anywhere but the verified bytes (the signature-wrapping defence).
//!
//! The crypto is OpenSSL's. GOST R 34.10/34.11-2012 comes from the `gost` engine, loaded
//! once by [`gost::ensure_loaded`] (the crate's only `unsafe` code).

pub mod crypto;
pub mod error;
pub mod gost;
pub mod smev_profile;
pub mod trust;
pub mod xmldsig;

pub use error::DsigError;
