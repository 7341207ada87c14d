/*
 * How a message is cut over the rails: pure functions of the message size and the
 * agreed rail weights, so a sender and a receiver compute the same cut without
 * talking. No Open MPI or UCX types: unit-tested in test/unit/test_railsplit.c.
 *
 * The receiver often knows only a capacity, not the size (the quantized algorithms
 * post a slot that fits the largest message). The cut is therefore monotone: for
 * n <= cap, every piece of n is at most the same piece of cap. The receiver posts
 * piece r of cap at its offset in the buffer; the sender's piece r of n fits there;
 * after completion the receiver knows each piece's length and moves the pieces down
 * so that the message is contiguous (qtopo_rail_compact).
 */

#ifndef COLL_QTOPO_RAILSPLIT_H
#define COLL_QTOPO_RAILSPLIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QTOPO_RAILS_MAX 8

/*
 * sizes[0..R) of a message of n bytes over R rails with weights w (not all zero):
 * rail r takes floor(rest * w[r] / (weights of rails r..R-1)) of what the rails before
 * it left, the last rail with a weight takes the rest; a rail of weight 0 takes 0.
 * Each step maps rest to rest - floor(rest * a), a <= 1, which never decreases when
 * rest grows: every piece is monotone in n.
 */
void qtopo_rail_split(size_t n, const unsigned *w, int R, size_t *sizes);

/* Offsets of the pieces when they lie one after the other. */
void qtopo_rail_offsets(const size_t *sizes, int R, size_t *offs);

/* Moves pieces received at offs[r] (lengths got[r] <= the slot) down so that they are
 * contiguous from buf; returns the message size. */
size_t qtopo_rail_compact(char *buf, const size_t *offs, const size_t *got, int R);

/* Parses "4,1" (non-negative integers, at most max, not all zero) into w; the count,
 * or -1 when malformed. */
int qtopo_rail_parse_weights(const char *text, unsigned *w, int max);

/* Adaptive weights: the scale they are kept at, and the smallest share of it a rail
 * keeps (so that a rail that got slower is still measured and can win back its share). */
#define QTOPO_RAIL_WEIGHT_SCALE 1000
#define QTOPO_RAIL_MIN_SHARE 20
/* A rail's rate that was not measured. */
#define QTOPO_RAIL_NO_RATE UINT64_MAX

/*
 * New weights from the agreed ones and the rate measured on each rail (any unit; rate[r]
 * QTOPO_RAIL_NO_RATE = not measured): each rail with a weight gets its share of the
 * measured rates, at least QTOPO_RAIL_MIN_SHARE, on the scale QTOPO_RAIL_WEIGHT_SCALE;
 * rails of weight 0 stay 0. A rate is bytes over the time the rail's pieces took, so the
 * update is a step towards equal times (the balanced split), where it stays. Integer
 * arithmetic only, so every rank computes the same weights from the same inputs.
 * Returns false, with w unchanged, when a rail with a weight has no rate.
 *
 * Choice: a first version averaged half the old share with half the measured one; on
 * the test bed (400 + 100 Mbit/s, 16 MiB lossless, load average about 20 on 2 cores) it
 * had reached only 568:431 after 5 updates and 700:298 after 12. Under load the times
 * carry a delay common to all rails (a busy process notices completions late), which
 * shrinks each step; the damping halved it again. Without it a step goes twice as far,
 * and a measurement the load does not disturb (rates = link speeds) gives the right
 * split in one step.
 */
bool qtopo_rail_adapt_weights(unsigned *w, const uint64_t *rate, int R);

#endif /* COLL_QTOPO_RAILSPLIT_H */
