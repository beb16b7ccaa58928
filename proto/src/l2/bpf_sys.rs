//! The bpf(2) calls of the fast path: create a map, update, delete and read its
//! elements, load a program (with the verifier's log on failure), attach it at TCX
//! ingress through a bpf_link, and run it on one frame (`BPF_PROG_TEST_RUN`, tests).
//!
//! Besides `sys`, the only module of `l2` with `unsafe`; every block says why it is
//! sound. Buffers handed to the kernel are checked here against the sizes the map or
//! call was made with, so no caller can make the kernel write past one. It decides
//! nothing: callers pass the instructions, sizes and interface.
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::ebpf::Insn;

// bpf(2) commands (enum bpf_cmd).
const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_LINK_CREATE: libc::c_long = 28;

/// enum bpf_map_type: BPF_MAP_TYPE_HASH.
pub(crate) const MAP_TYPE_HASH: u32 = 1;
/// enum bpf_map_type: BPF_MAP_TYPE_ARRAY.
pub(crate) const MAP_TYPE_ARRAY: u32 = 2;
/// enum bpf_map_type: BPF_MAP_TYPE_PERCPU_ARRAY.
pub(crate) const MAP_TYPE_PERCPU_ARRAY: u32 = 6;
/// BPF_MAP_CREATE flag: allocate hash entries on insert, not all up front.
pub(crate) const MAP_F_NO_PREALLOC: u32 = 1;
/// enum bpf_prog_type: BPF_PROG_TYPE_SCHED_CLS.
const PROG_TYPE_SCHED_CLS: u32 = 3;
/// enum bpf_attach_type: BPF_TCX_INGRESS (Linux 6.6).
const ATTACH_TCX_INGRESS: u32 = 46;
/// Verifier log buffer on a failed load.
const LOG_LEN: usize = 64 * 1024;

/// The BPF_MAP_CREATE part of `union bpf_attr` (fields up to `map_name`).
#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
}

/// The BPF_MAP_*_ELEM part of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// The BPF_PROG_LOAD part of `union bpf_attr` (fields up to `expected_attach_type`).
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// The BPF_LINK_CREATE part of `union bpf_attr` for TCX (`tcx.relative_fd`,
/// `tcx.expected_revision`).
#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
    relative_fd: u32,
    _pad: u32,
    expected_revision: u64,
}

/// The BPF_PROG_TEST_RUN part of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}

