// The one schema block of the smoothcert operator library, and the empty
// Python module `smoothcert._C` whose import runs the static registrations
// below and in the backend files (no pybind11, so the module is abi3).
#include <Python.h>
#include <torch/library.h>

extern "C" {
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
}

TORCH_LIBRARY(smoothcert, m) {
  // Noisy copies of each input, written straight into the classifier's batch.
  //   x       [B, *S] float32 clean inputs (raw input space, e.g. [0, 1] pixels)
  //   ids     [B] int64   input indices that key the noise (< 2^32)
  //   sigma   [1|B, 1|D]  float32 noise scale, D = prod(S) (per input and/or element)
  //   samples, sample_start: rows j in [0, samples) are samples sample_start + j
  //   seed, stream: Philox key and the counter word separating draws
  //                 (selection, estimation, training, ...)
  //   kind    0 gaussian N(0, sigma^2), 1 uniform with RMS sigma,
  //           2 splitting noise (SSN) with lambda = sqrt(3) sigma (x in [0, 1])
  //   antithetic: samples 2p and 2p+1 are x + eps_p and x - eps_p
  //   clamp_min/max: optional clamp of every output value
  //   out_dtype: float32 (default), float16, bfloat16 or float64
  //   channels_last: output in NHWC memory order (4-D x only)
  // Returns [B * samples, *S]; row b * samples + j is sample j of input b.
  m.def(
      "sample_noise(Tensor x, Tensor ids, Tensor sigma, int samples, int sample_start, "
      "int seed, int stream, int kind, bool antithetic, float? clamp_min, float? clamp_max, "
      "ScalarType? out_dtype, bool channels_last) -> Tensor");
  // sample_noise written into `out` ([B * samples, *S], a float dtype, dense in
  // the memory format channels_last names): the engine reuses one batch buffer
  // across forward batches. Same values as sample_noise, bit for bit.
  m.def(
      "sample_noise_into(Tensor x, Tensor ids, Tensor sigma, int samples, int sample_start, "
      "int seed, int stream, int kind, bool antithetic, float? clamp_min, float? clamp_max, "
      "bool channels_last, Tensor(a!) out) -> ()");
  // sample_noise's batch (kinds 0 and 1, no antithetic mode) together with
  // the dot product of the unit noise of each pair of rows (2j, 2j+1), made
  // in the same pass: the gradient-norm estimator of second-order smoothing
  // (Levine et al., Tight Second-Order Certificates, §3.1 and Theorem 2)
  // needs sum_j f_j f'_j (z_2j . z_2j+1) over disjoint pairs.
  //   samples, sample_start: even
  // Returns (batch [B * samples, *S] as sample_noise, bit for bit;
  //          dots [B, samples / 2] float64, summed over elements in order).
  m.def(
      "sample_noise_pairs(Tensor x, Tensor ids, Tensor sigma, int samples, int sample_start, int seed, "
      "int stream, int kind, float? clamp_min, float? clamp_max, ScalarType? out_dtype, bool channels_last) "
      "-> (Tensor, Tensor)");
  // Gradients of sample_noise (kinds 0 and 1) for its backward pass, with the
  // noise regenerated from the same counters rather than stored.
  //   grad    [B * samples, *S] float32, contiguous: d loss / d output
  //   the other arguments are the forward's (x, ids, sigma, samples, ...)
  // Returns (grad_x, grad_sigma), each [B, D] float64: per input and element,
  // the sums over samples of g and of g * eps where the clamp was inactive
  // (eps the unit noise, sign included); the caller sums grad_sigma over the
  // axes its sigma table broadcasts. Sums run in a fixed order
  // (common/noise_backward.h): deterministic, the same on CPU and CUDA.
  m.def(
      "sample_noise_backward(Tensor grad, Tensor x, Tensor ids, Tensor sigma, int samples, "
      "int sample_start, int seed, int stream, int kind, bool antithetic, float? clamp_min, "
      "float? clamp_max) -> (Tensor, Tensor)");
  // Adds each row's argmax (first maximum wins, like torch.argmax; a NaN
  // counts as the maximum, as in torch.argmax) to its input's class counts.
  //   logits [B * samples, K] floating point
  //   counts [B, K] int64, accumulated in place (no host synchronisation)
  //   nonfinite [B] int64 or None: per input, rows holding a NaN or +-inf
  //             logit, accumulated in place (the engine refuses such votes
  //             without a separate pass over the logits)
  m.def("count_votes_(Tensor logits, int samples, Tensor(a!) counts, Tensor(b!)? nonfinite=None) -> ()");
  // Deterministic splitting noise (DSSN, Levine & Feizi 2021, §4.1 and
  // Corollary 1): the noisy copies of each grid image for a set of split
  // offsets, by the exact integer transform (no RNG).
  //   x        [B, *S] float32 values on the grid {0, 1/q, ..., 1}, or uint8
  //            pixels (q >= 255); the caller checks the grid
  //   v        [D] int32 fixed per-element offsets in [0, L), D = prod(S),
  //            C,H,W order
  //   offsets  [1|B, nb] int64 split offsets b in [0, L) (a shared range for
  //            certification, a random b per example for training)
  //   levels   L = floor(2 lambda q); q: grid steps
  //   mean, std: optional [C] float32, fused (value - mean[c]) / std[c]
  //   out_dtype: float32 (default), float16, bfloat16 or float64
  //   channels_last: output in NHWC memory order (4-D x only)
  // Returns [B * nb, *S]; row b * nb + j uses offsets[b or 0, j]. Values
  // before normalisation are exact multiples of 1 / (4q).
  m.def(
      "dssn_batch(Tensor x, Tensor v, Tensor offsets, int levels, int q, Tensor? mean, Tensor? std, "
      "ScalarType? out_dtype, bool channels_last) -> Tensor");
  // Ball tests of the memory-based certificate (Alfarra et al., §3.5, App. C
  // and Algorithm 3): for each query, the minimum over stored points of
  // another class of (distance - stored radius), and the nearest stored point,
  // with exact fp64 distances in one canonical order (common/ball_math.h), so
  // every backend gives the same bits.
  //   xq          [B, D] float32 queries
  //   xm          [N, D] float32 stored points
  //   radius      [N] float64 stored radii; mem_class [N] int64 stored classes
  //   query_class [B] int64 class of each query; -1 (abstain) counts every
  //               stored point as "another class"
  //   p           the norm, 1 or 2
  // Returns (margin [B] float64, margin_idx [B] int64, nearest [B] float64,
  // nearest_idx [B] int64): minimum and argmin (ties to the lowest index) of
  // D(x_b, m_i) - R_i over {i : C_i != c_b} and of D(x_b, m_i) over all i;
  // +inf and -1 when the set is empty.
  m.def(
      "ball_margin(Tensor xq, Tensor xm, Tensor radius, Tensor mem_class, Tensor query_class, int p) "
      "-> (Tensor, Tensor, Tensor, Tensor)");
  // Exact pairwise L2 distances of the robust-region allocation (Wang et al.,
  // sample-wise smoothing, §4.2 Algorithm 2 and App. C): the conflict graph,
  // the LP's constraints and the greedy scan's lookups, as one dense tile of
  // the n x n matrix.
  //   xq      [B, D] float32 row points;  xm [N, D] float32 column points
  //   reach_q [B] float64, reach_m [N] float64 (finite, >= 0)
  // Returns out [B, N] float64: the canonical exact distance D(x_b, m_i)
  // (common/ball_math.h, the same bits on every backend) where it is
  // < reach_q[b] + reach_m[i], else +inf.
  m.def("pair_distances(Tensor xq, Tensor xm, Tensor reach_q, Tensor reach_m) -> Tensor");
  // -1 for a CPU-only build, else the CUDA version the extension was built with.
  m.def("cuda_version() -> int");
}
