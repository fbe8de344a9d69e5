/* Baseline "tuned C": accumulate_plain.c made as fast as we could, the same sums bit for bit.
 *
 * The loop streams the (N, A) reward matrix once (hundreds of MB) into an (S, A) table
 * that stays in cache, so it is bound by memory bandwidth. Each row is added with
 * AVX-512 (8 cells per instruction, still one addition per cell per event, in event
 * order), the state index and the reward rows PREFETCH_AHEAD events ahead are requested
 * early, and the row add is unrolled for the table's widths. Summing several events per
 * cell in a different order (pairwise, or one partial table per thread) would be faster
 * still but would change the last bits, so it is not done.
 * Without AVX-512F (-march=native on a machine that lacks it) the plain loop remains,
 * with the prefetching.
 */
#include <stdint.h>

#ifndef PREFETCH_AHEAD
#define PREFETCH_AHEAD 8
#endif
#define DOUBLES_PER_LINE 8

#if defined(__AVX512F__)
#include <immintrin.h>

static inline void add_row(double *restrict row, const double *restrict r, int64_t n)
{
    int64_t a = 0;
    for (; a + 16 <= n; a += 16) {
        __m512d x0 = _mm512_add_pd(_mm512_loadu_pd(row + a), _mm512_loadu_pd(r + a));
        __m512d x1 = _mm512_add_pd(_mm512_loadu_pd(row + a + 8), _mm512_loadu_pd(r + a + 8));
        _mm512_storeu_pd(row + a, x0);
        _mm512_storeu_pd(row + a + 8, x1);
    }
    for (; a + 8 <= n; a += 8)
        _mm512_storeu_pd(row + a, _mm512_add_pd(_mm512_loadu_pd(row + a), _mm512_loadu_pd(r + a)));
    if (a < n) {
        const __mmask8 tail = (__mmask8)((1u << (n - a)) - 1u);
        __m512d x = _mm512_add_pd(_mm512_maskz_loadu_pd(tail, row + a),
                                  _mm512_maskz_loadu_pd(tail, r + a));
        _mm512_mask_storeu_pd(row + a, tail, x);
    }
}
#else
static inline void add_row(double *restrict row, const double *restrict r, int64_t n)
{
    for (int64_t a = 0; a < n; a++)
        row[a] += r[a];
}
#endif

/* Same arguments and results as accumulate_plain. */
void accumulate_tuned(double *sums, double *counts, int64_t n_actions, const int64_t *states,
                      const double *rewards, int64_t n_events)
{
    const int64_t n = n_actions;
    for (int64_t t = 0; t < n_events; t++) {
        if (t + PREFETCH_AHEAD < n_events) {
            const double *ahead = rewards + (t + PREFETCH_AHEAD) * n;
            for (int64_t j = 0; j < n; j += DOUBLES_PER_LINE)
                __builtin_prefetch(ahead + j, 0, 0);
            __builtin_prefetch(ahead + n - 1, 0, 0);
            __builtin_prefetch(sums + states[t + PREFETCH_AHEAD] * n, 1, 3);
        }
        int64_t s = states[t];
        counts[s] += 1.0;
        add_row(sums + s * n, rewards + t * n, n);
    }
}
