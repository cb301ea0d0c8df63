//! The circuit breaker of one node: closed → open after `max_failures` consecutive failures
//! (the node is not ticked); with auto-restart, after a backoff (doubling per trip in a row,
//! capped) half-open: the node is re-created and one trial tick decides closed or open again.
//! A node the scheduler gives up on ([`Breaker::give_up`]: it cost too many quarantined worker
//! threads) is failed for good: never ticked or restarted again.
//!
//! Pure state machine: it owns no node and does no I/O, so it is tested on its own. The
//! scheduler asks it before each tick ([`Breaker::before_tick`]) and tells it the outcome
//! ([`Breaker::after_tick`]).

use crate::manifest::SupervisionSpec;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// The breaker's state, as the stats show it (serialized as [`CircuitState::name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    /// Ticking normally.
    Closed,
    /// Not ticked.
    Open,
    /// Being restarted, or restarted: the next tick is the trial.
    HalfOpen,
    /// Given up on: never ticked or restarted again (too many quarantined worker threads).
    Failed,
}

impl CircuitState {
    /// The stats spelling.
    pub fn name(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
            CircuitState::Failed => "failed",
        }
    }
}

/// What the scheduler should do with the node this cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Tick it.
    Tick,
    /// Leave it alone (open).
    Skip,
    /// Re-create and re-initialise it, then tick it as the trial.
    Restart,
}

/// One node's breaker.
#[derive(Debug, Clone)]
pub struct Breaker {
    enabled: bool,
    max_failures: u64,
    auto_restart: bool,
    backoff: Duration,
    backoff_max: Duration,
    state: CircuitState,
    trips_in_a_row: u32,
    retry_at: Option<Instant>,
}

impl Breaker {
    /// A closed breaker with the scheduler's settings.
    pub fn new(spec: &SupervisionSpec) -> Breaker {
        Breaker {
            enabled: spec.circuit_breaker,
            max_failures: u64::from(spec.max_failures),
            auto_restart: spec.auto_restart,
            backoff: spec.restart_backoff,
            backoff_max: spec.restart_backoff_max,
            state: CircuitState::Closed,
            trips_in_a_row: 0,
            retry_at: None,
        }
    }

    /// Takes a live apply's settings; the state and the backoff under way stay as they are.
    pub fn reconfigure(&mut self, spec: &SupervisionSpec) {
        self.enabled = spec.circuit_breaker;
        self.max_failures = u64::from(spec.max_failures);
        self.auto_restart = spec.auto_restart;
        self.backoff = spec.restart_backoff;
        self.backoff_max = spec.restart_backoff_max;
    }

    /// The current state.
    pub fn state(&self) -> CircuitState {
        self.state
    }

    /// When an open breaker will try a restart, if it will.
    pub fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    /// What to do with the node now.
    pub fn before_tick(&mut self, now: Instant) -> Action {
        match self.state {
            CircuitState::Closed | CircuitState::HalfOpen => Action::Tick,
            CircuitState::Failed => Action::Skip,
            CircuitState::Open => match self.retry_at {
                Some(at) if now >= at => {
                    self.state = CircuitState::HalfOpen;
                    self.retry_at = None;
                    Action::Restart
                }
                _ => Action::Skip,
            },
        }
    }

    /// Records a tick's outcome (`consecutive` failures including this one); returns the new
    /// state when it changed.
    pub fn after_tick(&mut self, ok: bool, consecutive: u64, now: Instant) -> Option<CircuitState> {
        match (self.state, ok) {
            (CircuitState::HalfOpen, true) => {
                self.state = CircuitState::Closed;
                self.trips_in_a_row = 0;
                Some(CircuitState::Closed)
            }
            (CircuitState::HalfOpen, false) => Some(self.trip(now)),
            (CircuitState::Closed, false) if self.enabled && consecutive >= self.max_failures => {
                Some(self.trip(now))
            }
            _ => None,
        }
    }

