//! The watchdog: a supervisor thread that never runs on the thread it watches. Each node
//! publishes when its current tick started ([`Health`]); the supervisor flags a node whose tick
//! has run longer than its timeout (`watchdog_expired`) and warns once per expiry.
//!
//! With `inline` isolation nothing can interrupt a tick: the watchdog reports it, and the host
//! gives up on a hung scheduler at shutdown (see [`super::run`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the supervisor reads about one node, written by the scheduler thread.
#[derive(Debug)]
pub struct Health {
    /// Node name, for messages.
    pub name: String,
    /// Watchdog timeout in ns; 0 = not watched. Atomic: a live apply sets it in place
    /// ([`Health::set_timeout`]) while the supervisor reads it.
    timeout_ns: AtomicU64,
    /// 1 + nanoseconds since the epoch at which the running tick started; 0 when not in a tick.
    pub tick_started: AtomicU64,
    /// Set while the scheduler thread is in the node's restart (create + init) rather than in
    /// a tick: only inline nodes restart there (see [`Health::enter_restart`]).
    pub in_restart: AtomicBool,
    /// Set by the supervisor on an expiry; stays set.
    pub expired: AtomicBool,
    /// Expiries so far.
    pub expiries: AtomicU64,
}

impl Health {
    /// A node's health record.
    pub fn new(name: String, timeout: Option<Duration>) -> Arc<Health> {
        Arc::new(Health {
            name,
            timeout_ns: AtomicU64::new(timeout.map_or(0, |t| (t.as_nanos() as u64).max(1))),
            tick_started: AtomicU64::new(0),
            in_restart: AtomicBool::new(false),
            expired: AtomicBool::new(false),
            expiries: AtomicU64::new(0),
        })
    }

    /// The watchdog timeout; `None`: not watched.
    pub fn timeout(&self) -> Option<Duration> {
        match self.timeout_ns.load(Ordering::Relaxed) {
            0 => None,
            ns => Some(Duration::from_nanos(ns)),
        }
    }

    /// Sets the watchdog timeout (a live apply): the supervisor uses it from its next look.
    pub fn set_timeout(&self, timeout: Option<Duration>) {
        let ns = timeout.map_or(0, |t| (t.as_nanos() as u64).max(1));
        self.timeout_ns.store(ns, Ordering::Relaxed);
    }

    /// Called by the scheduler thread as a tick starts.
    #[inline]
    pub fn enter(&self, since_epoch: Duration) {
        self.tick_started
            .store(since_epoch.as_nanos() as u64 + 1, Ordering::Relaxed);
    }

    /// Called by the scheduler thread as an inline node's restart (create + init) starts: the
    /// watchdog times it like a tick, and a hung run's report names the node and the restart.
    pub fn enter_restart(&self, since_epoch: Duration) {
        self.in_restart.store(true, Ordering::Relaxed);
        self.enter(since_epoch);
    }

    /// Called by the scheduler thread as a tick ends (feeds the watchdog).
    #[inline]
    pub fn leave(&self) {
        self.tick_started.store(0, Ordering::Relaxed);
    }

    /// Called by the scheduler thread as an inline node's restart ends.
    pub fn leave_restart(&self) {
        self.leave();
        self.in_restart.store(false, Ordering::Relaxed);
    }

    /// What the node is in: `"in a restart (create/init)"` or `"in a tick"`.
    pub fn phase(&self) -> &'static str {
        if self.in_restart.load(Ordering::Relaxed) {
            "in a restart (create/init)"
        } else {
            "in a tick"
        }
    }

    /// True while the node is in a tick (no clock read).
    pub fn in_tick(&self) -> bool {
        self.tick_started.load(Ordering::Relaxed) != 0
    }

    /// How long the current tick has been running, if the node is in one.
    pub fn in_tick_for(&self, epoch: Instant) -> Option<Duration> {
        let started = self.tick_started.load(Ordering::Relaxed);
        (started != 0).then(|| epoch.elapsed().saturating_sub(Duration::from_nanos(started - 1)))
    }
}

