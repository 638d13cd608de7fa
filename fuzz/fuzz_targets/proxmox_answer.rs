#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| jarvis::fuzzing::proxmox_answer(data));
