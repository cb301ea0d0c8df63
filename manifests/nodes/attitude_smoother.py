"""A Python node in the Rust host: smooths the filter's attitude estimates.

It reads `horus.Attitude` messages from the named topic `demo/attitude` (published by the Rust
attitude-filter node), averages the last few with numpy, and publishes the result on
`demo/attitude_smoothed`, which the Rust telemetry sink reads.

`CONFIG` declares its one config key: `horus check` refuses a misspelt or mistyped `window`,
and `self.config["window"]` is 5 when the manifest leaves it out.
"""

import numpy as np

import horus


class AttitudeSmoother(horus.Node):
    CONFIG = {
        "window": horus.ConfigKey(int, default=5, doc="how many estimates to average"),
    }

    def __init__(self):
        super().__init__()
        self.window = []
        self.forwarded = 0

    def init(self):
        print(f"[{self.name}] numpy {np.__version__}: smoothing demo/attitude", flush=True)

    def tick(self):
        while (att := self.get("demo/attitude")) is not None:
            self.window = (self.window + [[att.roll, att.pitch, att.yaw]])[-self.config["window"]:]
            roll, pitch, yaw = np.mean(self.window, axis=0)
            self.send(
                "demo/attitude_smoothed",
                horus.Attitude(stamp_ns=att.stamp_ns, roll=roll, pitch=pitch, yaw=yaw),
            )
            self.forwarded += 1

    def shutdown(self):
        print(f"[{self.name}] forwarded {self.forwarded} estimates", flush=True)
