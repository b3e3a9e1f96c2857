#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| feedmesh::fuzzing::view_snapshot(data));
