"""Hot reload of a Python script's nodes: ``Scheduler.run(watch=True)`` (issue #14, item 6)."""

import os
import sys
import threading
import time

import pytest

import horus

COUNTER = '''import horus
{extra}
STEP = {step}


class Counter(horus.Node):
    def __init__(self):
        super().__init__()
        self.count = 0

    def tick(self):
        self.count += STEP
        self.send("out", [self.count, self.name, self.config.get("tag")])

    def save_state(self):
        return {{"count": self.count}}

    def restore_state(self, state):
        self.count = state["count"]
'''


class Sink(horus.Node):
    def __init__(self):
        super().__init__()
        self.got = []

    def tick(self):
        while (m := self.get("in")) is not None:
            self.got.append(m)


def save(path, text):
    """Saves like an editor: a new file renamed over the old one."""
    tmp = str(path) + ".swp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def steps(values):
    runs = []
    for a, b in zip(values, values[1:]):
        if not runs or runs[-1] != b - a:
            runs.append(b - a)
    return runs


def wait_for(cond, limit):
    end = time.monotonic() + limit
    while time.monotonic() < end and not cond():
        time.sleep(0.01)
    return cond()


def test_watch_reloads_a_node_class_from_its_file_keeping_state_and_topics(tmp_path, monkeypatch, no_leftovers):
    path = tmp_path / "reload_counter_mod.py"
    save(path, COUNTER.format(step=1, extra=""))
    monkeypatch.syspath_prepend(str(tmp_path))
    import reload_counter_mod

    try:
        s = horus.Scheduler()
        counter = reload_counter_mod.Counter()
        sink = Sink()
        s.add(counter, config={"tag": "t"})
        s.add(sink)
        s.connect(counter, "out", sink, "in")

        def counts():
            return [m[0] for m in sink.got]

        def last_steps(step):
            c = counts()
            return len(c) > 10 and all(b - a == step for a, b in zip(c[-5:], c[-4:]))

        def edit():
            assert wait_for(lambda: len(counts()) > 20, 3.0)
            save(path, COUNTER.format(step=1000, extra=""))
            assert wait_for(lambda: last_steps(1000), 3.0)
            save(path, COUNTER.format(step=7, extra="# the second edit"))
            assert wait_for(lambda: last_steps(7), 3.0)
            n = len(counts())
            save(path, COUNTER.format(step=3, extra="def broken(:"))
            wait_for(lambda: len(counts()) > n + 40, 2.0)
            s.stop()

        editor = threading.Thread(target=edit)
        editor.start()
        s.run(duration=12.0, watch=True)
        editor.join()
        c = counts()
        # v1, then v2 from v1's count, then v3; through the same connection, nothing lost.
        assert steps(c) == [1, 1000, 7], c
        assert {(m[1], m[2]) for m in sink.got} == {("Counter", "t")}
        st = s.get_node_stats("Counter")
        assert (st["generation"], st["reloads"], st["reload_failures"]) == (3, 2, 1), st
        assert f"{path.resolve()}:2: SyntaxError" in st["last_reload_error"], st
        # The object the script added is not the one running the new code.
        assert counter.count < c[-1]
    finally:
        sys.modules.pop("reload_counter_mod", None)


def test_watch_warns_once_about_classes_of_the_running_script(no_leftovers):
    main_node = type("MainNode", (horus.Node,), {"tick": lambda self: None, "__module__": "__main__"})

    def local_class():
        class Local(horus.Node):
            def tick(self):
                pass

        return Local()

    s = horus.Scheduler()
    s.add(main_node())
    s.add(local_class())
    s.add(Sink())
    with pytest.warns(RuntimeWarning) as caught:
        s.run(duration=0.1, watch=True)
    ours = [w for w in caught if "hot reload" in str(w.message)]
    assert len(ours) == 1, [str(w.message) for w in caught]
    text = str(ours[0].message)
    assert "`MainNode`" in text and "__main__" in text, text
    assert "`Local`" in text and "inside a function" in text, text
    assert "`Sink`" not in text, text
    assert s.get_node_stats("MainNode")["total_ticks"] > 0


def test_no_warning_without_watch(recwarn, no_leftovers):
    main_node = type("MainNode", (horus.Node,), {"tick": lambda self: None, "__module__": "__main__"})
    s = horus.Scheduler()
    s.add(main_node())
    s.run(duration=0.05)
    assert [str(w.message) for w in recwarn if "hot reload" in str(w.message)] == []
