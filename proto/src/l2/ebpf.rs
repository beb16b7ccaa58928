//! A small builder of eBPF programs: one function per instruction class, opcode
//! constants from the kernel UAPI (include/uapi/linux/bpf.h, bpf_common.h), and
//! labels whose jump offsets are filled in by `finish`, so no offset is counted by hand.
//!
//! Every instruction is 8 octets (`struct bpf_insn`):
//! ```text
//! +--------+----+----+----------------+--------------------------------+
//! | opcode |dst |src |  offset (i16)  |        immediate (i32)         |
//! | 8 bits | 4  | 4  |    16 bits     |            32 bits             |
//! +--------+----+----+----------------+--------------------------------+
//! opcode = operation | source (K: immediate, X: register) | class
//!        or size | mode | class for loads and stores
//! ```
//! A 64-bit immediate load (`ld_imm64`, `ld_map_fd`) takes two slots. The register
//! nibbles are in little-endian bitfield order (x86_64, aarch64: what we build for).
//! Pure: builds a `Vec<Insn>`; loading it is `bpf_sys`'s job, checking it the verifier's.

use std::fmt;

/// One eBPF instruction (`struct bpf_insn`), in the layout `BPF_PROG_LOAD` reads.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    /// Operation, source and class (or size, mode and class).
    pub code: u8,
    /// Destination register in the low nibble, source register in the high nibble.
    pub regs: u8,
    /// Memory offset, or jump distance in instructions after the next one.
    pub off: i16,
    /// Immediate operand.
    pub imm: i32,
}

impl fmt::Debug for Insn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02x} r{} r{} {:+} {:#x}",
            self.code,
            self.regs & 0x0f,
            self.regs >> 4,
            self.off,
            self.imm
        )
    }
}

impl Insn {
    /// The 8 octets as the kernel reads them on a little-endian host.
    pub fn to_bytes(self) -> [u8; 8] {
        let mut out = [0u8; 8];
        out[0] = self.code;
        out[1] = self.regs;
        out[2..4].copy_from_slice(&self.off.to_ne_bytes());
        out[4..8].copy_from_slice(&self.imm.to_ne_bytes());
        out
    }
}

// Instruction classes.
const BPF_LD: u8 = 0x00;
const BPF_LDX: u8 = 0x01;
const BPF_ST: u8 = 0x02;
const BPF_STX: u8 = 0x03;
const BPF_ALU: u8 = 0x04;
const BPF_JMP: u8 = 0x05;
const BPF_JMP32: u8 = 0x06;
const BPF_ALU64: u8 = 0x07;
// Load/store modes.
const BPF_IMM: u8 = 0x00;
const BPF_MEM: u8 = 0x60;
const BPF_ATOMIC: u8 = 0xc0;
// Operand source.
const BPF_K: u8 = 0x00;
const BPF_X: u8 = 0x08;
// Jump operations that are not comparisons.
const BPF_JA: u8 = 0x00;
const BPF_CALL: u8 = 0x80;
const BPF_EXIT: u8 = 0x90;
/// `src_reg` of `ld_imm64` whose immediate is a map file descriptor (BPF_PSEUDO_MAP_FD).
const PSEUDO_MAP_FD: Reg = Reg::R1;
/// Atomic operation in the immediate: add (BPF_ADD, no fetch).
const BPF_ATOMIC_ADD: i32 = 0x00;

/// A register. R0 returns, R1-R5 pass arguments (clobbered by calls), R6-R9 survive
/// calls, R10 is the read-only frame pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reg {
    R0,
    R1,
    R2,
    R3,
    R4,
    R5,
    R6,
    R7,
    R8,
    R9,
    R10,
}

impl Reg {
    fn n(self) -> u8 {
        self as u8
    }
}

/// Width of a memory access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// 1 octet (BPF_B).
    B,
    /// 2 octets (BPF_H).
    H,
    /// 4 octets (BPF_W).
    W,
    /// 8 octets (BPF_DW).
    Dw,
}

impl Size {
    fn code(self) -> u8 {
        match self {
            Size::W => 0x00,
            Size::H => 0x08,
            Size::B => 0x10,
            Size::Dw => 0x18,
        }
    }
}

