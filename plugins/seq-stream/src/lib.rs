//! Test nodes for topics: `SeqSource` sends numbered messages whose bytes are derived from their
//! number; `SeqCheck` verifies every message it gets (content, order) and counts gaps. The
//! end-to-end tests run them in two `horus` processes to prove delivery across processes.
//!
//! `SeqSource` config: `count` (messages in all, default 1 000 000), `burst` (most per tick,
//! default 5000), `size` (payload bytes, ≥ 8, default 8). When a `reliable` subscriber is full it
//! stops the burst and resumes on the next tick, so nothing is skipped.
//! `SeqCheck` config: `expect` (messages to wait for, default 1 000 000), `reliable` (true:
//! every gap is an error; false: gaps are counted as drops), `busy_ms` (how long each tick
//! takes after reading, default 0: a node whose worker is busy most of the time), `per_tick`
//! (most messages read per tick, default all that are there: the trigger tests drain a burst
//! one message per tick with it).
//!
//! `SeqRelay` forwards every message of its input `in` to its output `out`, unchanged, and counts
//! them; the trigger tests put it between the two as an input-triggered node.
//!
//! Both hand their position over (`save_state`/`restore_state`), so a hot reload or a live
//! move of either goes on where it was.

use horus_plugin_api::{export_plugin, Context, Node, NodeError, NodeResult, Port, SendError};

/// Byte `i` of message `n`: a function of both, so a torn or mixed message never checks out.
fn pattern(n: u64, i: usize) -> u8 {
    (n.wrapping_mul(31).wrapping_add(i as u64 * 7) & 0xff) as u8
}

fn positive(ctx: &Context<'_>, key: &str, default: i64) -> Result<u64, NodeError> {
    match ctx.config_i64(key)?.unwrap_or(default) {
        v if v > 0 => Ok(v as u64),
        v => Err(NodeError::new(format!("config `{key}` must be > 0 (got {v})"))),
    }
}

/// Sends `count` numbered messages, up to `burst` per tick.
pub struct SeqSource {
    next: u64,
    count: u64,
    burst: u64,
    buf: Vec<u8>,
    full_ticks: u64,
}

impl Node for SeqSource {
    const PORTS: &'static [Port] = &[Port::output::<Vec<u8>>("out")];

    fn create(ctx: &mut Context<'_>) -> Result<Self, NodeError> {
        let size = positive(ctx, "size", 8)?.max(8) as usize;
        Ok(SeqSource {
            next: 0,
            count: positive(ctx, "count", 1_000_000)?,
            burst: positive(ctx, "burst", 5000)?,
            buf: vec![0; size],
            full_ticks: 0,
        })
    }

