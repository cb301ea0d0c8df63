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
//! In place (issue 18's loans): `SeqSource` with `loan = true` writes each message straight
//! into the topic's shared memory (`ctx.loan_bytes`); `SeqCheck` with `in_place = true` reads
//! them where they lie (`ctx.recv_bytes_ref`), and with `hold = N` keeps up to N of them
//! borrowed while it reads on, checking each held one again before it lets go: a held
//! message that a publisher overwrote fails the check.
//!
//! `SeqRelay` forwards every message of its input `in` to its output `out`, unchanged, and counts
//! them; the trigger tests put it between the two as an input-triggered node.
//!
//! Both hand their position over (`save_state`/`restore_state`), so a hot reload or a live
//! move of either goes on where it was.

use horus_plugin_api::{
    export_plugin, BytesRef, Context, Node, NodeError, NodeResult, Port, RecvError, SendError,
};

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

/// Writes message `n` into `buf` (its number, then its pattern).
fn fill(n: u64, buf: &mut [u8]) {
    buf[..8].copy_from_slice(&n.to_le_bytes());
    for (i, b) in buf.iter_mut().enumerate().skip(8) {
        *b = pattern(n, i);
    }
}

/// The number of message `msg`, after checking its length and every byte of its pattern.
fn check(msg: &[u8]) -> Result<u64, NodeError> {
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
    Ok(n)
}

/// Sends `count` numbered messages, up to `burst` per tick.
pub struct SeqSource {
    next: u64,
    count: u64,
    burst: u64,
    buf: Vec<u8>,
    full_ticks: u64,
    loan: bool,
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
            loan: ctx.config_bool("loan")?.unwrap_or(false),
        })
    }

    fn tick(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        let end = (self.next + self.burst).min(self.count);
        while self.next < end {
            let n = self.next;
            let sent = if self.loan {
                ctx.loan_bytes("out", self.buf.len()).and_then(|mut msg| {
                    fill(n, &mut msg);
                    msg.send()
                })
            } else {
                fill(n, &mut self.buf);
                ctx.send("out", &self.buf)
            };
            match sent {
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
    in_place: bool,
    hold: usize,
    held_most: usize,
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
            in_place: ctx.config_bool("in_place")?.unwrap_or(false),
            hold: ctx.config_i64("hold")?.unwrap_or(0).max(0) as usize,
            held_most: 0,
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
        if self.in_place {
            self.read_in_place(ctx)?;
        } else {
            let mut read = 0;
            while read < self.per_tick {
                let Some(msg) = ctx.recv_bytes("in")? else {
                    break;
                };
                let n = check(msg)?;
                read += 1;
                self.count(n)?;
            }
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
            "checked {} messages, last {}, {} dropped, at most {} held at once",
            self.received, self.next, self.gaps, self.held_most
        ));
        Ok(())
    }
}

impl SeqCheck {
    /// Reads messages where they lie, keeping up to `hold` of them borrowed while reading on.
    fn read_in_place(&mut self, ctx: &Context<'_>) -> NodeResult {
        let mut read = 0;
        // Each held message is checked again before it is let go.
        let mut held = std::collections::VecDeque::new();
        while read < self.per_tick {
            let msg = match ctx.recv_bytes_ref("in") {
                Ok(Some(msg)) => msg,
                Ok(None) => break,
                Err(RecvError::Held(_)) if !held.is_empty() => {
                    recheck(held.pop_front())?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let n = check(&msg)?;
            read += 1;
            self.count(n)?;
            if self.hold > 0 {
                if held.len() == self.hold {
                    recheck(held.pop_front())?;
                }
                held.push_back((n, msg));
                self.held_most = self.held_most.max(held.len());
            }
        }
        while let Some(h) = held.pop_front() {
            recheck(Some(h))?;
        }
        Ok(())
    }

    /// Counts message `n`: order, and gaps (an error on a reliable topic).
    fn count(&mut self, n: u64) -> NodeResult {
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
        Ok(())
    }
}

/// Checks a message held in place again: still intact, still the same message.
fn recheck(held: Option<(u64, BytesRef<'_>)>) -> NodeResult {
    let Some((n, msg)) = held else {
        return Ok(());
    };
    match check(&msg)? {
        m if m == n => Ok(()),
        m => Err(NodeError::new(format!(
            "held message {n} was overwritten by message {m} while borrowed"
        ))),
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

    /// Ten messages through the harness, copied or written and read in place (holding some).
    fn round_trip(loan: bool, in_place: bool, hold: i64) {
        let mut src = TestHarness::<SeqSource>::builder("s")
            .config("count", 10)
            .config("size", 32)
            .config("loan", loan)
            .start()
            .unwrap();
        src.tick().unwrap();
        let sent = src.take::<Vec<u8>>("out");
        assert_eq!(sent.len(), 10);
        let mut chk = TestHarness::<SeqCheck>::builder("c")
            .config("expect", 10)
            .config("in_place", in_place)
            .config("hold", hold)
            .start()
            .unwrap();
        for m in &sent {
            chk.push("in", m);
        }
        chk.tick().unwrap();
        assert_eq!(
            chk.held(),
            0,
            "every borrowed message is released by the end of the tick"
        );
        assert!(chk
            .logs()
            .iter()
            .any(|(_, l)| l == "complete: 10 received, 0 dropped"));
    }

    #[test]
    fn source_and_check_agree() {
        round_trip(false, false, 0);
    }

    #[test]
    fn loaned_messages_check_in_place_while_held() {
        round_trip(true, true, 3);
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
