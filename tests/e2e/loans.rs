//! Messages written and read in place (issue 18): a `SeqSource` that loans every message in
//! the topic's shared memory and a `SeqCheck` that reads them where they lie, holding several
//! at once while it reads on and checking each again before it lets go. Between two hosts, on
//! `reliable` (the publisher waits for held slots: nothing lost) and `keep_last` (the
//! publisher skips held slots: what is held never changes), and with the reader in a worker
//! process.

use horus_e2e::{count as u, Scratch, Stream};

fn namespace(test: &str) -> String {
    format!("e2e-{}-{test}", std::process::id())
}

#[test]
fn loaned_frames_held_in_place_arrive_complete_on_reliable() {
    let ns = namespace("loan-reliable");
    let s = Scratch::new();
    let (src, chk, out) = Stream {
        qos: "reliable(8)",
        count: 1000,
        size: 65536,
        max_size: 65536,
        source: "burst = 200, loan = true",
        check: "reliable = true, in_place = true, hold = 3",
        check_node: "",
    }
    .run(&ns, &s);
    assert_eq!(u(&src["messages_sent"]), 1000);
    assert_eq!(
        u(&chk["total_failures"]),
        0,
        "no corrupt, lost or overwritten message: {chk}"
    );
    assert_eq!(u(&chk["messages_received"]), 1000);
    assert!(
        out.stderr.contains("complete: 1000 received, 0 dropped"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("at most 3 held at once"),
        "the checker held messages: {}",
        out.stderr
    );
    assert_eq!(horus_e2e::shm_leftovers(&ns), Vec::<String>::new());
}

#[test]
fn keep_last_publishers_skip_held_messages_which_stay_intact() {
    let ns = namespace("loan-keeplast");
    let s = Scratch::new();
    let count = 20_000;
    let (src, chk, out) = Stream {
        qos: "keep_last(8)",
        count,
        size: 4096,
        max_size: 4096,
        source: "burst = 5000, loan = true",
        check: "reliable = false, in_place = true, hold = 4",
        check_node: "",
    }
    .run(&ns, &s);
    assert_eq!(u(&src["messages_sent"]), count);
    assert_eq!(
        u(&chk["total_failures"]),
        0,
        "no corrupt, reordered or overwritten message: {chk}"
    );
    let received = u(&chk["messages_received"]);
    assert!(received > 0);
    // The checker counts gaps by message number; every message was received or is a gap.
    let line = out
        .stderr
        .lines()
        .find(|l| l.contains("checked "))
        .unwrap_or_else(|| panic!("{}", out.stderr));
    let gaps: u64 = line
        .split(", ")
        .find_map(|p| p.strip_suffix(" dropped"))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert_eq!(received + gaps, count, "{line}");
    assert_eq!(horus_e2e::shm_leftovers(&ns), Vec::<String>::new());
}

#[test]
fn a_process_isolated_reader_holds_messages_in_place() {
    let ns = namespace("loan-process");
    let s = Scratch::new();
    let (_, chk, out) = Stream {
        qos: "reliable(8)",
        count: 2000,
        size: 16384,
        max_size: 16384,
        source: "burst = 100, loan = true",
        check: "reliable = true, in_place = true, hold = 2",
        check_node: "isolation = \"process\"",
    }
    .run(&ns, &s);
    assert_eq!(u(&chk["total_failures"]), 0, "{chk}");
    assert_eq!(u(&chk["messages_received"]), 2000);
    assert!(
        out.stderr.contains("complete: 2000 received, 0 dropped"),
        "{}",
        out.stderr
    );
    assert_eq!(horus_e2e::shm_leftovers(&ns), Vec::<String>::new());
}

/// Camera frames from a Rust node (written in place) through a Python node (read as a view,
/// flipped, sent back as a `horus.Image`) to a Rust node (read in place), every byte checked:
/// the three camera sizes.
#[test]
fn rust_and_python_nodes_exchange_camera_frames() {
    let venv = horus_e2e::repo_root().join(".venv");
    assert!(
        venv.join("bin/python").exists(),
        "run ./scripts/python-env.sh first"
    );
    for (width, height) in [(640u32, 480u32), (1280, 720), (1920, 1080)] {
        let ns = namespace(&format!("frames{width}"));
        let s = Scratch::new();
        s.write(
            "flip.py",
            "import horus\n\nclass Flip(horus.Node):\n    def tick(self):\n        \
             while (img := self.get('cam/raw')) is not None:\n            \
             assert not img.data.flags.writeable, 'a view of the frame in shared memory'\n            \
             self.send('cam/flipped', horus.Image(img.width, img.height, img.encoding, \
             data=img.data[::-1], stamp_ns=img.stamp_ns))\n",
        );
        let max = width as u64 * height as u64 * 3 + 64;
        let m = s.write(
            "frames.toml",
            &format!(
                "[scheduler]\ntick_rate = 20.0\n\
                 [[node]]\nname = \"camera\"\nplugin = \"{{plugin:camera-sim}}\"\ntype = \"CameraSim\"\n\
                 config = {{ width = {width}, height = {height}, count = 6 }}\n\
                 [[node]]\nname = \"flip\"\npython = \"flip.py\"\nclass = \"Flip\"\nvenv = \"{}\"\n\
                 [[node]]\nname = \"check\"\nplugin = \"{{plugin:camera-sim}}\"\ntype = \"FrameCheck\"\n\
                 config = {{ flipped = true, expect = 6 }}\n\
                 [[connect]]\nfrom = \"camera.image\"\ntopic = \"cam/raw\"\nmax_size = {max}\nqos = \"keep_last(4)\"\n\
                 [[connect]]\ntopic = \"cam/flipped\"\nto = \"check.image\"\nmax_size = {max}\nqos = \"keep_last(4)\"\n",
                venv.display(),
            ),
        );
        let (out, stats) = horus_e2e::run_with_stats_in(Some(&ns), &s, &m, "3s");
        assert_eq!(out.code(), 0, "{}", out.stderr);
        for name in ["camera", "flip", "check"] {
            assert_eq!(
                u(&horus_e2e::node(&stats, name)["total_failures"]),
                0,
                "{name}: {}",
                out.stderr
            );
        }
        assert!(
            out.stderr.contains("complete: 6 frames intact"),
            "{width}x{height}: {}",
            out.stderr
        );
        assert_eq!(horus_e2e::shm_leftovers(&ns), Vec::<String>::new());
    }
}
