/*
 * qtopo_train: data-parallel training of a 784-H-H-10 perceptron on Fashion-MNIST, the
 * way a framework does it: every rank computes the gradient of its share of a global
 * batch, the gradients of all layers live in ONE buffer, and that buffer is summed with
 *
 *     MPI_Allreduce(MPI_IN_PLACE, grads, nparams, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD)
 *
 * Nothing here knows qtopo: run it under mpirun with or without coll_qtopo_* parameters.
 * If qtopo's MPI_T counter coll_qtopo_usec_code exists, the time spent coding is split
 * out of the allreduce time.
 *
 *   mpirun -np 8 --mca coll_qtopo_priority 40 --mca coll_qtopo_bits 8 qtopo_train --epochs 5
 *
 * Per epoch, rank 0 prints the mean training loss, the test accuracy and the time split
 * (averaged over ranks); at the end "final test_acc=<0..1> epochs=<n> seconds=<s>" where
 * seconds is the training time (evaluation and loading excluded), and params_fnv, a hash
 * of the parameters, identical on every rank (checked).  Deterministic for a seed:
 * OpenBLAS runs single-threaded (set at start), so every sgemm sums in the same order.
 */

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <mpi.h>

#include "qt_idx.h"
#include "qt_mlp.h"

#define CLASSES   10
#define PIX_MEAN  0.2860f /* Fashion-MNIST training-set pixel mean and deviation */
#define PIX_STD   0.3530f
#define EVAL_ROWS 500

typedef struct options {
    int epochs, hidden, batch, limit_train, limit_test, steps, eval_every;
    float lr, momentum, wd;
    uint64_t seed;
    const char *data;
} options_t;

/* Wall-clock split of one epoch, seconds (coding is part of allreduce). */
typedef struct timing {
    double compute, allreduce, coding;
} timing_t;

static int rank, nranks;

static void usage(void)
{
    fprintf(stderr,
            "usage: qtopo_train [--epochs N] [--seed S] [--hidden H] [--batch B] [--lr X]\n"
            "                   [--momentum X] [--wd X] [--limit-train N] [--limit-test N]\n"
            "                   [--steps N] [--eval-every N] [--data DIR]\n"
            "  defaults: 5 epochs, seed 1, hidden 1024, global batch 256, lr 0.02,\n"
            "  momentum 0.9, wd 0, whole data set, data /usr/share/datasets/fashion-mnist\n"
            "  --steps N stops after N optimizer steps in all (for tests)\n"
            "  --eval-every N also measures test accuracy every N steps (untimed)\n");
}