/// The health records the supervisor watches: the nodes of the start, plus those a live apply
/// adds (and without those it removes).
pub type HealthRegistry = Arc<Mutex<Vec<Arc<Health>>>>;

/// How often the supervisor looks while no node has a watchdog timeout.
const IDLE_LOOK: Duration = Duration::from_millis(500);

/// The supervisor thread; stops when dropped.
pub struct Watchdog {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    /// Starts watching the nodes of `nodes` that have a timeout, as the registry is at each look,
    /// measuring against `epoch`. Without any such node it starts only if `always` (a host that
    /// may add watched nodes later).
    pub fn start(nodes: HealthRegistry, epoch: Instant, always: bool) -> std::io::Result<Option<Watchdog>> {
        let watched = |nodes: &HealthRegistry| -> Vec<Arc<Health>> {
            let nodes = nodes.lock().unwrap_or_else(|p| p.into_inner());
            nodes.iter().filter(|h| h.timeout().is_some()).cloned().collect()
        };
        if !always && watched(&nodes).is_empty() {
            return Ok(None);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("horus-watchdog".into())
            .spawn(move || {
                // The start (1 + ns) of the tick each node was last flagged for, to warn once.
                let mut flagged: HashMap<*const Health, u64> = HashMap::new();
                while !stop2.load(Ordering::Relaxed) {
                    let watched = watched(&nodes);
                    flagged.retain(|k, _| watched.iter().any(|h| Arc::as_ptr(h) == *k));
                    let shortest = watched.iter().filter_map(|h| h.timeout()).min();
                    // With nothing to watch (a host that may get watched nodes by a live apply),
                    // a look every half second: an idle host's supervisor hardly wakes.
                    let period = shortest.map_or(IDLE_LOOK, |s| {
                        (s / 4).clamp(Duration::from_millis(2), Duration::from_millis(100))
                    });
                    for h in &watched {
                        let flag = flagged.entry(Arc::as_ptr(h)).or_insert(0);
                        // A live apply may have just taken it away.
                        let Some(timeout) = h.timeout() else {
                            continue;
                        };
                        let started = h.tick_started.load(Ordering::Relaxed);
                        let Some(running) = h.in_tick_for(epoch) else {
                            continue;
                        };
                        if running > timeout && *flag != started {
                            *flag = started;
                            h.expired.store(true, Ordering::Relaxed);
                            h.expiries.fetch_add(1, Ordering::Relaxed);
                            let what = if h.in_restart.load(Ordering::Relaxed) {
                                "restart (create/init)"
                            } else {
                                "tick"
                            };
                            tracing::warn!(
                                node = %h.name,
                                "watchdog expired: the {what} has run for {} ms, timeout {} ms",
                                running.as_millis(),
                                timeout.as_millis()
                            );
                        }
                    }
                    // Woken early by the drop.
                    std::thread::park_timeout(period);
                }
            })?;
        Ok(Some(Watchdog {
            stop,
            thread: Some(thread),
        }))
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_a_tick_that_runs_too_long_once() {
        let epoch = Instant::now();
        let slow = Health::new("slow".into(), Some(Duration::from_millis(20)));
        let fine = Health::new("fine".into(), Some(Duration::from_millis(20)));
        let unwatched = Health::new("free".into(), None);
        let registry: HealthRegistry = Arc::new(Mutex::new(vec![fine.clone(), unwatched.clone()]));
        let _dog = Watchdog::start(registry.clone(), epoch, false).unwrap();
        // A node added later is watched too.
        registry.lock().unwrap().push(slow.clone());
        slow.enter(epoch.elapsed());
        unwatched.enter(epoch.elapsed());
        // Bounded wait for the flag (the supervisor checks every 5 ms).
        let deadline = Instant::now() + Duration::from_secs(10);
        while !slow.expired.load(Ordering::Relaxed) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(60));
        assert!(slow.expired.load(Ordering::Relaxed));
        assert_eq!(slow.expiries.load(Ordering::Relaxed), 1, "warned once per expiry");
        assert!(!fine.expired.load(Ordering::Relaxed));
        assert!(!unwatched.expired.load(Ordering::Relaxed));
    }
}
