//! The host's objective: f64 passes over a [`Design`] in fixed row blocks.

use std::ops::Range;

use super::{Objective, Order, Precision, Sums};
use crate::error::Result;
use crate::ir::math::softmax;
use crate::ml::design::Design;
use crate::ml::elementary::logistic_loss_and_sigmoid;
use crate::ml::gram::hessian_gram;
#[cfg(target_arch = "x86_64")]
use crate::ml::pass::avx2_fma;
use crate::ml::pass::{add_into, dot, fold_blocks, symmetrize};

/// Rows of one slice of a pass's block: the slice's columns (1024 rows of
/// 33 f64 columns, 270 KB) stay in a core's L2 cache while each sibling's
/// evaluation reads them.
const ROWS_PER_SLICE: usize = 1024;

/// The optimization problem: data, target and penalty; parameters are
/// `outputs x (features + 1)`, each output's weights followed by its intercept.
pub(super) struct Problem<'a> {
    x: &'a Design,
    y: &'a [u32],
    outputs: usize,
    ones: Vec<f64>,
}

impl<'a> Problem<'a> {
    pub(super) fn new(x: &'a Design, y: &'a [u32], classes: usize) -> Self {
        Problem {
            x,
            y,
            outputs: outputs(classes),
            ones: vec![1.0; x.rows],
        }
    }

    fn width(&self) -> usize {
        self.x.width() + 1
    }
}

/// Outputs of a model of `classes` classes: one sigmoid for two, else one per class.
pub fn outputs(classes: usize) -> usize {
    if classes == 2 { 1 } else { classes }
}

impl Objective for Problem<'_> {
    fn outputs(&self) -> usize {
        self.outputs
    }

    fn features(&self) -> usize {
        self.x.width()
    }

    fn rows(&self) -> usize {
        self.x.rows
    }

    fn precision(&self) -> Precision {
        Precision::F64
    }

    /// One parallel pass for the loss (and what else `order` asks for) at
    /// `theta`, accumulated in f64 in a fixed block order.
    fn evaluate(&self, theta: &[f64], order: Order) -> Result<Sums> {
        Ok(self.evaluate_many(&[(theta, order)]).remove(0))
    }
}

impl Problem<'_> {
    /// The sums at each of `requests` (parameters, order) in one
    /// pass over the rows: each row block is read once for all of them, and
    /// each request's sums are exactly what [`Objective::evaluate`] alone
    /// gives.
    pub(super) fn evaluate_many(&self, requests: &[(&[f64], Order)]) -> Vec<Sums> {
        let (m, d) = (self.outputs * self.width(), self.x.width());
        let mut cols: Vec<&[f64]> = (0..d).map(|j| self.x.column(j)).collect();
        cols.push(&self.ones);
        // Each block in slices small enough to stay in the core's cache
        // while every request reads them.
        let block = |range: Range<usize>| -> Vec<Vec<f64>> {
            let mut sums = vec![Vec::new(); requests.len()];
            for start in range.clone().step_by(ROWS_PER_SLICE) {
                let slice = start..(start + ROWS_PER_SLICE).min(range.end);
                for (sums, &(theta, order)) in sums.iter_mut().zip(requests) {
                    let part = self.block_sums(theta, &cols, slice.clone(), order);
                    add_into(sums, part);
                }
            }
            sums
        };
        let combine = |acc: &mut Vec<Vec<f64>>, part: Vec<Vec<f64>>| match acc.is_empty() {
            true => *acc = part,
            false => acc.iter_mut().zip(part).for_each(|(a, p)| add_into(a, p)),
        };
        let mut sums = fold_blocks(self.x.rows, block, combine, Vec::new());
        sums.resize(requests.len(), Vec::new());
        let unpack = |(mut sums, &(_, order)): (Vec<f64>, &(&[f64], Order))| {
            let (gradient, hessian) = match order {
                Order::Loss => (0, 0),
                Order::Gradient => (m, 0),
                Order::Hessian => (m, m * m),
            };
            sums.resize(1 + gradient + hessian, 0.0);
            let mut hessian = sums[1 + gradient..].to_vec();
            if order == Order::Hessian {
                symmetrize(&mut hessian, m);
            }
            Sums {
                loss: sums[0],
                gradient: sums[1..1 + gradient].to_vec(),
                hessian,
            }
        };
        sums.into_iter().zip(requests).map(unpack).collect()
    }

    /// One block's sums, `[loss, gradient.., hessian..]` (as far as `order`
    /// asks); `cols` are the feature columns then
    /// the column of ones. Compiled for AVX2 where the CPU has it, with the
    /// same answer to the bit (see [`avx2_fma`]).
    fn block_sums(
        &self,
        theta: &[f64],
        cols: &[&[f64]],
        range: Range<usize>,
        order: Order,
    ) -> Vec<f64> {
        #[cfg(target_arch = "x86_64")]
        if avx2_fma() {
            // SAFETY: the running CPU supports AVX2 and FMA, checked just above.
            return unsafe { self.block_sums_avx2(theta, cols, range, order) };
        }
        self.block_sums_body(theta, cols, range, order)
    }

    /// [`Problem::block_sums_body`] compiled for AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn block_sums_avx2(
        &self,
        theta: &[f64],
        cols: &[&[f64]],
        range: Range<usize>,
        order: Order,
    ) -> Vec<f64> {
        self.block_sums_body(theta, cols, range, order)
    }

    #[inline(always)]
    fn block_sums_body(
        &self,
        theta: &[f64],
        cols: &[&[f64]],
        range: Range<usize>,
        order: Order,
    ) -> Vec<f64> {
        let (k, w) = (self.outputs, self.width());
        let len = range.len();
        let z = linear_predictors(theta, &cols[..w - 1], range.clone(), k);
        let y = &self.y[range.clone()];
        let (loss, p) = probabilities(&z, y, k, &self.ones[..len]);
        let mut out = vec![loss];
        if order == Order::Loss {
            return out;
        }
        // Residuals r = p - onehot(y) per output.
        let mut r = p.clone();
        for (i, &yi) in y.iter().enumerate() {
            let target = if k == 1 { 0 } else { yi as usize };
            if k > 1 || yi == 1 {
                r[target * len + i] -= 1.0;
            }
        }
        for a in 0..k {
            let ra = &r[a * len..(a + 1) * len];
            // A loop, not an iterator adapter, so that `dot` is compiled
            // into this function (and for AVX2 with it).
            for c in cols {
                out.push(dot(ra, &c[range.clone()]));
            }
        }
        if order == Order::Hessian {
            let local: Vec<&[f64]> = cols.iter().map(|c| &c[range.clone()]).collect();
            out.extend(hessian_blocks(&p, &local, k, len));
        }
        out
    }
}

