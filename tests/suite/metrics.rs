//! Evaluation metrics against hand-computed small cases (the arithmetic is in
//! the comments), ROC-AUC with ties against an O(n²) pairwise definition on
//! seeded random data, log-loss clipping, R² of constant targets, and the
//! error messages for empty, mismatched and invalid inputs.

use fuseflow::Error;
use fuseflow::ml::metrics::*;

const STEP: &str = "eval";

/// `a` and `b` agree to within `tol` (absolute).
fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[track_caller]
fn assert_close(actual: f64, expected: f64) {
    assert!(
        close(actual, expected, 1e-12),
        "expected {expected}, got {actual}"
    );
}

/// The message of an [`Error::InvalidParameter`] for step [`STEP`].
#[track_caller]
fn invalid_message<T: std::fmt::Debug>(r: fuseflow::Result<T>) -> String {
    match r {
        Err(Error::InvalidParameter { step, message }) => {
            assert_eq!(step, STEP);
            message
        }
        other => panic!("expected InvalidParameter, got {other:?}"),
    }
}

#[track_caller]
fn assert_invalid<T: std::fmt::Debug>(r: fuseflow::Result<T>, fragments: &[&str]) {
    let message = invalid_message(r);
    for f in fragments {
        assert!(
            message.contains(f),
            "message {message:?} should contain {f:?}"
        );
    }
}

// ================================================================ accuracy

#[test]
fn accuracy_hand_computed() {
    // Rows 0, 2, 3, 4 agree, row 1 (1 vs 2) does not: 4 / 5 = 0.8.
    let acc = accuracy(STEP, &[0, 1, 2, 2, 1], &[0, 2, 2, 2, 1]).unwrap();
    assert_close(acc, 0.8);
    assert_eq!(accuracy(STEP, &[3, 1], &[3, 1]).unwrap(), 1.0);
    assert_eq!(accuracy(STEP, &[0, 1], &[1, 0]).unwrap(), 0.0);
}

// ================================================================ confusion matrix

#[test]
fn confusion_matrix_hand_computed() {
    // true 0 -> pred 0; true 1 -> pred 2, 1; true 2 -> pred 2, 2.
    let m = confusion_matrix(STEP, &[0, 1, 2, 2, 1], &[0, 2, 2, 2, 1], 3).unwrap();
    assert_eq!(m, vec![vec![1, 0, 0], vec![0, 1, 1], vec![0, 0, 2]]);
}

#[test]
fn confusion_matrix_shape_includes_absent_classes() {
    // 5 classes, only 0 and 1 occur: still 5 x 5; rows are true classes.
    let m = confusion_matrix(STEP, &[1, 1, 0], &[0, 1, 1], 5).unwrap();
    assert_eq!(m.len(), 5);
    assert!(m.iter().all(|row| row.len() == 5));
    assert_eq!(m[1][0], 1); // true 1 predicted 0
    assert_eq!(m[1][1], 1);
    assert_eq!(m[0][1], 1); // true 0 predicted 1
    let total: u64 = m.iter().flatten().sum();
    assert_eq!(total, 3);
}

#[test]
fn confusion_matrix_rejects_labels_out_of_range() {
    assert_invalid(
        confusion_matrix(STEP, &[0, 1], &[0, 3], 3),
        &["confusion_matrix", "y_pred[1] is class 3", "only 3 classes"],
    );
    assert_invalid(confusion_matrix(STEP, &[0], &[0], 0), &["classes is 0"]);
}

// ================================================================ precision / recall / F1

