#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mailroom::fuzzing::imap_command(data));