    fn tick(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        let end = (self.next + self.burst).min(self.count);
        while self.next < end {
            let n = self.next;
            self.buf[..8].copy_from_slice(&n.to_le_bytes());
            for (i, b) in self.buf.iter_mut().enumerate().skip(8) {
                *b = pattern(n, i);
            }
            match ctx.send("out", &self.buf) {
                Ok(()) => self.next += 1,
                Err(SendError::Full(_)) => {
                    self.full_ticks += 1;
                    break;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// The next number to send: a hot reload or a live move goes on from it.
    fn save_state(&self) -> Result<Vec<u8>, NodeError> {
        Ok(self.next.to_le_bytes().to_vec())
    }

    fn restore_state(&mut self, state: &[u8]) -> NodeResult {
        if let Ok(bytes) = <[u8; 8]>::try_from(state) {
            self.next = u64::from_le_bytes(bytes);
        }
        Ok(())
    }

    fn shutdown(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        ctx.info(format_args!(
            "sent {} of {} (back-pressure on {} ticks)",
            self.next, self.count, self.full_ticks
        ));
        Ok(())
    }
}

/// Verifies what `SeqSource` sent.
pub struct SeqCheck {
    expect: u64,
    reliable: bool,
    next: u64,
    received: u64,
    gaps: u64,
    done_logged: bool,
    busy: std::time::Duration,
    per_tick: u64,
}

impl Node for SeqCheck {
    const PORTS: &'static [Port] = &[Port::input::<Vec<u8>>("in")];

    fn create(ctx: &mut Context<'_>) -> Result<Self, NodeError> {
        Ok(SeqCheck {
            expect: positive(ctx, "expect", 1_000_000)?,
            reliable: ctx.config_bool("reliable")?.unwrap_or(true),
            next: 0,
            received: 0,
            gaps: 0,
            done_logged: false,
            per_tick: positive(ctx, "per_tick", i64::MAX)?,
            busy: std::time::Duration::from_millis(match ctx.config_i64("busy_ms")? {
                Some(ms) if ms >= 0 => ms as u64,
                Some(ms) => {
                    return Err(NodeError::new(format!(
                        "config `busy_ms` must be >= 0 (got {ms})"
                    )))
                }
                None => 0,
            }),
        })
    }

    /// The next number expected, and the counts: a hot reload or a live move checks on from
    /// them.
    fn save_state(&self) -> Result<Vec<u8>, NodeError> {
        let mut state = Vec::with_capacity(24);
        for v in [self.next, self.received, self.gaps] {
            state.extend_from_slice(&v.to_le_bytes());
        }
        Ok(state)
    }

    fn restore_state(&mut self, state: &[u8]) -> NodeResult {
        if state.len() == 24 {
            let word = |i: usize| u64::from_le_bytes(state[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
            (self.next, self.received, self.gaps) = (word(0), word(1), word(2));
        }
        Ok(())
    }

    fn tick(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        let mut read = 0;
        while read < self.per_tick {
            let Some(msg) = ctx.recv_bytes("in")? else {
                break;
            };
            read += 1;
            if msg.len() < 8 {
                return Err(NodeError::new(format!(
                    "message of {} bytes, expected at least 8",
                    msg.len()
                )));
            }
            let n = u64::from_le_bytes(msg[..8].try_into().expect("8 bytes"));
            if let Some(i) = (8..msg.len()).find(|&i| msg[i] != pattern(n, i)) {
                return Err(NodeError::new(format!("message {n} is corrupt at byte {i}")));
            }
            if n < self.next {
                return Err(NodeError::new(format!(
                    "message {n} after {}: out of order",
                    self.next - 1
                )));
            }
            if n > self.next {
                if self.reliable {
                    return Err(NodeError::new(format!(
                        "messages {}..{n} lost on a reliable topic",
                        self.next
                    )));
                }
                self.gaps += n - self.next;
            }
            self.next = n + 1;
            self.received += 1;
        }
        if self.next >= self.expect && !self.done_logged {
            self.done_logged = true;
            ctx.info(format_args!(
                "complete: {} received, {} dropped",
                self.received, self.gaps
            ));
        }
        std::thread::sleep(self.busy);
        Ok(())
    }

    fn shutdown(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        ctx.info(format_args!(
            "checked {} messages, last {}, {} dropped",
            self.received, self.next, self.gaps
        ));
        Ok(())
    }
}

/// Forwards what it reads, unchanged.
pub struct SeqRelay {
    forwarded: u64,
}

impl Node for SeqRelay {
    const PORTS: &'static [Port] = &[Port::input::<Vec<u8>>("in"), Port::output::<Vec<u8>>("out")];

    fn create(_ctx: &mut Context<'_>) -> Result<Self, NodeError> {
        Ok(SeqRelay { forwarded: 0 })
    }

    fn tick(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        while let Some(msg) = ctx.recv_bytes("in")? {
            let msg = msg.to_vec();
            ctx.send("out", &msg)?;
            self.forwarded += 1;
        }
        Ok(())
    }

    fn shutdown(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        ctx.info(format_args!("forwarded {} messages", self.forwarded));
        Ok(())
    }
}

export_plugin!(SeqSource, SeqCheck, SeqRelay);

#[cfg(test)]
mod tests {
    use super::*;
    use horus_plugin_api::testing::TestHarness;

    #[test]
    fn source_and_check_agree() {
        let mut src = TestHarness::<SeqSource>::builder("s")
            .config("count", 10)
            .config("size", 32)
            .start()
            .unwrap();
        src.tick().unwrap();
        let sent = src.take::<Vec<u8>>("out");
        assert_eq!(sent.len(), 10);
        let mut chk = TestHarness::<SeqCheck>::builder("c")
            .config("expect", 10)
            .start()
            .unwrap();
        for m in &sent {
            chk.push("in", m);
        }
        chk.tick().unwrap();
        assert!(chk
            .logs()
            .iter()
            .any(|(_, l)| l == "complete: 10 received, 0 dropped"));
    }

    #[test]
    fn check_reads_at_most_per_tick() {
        let mut src = TestHarness::<SeqSource>::builder("s")
            .config("count", 5)
            .start()
            .unwrap();
        src.tick().unwrap();
        let mut chk = TestHarness::<SeqCheck>::builder("c")
            .config("expect", 5)
            .config("per_tick", 2)
            .start()
            .unwrap();
        for m in &src.take::<Vec<u8>>("out") {
            chk.push("in", m);
        }
        for _ in 0..2 {
            chk.tick().unwrap();
            assert!(!chk.logs().iter().any(|(_, l)| l.starts_with("complete")));
        }
        chk.tick().unwrap();
        assert!(chk
            .logs()
            .iter()
            .any(|(_, l)| l == "complete: 5 received, 0 dropped"));
    }

    #[test]
    fn check_finds_corruption_and_loss() {
        let mut chk = TestHarness::<SeqCheck>::builder("c").start().unwrap();
        let mut m = vec![0u8; 16];
        m[..8].copy_from_slice(&0u64.to_le_bytes());
        for (i, b) in m.iter_mut().enumerate().skip(8) {
            *b = pattern(0, i);
        }
        m[12] ^= 1;
        chk.push("in", &m);
        assert!(chk.tick().unwrap_err().message().contains("corrupt at byte 12"));
        let mut lossy = TestHarness::<SeqCheck>::builder("c").start().unwrap();
        lossy.push("in", &5u64.to_le_bytes().to_vec());
        assert!(lossy
            .tick()
            .unwrap_err()
            .message()
            .contains("lost on a reliable topic"));
    }
}
