/* Baseline "plain C": rlv2's exploring-mode replay loop written the obvious way.
 *
 * Per event t: draw u with splitmix64; if u < epsilon pick a uniform random action
 * (a second draw, modulo A), else an action of maximal Q: the only one, or among k > 1
 * tied maxima the j-th in code order with j a second draw modulo k; earn
 * rewards[t*A + a]; apply the TD update (bootstrapping on max Q(s') unless the event
 * is terminal); at an episode end decay epsilon. The same draws and the same
 * floating-point operations in the same order as rlv2.qlearning.replay, so built with
 * -ffp-contract=off it yields the same Q-table bit for bit. dones double as terminals.
 */
#include <math.h>
#include <stdint.h>

static uint64_t next_u64(uint64_t *state)
{
    *state += 0x9E3779B97F4A7C15ULL;
    uint64_t z = *state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static double uniform(uint64_t *state)
{
    return (double)(next_u64(state) >> 11) * 0x1.0p-53;
}

/* hyper = (alpha, gamma, epsilon, epsilon_decay, epsilon_min);
 * out = (final epsilon, total reward, total |TD error|). */
void replay_plain(double *q, int64_t n_actions, const int64_t *states, const double *rewards,
                  const int64_t *next_states, const uint8_t *dones, int64_t n_events,
                  const double *hyper, uint64_t seed, double *out)
{
    const double alpha = hyper[0], gamma = hyper[1], decay = hyper[3], eps_min = hyper[4];
    double epsilon = hyper[2];
    double total_reward = 0.0, total_abs_td = 0.0;
    uint64_t rng = seed;
    for (int64_t t = 0; t < n_events; t++) {
        double *row = q + states[t] * n_actions;
        int64_t a = 0;
        if (uniform(&rng) < epsilon) {
            a = (int64_t)(next_u64(&rng) % (uint64_t)n_actions);
        } else {
            double best = -INFINITY;
            int64_t ties = 0;
            for (int64_t i = 0; i < n_actions; i++) {
                if (row[i] > best) {
                    best = row[i];
                    a = i;
                    ties = 1;
                } else if (row[i] == best) {
                    ties++;
                }
            }
            if (ties > 1) {
                int64_t j = (int64_t)(next_u64(&rng) % (uint64_t)ties);
                for (int64_t i = a; i < n_actions; i++) {
                    if (row[i] == best && j-- == 0) {
                        a = i;
                        break;
                    }
                }
            }
        }
        double r = rewards[t * n_actions + a];
        double target = r;
        if (!dones[t]) {
            const double *next_row = q + next_states[t] * n_actions;
            double best = next_row[0];
            for (int64_t i = 1; i < n_actions; i++)
                best = next_row[i] > best ? next_row[i] : best;
            target = r + gamma * best;
        }
        double td = target - row[a];
        row[a] = row[a] + alpha * td;
        total_reward += r;
        total_abs_td += td < 0.0 ? -td : td;
        if (dones[t]) {
            double decayed = epsilon * decay;
            epsilon = decayed < eps_min ? eps_min : decayed;
        }
    }
    out[0] = epsilon;
    out[1] = total_reward;
    out[2] = total_abs_td;
}
