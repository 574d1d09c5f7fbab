//! Multi-layer perceptron (written by a helper).
