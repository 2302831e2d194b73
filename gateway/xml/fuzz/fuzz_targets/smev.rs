#![no_main]
use libfuzzer_sys::fuzz_target;
fuzz_target!(|data: &[u8]| { mezhved_xml::fuzzing::smev_target(data); });