/// Arithmetic operations (BPF_ALU / BPF_ALU64).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alu {
    Add = 0x00,
    Sub = 0x10,
    Mul = 0x20,
    Div = 0x30,
    Or = 0x40,
    And = 0x50,
    Lsh = 0x60,
    Rsh = 0x70,
    Xor = 0xa0,
    Mov = 0xb0,
}

/// Conditional jumps (BPF_JMP, 64-bit comparisons; `Lt`/`Gt`... are unsigned).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jmp {
    Eq = 0x10,
    Gt = 0x20,
    Ge = 0x30,
    Set = 0x40,
    Ne = 0x50,
    Lt = 0xa0,
    Le = 0xb0,
}

/// A jump target; bind it once with `Builder::bind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Label(usize);

/// Why a program could not be finished.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// A label was jumped to but never bound.
    #[error("label {0} is used but never bound")]
    Unbound(usize),
    /// A label was bound twice.
    #[error("label {0} is bound twice")]
    BoundTwice(usize),
    /// The host is big-endian: the programs are laid out for little-endian kernels only.
    #[error("the in-kernel fast path is built for little-endian hosts only")]
    BigEndianHost,
    /// A jump is farther than an i16 offset reaches.
    #[error("jump at instruction {at} to {target} is out of range")]
    OutOfRange {
        /// Index of the jump.
        at: usize,
        /// Index it jumps to.
        target: usize,
    },
}

/// Builds one program; every method appends at the end.
#[derive(Debug, Default)]
pub struct Builder {
    insns: Vec<Insn>,
    /// Instruction index each label is bound to.
    labels: Vec<Option<usize>>,
    /// (jump instruction index, label) pairs to patch in `finish`.
    fixups: Vec<(usize, Label)>,
    /// First label bound twice, reported by `finish`.
    rebound: Option<usize>,
}

fn insn(code: u8, dst: Reg, src: Reg, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst.n() | (src.n() << 4),
        off,
        imm,
    }
}

impl Builder {
    /// An empty program.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Instructions emitted so far (a 64-bit load counts two).
    pub fn len(&self) -> usize {
        self.insns.len()
    }

    /// No instruction yet.
    pub fn is_empty(&self) -> bool {
        self.insns.is_empty()
    }

    /// A new, unbound label.
    pub fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    /// Binds `label` to the next instruction.
    pub fn bind(&mut self, label: Label) {
        if let Some(slot) = self.labels.get_mut(label.0) {
            if slot.is_some() {
                self.rebound.get_or_insert(label.0);
            }
            *slot = Some(self.insns.len());
        }
    }

    fn push(&mut self, i: Insn) -> &mut Self {
        self.insns.push(i);
        self
    }

    /// `dst = imm` (64-bit, the immediate sign-extended).
    pub fn mov64_imm(&mut self, dst: Reg, imm: i32) -> &mut Self {
        self.alu64_imm(Alu::Mov, dst, imm)
    }

    /// `dst = src` (64-bit).
    pub fn mov64(&mut self, dst: Reg, src: Reg) -> &mut Self {
        self.alu64(Alu::Mov, dst, src)
    }

    /// `dst op= imm` (BPF_ALU64 | BPF_K).
    pub fn alu64_imm(&mut self, op: Alu, dst: Reg, imm: i32) -> &mut Self {
        self.push(insn(BPF_ALU64 | BPF_K | op as u8, dst, Reg::R0, 0, imm))
    }

    /// `dst op= src` (BPF_ALU64 | BPF_X).
    pub fn alu64(&mut self, op: Alu, dst: Reg, src: Reg) -> &mut Self {
        self.push(insn(BPF_ALU64 | BPF_X | op as u8, dst, src, 0, 0))
    }

    /// `dst = (u32)(dst op imm)` (BPF_ALU | BPF_K; the upper half is zeroed).
    pub fn alu32_imm(&mut self, op: Alu, dst: Reg, imm: i32) -> &mut Self {
        self.push(insn(BPF_ALU | BPF_K | op as u8, dst, Reg::R0, 0, imm))
    }

    /// `dst = (u32)(dst op src)` (BPF_ALU | BPF_X).
    pub fn alu32(&mut self, op: Alu, dst: Reg, src: Reg) -> &mut Self {
        self.push(insn(BPF_ALU | BPF_X | op as u8, dst, src, 0, 0))
    }

