//! The Internet checksum (RFC 1071) and the ICMPv6 pseudo-header sum (RFC 8200 §8.1).
//!
//! Pure arithmetic on byte slices; never panics.

use std::net::Ipv6Addr;

/// ICMPv6's next-header value, part of the pseudo-header.
const NEXT_HEADER_ICMPV6: u8 = 58;

/// Adds `data` as big-endian 16-bit words to `sum` (an odd last byte is padded with zero).
fn add_words(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for pair in &mut chunks {
        sum = sum.wrapping_add(u32::from(u16::from_be_bytes([pair[0], pair[1]])));
        sum = (sum & 0xffff) + (sum >> 16);
    }
    if let [last] = chunks.remainder() {
        sum = sum.wrapping_add(u32::from(*last) << 8);
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum
}

/// Folds a running sum into 16 bits and complements it.
fn finish(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The ICMPv6 checksum of `message` (the checksum field included as it stands) sent
/// from `src` to `dst`. Computing it over a message whose checksum field is zero gives
/// the value to store; computing it over a received message gives 0 when it is valid.
pub fn icmpv6(src: Ipv6Addr, dst: Ipv6Addr, message: &[u8]) -> u16 {
    let mut sum = add_words(0, &src.octets());
    sum = add_words(sum, &dst.octets());
    // Upper-layer packet length (32 bits) and next header (zero-padded to 32 bits).
    let len = u32::try_from(message.len()).unwrap_or(u32::MAX);
    sum = add_words(sum, &len.to_be_bytes());
    sum = add_words(sum, &[0, 0, 0, NEXT_HEADER_ICMPV6]);
    sum = add_words(sum, message);
    finish(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example_words_sum_as_documented() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (checksum 220d).
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(finish(add_words(0, &data)), !0xddf2);
    }

    #[test]
    fn odd_length_data_is_padded_with_zero() {
        assert_eq!(add_words(0, &[0x12]), 0x1200);
    }

    #[test]
    fn a_message_carrying_its_checksum_sums_to_zero() {
        let src: Ipv6Addr = "fe80::1".parse().expect("literal");
        let dst: Ipv6Addr = "ff02::1".parse().expect("literal");
        let mut msg = vec![136, 0, 0, 0, 0x20, 0, 0, 0, 1, 2, 3];
        let c = icmpv6(src, dst, &msg);
        msg[2..4].copy_from_slice(&c.to_be_bytes());
        assert_eq!(icmpv6(src, dst, &msg), 0);
    }
}