#[test]
fn precision_recall_f1_hand_computed() {
    // y_true 0 0 1 1 1 2, y_pred 0 1 1 1 2 1, 4 classes (class 3 never occurs).
    // Confusion matrix (rows true): [1 1 0 0] [0 2 1 0] [0 1 0 0] [0 0 0 0].
    // class 0: TP 1, predicted 1, support 2 -> P 1, R 1/2, F1 2/(1+2) = 2/3
    // class 1: TP 2, predicted 4, support 3 -> P 1/2, R 2/3, F1 4/(4+3) = 4/7
    // class 2: TP 0, predicted 1, support 1 -> P 0, R 0, F1 0
    // class 3: nothing predicted, no support -> 0/0 = 0 everywhere
    let s = precision_recall_f1(STEP, &[0, 0, 1, 1, 1, 2], &[0, 1, 1, 1, 2, 1], 4).unwrap();
    assert_eq!(s.len(), 4);
    let expected = [
        (1.0, 0.5, 2.0 / 3.0, 2),
        (0.5, 2.0 / 3.0, 4.0 / 7.0, 3),
        (0.0, 0.0, 0.0, 1),
        (0.0, 0.0, 0.0, 0),
    ];
    for (k, (got, &(p, r, f, n))) in s.iter().zip(&expected).enumerate() {
        assert_close(got.precision, p);
        assert_close(got.recall, r);
        assert_close(got.f1, f);
        assert_eq!(got.support, n, "class {k}");
    }
    // F1 is the harmonic mean of P and R: class 1, 2 * (1/2)(2/3) / (1/2 + 2/3) = 4/7.
    assert_close(
        2.0 * s[1].precision * s[1].recall / (s[1].precision + s[1].recall),
        s[1].f1,
    );

    // Macro: P (1 + 1/2 + 0 + 0) / 4 = 3/8; R (1/2 + 2/3) / 4 = 7/24;
    // F1 (2/3 + 4/7) / 4 = (26/21) / 4 = 13/42; support 2 + 3 + 1 + 0 = 6.
    let m = macro_average(&s);
    assert_close(m.precision, 0.375);
    assert_close(m.recall, 7.0 / 24.0);
    assert_close(m.f1, 13.0 / 42.0);
    assert_eq!(m.support, 6);
}

#[test]
fn precision_recall_f1_perfect_and_empty_macro() {
    let s = precision_recall_f1(STEP, &[0, 1, 1], &[0, 1, 1], 2).unwrap();
    for c in &s {
        assert_eq!((c.precision, c.recall, c.f1), (1.0, 1.0, 1.0));
    }
    assert_eq!(
        macro_average(&s),
        ClassScores {
            precision: 1.0,
            recall: 1.0,
            f1: 1.0,
            support: 3
        }
    );
    assert_eq!(
        macro_average(&[]),
        ClassScores {
            precision: 0.0,
            recall: 0.0,
            f1: 0.0,
            support: 0
        }
    );
}

#[test]
fn precision_recall_f1_rejects_bad_labels() {
    assert_invalid(
        precision_recall_f1(STEP, &[0, 7], &[0, 1], 2),
        &[
            "precision_recall_f1",
            "y_true[1] is class 7",
            "only 2 classes",
        ],
    );
}

// ================================================================ log-loss

#[test]
fn log_loss_hand_computed() {
    // Row 0: true class 0, p = 0.7; row 1: true class 2, p = 0.5.
    // (-ln 0.7 - ln 0.5) / 2 = (0.356674943938732 + 0.693147180559945) / 2 = 0.524911062249339
    let probs = [0.7, 0.2, 0.1, 0.25, 0.25, 0.5];
    let l = log_loss(STEP, &[0, 2], &probs, 3).unwrap();
    assert_close(l, 0.524_911_062_249_338_9);
}

#[test]
fn log_loss_clips_probabilities_zero_and_one() {
    // Row 0: true 0 with p = 1 -> clipped to 1 - 1e-15 -> -ln ≈ 1e-15.
    // Row 1: true 1 with p = 0 -> clipped to 1e-15 -> -ln 1e-15 = 34.538776394910684.
    // Mean ≈ 34.538776394910684 / 2 = 17.269388197455342 (finite, not infinity).
    let l = log_loss(STEP, &[0, 1], &[1.0, 0.0, 1.0, 0.0], 2).unwrap();
    assert!(l.is_finite());
    assert!(close(l, 17.269_388_197_455_342, 1e-9), "{l}");
    // A perfect prediction costs about 1e-15 per row, not exactly 0.
    let perfect = log_loss(STEP, &[0, 1], &[1.0, 0.0, 0.0, 1.0], 2).unwrap();
    assert!(perfect > 0.0 && perfect < 1e-14, "{perfect}");
    assert!(close(-LOG_LOSS_EPS.ln(), 34.538_776_394_910_684, 1e-12));
}

