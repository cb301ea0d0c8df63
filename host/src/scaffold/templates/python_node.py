"""`{{name}}`: a HORUS Python node, made by `horus new node {{name}} --python`.

`{{type}}` multiplies every number it reads from the topic `{{name}}/input` by its config key
`gain` and sends the result on `{{name}}/output`. `{{type}}Source` is a stand-in source so that
manifest.toml runs on its own: replace it with your sensor node, or delete it and let another node
publish on `{{name}}/input`. Python nodes: docs/python.md of HORUS.
"""

import horus

INPUT = "{{name}}/input"
OUTPUT = "{{name}}/output"


class {{type}}(horus.Node):
    # The keys the manifest's `config` may have: `horus check` refuses any other (with a
    # did-you-mean) or a value of another type; `self.config["gain"]` is 1.0 when it is left out.
    CONFIG = {
        "gain": horus.ConfigKey(float, default=1.0, doc="factor applied to every input value"),
    }

    def __init__(self):
        super().__init__()
        self.processed = 0  # handed to the new code on hot reload (save_state / restore_state)

    def tick(self):
        # Drain every value that arrived since the last tick; keep tick fast and non-blocking.
        while (x := self.get(INPUT)) is not None:
            self.send(OUTPUT, x * self.config["gain"])
            self.processed += 1

    def shutdown(self):
        print(f"[{self.name}] processed {self.processed} values", flush=True)

    def save_state(self):
        return {"processed": self.processed}

    def restore_state(self, state):
        self.processed = state["processed"]


class {{type}}Source(horus.Node):
    """Sends 0.0, 1.0, 2.0, ... on `{{name}}/input`, one number per tick."""

    def __init__(self):
        super().__init__()
        self.next = 0.0

    def tick(self):
        self.send(INPUT, self.next)
        self.next += 1.0
