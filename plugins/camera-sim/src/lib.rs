//! Camera frames in place (issue 18): `CameraSim` publishes `horus_plugin_api::msgs::Image`
//! frames written straight into the topic's shared memory (`ctx.loan_bytes` +
//! `Image::write_header`), and `FrameCheck` reads them where they lie (`ctx.recv_bytes_ref` +
//! `Image::view`) and checks every byte, so a frame that went through a Python node
//! (`horus.Image`) and back is proven intact.
//!
//! `CameraSim` config: `width`, `height` (default 640 × 480), `count` (frames in all, default
//! unlimited). Frame `n` is `rgb8`, its `stamp_ns` is `n`, and its byte `i` is [`pattern`]`(n, i)`.
//! `FrameCheck` config: `flipped` (true: expect the rows in reverse order, as a node that
//! flips the image sends them), `expect` (frames to wait for before logging "complete").

use horus_plugin_api::msgs::Image;
use horus_plugin_api::{export_plugin, Context, Node, NodeError, NodeResult, Port, SendError};

/// Byte `i` of frame `n`'s pixels.
pub fn pattern(n: u64, i: usize) -> u8 {
    (n.wrapping_mul(31)
        .wrapping_add(i as u64 / 3 * 7)
        .wrapping_add(i as u64 % 3)
        & 0xff) as u8
}

fn size(ctx: &Context<'_>, key: &str, default: i64) -> Result<u32, NodeError> {
    match ctx.config_i64(key)?.unwrap_or(default) {
        v if (1..=16384).contains(&v) => Ok(v as u32),
        v => Err(NodeError::new(format!(
            "config `{key}` must be 1 to 16384 (got {v})"
        ))),
    }
}

/// Publishes numbered `rgb8` frames, one a tick, written in place.
pub struct CameraSim {
    width: u32,
    height: u32,
    next: u64,
    count: u64,
    full: u64,
}

impl Node for CameraSim {
    const PORTS: &'static [Port] = &[Port::output::<Image>("image")];

    fn create(ctx: &mut Context<'_>) -> Result<Self, NodeError> {
        Ok(CameraSim {
            width: size(ctx, "width", 640)?,
            height: size(ctx, "height", 480)?,
            next: 0,
            count: ctx.config_i64("count")?.map_or(u64::MAX, |c| c.max(0) as u64),
            full: 0,
        })
    }

    fn tick(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        if self.next >= self.count {
            return Ok(());
        }
        let step = self.width * 3;
        let mut loan = match ctx.loan_bytes("image", Image::encoded_len(self.height, step)) {
            Ok(loan) => loan,
            Err(SendError::Full(_)) => {
                self.full += 1;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let n = self.next;
        let pixels = Image::write_header(&mut loan, n, self.width, self.height, step, "rgb8")?;
        for (i, b) in pixels.iter_mut().enumerate() {
            *b = pattern(n, i);
        }
        loan.send()?;
        self.next += 1;
        Ok(())
    }

    fn shutdown(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        ctx.info(format_args!(
            "sent {} frames of {}x{} (back-pressure on {} ticks)",
            self.next, self.width, self.height, self.full
        ));
        Ok(())
    }
}

/// Checks every frame `CameraSim` sent (possibly flipped on the way), in place.
pub struct FrameCheck {
    flipped: bool,
    expect: u64,
    frames: u64,
    last: Option<u64>,
    logged: bool,
}

impl Node for FrameCheck {
    const PORTS: &'static [Port] = &[Port::input::<Image>("image")];

    fn create(ctx: &mut Context<'_>) -> Result<Self, NodeError> {
        Ok(FrameCheck {
            flipped: ctx.config_bool("flipped")?.unwrap_or(false),
            expect: ctx.config_i64("expect")?.map_or(u64::MAX, |c| c.max(0) as u64),
            frames: 0,
            last: None,
            logged: false,
        })
    }

    fn tick(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        while let Some(bytes) = ctx.recv_bytes_ref("image")? {
            let image = Image::view(&bytes)?;
            let h = image.header;
            let n = h.stamp_ns;
            if h.encoding() != "rgb8" || h.step != h.width * 3 {
                return Err(NodeError::new(format!(
                    "frame {n}: {}x{} {} with step {}, expected unpadded rgb8",
                    h.width,
                    h.height,
                    h.encoding(),
                    h.step
                )));
            }
            let step = h.step as usize;
            for (r, row) in image.data.chunks_exact(step).enumerate() {
                let src = if self.flipped {
                    h.height as usize - 1 - r
                } else {
                    r
                };
                if let Some(c) = (0..step).find(|&c| row[c] != pattern(n, src * step + c)) {
                    return Err(NodeError::new(format!("frame {n} is wrong at row {r}, byte {c}")));
                }
            }
            if self.last.is_some_and(|l| n <= l) {
                return Err(NodeError::new(format!(
                    "frame {n} after frame {}",
                    self.last.unwrap_or(0)
                )));
            }
            self.last = Some(n);
            self.frames += 1;
        }
        if self.frames >= self.expect && !self.logged {
            self.logged = true;
            ctx.info(format_args!("complete: {} frames intact", self.frames));
        }
        Ok(())
    }

    fn shutdown(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        ctx.info(format_args!(
            "checked {} frames, last {:?}",
            self.frames, self.last
        ));
        Ok(())
    }
}

export_plugin!(CameraSim, FrameCheck);

#[cfg(test)]
mod tests {
    use super::*;
    use horus_plugin_api::testing::TestHarness;

    #[test]
    fn frames_written_in_place_check_out_and_a_flip_is_told_apart() {
        let mut cam = TestHarness::<CameraSim>::builder("cam")
            .config("width", 8)
            .config("height", 4)
            .config("count", 2)
            .start()
            .unwrap();
        for _ in 0..3 {
            cam.tick().unwrap();
        }
        let frames = cam.take::<Image>("image");
        assert_eq!(frames.len(), 2, "count = 2");
        assert_eq!((frames[1].stamp_ns, frames[1].width, frames[1].step), (1, 8, 24));
        let mut check = TestHarness::<FrameCheck>::builder("check")
            .config("expect", 2)
            .start()
            .unwrap();
        for f in &frames {
            check.push("image", f);
        }
        check.tick().unwrap();
        assert!(check.logs().iter().any(|(_, l)| l == "complete: 2 frames intact"));
        let mut flipped = TestHarness::<FrameCheck>::builder("check")
            .config("flipped", true)
            .start()
            .unwrap();
        flipped.push("image", &frames[0]);
        assert!(flipped
            .tick()
            .unwrap_err()
            .message()
            .contains("frame 0 is wrong at row 0"));
    }
}