#[test]
fn log_loss_errors() {
    assert_invalid(
        log_loss(STEP, &[], &[], 2),
        &["log_loss", "y_true is empty"],
    );
    // 2 rows x 3 classes needs 6 values.
    assert_invalid(
        log_loss(STEP, &[0, 1], &[0.5, 0.5, 0.5, 0.5], 3),
        &[
            "probabilities has 4 values",
            "2 rows",
            "3 classes",
            "row-major",
        ],
    );
    assert_invalid(
        log_loss(STEP, &[0, 3], &[0.5, 0.5, 0.5, 0.5], 2),
        &["y_true[1] is class 3"],
    );
    assert_invalid(log_loss(STEP, &[0], &[], 0), &["classes is 0"]);
    assert_invalid(
        log_loss(STEP, &[0], &[f64::NAN, 1.0], 2),
        &["probabilities[0] is NaN", "[0, 1]"],
    );
    assert_invalid(
        log_loss(STEP, &[0], &[1.5, -0.5], 2),
        &["probabilities[0] is 1.5", "[0, 1]"],
    );
    // Row 1 sums to 0.9: probabilities laid out wrong or not normalized.
    assert_invalid(
        log_loss(STEP, &[0, 1], &[0.5, 0.5, 0.4, 0.5], 2),
        &["row 1 sum to 0.9", "normalized"],
    );
}

#[test]
fn binary_log_loss_hand_computed() {
    // y 1, 0, 1 with p1 0.8, 0.3, 0.6: -(ln 0.8 + ln 0.7 + ln 0.6) / 3
    // = (0.223143551314210 + 0.356674943938732 + 0.510825623765991) / 3 = 0.363548039672978
    let l = binary_log_loss(STEP, &[1, 0, 1], &[0.8, 0.3, 0.6]).unwrap();
    assert_close(l, 0.363_548_039_672_977_6);
    // Agrees with the two-column multi-class form.
    let two = log_loss(STEP, &[1, 0, 1], &[0.2, 0.8, 0.7, 0.3, 0.4, 0.6], 2).unwrap();
    assert_close(l, two);
}

#[test]
fn binary_log_loss_clips() {
    // Both rows confidently wrong: the true class has probability 0, clipped
    // to 1e-15, so each row costs -ln 1e-15 = 34.538776394910684, and so does the mean.
    let l = binary_log_loss(STEP, &[1, 0], &[0.0, 1.0]).unwrap();
    assert_close(l, 34.538_776_394_910_684);
    let two = log_loss(STEP, &[1, 0], &[1.0, 0.0, 0.0, 1.0], 2).unwrap();
    assert_eq!(l.to_bits(), two.to_bits());
    let perfect = binary_log_loss(STEP, &[1, 0], &[1.0, 0.0]).unwrap();
    assert!(perfect > 0.0 && perfect < 1e-14, "{perfect}");
}

#[test]
fn binary_log_loss_errors() {
    assert_invalid(
        binary_log_loss(STEP, &[0, 2], &[0.5, 0.5]),
        &["binary_log_loss", "y_true[1] is 2", "0 (negative) or 1"],
    );
    assert_invalid(
        binary_log_loss(STEP, &[0, 1], &[0.5]),
        &["y_true has 2 rows but p1 has 1 row;"],
    );
    assert_invalid(binary_log_loss(STEP, &[0], &[f64::NAN]), &["p1[0] is NaN"]);
}

// ================================================================ ROC-AUC

#[test]
fn roc_auc_hand_computed() {
    // Sorted scores 0.1(neg) 0.35(pos) 0.4(neg) 0.8(pos): ranks 1 2 3 4.
    // Positive rank sum 2 + 4 = 6; (6 - 2·3/2) / (2·2) = 3/4.
    let auc = roc_auc(STEP, &[0, 0, 1, 1], &[0.1, 0.4, 0.35, 0.8]).unwrap();
    assert_eq!(auc, Some(0.75));
}

#[test]
fn roc_auc_ties() {
    // All tied: every rank is 2.5; positives 5 - 3 = 2 over 4 pairs = 0.5.
    assert_eq!(roc_auc(STEP, &[0, 1, 0, 1], &[0.5; 4]).unwrap(), Some(0.5));
    // Scores 0.2(neg) 0.5(pos) 0.5(neg) 0.9(pos): ranks 1, 2.5, 2.5, 4.
    // Positive rank sum 2.5 + 4 = 6.5; (6.5 - 3) / 4 = 0.875.
    // Pairwise: 0.5 vs 0.2 -> 1, 0.5 vs 0.5 -> 1/2, 0.9 beats both -> 2; 3.5 / 4.
    assert_eq!(
        roc_auc(STEP, &[0, 1, 0, 1], &[0.2, 0.5, 0.5, 0.9]).unwrap(),
        Some(0.875)
    );
    // -0.0 and 0.0 are the same score: a tie, 1/2.
    assert_eq!(roc_auc(STEP, &[0, 1], &[0.0, -0.0]).unwrap(), Some(0.5));
    // Infinite scores are ordinary values.
    assert_eq!(
        roc_auc(STEP, &[1, 0], &[f64::INFINITY, f64::NEG_INFINITY]).unwrap(),
        Some(1.0)
    );
}

