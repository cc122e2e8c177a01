// Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
// SC'11), written once for host and device.
//
// Counter-based: the output is a pure function of (key, counter), so a draw can
// be recomputed anywhere from its coordinates. smoothcert keys every noise
// element by
//   key     = (seed low 32 bits, seed high 32 bits)
//   counter = (element quad, sample (or antithetic pair), input index, stream)
// which makes results independent of batch size, chunking, device and process
// count, and keeps selection (stream 0) and estimation (stream 1) draws
// disjoint by construction. Each call yields four 32-bit words, i.e. the noise
// of four consecutive elements ("a quad").
#pragma once
#include <stdint.h>

#include "macros.h"

namespace smoothcert {

struct U32x4 {
  uint32_t v[4];
};

namespace philox_detail {
constexpr uint32_t kM0 = 0xD2511F53u;
constexpr uint32_t kM1 = 0xCD9E8D57u;
constexpr uint32_t kW0 = 0x9E3779B9u;  // golden ratio
constexpr uint32_t kW1 = 0xBB67AE85u;  // sqrt(3) - 1

SC_HD uint32_t mulhilo(uint32_t a, uint32_t b, uint32_t* hi) {
  const uint64_t p = static_cast<uint64_t>(a) * static_cast<uint64_t>(b);
  *hi = static_cast<uint32_t>(p >> 32);
  return static_cast<uint32_t>(p);
}
}  // namespace philox_detail

// Ten rounds; the key is bumped between rounds (Random123's philox4x32_R).
SC_HD U32x4 philox4x32_10(U32x4 c, uint32_t k0, uint32_t k1) {
  using namespace philox_detail;
  SC_UNROLL
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, hi1;
    const uint32_t lo0 = mulhilo(kM0, c.v[0], &hi0);
    const uint32_t lo1 = mulhilo(kM1, c.v[2], &hi1);
    U32x4 n;
    n.v[0] = hi1 ^ c.v[1] ^ k0;
    n.v[1] = lo1;
    n.v[2] = hi0 ^ c.v[3] ^ k1;
    n.v[3] = lo0;
    c = n;
    k0 += kW0;
    k1 += kW1;
  }
  return c;
}

// The four words for one quad of one sample of one input.
SC_HD U32x4 noise_words(uint64_t seed, uint32_t stream, uint32_t input,
                        uint32_t sample, uint32_t quad) {
  U32x4 c;
  c.v[0] = quad;
  c.v[1] = sample;
  c.v[2] = input;
  c.v[3] = stream;
  return philox4x32_10(c, static_cast<uint32_t>(seed),
                       static_cast<uint32_t>(seed >> 32));
}

}  // namespace smoothcert
