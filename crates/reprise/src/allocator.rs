//! The global allocator: mimalloc, called the way its fast paths expect.
//!
//! A served request makes about 40 host-side allocations (hyper, the
//! wasi:http resources, wasmtime's call bookkeeping), so the allocator is a
//! tenth of a reused request's instructions. mimalloc spends fewer than
//! glibc's (`reprise-bench --instructions`: 47,000 to 43,000 per reused
//! `hello` request, 8% fewer per fresh one, for about 10 MB more resident
//! memory under load), but the `mimalloc` crate asks `mi_malloc_aligned`
//! for every block, and that takes mimalloc's fast path only for a block of
//! at most 1 KiB whose next free slot happens to be aligned; a larger one
//! (the future of every p2 call, boxed per request) goes through the
//! generic, over-allocating path. Every mimalloc block is aligned to a
//! machine word, so a block that needs no more is asked of plain
//! `mi_malloc`, as the standard library's `System` asks `malloc`: 1,250
//! fewer instructions per reused request, 2,600 per fresh one.

use libmimalloc_sys::{
    mi_free, mi_malloc, mi_malloc_aligned, mi_realloc, mi_realloc_aligned, mi_zalloc,
    mi_zalloc_aligned,
};
use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

/// The alignment of every block mimalloc hands out.
const WORD: usize = std::mem::size_of::<usize>();

pub struct MiMalloc;

// SAFETY: each method passes its layout's size (and, past a word, its
// alignment) to the mimalloc function of the same contract; blocks from
// either kind of call are freed and reallocated by mimalloc alike.
unsafe impl GlobalAlloc for MiMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe {
            if layout.align() <= WORD {
                mi_malloc(layout.size()).cast()
            } else {
                mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        unsafe {
            if layout.align() <= WORD {
                mi_zalloc(layout.size()).cast()
            } else {
                mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        unsafe { mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        unsafe {
            if layout.align() <= WORD {
                mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks of every size class and alignment come back aligned, keep
    /// their contents through reallocation and are zeroed when asked.
    #[test]
    fn blocks_are_aligned_and_keep_their_contents() {
        for align in [1, 2, 4, 8, 16, 32, 64, 128, 4096] {
            for size in [1, 7, 8, 24, 40, 1000, 1025, 1536, 70_000, 3 << 20] {
                let layout = Layout::from_size_align(size.max(align), align).unwrap();
                unsafe {
                    let p = MiMalloc.alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size}, align {align}");
                    p.write_bytes(0xa5, layout.size());
                    let grown = MiMalloc.realloc(p, layout, layout.size() * 2 + 8);
                    assert_eq!(grown as usize % align, 0, "realloc, align {align}");
                    assert!((0..layout.size()).all(|i| *grown.add(i) == 0xa5));
                    MiMalloc.dealloc(grown, layout);
                    let z = MiMalloc.alloc_zeroed(layout);
                    assert_eq!(z as usize % align, 0);
                    assert!((0..layout.size()).all(|i| *z.add(i) == 0));
                    MiMalloc.dealloc(z, layout);
                }
            }
        }
    }
}