#[test]
fn roc_auc_perfect_inverted_and_one_class() {
    let scores = [0.1, 0.2, 0.8, 0.9];
    assert_eq!(roc_auc(STEP, &[0, 0, 1, 1], &scores).unwrap(), Some(1.0));
    assert_eq!(roc_auc(STEP, &[1, 1, 0, 0], &scores).unwrap(), Some(0.0));
    assert_eq!(roc_auc(STEP, &[1, 1, 1, 1], &scores).unwrap(), None);
    assert_eq!(roc_auc(STEP, &[0, 0, 0, 0], &scores).unwrap(), None);
    assert_eq!(roc_auc(STEP, &[1], &[0.3]).unwrap(), None);
}

#[test]
fn roc_auc_errors() {
    let message = invalid_message(roc_auc(STEP, &[0, 1, 1], &[0.1, 0.2, f64::NAN]));
    assert!(message.contains("roc_auc: score[2] is NaN"), "{message}");
    let shown = Error::InvalidParameter {
        step: STEP.into(),
        message,
    }
    .to_string();
    assert!(
        shown.starts_with("step 'eval': roc_auc: score[2] is NaN"),
        "{shown}"
    );

    assert_invalid(
        roc_auc(STEP, &[], &[]),
        &["roc_auc", "y_true is empty", "at least one row"],
    );
    assert_invalid(roc_auc(STEP, &[0, 1], &[]), &["score is empty"]);
    assert_invalid(
        roc_auc(STEP, &[0, 1, 1], &[0.1, 0.2]),
        &[
            "y_true has 3 rows but score has 2 rows",
            "one score per row",
        ],
    );
    assert_invalid(
        roc_auc(STEP, &[0, 2], &[0.1, 0.2]),
        &["y_true[1] is 2", "0 (negative) or 1 (positive)"],
    );
}

/// splitmix64: a small seeded generator, so the test needs no dependency.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// AUC by its pairwise definition: over all (positive, negative) pairs,
/// 1 when the positive scores higher, 1/2 when tied, 0 otherwise.
fn pairwise_auc(y: &[u32], s: &[f64]) -> Option<f64> {
    let (mut wins, mut pairs) = (0.0f64, 0u64);
    for i in (0..y.len()).filter(|&i| y[i] == 1) {
        for j in (0..y.len()).filter(|&j| y[j] == 0) {
            pairs += 1;
            if s[i] > s[j] {
                wins += 1.0;
            } else if s[i] == s[j] {
                wins += 0.5;
            }
        }
    }
    (pairs > 0).then(|| wins / pairs as f64)
}

#[test]
fn roc_auc_matches_pairwise_definition_on_random_ties() {
    for (seed, n, positive_rate) in [
        (1u64, 2000usize, 0.3),
        (2, 2000, 0.5),
        (3, 1999, 0.05),
        (4, 50, 0.5),
        (5, 2, 0.5),
    ] {
        let mut rng = Rng(seed);
        let y: Vec<u32> = (0..n)
            .map(|_| u32::from(rng.unit() < positive_rate))
            .collect();
        // Scores rounded to one decimal (11 distinct values: many ties), a bit
        // higher on average for positives so the AUC is away from 1/2.
        let s: Vec<f64> = y
            .iter()
            .map(|&l| ((0.7 * rng.unit() + 0.3 * f64::from(l) * rng.unit()) * 10.0).round() / 10.0)
            .collect();
        let got = roc_auc(STEP, &y, &s).unwrap();
        let want = pairwise_auc(&y, &s);
        match (got, want) {
            (Some(g), Some(w)) => {
                assert!(close(g, w, 1e-12), "seed {seed}: roc_auc {g}, pairwise {w}")
            }
            (None, None) => {}
            other => panic!("seed {seed}: {other:?}"),
        }

        // Flipping the labels gives 1 - AUC.
        let flipped: Vec<u32> = y.iter().map(|&l| 1 - l).collect();
        if let (Some(a), Some(b)) = (got, roc_auc(STEP, &flipped, &s).unwrap()) {
            assert!(close(a + b, 1.0, 1e-12), "seed {seed}: {a} + {b}");
        }

        // The order of the rows does not matter, bit for bit.
        let mut idx: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            idx.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
        }
        let y2: Vec<u32> = idx.iter().map(|&i| y[i]).collect();
        let s2: Vec<f64> = idx.iter().map(|&i| s[i]).collect();
        assert_eq!(
            roc_auc(STEP, &y2, &s2).unwrap().map(f64::to_bits),
            got.map(f64::to_bits),
            "seed {seed}"
        );
    }
}

