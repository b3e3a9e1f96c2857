//! Rule V6, the one signature rule (spec/PROTOCOL.md §1.3): cofactored ed25519
//! with canonical encodings and no small-order key or `R`.
//!
//! A signature `(R, S)` by key `A` over message `M` is valid iff
//! 1. `S` is a canonical scalar (`S < L`);
//! 2. `A` and `R` are canonical point encodings (`y < p`) that decode, and
//!    neither is of small order;
//! 3. `[8]([S]B − [k]A − R)` is the identity, where `k = SHA-512(R ‖ A ‖ M) mod L`.
//!
//! A batch checks `[8](Σ zᵢ([Sᵢ]B − [kᵢ]Aᵢ − Rᵢ))` with 128-bit coefficients
//! `zᵢ` derived from the batch's own bytes (no randomness). Multiplying by the
//! cofactor removes every small-order component, so each term lies in the
//! prime-order subgroup: when every signature is valid singly, every term is
//! the identity and the batch holds whatever the coefficients; when one is not,
//! the batch fails except with probability 2⁻¹²⁸. A failing batch is re-checked
//! one signature at a time, so the verdict on each entry is the single check's.

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use sha2::{Digest, Sha512};

/// Domain of the keyed hash that derives a batch's coefficients.
const BATCH_DOMAIN: &str = "feedmesh 2026 batch verification coefficients v1";

/// One signature to check: the signer's key, the signature and the message,
/// all as bytes.
#[derive(Clone, Copy, Debug)]
pub struct SignedMessage<'a> {
    /// The signer's public key (the feed id).
    pub key: &'a [u8; 32],
    /// The signature `R ‖ S`.
    pub signature: &'a [u8; 64],
    /// The signed message.
    pub message: &'a [u8],
}

/// Why a signature is not valid under the rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureFault {
    /// `S` is not below the group order `L`.
    #[error("S is not canonical")]
    NonCanonicalS,
    /// The key's encoding is non-canonical (`y ≥ p`) or not a curve point.
    #[error("the key is not a canonical point encoding")]
    BadKeyEncoding,
    /// The key is a point of small order.
    #[error("the key is of small order")]
    SmallOrderKey,
    /// `R`'s encoding is non-canonical (`y ≥ p`) or not a curve point.
    #[error("R is not a canonical point encoding")]
    BadREncoding,
    /// `R` is a point of small order.
    #[error("R is of small order")]
    SmallOrderR,
    /// The cofactored equation does not hold.
    #[error("the verification equation does not hold")]
    Equation,
}

/// A signature whose encodings passed checks 1 and 2, ready for the equation.
struct Decoded {
    key: EdwardsPoint,
    r: EdwardsPoint,
    s: Scalar,
    k: Scalar,
}

/// Checks one signature under the rule.
pub fn check(signed: &SignedMessage<'_>) -> Result<(), SignatureFault> {
    let d = decode(signed, decode_key(signed.key)?)?;
    let sb_minus_ka = EdwardsPoint::vartime_double_scalar_mul_basepoint(&-d.k, &d.key, &d.s);
    if (sb_minus_ka - d.r).mul_by_cofactor().is_identity() {
        Ok(())
    } else {
        Err(SignatureFault::Equation)
    }
}

