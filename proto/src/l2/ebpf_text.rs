//! Instructions as text, one line each, in the kernel verifier's notation
//! (`r1 = *(u32 *)(r6 +76)`, `if r2 != 0x0 goto L3`), so a change to the fast path program
//! reads as a diff of its golden listing. Pure; covers what `ebpf::Builder` emits, and prints
//! anything else as raw fields rather than guessing.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::ebpf::Insn;

/// The listing of `program`: one instruction a line, jump targets as labels `L1`, `L2`...
/// numbered in program order. No instruction indices: inserting an instruction changes the
/// lines it adds, not every line after it, so the golden diff shows the change itself.
pub fn listing(program: &[Insn]) -> String {
    let slots = slots(program);
    let targets: BTreeSet<usize> = slots
        .iter()
        .filter_map(|&at| jump_target(program.get(at)?, at))
        .collect();
    let label = |at: usize| {
        targets
            .iter()
            .position(|&t| t == at)
            .map_or_else(|| format!("#{at}"), |n| format!("L{}", n + 1))
    };
    let mut out = String::new();
    for &at in &slots {
        if targets.contains(&at) {
            let _ = writeln!(out, "{}:", label(at));
        }
        if let Some(insn) = program.get(at) {
            let target = jump_target(insn, at).map(label).unwrap_or_default();
            let _ = writeln!(out, "    {}", one(insn, program.get(at + 1), &target));
        }
    }
    out
}

/// Where each instruction starts (`ld_imm64` takes two slots).
fn slots(program: &[Insn]) -> Vec<usize> {
    let mut starts = Vec::with_capacity(program.len());
    let mut at = 0;
    while let Some(insn) = program.get(at) {
        starts.push(at);
        at += if insn.code == 0x18 { 2 } else { 1 };
    }
    starts
}

/// The slot a jump at `at` goes to; `None` for anything that is not a jump.
fn jump_target(insn: &Insn, at: usize) -> Option<usize> {
    let class = insn.code & 0x07;
    let op = insn.code & 0xf0;
    let is_jump = matches!(class, 0x05 | 0x06) && op != 0x80 && op != 0x90;
    let target = at as i64 + 1 + i64::from(insn.off);
    is_jump.then(|| usize::try_from(target).ok()).flatten()
}

/// One instruction's text; `target` names its jump target.
fn one(insn: &Insn, next: Option<&Insn>, target: &str) -> String {
    let dst = insn.regs & 0x0f;
    let src = insn.regs >> 4;
    let by_register = insn.code & 0x08 != 0;
    let operand = |wide: bool| match (by_register, wide) {
        (true, true) => format!("r{src}"),
        (true, false) => format!("w{src}"),
        (false, _) => format!("{:#x}", insn.imm),
    };
    match insn.code & 0x07 {
        0x07 | 0x04 => {
            let wide = insn.code & 0x07 == 0x07;
            let r = if wide { 'r' } else { 'w' };
            match alu(insn.code & 0xf0) {
                Some("=") => format!("{r}{dst} = {}", operand(wide)),
                Some(op) => format!("{r}{dst} {op}= {}", operand(wide)),
                None => raw(insn),
            }
        }
        class @ (0x05 | 0x06) => match (insn.code & 0xf0, jump(insn.code & 0xf0)) {
            (0x00, _) => format!("goto {target}"),
            (0x80, _) => format!("call {}", insn.imm),
            (0x90, _) => "exit".to_owned(),
            (_, Some(op)) => {
                let r = if class == 0x05 { 'r' } else { 'w' };
                format!("if {r}{dst} {op} {} goto {target}", operand(class == 0x05))
            }
            _ => raw(insn),
        },
        0x01 if insn.code & 0xe0 == 0x60 => {
            format!("r{dst} = *({} *)(r{src} {:+})", size(insn.code), insn.off)
        }
        0x02 if insn.code & 0xe0 == 0x60 => format!(
            "*({} *)(r{dst} {:+}) = {:#x}",
            size(insn.code),
            insn.off,
            insn.imm
        ),
        0x03 if insn.code & 0xe0 == 0x60 => {
            format!("*({} *)(r{dst} {:+}) = r{src}", size(insn.code), insn.off)
        }
        0x03 if insn.code & 0xe0 == 0xc0 && insn.imm == 0 => format!(
            "lock *({} *)(r{dst} {:+}) += r{src}",
            size(insn.code),
            insn.off
        ),
        0x00 if insn.code == 0x18 => {
            let high = next.map_or(0, |n| n.imm as u32);
            let value = (u64::from(high) << 32) | u64::from(insn.imm as u32);
            match src {
                1 => format!("r{dst} = map_fd {}", insn.imm),
                _ => format!("r{dst} = {value:#x} ll"),
            }
        }
        _ => raw(insn),
    }
}