// ================================================================ regression

#[test]
fn regression_hand_computed() {
    let t = [3.0, -0.5, 2.0, 7.0];
    let p = [2.5, 0.0, 2.0, 8.0];
    // Errors 0.5, -0.5, 0, -1; squares 0.25 + 0.25 + 0 + 1 = 1.5.
    // RMSE = sqrt(1.5 / 4) = sqrt(0.375) = 0.612372435695794
    assert_close(rmse(STEP, &t, &p).unwrap(), 0.612_372_435_695_794_5);
    // MAE = (0.5 + 0.5 + 0 + 1) / 4 = 0.5
    assert_close(mae(STEP, &t, &p).unwrap(), 0.5);
    // mean 11.5 / 4 = 2.875; deviations 0.125, -3.375, -0.875, 4.125;
    // SS_tot = 0.015625 + 11.390625 + 0.765625 + 17.015625 = 29.1875
    // R² = 1 - 1.5 / 29.1875 = 0.948608137044968
    assert_close(r2(STEP, &t, &p).unwrap(), 0.948_608_137_044_967_9);
}

#[test]
fn r2_negative_and_perfect() {
    // SS_res = 4 + 0 + 4 = 8; mean 2, SS_tot = 1 + 0 + 1 = 2; R² = 1 - 8/2 = -3.
    assert_close(r2(STEP, &[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]).unwrap(), -3.0);
    assert_eq!(r2(STEP, &[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]).unwrap(), 1.0);
    assert_eq!(rmse(STEP, &[1.0, 2.0], &[1.0, 2.0]).unwrap(), 0.0);
    assert_eq!(mae(STEP, &[1.0, 2.0], &[1.0, 2.0]).unwrap(), 0.0);
}

#[test]
fn r2_constant_target() {
    // SS_tot = 0: 1.0 for an exact prediction, 0.0 otherwise. 0.1 is used
    // because its mean over 3 rows does not round back to 0.1 exactly.
    let t = [0.1, 0.1, 0.1];
    assert_eq!(r2(STEP, &t, &t).unwrap(), 1.0);
    assert_eq!(r2(STEP, &t, &[0.1, 0.1, 0.2]).unwrap(), 0.0);
    assert_eq!(r2(STEP, &[5.0], &[5.0]).unwrap(), 1.0);
    assert_eq!(r2(STEP, &[5.0], &[4.0]).unwrap(), 0.0);
}

#[test]
fn regression_errors() {
    assert_invalid(rmse(STEP, &[], &[]), &["rmse", "y_true is empty"]);
    assert_invalid(mae(STEP, &[1.0], &[]), &["mae", "y_pred is empty"]);
    assert_invalid(
        r2(STEP, &[1.0, 2.0], &[1.0]),
        &["r2", "y_true has 2 rows but y_pred has 1 row"],
    );
    assert_invalid(
        rmse(STEP, &[1.0, f64::NAN], &[1.0, 2.0]),
        &["y_true[1] is NaN", "finite"],
    );
    assert_invalid(
        r2(STEP, &[1.0, 2.0], &[f64::INFINITY, 2.0]),
        &["y_pred[0] is inf"],
    );
}

// ================================================================ shared errors

#[test]
fn classification_empty_and_mismatch() {
    assert_invalid(
        accuracy(STEP, &[], &[]),
        &["accuracy", "y_true is empty", "at least one row"],
    );
    assert_invalid(
        accuracy(STEP, &[0, 1, 1], &[0, 1]),
        &[
            "accuracy",
            "y_true has 3 rows but y_pred has 2 rows",
            "one y_pred per row",
        ],
    );
    assert_invalid(
        confusion_matrix(STEP, &[], &[], 2),
        &["confusion_matrix", "y_true is empty"],
    );
    assert_invalid(
        confusion_matrix(STEP, &[0], &[0, 1], 2),
        &["y_true has 1 row but y_pred has 2 rows"],
    );
    assert_invalid(
        precision_recall_f1(STEP, &[0], &[], 2),
        &["precision_recall_f1", "y_pred is empty"],
    );
}
