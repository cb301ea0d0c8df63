//! Plugins really unload: after a plugin's last node is destroyed on a thread that has exited,
//! dropping the library removes its mapping from the process. Hot reload depends on it.

use horus_e2e::plugin;
use horus_host::ffi::{NodeInstance, PluginLibrary};
use horus_host::io::NodeIo;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

fn mapped(path: &Path) -> bool {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("/proc/self/maps");
    let needle = path.to_str().unwrap();
    maps.lines().any(|l| l.contains(needle))
}

fn config(every: i64) -> toml::Table {
    let mut t = toml::Table::new();
    t.insert("every".into(), toml::Value::Integer(every));
    t
}

/// Creates, ticks (with panics: they make the plugin's std register thread-local destructors,
/// which pin a library to the thread), shuts down and destroys one node.
fn exercise(lib: Arc<PluginLibrary>) {
    let io = NodeIo::new(
        "p".into(),
        false,
        config(3),
        Vec::new(),
        Vec::new(),
        Instant::now(),
    );
    let mut node = NodeInstance::create(lib, 0, io).expect("create");
    node.init().expect("init");
    let failures = (0..10).filter(|_| node.tick().is_err()).count();
    assert_eq!(failures, 3, "ticks 3, 6 and 9 panic");
    node.shutdown().expect("shutdown");
}

#[test]
fn load_tick_unload_100_times_leaves_no_mapping() {
    let so = plugin("faulty-panic");
    for round in 0..100 {
        let lib = Arc::new(PluginLibrary::open(&so).expect("load"));
        let copy = lib.loaded_path().to_path_buf();
        assert!(mapped(&copy), "round {round}: the copy is mapped while loaded");
        let for_thread = lib.clone();
        std::thread::spawn(move || exercise(for_thread))
            .join()
            .expect("node thread");
        drop(lib);
        assert!(
            !mapped(&copy),
            "round {round}: {} is still mapped after unload",
            copy.display()
        );
        assert!(!copy.exists(), "the private copy file is removed");
    }
}

/// The control experiment: without retiring the calling thread the same library stays mapped,
/// so the test above would catch a host that called plugins from a long-lived thread.
#[test]
fn a_live_thread_that_ran_plugin_code_pins_it() {
    let so = plugin("faulty-panic");
    let lib = Arc::new(PluginLibrary::open(&so).expect("load"));
    let copy = lib.loaded_path().to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let for_thread = lib.clone();
    let worker = std::thread::spawn(move || {
        exercise(for_thread);
        done_tx.send(()).unwrap();
        // Stay alive until the main thread has looked.
        let _ = rx.recv();
    });
    done_rx.recv().unwrap();
    drop(lib);
    assert!(
        mapped(&copy),
        "a thread with the plugin's TLS destructors is alive: glibc keeps it mapped"
    );
    tx.send(()).unwrap();
    worker.join().unwrap();
    // glibc reaps the pinned object at a later dlclose: load and unload another copy.
    drop(PluginLibrary::open(&so).expect("load"));
    assert!(!mapped(&copy), "unmapped once the thread is gone");
}