/// The linear predictors of the rows in `range`, one run of rows per output:
/// `z[a * len + i] = theta_a · x_i + intercept_a`.
#[inline(always)]
fn linear_predictors(
    theta: &[f64],
    features: &[&[f64]],
    range: Range<usize>,
    k: usize,
) -> Vec<f64> {
    let (d, len) = (features.len(), range.len());
    let w = d + 1;
    let mut z = vec![0.0; k * len];
    for a in 0..k {
        let za = &mut z[a * len..(a + 1) * len];
        za.fill(theta[a * w + d]);
        // Four columns per sweep over `za`: a quarter of its loads and stores.
        let mut groups = features.chunks_exact(4);
        for (g, group) in (&mut groups).enumerate() {
            let wj: [f64; 4] = std::array::from_fn(|q| theta[a * w + 4 * g + q]);
            let [c0, c1, c2, c3]: [&[f64]; 4] = std::array::from_fn(|q| &group[q][range.clone()]);
            let rows = za.iter_mut().zip(c0).zip(c1).zip(c2).zip(c3);
            rows.for_each(|((((z, x0), x1), x2), x3)| {
                *z += (wj[0] * x0 + wj[1] * x1) + (wj[2] * x2 + wj[3] * x3);
            });
        }
        let done = d - groups.remainder().len();
        for (j, col) in groups.remainder().iter().enumerate() {
            let wj = theta[a * w + done + j];
            za.iter_mut()
                .zip(&col[range.clone()])
                .for_each(|(z, x)| *z += wj * x);
        }
    }
    z
}

/// The summed loss of `len` rows and their predicted probabilities, laid out
/// like `z` (a sigmoid for one output, else a softmax).
#[inline(always)]
fn probabilities(z: &[f64], y: &[u32], k: usize, ones: &[f64]) -> (f64, Vec<f64>) {
    let len = ones.len();
    let mut loss = 0.0;
    let mut p = vec![0.0; z.len()];
    if k == 1 {
        // Each row's loss kept apart, so that the loop vectorizes (no
        // running sum), then summed in lanes in a fixed order.
        let mut losses = vec![0.0; len];
        for i in 0..len {
            (losses[i], p[i]) = logistic_loss_and_sigmoid(z[i], f64::from(y[i]));
        }
        loss = dot(&losses, ones);
    } else {
        let (mut zi, mut pi) = (vec![0.0; k], vec![0.0; k]);
        for i in 0..len {
            for (a, za) in zi.iter_mut().enumerate() {
                *za = z[a * len + i];
            }
            loss += softmax(&zi, &mut pi) - zi[y[i] as usize];
            for (a, &pa) in pi.iter().enumerate() {
                p[a * len + i] = pa;
            }
        }
    }
    (loss, p)
}

/// The Hessian of one block, `m x m` with `m = k * w`, lower blocks only:
/// block (a, b), b <= a, is the Gram matrix of `cols` weighted by
/// `p_a (delta_ab - p_b)`.
fn hessian_blocks(p: &[f64], cols: &[&[f64]], k: usize, len: usize) -> Vec<f64> {
    let w = cols.len();
    let m = k * w;
    let mut hessian = vec![0.0; m * m];
    let mut weight = vec![0.0; len];
    for a in 0..k {
        for b in 0..=a {
            for i in 0..len {
                let (pa, pb) = (p[a * len + i], p[b * len + i]);
                weight[i] = if a == b { pa * (1.0 - pa) } else { -pa * pb };
            }
            let gram = hessian_gram(cols, &weight, 0..len);
            for j in 0..w {
                for l in 0..w {
                    // hessian_gram fills only l <= j; mirror within the block.
                    let v = if l <= j {
                        gram[j * w + l]
                    } else {
                        gram[l * w + j]
                    };
                    if a * w + j >= b * w + l {
                        hessian[(a * w + j) * m + b * w + l] = v;
                    }
                }
            }
        }
    }
    hessian
}
