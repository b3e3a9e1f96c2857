#![no_main]
//! `feedmesh::fuzzing::frame_decode_measured`, with a global allocator that
//! records the largest allocation so that the decoders' allocations can be
//! checked against the limits (the library itself forbids `unsafe`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use feedmesh::fuzzing::{AllocationProbe, frame_decode_measured};

static LARGEST: AtomicUsize = AtomicUsize::new(0);

struct Counting;

// SAFETY: forwards every call to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

struct Probe;

impl AllocationProbe for Probe {
    fn reset(&self) {
        LARGEST.store(0, Ordering::Relaxed);
    }

    fn largest(&self) -> usize {
        LARGEST.load(Ordering::Relaxed)
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| frame_decode_measured(data, Some(&Probe)));
