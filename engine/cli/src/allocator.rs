//! The process's allocator: mimalloc, asked the cheapest way each request allows.
//!
//! Sync allocates and frees many small strings and maps per object: mimalloc does that in about
//! half the time glibc's malloc takes, and frees across threads without the arenas' growth. The
//! `mimalloc` crate asks for every block with `mi_malloc_aligned`, whose plain path takes only
//! sizes that round to a power of two; any other (24, 48, 80 bytes...) first looks for a free
//! block that happens to be aligned, then over-allocates (a larger block, and a few hundred
//! instructions more). Every block mimalloc hands out is aligned to a machine word at least: its
//! size classes are whole words, and a page's first block is aligned to 16 bytes. So a request
//! aligned to a word or less takes the plain calls, as Rust's `System` allocator takes `malloc`
//! below the alignment the C library guarantees; larger alignments keep the aligned calls.
use libmimalloc_sys as mi;
use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

/// The alignment of every block mimalloc's plain calls return.
const WORD: usize = std::mem::size_of::<usize>();

pub struct Mimalloc;

// SAFETY: each call passes the layout's size (and, above a word, its alignment) to mimalloc,
// which returns null or a block of at least that size at that alignment; blocks are freed and
// resized only by mimalloc, which finds their size itself.
unsafe impl GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see the impl.
        unsafe {
            match layout.align() <= WORD {
                true => mi::mi_malloc(layout.size()),
                false => mi::mi_malloc_aligned(layout.size(), layout.align()),
            }
        }
        .cast()
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see the impl.
        unsafe {
            match layout.align() <= WORD {
                true => mi::mi_zalloc(layout.size()),
                false => mi::mi_zalloc_aligned(layout.size(), layout.align()),
            }
        }
        .cast()
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator (GlobalAlloc's contract).
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout` (GlobalAlloc's contract); the
        // block keeps its alignment.
        unsafe {
            match layout.align() <= WORD {
                true => mi::mi_realloc(ptr.cast::<c_void>(), new_size),
                false => mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()),
            }
        }
        .cast()
    }
}

#[cfg(test)]
mod tests {
    use super::Mimalloc;
    use std::alloc::{GlobalAlloc, Layout};

    const ALIGNS: [usize; 8] = [1, 2, 4, 8, 16, 32, 64, 4096];

    fn aligned(p: *const u8, align: usize) -> bool {
        !p.is_null() && (p as usize).is_multiple_of(align)
    }

    fn fill(p: *mut u8, n: usize) {
        for i in 0..n {
            // SAFETY: `p` holds at least `n` bytes (the callers' blocks).
            unsafe { *p.add(i) = (i % 251) as u8 };
        }
    }

    fn holds(p: *const u8, n: usize) -> bool {
        // SAFETY: `p` holds at least `n` bytes, written by `fill`.
        (0..n).all(|i| unsafe { *p.add(i) } == (i % 251) as u8)
    }

    /// Sizes around every small size class and some large ones, at every alignment from a byte to
    /// a page: each block is aligned as asked, comes back zeroed when asked, and keeps what it
    /// holds, and its alignment, when it grows or shrinks.
    #[test]
    fn every_block_is_aligned_as_asked_and_keeps_what_it_holds() {
        let a = Mimalloc;
        for size in (1..=600).chain([1000, 4095, 4096, 4097, 65_536, 100_000, 1 << 20, 5 << 20]) {
            for align in ALIGNS {
                let layout = Layout::from_size_align(size, align).expect("layout");
                // SAFETY: non-zero sizes; each block is used within its size and freed once with
                // the layout it has then.
                unsafe {
                    let z = a.alloc_zeroed(layout);
                    assert!(aligned(z, align), "zeroed {size} at {align}");
                    assert!(std::slice::from_raw_parts(z, size).iter().all(|b| *b == 0), "zeroed {size} at {align}");
                    a.dealloc(z, layout);
                    for new in [size / 2 + 1, size * 3 + 5] {
                        let p = a.alloc(layout);
                        assert!(aligned(p, align), "{size} at {align}");
                        fill(p, size);
                        let q = a.realloc(p, layout, new);
                        assert!(aligned(q, align), "{size} to {new} at {align}");
                        assert!(holds(q, size.min(new)), "{size} to {new} at {align}");
                        a.dealloc(q, Layout::from_size_align(new, align).expect("layout"));
                    }
                }
            }
        }
    }

    /// Blocks held at once come from every position of their pages (a page of 24-byte blocks
    /// holds blocks at 8 past a multiple of 16): each is still aligned as asked.
    #[test]
    fn blocks_held_together_are_each_aligned() {
        let a = Mimalloc;
        for align in ALIGNS {
            for size in (1..=300).step_by(7).chain([align, 3 * align]) {
                let layout = Layout::from_size_align(size, align).expect("layout");
                // SAFETY: non-zero sizes, each block freed once with its layout.
                unsafe {
                    let held: Vec<*mut u8> = (0..200).map(|_| a.alloc(layout)).collect();
                    for p in &held {
                        assert!(aligned(*p, align), "{size} at {align}");
                        fill(*p, size);
                    }
                    assert!(held.iter().all(|p| holds(*p, size)), "{size} at {align}: blocks overlap");
                    for p in held {
                        a.dealloc(p, layout);
                    }
                }
            }
        }
    }
}