    /// `dst = *(size *)(src + off)` (BPF_LDX | BPF_MEM), zero-extended.
    pub fn load(&mut self, size: Size, dst: Reg, src: Reg, off: i16) -> &mut Self {
        self.push(insn(BPF_LDX | BPF_MEM | size.code(), dst, src, off, 0))
    }

    /// `*(size *)(dst + off) = src` (BPF_STX | BPF_MEM).
    pub fn store(&mut self, size: Size, dst: Reg, off: i16, src: Reg) -> &mut Self {
        self.push(insn(BPF_STX | BPF_MEM | size.code(), dst, src, off, 0))
    }

    /// `*(size *)(dst + off) = imm` (BPF_ST | BPF_MEM).
    pub fn store_imm(&mut self, size: Size, dst: Reg, off: i16, imm: i32) -> &mut Self {
        self.push(insn(BPF_ST | BPF_MEM | size.code(), dst, Reg::R0, off, imm))
    }

    /// `*(size *)(dst + off) += src` atomically (BPF_STX | BPF_ATOMIC, BPF_ADD); `size`
    /// is `W` or `Dw`.
    pub fn atomic_add(&mut self, size: Size, dst: Reg, off: i16, src: Reg) -> &mut Self {
        self.push(insn(
            BPF_STX | BPF_ATOMIC | size.code(),
            dst,
            src,
            off,
            BPF_ATOMIC_ADD,
        ))
    }

    /// `dst = imm` for a full 64-bit immediate (BPF_LD | BPF_IMM | BPF_DW, two slots).
    pub fn ld_imm64(&mut self, dst: Reg, imm: u64) -> &mut Self {
        self.ld_imm64_src(dst, Reg::R0, imm)
    }

    /// `dst = &map` for the map open as `fd` (the kernel replaces the descriptor
    /// with the map's address; src_reg = BPF_PSEUDO_MAP_FD).
    pub fn ld_map_fd(&mut self, dst: Reg, fd: i32) -> &mut Self {
        self.ld_imm64_src(dst, PSEUDO_MAP_FD, u64::from(fd as u32))
    }

    fn ld_imm64_src(&mut self, dst: Reg, src: Reg, imm: u64) -> &mut Self {
        let low = imm as u32 as i32;
        let high = (imm >> 32) as u32 as i32;
        self.push(insn(BPF_LD | BPF_IMM | Size::Dw.code(), dst, src, 0, low));
        self.push(insn(0, Reg::R0, Reg::R0, 0, high))
    }

    /// `if dst op imm goto label` (BPF_JMP | BPF_K).
    pub fn jump_imm(&mut self, op: Jmp, dst: Reg, imm: i32, label: Label) -> &mut Self {
        self.fixups.push((self.insns.len(), label));
        self.push(insn(BPF_JMP | BPF_K | op as u8, dst, Reg::R0, 0, imm))
    }

    /// `if dst op src goto label` (BPF_JMP | BPF_X).
    pub fn jump(&mut self, op: Jmp, dst: Reg, src: Reg, label: Label) -> &mut Self {
        self.fixups.push((self.insns.len(), label));
        self.push(insn(BPF_JMP | BPF_X | op as u8, dst, src, 0, 0))
    }

    /// `if (u32)dst op imm goto label` (BPF_JMP32 | BPF_K): compares the low halves, so
    /// a 32-bit value meets a 32-bit immediate without sign extension.
    pub fn jump32_imm(&mut self, op: Jmp, dst: Reg, imm: i32, label: Label) -> &mut Self {
        self.fixups.push((self.insns.len(), label));
        self.push(insn(BPF_JMP32 | BPF_K | op as u8, dst, Reg::R0, 0, imm))
    }

    /// `goto label` (BPF_JA).
    pub fn goto(&mut self, label: Label) -> &mut Self {
        self.fixups.push((self.insns.len(), label));
        self.push(insn(BPF_JMP | BPF_JA, Reg::R0, Reg::R0, 0, 0))
    }

    /// Calls helper number `helper` (enum bpf_func_id): arguments in R1-R5, result in
    /// R0; R1-R5 are clobbered.
    pub fn call(&mut self, helper: i32) -> &mut Self {
        self.push(insn(BPF_JMP | BPF_CALL, Reg::R0, Reg::R0, 0, helper))
    }

    /// Returns R0.
    pub fn exit(&mut self) -> &mut Self {
        self.push(insn(BPF_JMP | BPF_EXIT, Reg::R0, Reg::R0, 0, 0))
    }