static int parse_options(int argc, char **argv, options_t *o)
{
    static const struct option longopts[] = {
        { "epochs", 1, NULL, 'e' },      { "seed", 1, NULL, 's' },
        { "hidden", 1, NULL, 'H' },      { "batch", 1, NULL, 'b' },
        { "lr", 1, NULL, 'l' },          { "momentum", 1, NULL, 'm' },
        { "wd", 1, NULL, 'w' },          { "limit-train", 1, NULL, 'T' },
        { "limit-test", 1, NULL, 't' },  { "steps", 1, NULL, 'n' },
        { "data", 1, NULL, 'd' },        { "eval-every", 1, NULL, 'E' },
        { "help", 0, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    int c;
    *o = (options_t) { 5, 1024, 256, 0, 0, 0, 0, 0.02f, 0.9f, 0.0f, 1,
                       "/usr/share/datasets/fashion-mnist" };
    while (-1 != (c = getopt_long(argc, argv, "", longopts, NULL))) {
        switch (c) {
        case 'e': o->epochs = atoi(optarg); break;
        case 's': o->seed = strtoull(optarg, NULL, 0); break;
        case 'H': o->hidden = atoi(optarg); break;
        case 'b': o->batch = atoi(optarg); break;
        case 'l': o->lr = strtof(optarg, NULL); break;
        case 'm': o->momentum = strtof(optarg, NULL); break;
        case 'w': o->wd = strtof(optarg, NULL); break;
        case 'T': o->limit_train = atoi(optarg); break;
        case 't': o->limit_test = atoi(optarg); break;
        case 'n': o->steps = atoi(optarg); break;
        case 'E': o->eval_every = atoi(optarg); break;
        case 'd': o->data = optarg; break;
        default: return -1;
        }
    }
    if (optind != argc || 1 > o->epochs || 1 > o->hidden || nranks > o->batch
        || 0 > o->limit_train || 0 > o->limit_test || 0 > o->steps || 0 > o->eval_every
        || !(0.0f < o->lr)) {
        return -1;
    }
    return 0;
}

/* ---- qtopo's counters, if qtopo is loaded ---------------------------------------------- */

enum { PV_CODE_US, PV_HANDLED, PV_COUNT };
static const char *const pv_names[PV_COUNT] = { "coll_qtopo_usec_code",
                                                "coll_qtopo_calls_handled" };
static MPI_T_pvar_session pv_session;
static MPI_T_pvar_handle pv_handle[PV_COUNT];
static int pv_found[PV_COUNT];

static void pvar_open(void)
{
    int provided, n, count;
    MPI_T_init_thread(MPI_THREAD_SINGLE, &provided);
    MPI_T_pvar_session_create(&pv_session);
    MPI_T_pvar_get_num(&n);
    for (int i = 0; i < n; ++i) {
        char name[128], desc[512];
        int len = sizeof(name), dlen = sizeof(desc), verb, cls, bind, ro, cont, atomic;
        MPI_Datatype dt;
        MPI_T_enum en;
        MPI_T_pvar_get_info(i, name, &len, &verb, &cls, &dt, &en, desc, &dlen, &bind, &ro,
                            &cont, &atomic);
        for (int k = 0; k < PV_COUNT; ++k) {
            if (!pv_found[k] && 0 == strcmp(name, pv_names[k]) && MPI_UNSIGNED_LONG == dt) {
                MPI_T_pvar_handle_alloc(pv_session, i, NULL, &pv_handle[k], &count);
                pv_found[k] = 1;
            }
        }
    }
}

/* Current value of counter k, 0 without qtopo. */
static unsigned long pvar_read(int k)
{
    unsigned long v = 0;
    if (pv_found[k]) {
        MPI_T_pvar_read(pv_session, pv_handle[k], &v);
    }
    return v;
}

static void pvar_close(void)
{
    for (int k = PV_COUNT - 1; k >= 0; --k) {
        if (pv_found[k]) {
            MPI_T_pvar_handle_free(pv_session, &pv_handle[k]);
        }
    }
    MPI_T_pvar_session_free(&pv_session);
    MPI_T_finalize();
}

/* ---- data ------------------------------------------------------------------------------ */

static int load_data(const options_t *o, qt_dataset_t *train, qt_dataset_t *test)
{
    char err[512];
    int rc = qt_dataset_load(o->data, "train", CLASSES, train, err, sizeof(err));
    if (QT_IDX_OK == rc) {
        rc = qt_dataset_load(o->data, "t10k", CLASSES, test, err, sizeof(err));
        if (QT_IDX_OK != rc) {
            qt_dataset_free(train);
        }
    }
    if (QT_IDX_OK != rc) {
        if (0 == rank) {
            fprintf(stderr, "qtopo_train: %s\n", err);
        }
        return rc;
    }
    if (train->rows * train->cols != test->rows * test->cols) {
        if (0 == rank) {
            fprintf(stderr, "qtopo_train: training and test images differ in size\n");
        }
        qt_dataset_free(test);
        qt_dataset_free(train);
        return QT_IDX_ERR_FORMAT;
    }
    if (0 < o->limit_train && (size_t) o->limit_train < train->n) {
        train->n = (size_t) o->limit_train;
    }
    if (0 < o->limit_test && (size_t) o->limit_test < test->n) {
        test->n = (size_t) o->limit_test;
    }
    return QT_IDX_OK;
}

/* Normalised pixels of the examples idx[0..n) into the model's input. */
static void fill_input(qt_mlp_t *m, const qt_dataset_t *ds, const uint32_t *idx, int n,
                       uint8_t *labels)
{
    size_t pix = (size_t) m->in;
    for (int i = 0; i < n; ++i) {
        const uint8_t *img = ds->images + (size_t) idx[i] * pix;
        float *x = m->act[0] + (size_t) i * pix;
        for (size_t j = 0; j < pix; ++j) {
            x[j] = ((float) img[j] * (1.0f / 255.0f) - PIX_MEAN) / PIX_STD;
        }
        labels[i] = ds->labels[idx[i]];
    }
}

/* Fisher-Yates with the shared RNG: the same permutation on every rank. */
static void shuffle(uint32_t *perm, size_t n, uint64_t *rng)
{
    for (size_t i = 0; i < n; ++i) {
        perm[i] = (uint32_t) i;
    }
    for (size_t i = n - 1; 0 < i; --i) {
        size_t j = (size_t) (qt_rng_next(rng) % (i + 1));
        uint32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

/* This rank's share [*first, *first + *count) of a global batch of b. */
static void my_share(int b, int *first, int *count)
{
    int base = b / nranks, rest = b % nranks;
    *count = base + (rank < rest ? 1 : 0);
    *first = rank * base + (rank < rest ? rank : rest);
}

/* ---- training ---------------------------------------------------------------------- */

/* Test accuracy and mean loss: each rank scores a slice of the test set, the sums are
 * added up. */
static double evaluate(qt_mlp_t *m, const qt_dataset_t *test, uint32_t *idx, uint8_t *labels,
                       double *loss_p)
{
    double mine[2] = { 0.0, 0.0 }, all[2]; /* hits, summed loss */
    size_t n = test->n, per = (n + (size_t) nranks - 1) / (size_t) nranks;
    size_t lo = (size_t) rank * per, hi = lo + per < n ? lo + per : n;
    for (size_t s = lo; s < hi; s += EVAL_ROWS) {
        int rows = hi - s < EVAL_ROWS ? (int) (hi - s) : EVAL_ROWS;
        for (int i = 0; i < rows; ++i) {
            idx[i] = (uint32_t) (s + (size_t) i);
        }
        fill_input(m, test, idx, rows, labels);
        mine[0] += qt_mlp_score(m, rows, labels, &mine[1]);
    }
    MPI_Allreduce(mine, all, 2, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    *loss_p = all[1] / (double) n;
    return all[0] / (double) n;
}

/* The state of one training run. */
typedef struct run {
    const options_t *o;
    const qt_dataset_t *tr, *te;
    qt_mlp_t m;
    uint32_t *perm, *idx;
    uint8_t *labels;
    int done;       /* optimizer steps so far */
    double seconds; /* training time so far (evaluations excluded) */
    double mark;    /* start of the interval being timed */
} run_t;

/* Training time so far, the same on every rank (rank 0's clock after a barrier). */
static void clock_stop(run_t *r)
{
    double now;
    MPI_Barrier(MPI_COMM_WORLD);
    now = MPI_Wtime();
    MPI_Bcast(&now, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    r->seconds += now - r->mark;
}

static void clock_start(run_t *r)
{
    MPI_Barrier(MPI_COMM_WORLD);
    r->mark = MPI_Wtime();
    MPI_Bcast(&r->mark, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
}

/* --eval-every: a test accuracy between epochs, outside the timed training. */
static void eval_point(run_t *r)
{
    double loss, acc;
    clock_stop(r);
    acc = evaluate(&r->m, r->te, r->idx, r->labels, &loss);
    if (0 == rank) {
        printf("eval step=%d test_loss=%.5f test_acc=%.4f train_s=%.3f\n", r->done, loss, acc,
               r->seconds);
        fflush(stdout);
    }
    clock_start(r);
}

/* One epoch of steps; returns the summed loss of this rank's examples, adds to *t. */
static double train_epoch(run_t *r, int steps, timing_t *t)
{
    const options_t *o = r->o;
    qt_mlp_t *m = &r->m;
    int first, count;
    double loss = 0.0;
    my_share(o->batch, &first, &count);
    for (int s = 0; s < steps; ++s) {
        double t0 = MPI_Wtime(), t1, t2;
        memcpy(r->idx, r->perm + (size_t) s * o->batch + first, (size_t) count * sizeof(*r->idx));
        fill_input(m, r->tr, r->idx, count, r->labels);
        qt_mlp_forward(m, count);
        loss += qt_mlp_backward(m, count, r->labels, (float) o->batch);
        t1 = MPI_Wtime();
        MPI_Allreduce(MPI_IN_PLACE, m->grads, (int) m->nparams, MPI_FLOAT, MPI_SUM,
                      MPI_COMM_WORLD);
        t2 = MPI_Wtime();
        qt_mlp_sgd(m, o->lr, o->momentum, o->wd);
        t->compute += (t1 - t0) + (MPI_Wtime() - t2);
        t->allreduce += t2 - t1;
        r->done++;
        if (0 < o->eval_every && 0 == r->done % o->eval_every && s + 1 < steps) {
            eval_point(r);
        }
    }
    return loss;
}

/* Averages the timings over the ranks and sums the losses (on rank 0). */
static void epoch_totals(double loss, timing_t *t, double *loss_sum)
{
    double in[4] = { t->compute, t->allreduce, t->coding, loss }, out[4];
    MPI_Reduce(in, out, 4, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
    t->compute = out[0] / nranks;
    t->allreduce = out[1] / nranks;
    t->coding = out[2] / nranks;
    *loss_sum = out[3];
}

/* Checks that every rank holds the same parameters; returns their hash. */
static uint64_t agreed_hash(const qt_mlp_t *m, int *agree)
{
    unsigned long long h = qt_mlp_hash(m), lo, hi;
    MPI_Allreduce(&h, &lo, 1, MPI_UNSIGNED_LONG_LONG, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(&h, &hi, 1, MPI_UNSIGNED_LONG_LONG, MPI_MAX, MPI_COMM_WORLD);
    *agree = lo == hi;
    return h;
}

/* Runs the epochs; returns the last test accuracy and the epochs run. */
static double run_epochs(run_t *r, int steps, int *epochs_p)
{
    const options_t *o = r->o;
    uint64_t rng = o->seed ^ 0x5eedf00dull;
    double acc, test_loss;
    int epoch;
    acc = evaluate(&r->m, r->te, r->idx, r->labels, &test_loss);
    if (0 == rank) {
        printf("epoch 0 test_loss=%.5f test_acc=%.4f\n", test_loss, acc);
    }
    for (epoch = 1; epoch <= o->epochs && (0 == o->steps || r->done < o->steps); ++epoch) {
        timing_t t = { 0, 0, 0 };
        double loss, loss_sum, c0 = 1e-6 * (double) pvar_read(PV_CODE_US);
        int n = 0 == o->steps || o->steps - r->done > steps ? steps : o->steps - r->done;
        shuffle(r->perm, r->tr->n, &rng);
        clock_start(r);
        loss = train_epoch(r, n, &t);
        clock_stop(r);
        t.coding = 1e-6 * (double) pvar_read(PV_CODE_US) - c0;
        epoch_totals(loss, &t, &loss_sum);
        acc = evaluate(&r->m, r->te, r->idx, r->labels, &test_loss);
        if (0 == rank) {
            printf("epoch %d loss=%.5f test_loss=%.5f test_acc=%.4f train_s=%.3f compute_s=%.3f "
                   "allreduce_s=%.3f coding_s=%.3f steps=%d\n",
                   epoch, loss_sum / ((double) n * o->batch), test_loss, acc, r->seconds,
                   t.compute, t.allreduce, t.coding, n);
            fflush(stdout);
        }
    }
    *epochs_p = epoch - 1;
    return acc;
}

static int train(const options_t *o, const qt_dataset_t *tr, const qt_dataset_t *te)
{
    run_t r = { .o = o, .tr = tr, .te = te };
    int steps = (int) (tr->n / (size_t) o->batch), epochs, agree;
    int rows = o->batch > EVAL_ROWS ? o->batch : EVAL_ROWS;
    double acc;
    uint64_t h;
    r.perm = malloc(tr->n * sizeof(*r.perm));
    r.idx = malloc((size_t) rows * sizeof(*r.idx));
    r.labels = malloc((size_t) rows);
    if (NULL == r.perm || NULL == r.idx || NULL == r.labels || 1 > steps
        || 0 != qt_mlp_init(&r.m, (int) (tr->rows * tr->cols), o->hidden, CLASSES, rows,
                            o->seed)) {
        fprintf(stderr, "qtopo_train: out of memory or fewer examples than one batch\n");
        free(r.labels);
        free(r.idx);
        free(r.perm);
        return 1;
    }
    if (0 == rank) {
        printf("qtopo_train: np=%d params=%zu batch=%d hidden=%d lr=%g momentum=%g wd=%g "
               "train=%zu test=%zu steps/epoch=%d seed=%llu coding_counter=%s\n",
               nranks, r.m.nparams, o->batch, o->hidden, o->lr, o->momentum, o->wd, tr->n,
               te->n, steps, (unsigned long long) o->seed,
               pv_found[PV_CODE_US] ? "qtopo" : "none");
    }
    acc = run_epochs(&r, steps, &epochs);
    h = agreed_hash(&r.m, &agree);
    if (0 == rank) {
        printf("params_fnv=%016llx ranks_agree=%s steps=%d qtopo_calls=%lu\n",
               (unsigned long long) h, agree ? "yes" : "NO", r.done, pvar_read(PV_HANDLED));
        printf("final test_acc=%.4f epochs=%d seconds=%.3f\n", acc, epochs, r.seconds);
    }
    qt_mlp_free(&r.m);
    free(r.labels);
    free(r.idx);
    free(r.perm);
    return agree ? 0 : 1;
}

int main(int argc, char **argv)
{
    options_t o;
    qt_dataset_t tr, te;
    int rc, worst;
    openblas_set_num_threads(1); /* same sgemm order every run: determinism */
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    if (0 != parse_options(argc, argv, &o)) {
        if (0 == rank) {
            usage();
        }
        MPI_Finalize();
        return 2;
    }
    rc = load_data(&o, &tr, &te);
    MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (QT_IDX_OK != worst) {
        if (QT_IDX_OK == rc) {
            qt_dataset_free(&te);
            qt_dataset_free(&tr);
        }
        MPI_Finalize();
        return 1;
    }
    pvar_open();
    rc = train(&o, &tr, &te);
    pvar_close();
    qt_dataset_free(&te);
    qt_dataset_free(&tr);
    MPI_Finalize();
    return rc;
}
