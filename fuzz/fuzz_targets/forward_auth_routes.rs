#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| latchkey_fuzz::targets::forward_auth_routes(data));
