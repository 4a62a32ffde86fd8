//! Whether the step writer writes asynchronously: by default only where the rank owns a core to
//! spare for compressing. On a fully used core the writer thread could only take turns with the
//! simulation, and handing steps over would cost more than it hides (measured with the
//! Gray-Scott example, 2 ranks of one core each: async 1.15x the wall time of sync).

/// Whether the application waits while each step is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteMode {
    /// Asynchronous where the rank owns at least two cores ([`crate::owned_cores`]), else
    /// synchronous (rank 0 says so once when logging).
    #[default]
    Auto,
    /// `write_step` returns once the step is written.
    Sync,
    /// `write_step` returns once the step is handed over (at least one step may wait).
    Async,
}

impl WriteMode {
    /// `RESIDUUM_WRITER` (`auto`, `sync` or `async`), for applications that take no setting
    /// of their own (the C API); unset: `Auto`. Any other value is returned as the error.
    pub fn from_env() -> std::result::Result<WriteMode, String> {
        match std::env::var("RESIDUUM_WRITER").as_deref() {
            Err(_) | Ok("auto") => Ok(WriteMode::Auto),
            Ok("sync") => Ok(WriteMode::Sync),
            Ok("async") => Ok(WriteMode::Async),
            Ok(other) => Err(other.to_string()),
        }
    }

    /// The steps that may wait for the writer thread (0: synchronous) for a `queue` setting,
    /// with `cores` owned by the rank.
    pub fn queue(self, queue: usize, cores: usize) -> usize {
        match self {
            WriteMode::Sync => 0,
            WriteMode::Async => queue.max(1),
            WriteMode::Auto if cores < 2 => 0,
            WriteMode::Auto => queue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::WriteMode;

    #[test]
    fn the_default_mode_follows_the_cores_and_explicit_modes_win() {
        assert_eq!(WriteMode::Auto.queue(2, 1), 0);
        assert_eq!(WriteMode::Auto.queue(2, 2), 2);
        assert_eq!(WriteMode::Auto.queue(0, 8), 0, "queue 0 is synchronous");
        assert_eq!(WriteMode::Sync.queue(2, 8), 0);
        assert_eq!(WriteMode::Async.queue(2, 1), 2);
        assert_eq!(
            WriteMode::Async.queue(0, 1),
            1,
            "async waits for at least one step"
        );
    }
}