    /// Opens the breaker now, whatever the failure count (a hung node). False if it was open
    /// (or failed).
    pub fn force_open(&mut self, now: Instant) -> bool {
        if matches!(self.state, CircuitState::Open | CircuitState::Failed) {
            return false;
        }
        self.trip(now);
        true
    }

    /// Gives up on the node for good: [`CircuitState::Failed`], never ticked or restarted
    /// again, whatever `auto_restart` says.
    pub fn give_up(&mut self) {
        self.state = CircuitState::Failed;
        self.retry_at = None;
    }

    fn trip(&mut self, now: Instant) -> CircuitState {
        self.state = CircuitState::Open;
        self.trips_in_a_row = self.trips_in_a_row.saturating_add(1);
        self.retry_at = self.auto_restart.then(|| now + self.current_backoff());
        CircuitState::Open
    }

    /// The delay before the next restart: `backoff · 2^(trips in a row − 1)`, capped.
    pub fn current_backoff(&self) -> Duration {
        let doublings = self.trips_in_a_row.saturating_sub(1).min(20);
        self.backoff.saturating_mul(1 << doublings).min(self.backoff_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(auto_restart: bool) -> SupervisionSpec {
        SupervisionSpec {
            max_failures: 3,
            auto_restart,
            restart_backoff: Duration::from_millis(100),
            restart_backoff_max: Duration::from_millis(350),
            ..SupervisionSpec::default()
        }
    }

    #[test]
    fn opens_after_max_consecutive_failures_and_stays_open_without_restart() {
        let t0 = Instant::now();
        let mut b = Breaker::new(&spec(false));
        assert_eq!(b.after_tick(false, 1, t0), None);
        assert_eq!(b.after_tick(false, 2, t0), None);
        assert_eq!(b.after_tick(false, 3, t0), Some(CircuitState::Open));
        assert_eq!(b.before_tick(t0 + Duration::from_secs(3600)), Action::Skip);
    }

    #[test]
    fn restarts_after_backoff_and_closes_on_a_good_trial() {
        let t0 = Instant::now();
        let mut b = Breaker::new(&spec(true));
        b.after_tick(false, 3, t0);
        assert_eq!(b.before_tick(t0 + Duration::from_millis(99)), Action::Skip);
        assert_eq!(b.before_tick(t0 + Duration::from_millis(100)), Action::Restart);
        assert_eq!(b.state(), CircuitState::HalfOpen);
        assert_eq!(b.after_tick(true, 0, t0), Some(CircuitState::Closed));
    }

    #[test]
    fn backoff_doubles_per_failed_trial_and_is_capped() {
        let t0 = Instant::now();
        let mut b = Breaker::new(&spec(true));
        b.after_tick(false, 3, t0);
        let mut delays = vec![b.current_backoff()];
        for _ in 0..3 {
            b.before_tick(b.retry_at().unwrap());
            assert_eq!(
                b.after_tick(false, 1, t0),
                Some(CircuitState::Open),
                "a failed trial reopens"
            );
            delays.push(b.current_backoff());
        }
        let ms: Vec<u128> = delays.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, vec![100, 200, 350, 350]);
    }

    #[test]
    fn a_failed_breaker_never_ticks_nor_restarts_again() {
        let t0 = Instant::now();
        let mut b = Breaker::new(&spec(true));
        b.after_tick(false, 3, t0);
        b.give_up();
        assert_eq!(b.state(), CircuitState::Failed);
        assert_eq!(b.retry_at(), None);
        assert_eq!(b.before_tick(t0 + Duration::from_secs(3600)), Action::Skip);
        assert!(!b.force_open(t0), "a failed node is not reopened");
        assert_eq!(b.after_tick(true, 0, t0), None);
        assert_eq!(b.state(), CircuitState::Failed);
    }

    #[test]
    fn disabled_breaker_never_opens() {
        let mut b = Breaker::new(&SupervisionSpec {
            circuit_breaker: false,
            ..spec(true)
        });
        assert_eq!(b.after_tick(false, 1000, Instant::now()), None);
        assert_eq!(b.before_tick(Instant::now()), Action::Tick);
    }
}
