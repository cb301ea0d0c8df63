"""A Python node in the Rust host: smooths the filter's attitude estimates.

It reads `horus.Attitude` messages from the named topic `demo/attitude` (published by the Rust
attitude-filter node), averages the last few with numpy, and publishes the result on
`demo/attitude_smoothed`, which the Rust telemetry sink reads.
"""

import numpy as np

import horus


class AttitudeSmoother(horus.Node):
    def __init__(self):
        super().__init__()
        self.window = []
        self.forwarded = 0

    def init(self):
        print(f"[{self.name}] numpy {np.__version__}: smoothing demo/attitude", flush=True)

    def tick(self):
        while (att := self.get("demo/attitude")) is not None:
            self.window = (self.window + [[att.roll, att.pitch, att.yaw]])[-5:]
            roll, pitch, yaw = np.mean(self.window, axis=0)
            self.send(
                "demo/attitude_smoothed",
                horus.Attitude(stamp_ns=att.stamp_ns, roll=roll, pitch=pitch, yaw=yaw),
            )
            self.forwarded += 1

    def shutdown(self):
        print(f"[{self.name}] forwarded {self.forwarded} estimates", flush=True)
