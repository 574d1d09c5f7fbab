//! Validity inside a block is one bool per row (`true`: valid), so null
//! propagation is a branch-free AND; at the edges of a block it is unpacked
//! from, and packed into, Arrow's LSB-first bitmaps.

use arrow_buffer::BooleanBuffer;

use super::registers::Reg;
use crate::ir::ops::select;

impl Reg<'_> {
    /// Validity = AND of the operands' validity (null propagation).
    #[inline(always)]
    pub(super) fn valid_from(&mut self, operands: &[Option<&[bool]>]) {
        let mut present = operands.iter().flatten();
        let Some(first) = present.next() else {
            self.has_nulls = false;
            return;
        };
        self.has_nulls = true;
        self.valid.clear();
        self.valid.extend_from_slice(first);
        for other in present {
            for (v, o) in self.valid.iter_mut().zip(other.iter()) {
                *v &= o;
            }
        }
    }

    /// Validity taken from `then` where `cond`, else from `otherwise`.
    #[inline(always)]
    pub(super) fn select_valid(
        &mut self,
        cond: &[bool],
        then: Option<&[bool]>,
        otherwise: Option<&[bool]>,
    ) {
        if then.is_none() && otherwise.is_none() {
            self.has_nulls = false;
            return;
        }
        self.has_nulls = true;
        self.valid.clear();
        let t = |i: usize| then.is_none_or(|v| v[i]);
        let f = |i: usize| otherwise.is_none_or(|v| v[i]);
        self.valid
            .extend((0..cond.len()).map(|i| select(cond[i], t(i), f(i))));
    }
}

/// Expand a bitmap into one bool per bit, a byte (through [`BYTE_BITS`]) at a time.
#[inline(always)]
pub(crate) fn unpack_bits(bits: &BooleanBuffer, out: &mut Vec<bool>) {
    out.clear();
    out.resize(bits.len(), false);
    let chunks = bits.inner().bit_chunks(bits.offset(), bits.len());
    let mut rows = out.chunks_exact_mut(64);
    for (row, word) in (&mut rows).zip(chunks.iter()) {
        for (eight, byte) in row.chunks_exact_mut(8).zip(word.to_le_bytes()) {
            eight.copy_from_slice(&BYTE_BITS[usize::from(byte)]);
        }
    }
    let rest = chunks.remainder_bits();
    for (j, row) in rows.into_remainder().iter_mut().enumerate() {
        *row = (rest >> j) & 1 == 1;
    }
}

/// Pack bools into a bitmap, least significant bit first.
#[inline(always)]
pub(super) fn pack_bits(valid: &[bool], out: &mut [u8]) {
    for (byte, eight) in out.iter_mut().zip(valid.chunks(8)) {
        *byte = eight
            .iter()
            .enumerate()
            .fold(0, |b, (k, &v)| b | (u8::from(v) << k));
    }
}

/// The bits of every byte value as bools, least significant first.
const BYTE_BITS: [[bool; 8]; 256] = {
    let mut table = [[false; 8]; 256];
    let mut byte = 0;
    while byte < 256 {
        let mut bit = 0;
        while bit < 8 {
            table[byte][bit] = (byte >> bit) & 1 == 1;
            bit += 1;
        }
        byte += 1;
    }
    table
};
