#![no_main]
use libfuzzer_sys::fuzz_target;
fuzz_target!(|data: &[u8]| { let _ = mezhved_xml::fuzzing::parse_target(data); });
