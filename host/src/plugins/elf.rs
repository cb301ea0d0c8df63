//! A quick look at a shared library's exported symbols without loading it: enough of ELF64
//! (little-endian, as on x86-64 and aarch64 Linux) to read `.dynsym` and its string table.
//!
//! Owns telling "may be a node plugin" from "certainly is not" before anything is `dlopen`ed:
//! a plugin defines [`ENTRY`]; a Python extension module (the Python loader `_horus*.so`, which
//! exports the entry too but must never be loaded as an ordinary plugin) defines `PyInit_*`.
//! Reads a few small pieces of the file with `seek` + `read`, so a 70 MiB debug library costs
//! the same as a small one. It does not own loading (`crate::ffi`), nor judging the descriptor.
//!
//! Everything read is untrusted: every offset and size is bounds-checked, and an answer of
//! [`Symbols::Unknown`] (no section headers, a 32-bit or big-endian file) leaves the decision to
//! the loader.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// The entry symbol every HORUS plugin defines (`horus_plugin_api::abi::ENTRY_SYMBOL` without
/// its NUL).
pub const ENTRY: &[u8] = b"horus_plugin_entry";

/// The largest `.dynsym` or `.dynstr` read (a plugin's are a few KiB; a big C++ library's a few
/// MiB).
const MAX_TABLE: u64 = 64 << 20;

/// What the dynamic symbol table says about a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Symbols {
    /// An ELF shared object whose dynamic symbols were read.
    Read {
        /// It defines `horus_plugin_entry`.
        entry: bool,
        /// It defines a `PyInit_*` symbol: a Python extension module.
        python_extension: bool,
    },
    /// Not an ELF file at all.
    NotElf,
    /// ELF, but not a shared object (an executable, an object file, a core dump).
    NotSharedObject,
    /// ELF that this reader does not follow (32-bit, big-endian, no section headers, or
    /// malformed tables): only loading it can tell.
    Unknown,
}

/// Reads the dynamic symbols of `path`. `Err` only when the file cannot be read at all.
pub fn symbols(path: &Path) -> std::io::Result<Symbols> {
    let mut file = File::open(path)?;
    let mut header = [0u8; 64];
    match read_exact_at(&mut file, 0, &mut header) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Ok(if header.starts_with(b"\x7fELF") {
                Symbols::Unknown
            } else {
                Symbols::NotElf
            })
        }
        Err(e) => return Err(e),
    }
    if &header[..4] != b"\x7fELF" {
        return Ok(Symbols::NotElf);
    }
    // EI_CLASS 2 = 64-bit, EI_DATA 1 = little-endian.
    if header[4] != 2 || header[5] != 1 {
        return Ok(Symbols::Unknown);
    }
    // e_type 3 = ET_DYN (shared objects; position-independent executables too, which have no
    // entry symbol and are told apart by it).
    if u16_at(&header, 16) != Some(3) {
        return Ok(Symbols::NotSharedObject);
    }
    Ok(dynamic_symbols(&mut file, &header).unwrap_or(Symbols::Unknown))
}