    /// The instructions, with every jump pointed at its label.
    pub fn finish(mut self) -> Result<Vec<Insn>, BuildError> {
        if let Some(label) = self.rebound {
            return Err(BuildError::BoundTwice(label));
        }
        for (at, label) in &self.fixups {
            let target = self
                .labels
                .get(label.0)
                .copied()
                .flatten()
                .ok_or(BuildError::Unbound(label.0))?;
            let distance = target as i64 - (*at as i64 + 1);
            let off =
                i16::try_from(distance).map_err(|_| BuildError::OutOfRange { at: *at, target })?;
            if let Some(i) = self.insns.get_mut(*at) {
                i.off = off;
            }
        }
        Ok(self.insns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(build: impl FnOnce(&mut Builder)) -> [u8; 8] {
        let mut b = Builder::new();
        build(&mut b);
        let insns = b.finish().expect("finishes");
        assert_eq!(insns.len(), 1);
        insns[0].to_bytes()
    }

    // Expected octets as in the kernel's documentation and `llvm-objdump -d` of
    // clang-built objects (little-endian host).

    #[test]
    fn alu64_with_immediate_and_register_encode_class_op_and_source() {
        assert_eq!(
            one(|b| {
                b.mov64_imm(Reg::R0, -1);
            }),
            [0xb7, 0x00, 0, 0, 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(
            one(|b| {
                b.mov64(Reg::R6, Reg::R1);
            }),
            [0xbf, 0x16, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            one(|b| {
                b.alu64_imm(Alu::Add, Reg::R2, -24);
            }),
            [0x07, 0x02, 0, 0, 0xe8, 0xff, 0xff, 0xff]
        );
        assert_eq!(
            one(|b| {
                b.alu64(Alu::Add, Reg::R1, Reg::R2);
            }),
            [0x0f, 0x21, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            one(|b| {
                b.alu64_imm(Alu::Rsh, Reg::R3, 32);
            }),
            [0x77, 0x03, 0, 0, 32, 0, 0, 0]
        );
    }

    #[test]
    fn alu32_uses_its_own_class() {
        assert_eq!(
            one(|b| {
                b.alu32_imm(Alu::And, Reg::R1, 0xffff);
            }),
            [0x54, 0x01, 0, 0, 0xff, 0xff, 0, 0]
        );
        assert_eq!(
            one(|b| {
                b.alu32(Alu::Xor, Reg::R4, Reg::R5);
            }),
            [0xac, 0x54, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn loads_and_stores_encode_size_mode_and_offset() {
        // r2 = *(u32 *)(r6 + 76): skb->data.
        assert_eq!(
            one(|b| {
                b.load(Size::W, Reg::R2, Reg::R6, 76);
            }),
            [0x61, 0x62, 76, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            one(|b| {
                b.load(Size::B, Reg::R1, Reg::R7, 14);
            }),
            [0x71, 0x71, 14, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            one(|b| {
                b.load(Size::H, Reg::R1, Reg::R7, 12);
            }),
            [0x69, 0x71, 12, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            one(|b| {
                b.load(Size::Dw, Reg::R1, Reg::R10, -8);
            }),
            [0x79, 0xa1, 0xf8, 0xff, 0, 0, 0, 0]
        );
        assert_eq!(
            one(|b| {
                b.store(Size::W, Reg::R10, -24, Reg::R1);
            }),
            [0x63, 0x1a, 0xe8, 0xff, 0, 0, 0, 0]
        );
        assert_eq!(
            one(|b| {
                b.store_imm(Size::W, Reg::R10, -4, 0);
            }),
            [0x62, 0x0a, 0xfc, 0xff, 0, 0, 0, 0]
        );
        assert_eq!(
            one(|b| {
                b.store(Size::H, Reg::R7, 4, Reg::R2);
            }),
            [0x6b, 0x27, 4, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            one(|b| {
                b.store(Size::B, Reg::R7, 21, Reg::R2);
            }),
            [0x73, 0x27, 21, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn atomic_add_is_stx_atomic_with_add_in_the_immediate() {
        // lock *(u64 *)(r0 + 0) += r1
        assert_eq!(
            one(|b| {
                b.atomic_add(Size::Dw, Reg::R0, 0, Reg::R1);
            }),
            [0xdb, 0x10, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn map_fd_load_takes_two_slots_with_the_pseudo_source() {
        let mut b = Builder::new();
        b.ld_map_fd(Reg::R1, 5);
        let insns = b.finish().expect("finishes");
        assert_eq!(insns.len(), 2);
        assert_eq!(insns[0].to_bytes(), [0x18, 0x11, 0, 0, 5, 0, 0, 0]);
        assert_eq!(insns[1].to_bytes(), [0; 8]);
    }

    #[test]
    fn a_64_bit_immediate_is_split_low_then_high() {
        let mut b = Builder::new();
        b.ld_imm64(Reg::R3, 0x1122_3344_5566_7788);
        let insns = b.finish().expect("finishes");
        assert_eq!(
            insns[0].to_bytes(),
            [0x18, 0x03, 0, 0, 0x88, 0x77, 0x66, 0x55]
        );
        assert_eq!(insns[1].to_bytes(), [0, 0, 0, 0, 0x44, 0x33, 0x22, 0x11]);
    }

    #[test]
    fn calls_and_exit_are_jump_class() {
        assert_eq!(
            one(|b| {
                b.call(1);
            }),
            [0x85, 0, 0, 0, 1, 0, 0, 0]
        );
        assert_eq!(
            one(|b| {
                b.exit();
            }),
            [0x95, 0, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn a_forward_jump_counts_the_instructions_it_skips() {
        let mut b = Builder::new();
        let out = b.label();
        b.jump_imm(Jmp::Ne, Reg::R1, 0x0608, out);
        b.mov64_imm(Reg::R0, 0);
        b.mov64_imm(Reg::R0, 1);
        b.bind(out);
        b.exit();
        let insns = b.finish().expect("finishes");
        assert_eq!(insns[0].to_bytes(), [0x55, 0x01, 2, 0, 0x08, 0x06, 0, 0]);
    }

    #[test]
    fn a_32_bit_jump_uses_the_jmp32_class() {
        let mut b = Builder::new();
        let out = b.label();
        b.jump32_imm(Jmp::Ne, Reg::R2, -1, out);
        b.bind(out);
        b.exit();
        let insns = b.finish().expect("finishes");
        assert_eq!(
            insns[0].to_bytes(),
            [0x56, 0x02, 0, 0, 0xff, 0xff, 0xff, 0xff]
        );
    }

    #[test]
    fn a_backward_jump_has_a_negative_offset_and_register_jumps_carry_src() {
        let mut b = Builder::new();
        let top = b.label();
        b.bind(top);
        b.mov64_imm(Reg::R0, 0);
        b.jump(Jmp::Gt, Reg::R2, Reg::R3, top);
        b.goto(top);
        let insns = b.finish().expect("finishes");
        assert_eq!(insns[1].to_bytes(), [0x2d, 0x32, 0xfe, 0xff, 0, 0, 0, 0]);
        assert_eq!(insns[2].to_bytes(), [0x05, 0x00, 0xfd, 0xff, 0, 0, 0, 0]);
    }

    #[test]
    fn a_jump_over_a_64_bit_load_skips_both_slots() {
        let mut b = Builder::new();
        let after = b.label();
        b.goto(after);
        b.ld_imm64(Reg::R1, 1);
        b.bind(after);
        b.exit();
        let insns = b.finish().expect("finishes");
        assert_eq!(insns[0].off, 2);
    }

    #[test]
    fn an_unbound_label_is_an_error() {
        let mut b = Builder::new();
        let nowhere = b.label();
        b.goto(nowhere);
        assert_eq!(b.finish(), Err(BuildError::Unbound(0)));
    }

    #[test]
    fn a_label_bound_twice_is_an_error() {
        let mut b = Builder::new();
        let l = b.label();
        b.bind(l);
        b.exit();
        b.bind(l);
        assert_eq!(b.finish(), Err(BuildError::BoundTwice(0)));
    }

    #[test]
    fn a_jump_beyond_an_i16_offset_is_out_of_range() {
        let mut b = Builder::new();
        let far = b.label();
        b.goto(far);
        for _ in 0..40_000 {
            b.mov64_imm(Reg::R0, 0);
        }
        b.bind(far);
        b.exit();
        assert!(matches!(b.finish(), Err(BuildError::OutOfRange { .. })));
    }
}
