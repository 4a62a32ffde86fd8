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

    /// The smallest kept buffer with room for `capacity` elements (None below [`LEAST`]).
    fn kept(&self, capacity: usize) -> Option<Vec<T>> {
        if capacity < LEAST {
            return None;
        }
        let mut free = self.free.lock().ok()?;
        let fit = (0..free.len())
            .filter(|&i| free[i].capacity() >= capacity)
            .min_by_key(|&i| free[i].capacity())?;
        Some(free.swap_remove(fit))
    }

    /// An empty vector with room for `capacity` elements: the smallest kept one large enough,
    /// else a new one.
    pub(crate) fn take(&self, capacity: usize) -> Vec<T> {
        self.kept(capacity)
            .unwrap_or_else(|| Vec::with_capacity(capacity))
    }

    /// `n` default values: in a kept buffer large enough where there is one, else in a new one
    /// allocated fallibly (a decoder's buffer: a hostile stream's claim is then an error, not
    /// an abort).
    pub(crate) fn try_filled(&self, n: usize, what: &str) -> crate::error::Result<Vec<T>>
    where
        T: Clone + Default,
    {
        match self.kept(n) {
            Some(mut v) => {
                v.resize(n, T::default());
                Ok(v)
            }
            None => crate::error::try_vec(n, what),
        }
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

    #[test]
    fn filled_buffers_hold_defaults_only_and_claims_beyond_memory_are_errors() {
        let pool: Pool<i64> = Pool::new();
        let mut v = pool.take(2 * LEAST);
        v.extend(std::iter::repeat_n(7, 2 * LEAST));
        let at = v.as_ptr();
        pool.give(v);
        let w = pool.try_filled(LEAST + 3, "a test").unwrap();
        assert_eq!(w.as_ptr(), at, "the kept buffer is reused");
        assert!(w.len() == LEAST + 3 && w.iter().all(|&x| x == 0));
        assert!(pool.try_filled(usize::MAX / 16, "a test").is_err());
        assert_eq!(pool.try_filled(5, "a test").unwrap(), vec![0; 5]);
    }
}
