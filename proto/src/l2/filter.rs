//! Classic BPF programs that keep only the frames the responder may answer, so the
//! kernel discards everything else before it reaches user space.
//!
//! Each program: drop frames whose VLAN tag was stripped into metadata (they belong to
//! a VLAN sub-interface, not to this one), check the EtherType, then a few fields, and
//! accept. Pure: builds instruction lists; `sys` attaches them.

/// One classic BPF instruction (`struct sock_filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instruction {
    /// Opcode.
    pub code: u16,
    /// Jump offset when the comparison is true.
    pub jt: u8,
    /// Jump offset when the comparison is false.
    pub jf: u8,
    /// Operand.
    pub k: u32,
}

const BPF_LD: u16 = 0x00;
const BPF_W: u16 = 0x00;
const BPF_H: u16 = 0x08;
const BPF_B: u16 = 0x10;
const BPF_ABS: u16 = 0x20;
const BPF_JMP: u16 = 0x05;
const BPF_JEQ: u16 = 0x10;
const BPF_K: u16 = 0x00;
const BPF_RET: u16 = 0x06;

/// SKF_AD_OFF + SKF_AD_VLAN_TAG_PRESENT: loads 1 when the frame carried a VLAN tag.
const VLAN_TAG_PRESENT: u32 = (-0x1000i32 + 48) as u32;
/// Bytes of an accepted frame to pass up (all of it).
const ACCEPT_LEN: u32 = 0x0004_0000;

/// Width of a field to compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    /// One octet.
    Byte,
    /// Two octets, big-endian.
    Half,
}

/// A field of the frame (offset from the start of the Ethernet header) and the value it
/// must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    /// Octet offset from the Ethernet destination address.
    pub offset: u32,
    /// Field width.
    pub width: Width,
    /// Required value.
    pub value: u32,
}

/// Accepts untagged frames whose every `checks` field has its value; drops the rest.
pub fn program(checks: &[Check]) -> Vec<Instruction> {
    // Each check (and the VLAN test) is a load and a jump; then accept, then drop.
    let pairs = checks.len() + 1;
    let mut out = Vec::with_capacity(pairs * 2 + 2);
    let mut push_test = |load: Instruction, value: u32, pair: usize| {
        // From the jump of pair `pair`, skip the remaining pairs and the accept.
        let to_drop = (pairs - pair - 1) * 2 + 1;
        out.push(load);
        out.push(Instruction {
            code: BPF_JMP | BPF_JEQ | BPF_K,
            jt: 0,
            jf: u8::try_from(to_drop).unwrap_or(u8::MAX),
            k: value,
        });
    };
    let vlan = Instruction {
        code: BPF_LD | BPF_W | BPF_ABS,
        jt: 0,
        jf: 0,
        k: VLAN_TAG_PRESENT,
    };
    push_test(vlan, 0, 0);
    for (i, c) in checks.iter().enumerate() {
        let size = match c.width {
            Width::Byte => BPF_B,
            Width::Half => BPF_H,
        };
        let load = Instruction {
            code: BPF_LD | size | BPF_ABS,
            jt: 0,
            jf: 0,
            k: c.offset,
        };
        push_test(load, c.value, i + 1);
    }
    out.push(Instruction {
        code: BPF_RET | BPF_K,
        jt: 0,
        jf: 0,
        k: ACCEPT_LEN,
    });
    out.push(Instruction {
        code: BPF_RET | BPF_K,
        jt: 0,
        jf: 0,
        k: 0,
    });
    out
}

/// ARP requests: EtherType 0x0806 and operation 1.
pub fn arp_requests() -> Vec<Instruction> {
    program(&[
        Check {
            offset: 12,
            width: Width::Half,
            value: 0x0806,
        },
        Check {
            offset: 20,
            width: Width::Half,
            value: 1,
        },
    ])
}

/// Neighbour solicitations: EtherType 0x86dd, next header 58 (no extension headers),
/// ICMPv6 type 135.
pub fn neighbor_solicitations() -> Vec<Instruction> {
    program(&[
        Check {
            offset: 12,
            width: Width::Half,
            value: 0x86dd,
        },
        Check {
            offset: 20,
            width: Width::Byte,
            value: 58,
        },
        Check {
            offset: 54,
            width: Width::Byte,
            value: 135,
        },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the subset of classic BPF that `program` emits; `vlan` is the metadata value.
    fn run(prog: &[Instruction], frame: &[u8], vlan: u32) -> u32 {
        let mut acc = 0u32;
        let mut pc = 0usize;
        loop {
            let Some(i) = prog.get(pc) else { return 0 };
            match i.code {
                c if c == BPF_RET | BPF_K => return i.k,
                c if c == BPF_JMP | BPF_JEQ | BPF_K => {
                    pc += 1 + usize::from(if acc == i.k { i.jt } else { i.jf });
                    continue;
                }
                c if c == BPF_LD | BPF_W | BPF_ABS && i.k == VLAN_TAG_PRESENT => acc = vlan,
                c if c == BPF_LD | BPF_H | BPF_ABS => {
                    let at = i.k as usize;
                    match frame.get(at..at + 2) {
                        Some(b) => acc = u32::from(u16::from_be_bytes([b[0], b[1]])),
                        None => return 0,
                    }
                }
                c if c == BPF_LD | BPF_B | BPF_ABS => match frame.get(i.k as usize) {
                    Some(b) => acc = u32::from(*b),
                    None => return 0,
                },
                other => panic!("unexpected opcode {other:#x}"),
            }
            pc += 1;
        }
    }

    fn arp_request() -> Vec<u8> {
        let mut f = vec![0xff; 12];
        f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
        f.resize(42, 0);
        f
    }

    fn ns() -> Vec<u8> {
        let mut f = vec![0x33; 12];
        f.extend_from_slice(&[0x86, 0xdd]);
        f.resize(86, 0);
        f[20] = 58;
        f[54] = 135;
        f
    }

    #[test]
    fn arp_filter_accepts_untagged_requests_only() {
        let prog = arp_requests();
        assert_eq!(run(&prog, &arp_request(), 0), ACCEPT_LEN);
        assert_eq!(run(&prog, &arp_request(), 1), 0, "VLAN-tagged");
        let mut reply = arp_request();
        reply[21] = 2;
        assert_eq!(run(&prog, &reply, 0), 0, "reply");
        assert_eq!(run(&prog, &ns(), 0), 0, "IPv6");
        assert_eq!(run(&prog, &arp_request()[..20], 0), 0, "runt");
    }

    #[test]
    fn ns_filter_accepts_untagged_solicitations_only() {
        let prog = neighbor_solicitations();
        assert_eq!(run(&prog, &ns(), 0), ACCEPT_LEN);
        assert_eq!(run(&prog, &ns(), 1), 0, "VLAN-tagged");
        let mut na = ns();
        na[54] = 136;
        assert_eq!(run(&prog, &na, 0), 0, "advertisement");
        let mut hop_by_hop = ns();
        hop_by_hop[20] = 0;
        assert_eq!(run(&prog, &hop_by_hop, 0), 0, "extension header");
        assert_eq!(run(&prog, &arp_request(), 0), 0, "ARP");
    }

    #[test]
    fn every_jump_lands_inside_the_program() {
        for prog in [arp_requests(), neighbor_solicitations()] {
            for (pc, i) in prog.iter().enumerate() {
                if i.code == BPF_JMP | BPF_JEQ | BPF_K {
                    assert!(pc + 1 + usize::from(i.jf) < prog.len());
                    assert!(pc + 1 + usize::from(i.jt) < prog.len());
                }
            }
        }
    }
}