/// Calls bpf(2) with `attr`; returns the non-negative result.
///
/// # Safety
/// Every pointer inside `attr` must be valid for what `cmd` does with it (reads or
/// writes of the sizes given in `attr`) for the duration of the call.
unsafe fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, initialised #[repr(C)] prefix of `union bpf_attr` and
    // its size is passed; the kernel zero-extends a shorter attr. Pointer validity is
    // the caller's contract.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            (attr as *mut T).cast::<libc::c_void>(),
            mem::size_of::<T>() as libc::c_uint,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn fd_from(rc: libc::c_long) -> io::Result<OwnedFd> {
    let raw = libc::c_int::try_from(rc).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
    // SAFETY: bpf(2) returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

fn name16(name: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (o, c) in out
        .iter_mut()
        .zip(
            name.bytes()
                .filter(|c| c.is_ascii_alphanumeric() || *c == b'_'),
        )
        .take(15)
    {
        *o = c;
    }
    out
}

/// A map with the sizes it was created with, so element calls can check buffers.
#[derive(Debug)]
pub(crate) struct Map {
    fd: OwnedFd,
    key_size: usize,
    /// Octets one lookup writes: `value_size`, or for a per-CPU map its 8-aligned size
    /// times the possible CPUs.
    read_size: usize,
    value_size: usize,
}

impl Map {
    /// Creates a map (`name` is cut to 15 characters; `map_flags` as BPF_MAP_CREATE
    /// takes them). For a per-CPU type, pass the number of possible CPUs
    /// (`possible_cpus`), 1 otherwise.
    pub(crate) fn create(
        map_type: u32,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        map_flags: u32,
        possible_cpus: usize,
        name: &str,
    ) -> io::Result<Map> {
        let mut attr = MapCreateAttr {
            map_type,
            key_size,
            value_size,
            max_entries,
            map_flags,
            map_name: name16(name),
            ..MapCreateAttr::default()
        };
        // SAFETY: BPF_MAP_CREATE reads only the plain fields of `attr`; no pointers.
        let fd = fd_from(unsafe { bpf(BPF_MAP_CREATE, &mut attr) }?)?;
        let value_size = value_size as usize;
        let read_size = if map_type == MAP_TYPE_PERCPU_ARRAY {
            value_size.next_multiple_of(8) * possible_cpus.max(1)
        } else {
            value_size
        };
        Ok(Map {
            fd,
            key_size: key_size as usize,
            read_size,
            value_size,
        })
    }

    /// The descriptor, for `ld_map_fd`.
    pub(crate) fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    fn check_key(&self, key: &[u8]) -> io::Result<()> {
        if key.len() == self.key_size {
            Ok(())
        } else {
            Err(io::Error::from(io::ErrorKind::InvalidInput))
        }
    }

    /// Sets `key` to `value` (BPF_ANY: insert or replace). Not for per-CPU maps (their
    /// update takes one value per CPU); those are only read here.
    pub(crate) fn update(&self, key: &[u8], value: &[u8]) -> io::Result<()> {
        self.check_key(key)?;
        if value.len() != self.value_size || self.read_size != self.value_size {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        let mut attr = ElemAttr {
            map_fd: self.fd.as_raw_fd() as u32,
            key: key.as_ptr() as u64,
            value: value.as_ptr() as u64,
            ..ElemAttr::default()
        };
        // SAFETY: the kernel reads `key_size` octets at `key` and `value_size` at
        // `value`; both slices have exactly those lengths (checked above) and live
        // across the call.
        unsafe { bpf(BPF_MAP_UPDATE_ELEM, &mut attr) }.map(drop)
    }

    /// Removes `key`; `NotFound` when it was absent.
    pub(crate) fn delete(&self, key: &[u8]) -> io::Result<()> {
        self.check_key(key)?;
        let mut attr = ElemAttr {
            map_fd: self.fd.as_raw_fd() as u32,
            key: key.as_ptr() as u64,
            ..ElemAttr::default()
        };
        // SAFETY: the kernel reads `key_size` octets at `key`, which has that length.
        unsafe { bpf(BPF_MAP_DELETE_ELEM, &mut attr) }.map(drop)
    }

    /// Reads `key`'s value (for a per-CPU map: one 8-aligned value per possible CPU).
    pub(crate) fn lookup(&self, key: &[u8]) -> io::Result<Vec<u8>> {
        self.check_key(key)?;
        let mut out = vec![0u8; self.read_size];
        let mut attr = ElemAttr {
            map_fd: self.fd.as_raw_fd() as u32,
            key: key.as_ptr() as u64,
            value: out.as_mut_ptr() as u64,
            ..ElemAttr::default()
        };
        // SAFETY: the kernel reads `key_size` octets at `key` (checked) and writes at
        // most `read_size` octets at `value`, which `out` holds; both live across the
        // call.
        unsafe { bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) }?;
        Ok(out)
    }
}

/// Why a program did not load: the error and the verifier's log.
#[derive(Debug)]
pub(crate) struct LoadError {
    pub(crate) source: io::Error,
    pub(crate) log: String,
}

/// Loads a sched_cls program. On failure, loads again with the verifier log on, so the
/// error says why.
pub(crate) fn load_sched_cls(insns: &[Insn], name: &str) -> Result<OwnedFd, LoadError> {
    let license: &CStr = c"Apache-2.0";
    let attempt = |log: Option<&mut [u8]>| {
        let mut attr = ProgLoadAttr {
            prog_type: PROG_TYPE_SCHED_CLS,
            insn_cnt: u32::try_from(insns.len()).unwrap_or(u32::MAX),
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            prog_name: name16(name),
            ..ProgLoadAttr::default()
        };
        if let Some(log) = log {
            attr.log_level = 1;
            attr.log_size = u32::try_from(log.len()).unwrap_or(0);
            attr.log_buf = log.as_mut_ptr() as u64;
        }
        // SAFETY: the kernel reads `insn_cnt` 8-octet instructions at `insns` (a live
        // slice of #[repr(C)] `struct bpf_insn`), a NUL-terminated string at `license`,
        // and writes at most `log_size` octets at `log_buf`: the length of `log`.
        unsafe { bpf(BPF_PROG_LOAD, &mut attr) }.and_then(fd_from)
    };
    attempt(None).map_err(|source| {
        let mut log = vec![0u8; LOG_LEN];
        let _ = attempt(Some(&mut log));
        let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
        LoadError {
            source,
            log: String::from_utf8_lossy(log.get(..end).unwrap_or_default()).into_owned(),
        }
    })
}

/// Attaches `prog` at TCX ingress of `ifindex` (after the programs already there).
/// The returned bpf_link owns the attachment: closing it, or the process dying,
/// detaches the program.
pub(crate) fn attach_tcx_ingress(prog: BorrowedFd<'_>, ifindex: u32) -> io::Result<OwnedFd> {
    let mut attr = LinkCreateAttr {
        prog_fd: prog.as_raw_fd() as u32,
        target_ifindex: ifindex,
        attach_type: ATTACH_TCX_INGRESS,
        ..LinkCreateAttr::default()
    };
    // SAFETY: BPF_LINK_CREATE for TCX reads only plain fields; no pointers.
    fd_from(unsafe { bpf(BPF_LINK_CREATE, &mut attr) }?)
}

/// What one `test_run` returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TestRun {
    /// The program's return code.
    pub(crate) retval: i32,
    /// The frame after the program (Ethernet header first).
    pub(crate) frame: Vec<u8>,
}