fn alu(op: u8) -> Option<&'static str> {
    Some(match op {
        0x00 => "+",
        0x10 => "-",
        0x20 => "*",
        0x30 => "/",
        0x40 => "|",
        0x50 => "&",
        0x60 => "<<",
        0x70 => ">>",
        0x90 => "%",
        0xa0 => "^",
        0xb0 => "=",
        0xc0 => "s>>",
        _ => return None,
    })
}

fn jump(op: u8) -> Option<&'static str> {
    Some(match op {
        0x10 => "==",
        0x20 => ">",
        0x30 => ">=",
        0x40 => "&",
        0x50 => "!=",
        0x60 => "s>",
        0x70 => "s>=",
        0xa0 => "<",
        0xb0 => "<=",
        0xc0 => "s<",
        0xd0 => "s<=",
        _ => return None,
    })
}

fn size(code: u8) -> &'static str {
    match code & 0x18 {
        0x00 => "u32",
        0x08 => "u16",
        0x10 => "u8",
        _ => "u64",
    }
}

fn raw(insn: &Insn) -> String {
    format!("raw {insn:?}")
}

#[cfg(test)]
mod tests {
    use super::super::ebpf::{Alu, Builder, Jmp, Reg, Size};
    use super::*;

    #[test]
    fn every_instruction_the_builder_emits_reads_in_verifier_notation() {
        let mut b = Builder::new();
        let end = b.label();
        b.mov64(Reg::R6, Reg::R1)
            .load(Size::W, Reg::R2, Reg::R6, 76)
            .alu64_imm(Alu::Add, Reg::R2, 14)
            .alu32_imm(Alu::And, Reg::R3, 0xff)
            .store_imm(Size::H, Reg::R10, -8, 0x806)
            .store(Size::B, Reg::R10, -1, Reg::R2)
            .atomic_add(Size::Dw, Reg::R0, 0, Reg::R1)
            .ld_map_fd(Reg::R1, 7)
            .ld_imm64(Reg::R4, 0x1_0000_0002)
            .jump_imm(Jmp::Ne, Reg::R2, 0, end)
            .jump32_imm(Jmp::Eq, Reg::R3, 5, end)
            .call(23)
            .goto(end);
        b.bind(end);
        b.exit();
        let program = b.finish().expect("a complete program");
        let expected = "    r6 = r1
    r2 = *(u32 *)(r6 +76)
    r2 += 0xe
    w3 &= 0xff
    *(u16 *)(r10 -8) = 0x806
    *(u8 *)(r10 -1) = r2
    lock *(u64 *)(r0 +0) += r1
    r1 = map_fd 7
    r4 = 0x100000002 ll
    if r2 != 0x0 goto L1
    if w3 == 0x5 goto L1
    call 23
    goto L1
L1:
    exit
";
        assert_eq!(listing(&program), expected);
    }

    #[test]
    fn an_instruction_it_does_not_know_is_printed_raw() {
        let unknown = Insn {
            code: 0xff,
            regs: 0x21,
            off: 3,
            imm: 9,
        };
        assert_eq!(listing(&[unknown]), "    raw ff r1 r2 +3 0x9\n");
    }
}
