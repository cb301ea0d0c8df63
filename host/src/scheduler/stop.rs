//! A stop request that wakes a sleeping scheduler at once. Cheap to check on the hot path (one
//! atomic load); the condition variable is touched only to sleep and to stop.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
struct Inner {
    stopped: AtomicBool,
    /// Rung on stop, for a scheduler asleep on its inputs' futex words
    /// ([`crate::shm::wait_for_input`]).
    bell: AtomicU32,
    lock: Mutex<()>,
    wake: Condvar,
}

/// Shared between the scheduler and whoever may stop it (signal handling thread, `--duration`,
/// a test). Cloning shares the same request.
#[derive(Debug, Clone, Default)]
pub struct StopHandle {
    inner: Arc<Inner>,
}

impl StopHandle {
    /// A handle that has not been stopped.
    pub fn new() -> StopHandle {
        StopHandle::default()
    }

    /// Asks the scheduler to stop after the current tick; wakes it if it sleeps.
    pub fn stop(&self) {
        self.inner.stopped.store(true, Ordering::SeqCst);
        crate::shm::ring_bell(&self.inner.bell);
        let _guard = self.inner.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.inner.wake.notify_all();
    }

    /// The word [`stop`](Self::stop) rings, and its value now (read it before checking
    /// [`is_stopped`](Self::is_stopped), then sleep on it).
    pub(super) fn bell(&self) -> (&AtomicU32, u32) {
        (&self.inner.bell, self.inner.bell.load(Ordering::SeqCst))
    }

    /// True once [`stop`](Self::stop) was called.
    #[inline]
    pub fn is_stopped(&self) -> bool {
        self.inner.stopped.load(Ordering::Relaxed)
    }

    /// Sleeps until `deadline` or a stop, whichever comes first; true if stopped. The last
    /// `spin` before the deadline is spent spinning, for accurate wake-ups at high tick rates
    /// (the kernel's sleep granularity is tens of microseconds).
    pub fn sleep_until(&self, deadline: Instant, spin: Duration) -> bool {
        let coarse = deadline.checked_sub(spin).unwrap_or(deadline);
        let mut guard = self.inner.lock.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if self.is_stopped() {
                return true;
            }
            let now = Instant::now();
            if now >= coarse {
                break;
            }
            guard = match self.inner.wake.wait_timeout(guard, coarse - now) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        drop(guard);
        while Instant::now() < deadline {
            if self.is_stopped() {
                return true;
            }
            std::hint::spin_loop();
        }
        self.is_stopped()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_wakes_a_sleeper() {
        let stop = StopHandle::new();
        let s2 = stop.clone();
        let t = std::thread::spawn(move || {
            s2.sleep_until(Instant::now() + Duration::from_secs(30), Duration::ZERO)
        });
        std::thread::sleep(Duration::from_millis(20));
        stop.stop();
        // Bounded by the 30 s deadline even if the wake-up were lost.
        assert!(t.join().unwrap());
        assert!(stop.is_stopped());
    }

    #[test]
    fn sleeps_until_the_deadline() {
        let stop = StopHandle::new();
        let deadline = Instant::now() + Duration::from_millis(5);
        assert!(!stop.sleep_until(deadline, Duration::from_micros(100)));
        assert!(Instant::now() >= deadline);
    }
}
