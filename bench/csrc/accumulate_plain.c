/* Baseline "plain C": the full-information learner's accumulation written the obvious way.
 *
 * Per event t: add the reward row rewards[t*A .. t*A+A) to sums[states[t]*A ..) and count
 * the event in counts[states[t]]: A action-value updates per event. Each cell is summed
 * in event order, one addition per event, as rlv2.full_information.accumulate does, so
 * the sums are equal bit for bit.
 */
#include <stdint.h>

void accumulate_plain(double *sums, double *counts, int64_t n_actions, const int64_t *states,
                      const double *rewards, int64_t n_events)
{
    for (int64_t t = 0; t < n_events; t++) {
        int64_t s = states[t];
        counts[s] += 1.0;
        for (int64_t a = 0; a < n_actions; a++)
            sums[s * n_actions + a] += rewards[t * n_actions + a];
    }
}
