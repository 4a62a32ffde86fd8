//! Large buffers kept for the next block. A block's values widened to f64 and its integers are
//! megabytes each; returned to the system after every block (glibc trims the heap top) and
//! faulted in again page by page for the next, they cost a fifth of the compression time of
//! Gray-Scott's 64^3 blocks. Kept here (at most [`KEEP`] bytes of each type, process-wide),
//! they are reused warm. A buffer comes out empty: nothing of its last use can be read.

use std::sync::Mutex;

/// Buffers of fewer elements are left to the allocator (its free lists keep them warm).
const LEAST: usize = 1 << 14;
/// Bytes kept per element type at most.
const KEEP: usize = 32 << 20;

/// Free buffers of one element type.
pub(crate) struct Pool<T> {
    free: Mutex<Vec<Vec<T>>>,
}

/// The pools of the codec's large buffers.
pub(crate) static F64: Pool<f64> = Pool::new();
pub(crate) static I64: Pool<i64> = Pool::new();

impl<T> Pool<T> {
    const fn new() -> Self {
        Pool {
            free: Mutex::new(Vec::new()),
        }
    }

    /// An empty vector with room for `capacity` elements: the smallest kept one large enough,
    /// else a new one.
    pub(crate) fn take(&self, capacity: usize) -> Vec<T> {
        if capacity >= LEAST {
            if let Ok(mut free) = self.free.lock() {
                let fit = (0..free.len())
                    .filter(|&i| free[i].capacity() >= capacity)
                    .min_by_key(|&i| free[i].capacity());
                if let Some(i) = fit {
                    return free.swap_remove(i);
                }
            }
        }
        Vec::with_capacity(capacity)
    }

    /// Keeps `v` for a later [`Pool::take`] where it is large and the pool has room for it.
    pub(crate) fn give(&self, mut v: Vec<T>) {
        let bytes = |v: &Vec<T>| v.capacity() * std::mem::size_of::<T>();
        if v.capacity() < LEAST || bytes(&v) > KEEP {
            return;
        }
        v.clear();
        if let Ok(mut free) = self.free.lock() {
            let kept: usize = free.iter().map(bytes).sum();
            if kept + bytes(&v) <= KEEP {
                free.push(v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_empty_and_within_the_budget() {
        let pool: Pool<i64> = Pool::new();
        let mut v = pool.take(LEAST);
        v.extend(0..LEAST as i64);
        let at = v.as_ptr();
        pool.give(v);
        let w = pool.take(LEAST / 2 + LEAST / 2);
        assert!(w.is_empty() && w.capacity() >= LEAST);
        assert_eq!(w.as_ptr(), at, "the kept buffer is reused");
        pool.give(w);
        // Small ones are not kept; nor beyond the budget.
        pool.give(Vec::with_capacity(LEAST - 1));
        for _ in 0..KEEP / (8 * LEAST) + 4 {
            pool.give(Vec::with_capacity(LEAST));
        }
        let free = pool.free.lock().unwrap();
        assert!(free.iter().all(|v| v.capacity() >= LEAST && v.is_empty()));
        assert!(free.iter().map(|v| v.capacity() * 8).sum::<usize>() <= KEEP);
    }
}
