#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| feedmesh::fuzzing::fork_proof_decode(data));
