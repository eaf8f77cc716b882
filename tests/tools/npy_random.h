/*
 * npy_random.h: NumPy's Generator(PCG64) random streams, bit for bit, for
 * regenerating the golden model files (tests/tools/golden_regen.c).
 *
 * The golden weights were drawn with
 *
 *     rng = numpy.random.default_rng([seed0, seed1, seed2])
 *     w = rng.standard_normal(shape, dtype=numpy.float32)
 *
 * (NumPy 1.24).  Reproducing them takes four pieces, each ported here from
 * NumPy's documented algorithms and constants:
 *
 *   SeedSequence      the entropy words (each Python int split into 32-bit
 *                     words, lowest first) are hashed into a pool of four
 *                     uint32 (mix_entropy), and generate_state(4, uint64)
 *                     stretches the pool into 8 words read as 4 uint64
 *                     little-endian;
 *   PCG64             128-bit LCG with the XSL-RR 128/64 output; seeded
 *                     from those 4 words as state = (w0 << 64 | w1),
 *                     increment = (w2 << 64 | w3) (pcg setseq srandom);
 *   next_uint32       NumPy buffers half of each 64-bit draw: the low 32
 *                     bits are returned first, the high 32 bits next time;
 *   standard_normal   the float32 ziggurat (256 layers, 23-bit magnitude,
 *                     1 sign bit, 8 index bits of one uint32), with the
 *                     exponential tail for layer 0 (log1pf of a 24-bit
 *                     uniform) and the wedge test in double precision.
 *
 * Plus zlib's CRC-32, which the golden seeds use for the model and tensor
 * names.  Nothing here allocates; the state is a plain struct.
 */
#ifndef SLM_TESTS_NPY_RANDOM_H
#define SLM_TESTS_NPY_RANDOM_H

#include <stddef.h>
#include <stdint.h>

/* PCG64 state as NumPy keeps it, with the buffered half of a 64-bit draw. */
struct npy_pcg64 {
	unsigned __int128 state;
	unsigned __int128 inc;
	int has_uint32;
	uint32_t uinteger;
};

/* zlib's crc32(data) of n bytes (initial value 0). */
uint32_t npy_crc32(const void *data, size_t n);

/*
 * SeedSequence(entropy).generate_state(n_words, uint32) for an entropy
 * given as n_entropy uint32 words (already split as NumPy splits ints).
 */
void npy_seed_sequence(const uint32_t *entropy, size_t n_entropy, uint32_t *out,
		       size_t n_words);

/* numpy.random.default_rng(entropy words): a PCG64 seeded by SeedSequence. */
void npy_pcg64_seed(struct npy_pcg64 *rng, const uint32_t *entropy,
		    size_t n_entropy);

/* PCG64.random_raw(): the next 64-bit output. */
uint64_t npy_pcg64_next64(struct npy_pcg64 *rng);

/* NumPy's next_uint32 (low half first, high half buffered). */
uint32_t npy_pcg64_next32(struct npy_pcg64 *rng);

/* Generator.standard_normal(n, dtype=float32) into out[0..n). */
void npy_standard_normal_f32(struct npy_pcg64 *rng, float *out, size_t n);

/* The ziggurat tables (NumPy's ki_float, wi_float, fi_float). */
extern const uint32_t npy_zig_ki_f[256];
extern const float npy_zig_wi_f[256];
extern const float npy_zig_fi_f[256];

#endif
