//! Checking that an ELF executable is statically linked (no `PT_INTERP`),
//! without depending on the `file` command.

/// `true` if `bytes` is a 64-bit little-endian ELF without a program
/// interpreter, `false` if it has one, `None` if it is not such an ELF.
pub fn is_static(bytes: &[u8]) -> Option<bool> {
    if bytes.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let u16_at = |o: usize| Some(u16::from_le_bytes(bytes.get(o..o + 2)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(bytes.get(o..o + 8)?.try_into().ok()?));
    let phoff = usize::try_from(u64_at(0x20)?).ok()?;
    let (phentsize, phnum) = (usize::from(u16_at(0x36)?), usize::from(u16_at(0x38)?));
    for i in 0..phnum {
        let p_type = u32::from_le_bytes(
            bytes
                .get(phoff + i * phentsize..)?
                .get(..4)?
                .try_into()
                .ok()?,
        );
        if p_type == 3 {
            return Some(false); // PT_INTERP
        }
    }
    Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_dynamic_and_non_elf() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(
            is_static(&me),
            Some(false),
            "test binaries are dynamically linked"
        );
        assert_eq!(is_static(b"#!/bin/sh\n"), None);
    }

    fn synthetic(p_types: &[u32]) -> Vec<u8> {
        let mut b = vec![0u8; 0x40];
        b[..6].copy_from_slice(b"\x7fELF\x02\x01");
        b[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes());
        b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        b[0x38..0x3a].copy_from_slice(&(p_types.len() as u16).to_le_bytes());
        for t in p_types {
            let mut ph = vec![0u8; 56];
            ph[..4].copy_from_slice(&t.to_le_bytes());
            b.extend(ph);
        }
        b
    }

    #[test]
    fn synthetic_headers() {
        assert_eq!(is_static(&synthetic(&[6, 1, 1])), Some(true));
        assert_eq!(is_static(&synthetic(&[6, 3, 1])), Some(false));
        assert_eq!(is_static(&synthetic(&[6, 3])[..0x50]), None, "truncated");
    }
}