/// Runs `prog` once on `frame` as if received on `ifindex` (0: loopback), without
/// a network (BPF_PROG_TEST_RUN). Needs CAP_BPF or root.
pub(crate) fn test_run(prog: BorrowedFd<'_>, frame: &[u8], ifindex: u32) -> io::Result<TestRun> {
    // `struct __sk_buff` up to and including `ifindex` (offset 40).
    let mut ctx = [0u32; 11];
    if let Some(slot) = ctx.last_mut() {
        *slot = ifindex;
    }
    let mut out = vec![0u8; frame.len() + 256];
    let mut attr = TestRunAttr {
        prog_fd: prog.as_raw_fd() as u32,
        data_size_in: u32::try_from(frame.len()).unwrap_or(u32::MAX),
        data_size_out: u32::try_from(out.len()).unwrap_or(u32::MAX),
        data_in: frame.as_ptr() as u64,
        data_out: out.as_mut_ptr() as u64,
        repeat: 1,
        ctx_size_in: mem::size_of_val(&ctx) as u32,
        ctx_in: ctx.as_ptr() as u64,
        ..TestRunAttr::default()
    };
    // SAFETY: the kernel reads `data_size_in` octets at `data_in` (`frame`) and
    // `ctx_size_in` at `ctx_in` (`ctx`), and writes at most `data_size_out` octets at
    // `data_out` (`out`); all live across the call. `ctx_out` is null, so nothing is
    // written there.
    unsafe { bpf(BPF_PROG_TEST_RUN, &mut attr) }?;
    out.truncate(attr.data_size_out as usize);
    Ok(TestRun {
        retval: attr.retval as i32,
        frame: out,
    })
}

/// How many CPUs the kernel may ever bring online (the per-CPU map stride), from
/// /sys/devices/system/cpu/possible ("0-3", "0,2-5").
pub(crate) fn possible_cpus() -> io::Result<usize> {
    let text = std::fs::read_to_string("/sys/devices/system/cpu/possible")?;
    parse_cpu_list(&text).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidData))
}

/// Highest CPU number in a kernel CPU list, plus one.
fn parse_cpu_list(text: &str) -> Option<usize> {
    let mut highest = None;
    for part in text.trim().split(',') {
        let last = part.rsplit('-').next()?;
        let n: usize = last.trim().parse().ok()?;
        highest = Some(highest.map_or(n, |h: usize| h.max(n)));
    }
    highest.map(|h| h + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_count_up_to_the_highest_cpu() {
        assert_eq!(parse_cpu_list("0\n"), Some(1));
        assert_eq!(parse_cpu_list("0-3\n"), Some(4));
        assert_eq!(parse_cpu_list("0,2-5"), Some(6));
        assert_eq!(parse_cpu_list(""), None);
    }

    #[test]
    fn attr_layouts_match_the_kernel_offsets() {
        assert_eq!(mem::size_of::<ElemAttr>(), 32);
        assert_eq!(mem::offset_of!(ElemAttr, key), 8);
        assert_eq!(mem::offset_of!(ProgLoadAttr, prog_name), 48);
        assert_eq!(mem::offset_of!(ProgLoadAttr, expected_attach_type), 68);
        assert_eq!(mem::offset_of!(LinkCreateAttr, expected_revision), 24);
        assert_eq!(mem::offset_of!(TestRunAttr, ctx_in), 48);
        assert_eq!(mem::offset_of!(TestRunAttr, batch_size), 72);
        assert_eq!(mem::offset_of!(MapCreateAttr, map_name), 28);
    }

    #[test]
    fn names_keep_15_safe_characters() {
        assert_eq!(&name16("ferrolb-l2:eth0")[..14], b"ferrolbl2eth0\0");
        assert_eq!(name16("abcdefghijklmnopqrstuvwxyz")[15], 0);
    }
}
