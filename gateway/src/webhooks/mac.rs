//! HMAC-SHA256 keys (the `hmac` crate) and a constant-time comparison (the
//! `subtle` crate), shared by inbound webhook verification and outbound
//! webhook signing.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// A secret, ready to sign: the keyed state is computed once at load and
/// cloned per message.
#[derive(Clone)]
pub struct HmacKey {
    mac: Hmac<Sha256>,
}

impl HmacKey {
    /// The key for `secret` (any length; HMAC hashes a long one first).
    pub fn new(secret: &[u8]) -> HmacKey {
        HmacKey {
            // HMAC takes keys of any length: this cannot fail.
            mac: <Hmac<Sha256> as Mac>::new_from_slice(secret)
                .unwrap_or_else(|_| unreachable!("HMAC accepts any key length")),
        }
    }

    /// The MAC of the concatenation of `parts`.
    pub fn sign(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }
}

impl std::fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HmacKey(<redacted>)")
    }
}

/// Whether `a` and `b` are equal, in time that depends only on their
/// lengths (public: a signature's size), never on where they differ.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        switchyard_plugins::hex::encode(bytes)
    }

    #[test]
    fn rfc4231_test_cases() {
        // Case 1: a 20-byte key.
        let key = HmacKey::new(&[0x0b; 20]);
        assert_eq!(
            hex(&key.sign(&[b"Hi There"])),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        // Case 2: a short key, the message in two parts.
        let key = HmacKey::new(b"Jefe");
        assert_eq!(
            hex(&key.sign(&[b"what do ya want ", b"for nothing?"])),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Case 6: a key longer than a block is hashed first.
        let key = HmacKey::new(&[0xaa; 131]);
        assert_eq!(
            hex(&key.sign(&[b"Test Using Larger Than Block-Size Key - Hash Key First"])),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn constant_time_comparison_compares() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(ct_eq(b"", b""));
    }

    #[test]
    fn the_secret_is_redacted_from_debug() {
        assert_eq!(
            format!("{:?}", HmacKey::new(b"secret")),
            "HmacKey(<redacted>)"
        );
    }
}