/// Whether every signature holds, checked in one batch. `true` exactly when
/// [`check`] accepts each of them (except with probability 2⁻¹²⁸ for a batch
/// holding an invalid one); callers re-check singly on `false` to name it.
pub fn batch_holds(batch: &[SignedMessage<'_>]) -> bool {
    let mut decoded = Vec::with_capacity(batch.len());
    // Batches are mostly runs of one feed: decode each run's key once.
    let mut last_key: Option<(&[u8; 32], EdwardsPoint)> = None;
    for signed in batch {
        let key = match last_key {
            Some((bytes, point)) if bytes == signed.key => point,
            _ => match decode_key(signed.key) {
                Ok(point) => last_key.insert((signed.key, point)).1,
                Err(_) => return false,
            },
        };
        match decode(signed, key) {
            Ok(d) => decoded.push((signed, d)),
            Err(_) => return false,
        }
    }
    let coefficients = coefficients(&decoded);
    // Σ zᵢSᵢ·B − Σ_A (Σ_{i: Aᵢ=A} zᵢkᵢ)·A − Σ zᵢ·Rᵢ, one point per distinct key.
    let mut base = Scalar::ZERO;
    let mut keys: Vec<(&[u8; 32], EdwardsPoint, Scalar)> = Vec::new();
    let mut scalars = Vec::with_capacity(batch.len() + 2);
    let mut points = Vec::with_capacity(batch.len() + 2);
    for ((signed, d), z) in decoded.iter().zip(&coefficients) {
        let key_bytes = signed.key;
        base += z * d.s;
        let zk = z * d.k;
        match keys.iter_mut().rev().find(|(bytes, _, _)| *bytes == key_bytes) {
            Some((_, _, sum)) => *sum += zk,
            None => keys.push((key_bytes, d.key, zk)),
        }
        scalars.push(-z);
        points.push(d.r);
    }
    scalars.push(base);
    points.push(ED25519_BASEPOINT_POINT);
    for (_, point, sum) in keys {
        scalars.push(-sum);
        points.push(point);
    }
    EdwardsPoint::vartime_multiscalar_mul(&scalars, &points)
        .mul_by_cofactor()
        .is_identity()
}

/// Check 2 for the key.
fn decode_key(bytes: &[u8; 32]) -> Result<EdwardsPoint, SignatureFault> {
    let key = decode_point(bytes).ok_or(SignatureFault::BadKeyEncoding)?;
    if key.is_small_order() {
        return Err(SignatureFault::SmallOrderKey);
    }
    Ok(key)
}

/// Checks 1 and 2 for `R ‖ S` (the key is decoded already), and the challenge `k`.
fn decode(signed: &SignedMessage<'_>, key: EdwardsPoint) -> Result<Decoded, SignatureFault> {
    let (r_bytes, s_bytes) = signed.signature.split_at(32);
    let r_bytes: [u8; 32] = r_bytes.try_into().expect("32 bytes");
    let s_bytes: [u8; 32] = s_bytes.try_into().expect("32 bytes");
    let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes)).ok_or(SignatureFault::NonCanonicalS)?;
    let r = decode_point(&r_bytes).ok_or(SignatureFault::BadREncoding)?;
    if r.is_small_order() {
        return Err(SignatureFault::SmallOrderR);
    }
    let hash = Sha512::new()
        .chain_update(r_bytes)
        .chain_update(signed.key)
        .chain_update(signed.message)
        .finalize();
    let k = Scalar::from_bytes_mod_order_wide(&hash.into());
    Ok(Decoded { key, r, s, k })
}

/// Decodes a point encoding, refusing the non-canonical ones (`y ≥ p`).
fn decode_point(bytes: &[u8; 32]) -> Option<EdwardsPoint> {
    if !y_is_canonical(bytes) {
        return None;
    }
    CompressedEdwardsY(*bytes).decompress()
}

/// Whether the low 255 bits, read little-endian, are below `p = 2²⁵⁵ − 19`.
fn y_is_canonical(bytes: &[u8; 32]) -> bool {
    // y ≥ p exactly when bits 0..255 are 0x7fff…ffed or above: the top byte
    // (without the sign bit) and the 30 middle bytes are all ones, and the
    // lowest byte is at least 0xed.
    let top_all_ones = bytes[31] & 0x7f == 0x7f;
    let middle_all_ones = bytes[1..31].iter().all(|&b| b == 0xff);
    !(top_all_ones && middle_all_ones && bytes[0] >= 0xed)
}

/// The coefficients `zᵢ`: 128 bits each, from a keyed BLAKE3 XOF over every
/// signature's key, `R ‖ S` and challenge, so they depend on the whole batch.
fn coefficients(decoded: &[(&SignedMessage<'_>, Decoded)]) -> Vec<Scalar> {
    let mut hasher = blake3::Hasher::new_derive_key(BATCH_DOMAIN);
    hasher.update(&(decoded.len() as u64).to_le_bytes());
    for (signed, d) in decoded {
        hasher.update(signed.key);
        hasher.update(signed.signature);
        hasher.update(d.k.as_bytes());
    }
    let mut output = hasher.finalize_xof();
    decoded
        .iter()
        .map(|_| {
            let mut wide = [0u8; 32];
            output.fill(&mut wide[..16]);
            Scalar::from_bytes_mod_order(wide)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_y_boundary() {
        let mut p = [0xffu8; 32];
        p[31] = 0x7f;
        p[0] = 0xed;
        assert!(!y_is_canonical(&p), "p itself is not canonical");
        p[0] = 0xec;
        assert!(y_is_canonical(&p), "p − 1 is canonical");
        p[31] = 0xff;
        assert!(y_is_canonical(&p), "the sign bit does not count");
        p[0] = 0xee;
        assert!(!y_is_canonical(&p), "p + 1 with the sign bit set is not canonical");
    }
}
