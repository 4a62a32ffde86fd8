//! How much work on the other core slows the simulation (`--contention-bench`): the
//! simulation's steps are timed one by one while a second thread alternates between the work
//! (compressing the output fields, say) and sleeping, 0.4 s each. Steps that fell wholly within
//! busy phases are compared with those wholly within idle ones, by their medians. Both kinds
//! interleave within every second, so the machine's slow spells, which move whole-run timings
//! by 20-60 % on a shared virtual machine, fall on both alike.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const PHASE: Duration = Duration::from_millis(400);

/// One kind of work beside the simulation, measured.
pub struct Contention {
    /// Median step time within busy and within idle phases, in seconds.
    pub busy: f64,
    pub idle: f64,
    /// Steps measured within each.
    pub n_busy: usize,
    pub n_idle: usize,
    /// Mean seconds of one unit of the work.
    pub work: f64,
}

/// Runs `step` for `seconds` while another thread alternates between repeating `work` and
/// sleeping.
pub fn measure(step: &mut dyn FnMut(), work: &(dyn Fn() + Sync), seconds: f64) -> Contention {
    let (busy, stop) = (AtomicBool::new(false), AtomicBool::new(false));
    let (mut on, mut off) = (Vec::new(), Vec::new());
    let (spent, units) = std::thread::scope(|scope| {
        let worker = scope.spawn(|| {
            let (mut spent, mut units) = (0.0, 0usize);
            while !stop.load(Ordering::Relaxed) {
                busy.store(true, Ordering::SeqCst);
                let t = Instant::now();
                while t.elapsed() < PHASE {
                    work();
                    units += 1;
                }
                spent += t.elapsed().as_secs_f64();
                busy.store(false, Ordering::SeqCst);
                std::thread::sleep(PHASE);
            }
            (spent, units)
        });
        let start = Instant::now();
        while start.elapsed().as_secs_f64() < seconds {
            let before = busy.load(Ordering::SeqCst);
            let t = Instant::now();
            step();
            let dt = t.elapsed().as_secs_f64();
            // A step during which the phase changed belongs to neither.
            match (before, busy.load(Ordering::SeqCst)) {
                (true, true) => on.push(dt),
                (false, false) => off.push(dt),
                _ => {}
            }
        }
        stop.store(true, Ordering::Relaxed);
        worker.join().expect("the work thread panicked")
    });
    Contention {
        busy: super::compare::median(&on),
        idle: super::compare::median(&off),
        n_busy: on.len(),
        n_idle: off.len(),
        work: spent / units.max(1) as f64,
    }
}

/// Copies a 64 MiB buffer into a new one (its pages faulted in as well): memory traffic without
/// computing, to show what slowing the method can detect.
pub fn copy_buffers() -> impl Fn() + Sync {
    let from = vec![1u8; 64 << 20];
    move || {
        let mut to = vec![0u8; 64 << 20];
        to.copy_from_slice(std::hint::black_box(&from));
        std::hint::black_box(&mut to);
    }
}

/// Prints one line per measured kind of work.
pub fn print(label: &str, c: &Contention) {
    println!(
        "  {label:<48} step {:7.3} ms busy ({} steps) vs {:7.3} ms idle ({}): {:+6.2}%   one unit of work {:.1} ms",
        c.busy * 1e3,
        c.n_busy,
        c.idle * 1e3,
        c.n_idle,
        100.0 * (c.busy / c.idle - 1.0),
        c.work * 1e3
    );
}