/// `None` where the file's tables do not hold together.
fn dynamic_symbols(file: &mut File, header: &[u8; 64]) -> Option<Symbols> {
    let shoff = u64_at(header, 40)?;
    let shentsize = u64::from(u16_at(header, 58)?);
    let shnum = u64::from(u16_at(header, 60)?);
    let len = file.metadata().ok()?.len();
    // Within the file, so nothing larger than the file is ever allocated.
    let fits = |offset: u64, size: u64| offset.checked_add(size).is_some_and(|end| end <= len);
    if shoff == 0 || shnum == 0 || !(64..=256).contains(&shentsize) || !fits(shoff, shentsize * shnum) {
        return None;
    }
    let mut sections = vec![0u8; usize::try_from(shentsize.checked_mul(shnum)?).ok()?];
    read_exact_at(file, shoff, &mut sections).ok()?;
    let section = |i: u64| -> Option<&[u8]> {
        let start = usize::try_from(i.checked_mul(shentsize)?).ok()?;
        sections.get(start..start + 64)
    };
    // SHT_DYNSYM = 11; its sh_link is the index of its string table.
    let dynsym = (0..shnum).find_map(|i| section(i).filter(|s| u32_at(s, 4) == Some(11)))?;
    let table = |s: &[u8]| -> Option<(u64, u64)> {
        let (offset, size) = (u64_at(s, 24)?, u64_at(s, 32)?);
        (size <= MAX_TABLE && fits(offset, size)).then_some((offset, size))
    };
    let (sym_off, sym_size) = table(dynsym)?;
    let entsize = u64_at(dynsym, 56).filter(|e| *e >= 24)?;
    let (str_off, str_size) = table(section(u64::from(u32_at(dynsym, 40)?))?)?;
    let mut syms = vec![0u8; usize::try_from(sym_size).ok()?];
    read_exact_at(file, sym_off, &mut syms).ok()?;
    let mut strings = vec![0u8; usize::try_from(str_size).ok()?];
    read_exact_at(file, str_off, &mut strings).ok()?;
    let (mut entry, mut python_extension) = (false, false);
    let entsize = usize::try_from(entsize).ok()?;
    for sym in syms.chunks_exact(entsize) {
        // st_shndx 0 = SHN_UNDEF: a symbol the library uses, not one it defines.
        if u16_at(sym, 6)? == 0 {
            continue;
        }
        let start = usize::try_from(u32_at(sym, 0)?).ok()?;
        let rest = strings.get(start..)?;
        let name = &rest[..rest.iter().position(|b| *b == 0).unwrap_or(rest.len())];
        entry |= name == ENTRY;
        python_extension |= name.starts_with(b"PyInit_");
    }
    Some(Symbols::Read {
        entry,
        python_extension,
    })
}

fn read_exact_at(file: &mut File, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(buf)
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The libraries of this build, next to the test executable (`target/<profile>/deps/..`).
    fn built(name: &str) -> Option<std::path::PathBuf> {
        let exe = std::env::current_exe().ok()?;
        let path = exe.parent()?.parent()?.join(name);
        path.is_file().then_some(path)
    }

    #[test]
    fn a_plugin_defines_the_entry_and_libc_does_not() {
        let Some(plugin) = built("libhello_counter.so") else {
            eprintln!("skipped: build the workspace first");
            return;
        };
        assert_eq!(
            symbols(&plugin).unwrap(),
            Symbols::Read {
                entry: true,
                python_extension: false
            }
        );
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let libc = maps
            .lines()
            .filter_map(|l| l.split_whitespace().nth(5))
            .find(|p| p.contains("/libc.so") || p.contains("/libc-"))
            .expect("libc is mapped");
        assert_eq!(
            symbols(Path::new(libc)).unwrap(),
            Symbols::Read {
                entry: false,
                python_extension: false
            }
        );
    }

    #[test]
    fn the_python_loader_is_a_python_extension() {
        let Some(loader) = built("lib_horus.so") else {
            eprintln!("skipped: build the workspace first");
            return;
        };
        assert!(matches!(
            symbols(&loader).unwrap(),
            Symbols::Read {
                python_extension: true,
                ..
            }
        ));
    }

    #[test]
    fn text_short_and_garbled_files_are_never_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let cases: [(&str, Vec<u8>, Symbols); 4] = [
            (
                "text.so",
                b"not a library at all, just text".to_vec(),
                Symbols::NotElf,
            ),
            ("short.so", b"\x7fEL".to_vec(), Symbols::NotElf),
            ("stub.so", b"\x7fELF\x02\x01".to_vec(), Symbols::Unknown),
            (
                "exe.so",
                {
                    let mut b = b"\x7fELF\x02\x01".to_vec();
                    b.resize(64, 0);
                    b[16] = 2; // ET_EXEC
                    b
                },
                Symbols::NotSharedObject,
            ),
        ];
        for (name, bytes, want) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            assert_eq!(symbols(&path).unwrap(), want, "{name}");
        }
        // Random section tables: any answer but a panic.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..500 {
            let mut bytes = b"\x7fELF\x02\x01".to_vec();
            bytes.resize(512, 0);
            for b in bytes.iter_mut().skip(6) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                *b = (seed & 0xff) as u8;
            }
            bytes[16] = 3;
            bytes[17] = 0;
            let path = dir.path().join("random.so");
            std::fs::write(&path, &bytes).unwrap();
            let _ = symbols(&path).unwrap();
        }
    }
}
