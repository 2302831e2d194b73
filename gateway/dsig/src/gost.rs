//! Loading OpenSSL's `gost` engine (GOST R 34.10-2012 / 34.11-2012).
//!
//! Why `unsafe`: the `openssl` crate has no binding for the ENGINE API, and OpenSSL 3.0
//! offers GOST only through the `gost` engine (package `libengine-gost-openssl`), so this
//! module declares the four libcrypto ENGINE functions it needs and calls them. It is the
//! only module of the crate that may use `unsafe`.
//!
//! Invariants:
//! - The FFI calls run at most once per process, inside a [`OnceLock`] initialiser, so no
//!   two threads ever race on ENGINE setup, and OpenSSL's own init has run first
//!   ([`openssl::init`]).
//! - Every pointer is checked for null before it is used, and no raw pointer leaves
//!   [`load`]: callers only see `Result<(), DsigError>`.
//! - The structural reference from `ENGINE_by_id` is released with `ENGINE_free` on every
//!   path; the functional reference from `ENGINE_init` is released with `ENGINE_finish` only
//!   if setting the defaults failed. On success it is kept for the life of the process on
//!   purpose: OpenSSL's default tables then point into the engine, and releasing it would
//!   unload the code that GOST keys and digests call into.
//! - The engine is set as the default for all the method types it provides
//!   (`ENGINE_METHOD_ALL`), exactly as `openssl <cmd> -engine gost` does, so our GOST
//!   output is the CLI's (the interoperability tests rely on that). It registers only GOST
//!   algorithms, so RSA, ECDSA and SHA-2 stay with OpenSSL's default provider.
//! - The outcome, success or the reason for failure, is cached; a missing engine is an
//!   `Err`, never a panic, and never stops non-GOST algorithms from working.

#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_uint, CStr};
use std::sync::OnceLock;

use openssl_sys::ENGINE;

use crate::DsigError;

/// `ENGINE_METHOD_ALL` from `<openssl/engine.h>`.
const ENGINE_METHOD_ALL: c_uint = 0xFFFF;

/// The engine id OpenSSL looks up (it loads `gost.so` from its engines directory).
const ENGINE_ID: &CStr = c"gost";

// The symbols live in libcrypto, which `openssl-sys` already links.
unsafe extern "C" {
    fn ENGINE_load_builtin_engines();
    fn ENGINE_by_id(id: *const c_char) -> *mut ENGINE;
    fn ENGINE_init(e: *mut ENGINE) -> c_int;
    fn ENGINE_set_default(e: *mut ENGINE, flags: c_uint) -> c_int;
    fn ENGINE_finish(e: *mut ENGINE) -> c_int;
    fn ENGINE_free(e: *mut ENGINE) -> c_int;
}

static STATE: OnceLock<Result<(), String>> = OnceLock::new();

/// Loads and initialises the `gost` engine and makes it OpenSSL's default for the GOST
/// algorithms. Idempotent and thread-safe: the work is done once, and its outcome (`Ok`, or
/// [`DsigError::Engine`] with the reason) is returned on every later call.
pub fn ensure_loaded() -> Result<(), DsigError> {
    STATE.get_or_init(load).clone().map_err(DsigError::Engine)
}

/// Whether GOST algorithms can be used (loads the engine on first call).
pub fn is_available() -> bool {
    ensure_loaded().is_ok()
}

fn load() -> Result<(), String> {
    openssl::init();
    // Errors from the calls below are reported through our return value; leaving them on
    // the thread's OpenSSL error queue would make a later, unrelated operation look failed.
    let result = load_engine();
    if result.is_err() {
        drop(openssl::error::ErrorStack::get());
    }
    result
}

fn load_engine() -> Result<(), String> {
    // SAFETY: a plain initialisation call with no arguments; OpenSSL makes it idempotent.
    unsafe { ENGINE_load_builtin_engines() };

    // SAFETY: ENGINE_ID is a valid NUL-terminated string that outlives the call.
    let engine = unsafe { ENGINE_by_id(ENGINE_ID.as_ptr()) };
    if engine.is_null() {
        return Err(format!(
            "OpenSSL has no \"gost\" engine (is libengine-gost-openssl installed?): {}",
            openssl::error::ErrorStack::get()
        ));
    }

    // SAFETY: `engine` is a non-null structural reference obtained just above.
    let outcome = if unsafe { ENGINE_init(engine) } != 1 {
        Err(format!(
            "the \"gost\" engine failed to initialise: {}",
            openssl::error::ErrorStack::get()
        ))
    // SAFETY: `engine` holds a functional reference (ENGINE_init succeeded).
    } else if unsafe { ENGINE_set_default(engine, ENGINE_METHOD_ALL) } != 1 {
        let msg = format!(
            "the \"gost\" engine could not be made the default: {}",
            openssl::error::ErrorStack::get()
        );
        // SAFETY: releases the functional reference taken by the successful ENGINE_init.
        unsafe { ENGINE_finish(engine) };
        Err(msg)
    } else {
        Ok(())
    };

    // SAFETY: releases the structural reference from ENGINE_by_id; `engine` is not used
    // again. On success the functional reference keeps the engine alive (module docs).
    unsafe { ENGINE_free(engine) };
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loading_is_idempotent_and_thread_safe() {
        let first = ensure_loaded().is_ok();
        let handles: Vec<_> = (0..8)
            .map(|_| std::thread::spawn(|| ensure_loaded().is_ok()))
            .collect();
        for h in handles {
            assert_eq!(h.join().ok(), Some(first));
        }
        assert_eq!(is_available(), first);
    }

    #[test]
    fn gost_digest_is_usable_after_loading() {
        // The CI machine has the engine installed; a missing engine must fail loudly here.
        ensure_loaded().expect("gost engine");
        assert!(openssl::hash::MessageDigest::from_name("md_gost12_256").is_some());
        assert!(openssl::hash::MessageDigest::from_name("md_gost12_512").is_some());
    }
}
