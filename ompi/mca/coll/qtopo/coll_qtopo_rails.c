/*
 * qtopo's rails over UCX: per communicator, one UCP context + worker per network
 * device, the agreement on which rails and weights every rank uses, endpoints made on
 * first use, teardown. The protocol is at the top of coll_qtopo_rails.h.
 *
 * Devices: coll_qtopo_rails names them (rail0,rail1 or mlx5_0:1,mlx5_1:1); auto takes
 * every network interface that is up (not lo) when the host has no InfiniBand ports,
 * else every active InfiniBand port. A name the host does not have is reported once
 * and left out. Each context gets NET_DEVICES = its device, TLS = every transport but
 * shared memory and self unless UCX_TLS is set, and otherwise the user's UCX settings,
 * so TCP, RoCE and InfiniBand devices all work.
 *
 * Eager rails (coll_qtopo_rail_eager; auto: network interfaces, i.e. UCX's TCP
 * transport, where the weights are fixed): RNDV_THRESH = inf and TCP_SNDBUF = 128 KiB,
 * each unless the user set its UCX_ variable. UCX's rendezvous over TCP makes every
 * large message wait for the receiving process to answer a request before its data
 * moves, and where ranks share cores that process is often not running; qtopo posts its
 * receives ahead, so eager data lands in place. Test bed, 4 nodes x 2 ranks, 2 rails of
 * 500 Mbit/s, 2026-12-02, lossless split-rail, s per call in one run each:
 *                             16 MiB        64 MiB
 *   rendezvous (UCX)          0.235 0.277   0.948 0.974
 *   eager, buffer 128 KiB     0.221 0.220   0.914 0.887
 *   eager, buffer 512 KiB     0.219 0.220   0.853 0.859
 *   eager, system buffers     0.219         0.929
 * and at 8 bits 0.100 / 0.409 s (rendezvous) against 0.069 / 0.287 s (eager, 128 KiB;
 * 0.077 / 0.340 s with the system's buffers), hence 128 KiB. Not with weights that
 * follow the network: they time sends, and an eager send ends when the socket takes its
 * bytes. With eager sends their estimates swung between 58 % and 94 % for the faster of
 * two rails of 400 and 100 Mbit/s, and with the system's buffers they did not move at
 * all; under rendezvous they settle near 80 %. InfiniBand ports keep UCX's default:
 * there the rendezvous is an RDMA transfer.
 *
 * Weights: coll_qtopo_rail_weights, or auto = the link speed the OS reports
 * (/sys/class/net/DEV/speed in Mbit/s, /sys/class/infiniband/DEV/ports/P/rate), equal
 * where unknown, then re-estimated from measured throughput (coll_qtopo_rails.h). Each
 * rail's agreed weight is the smallest any rank offers.
 *
 * Progress: while a call runs, its waits progress the rails (coll_qtopo_xport_ucx.c).
 * Between calls an opal_progress callback progresses every communicator's rails, so
 * sends left to finish on their own and UCX's own traffic (keep-alive, connection
 * setup) move whenever the application is in MPI. A call holds its rails' lock; the
 * callback only tries the lock, so it never progresses a worker another thread uses.
 */

#include "ompi_config.h"

/* Open MPI's own source tree builds qtopo without rails (no UCX check there). */
#if QTOPO_HAVE_UCX

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coll_qtopo.h"
#include "coll_qtopo_rails.h"

#include "opal/runtime/opal_progress.h"

/* The vector of the first exchange: every value v goes in as v and ~v and the vector
 * is MAX-reduced, so every rank learns the largest and the smallest value of all. */
enum {
    HDR_READY,     /* rails opened, weights valid, coll_qtopo_transport not pml (and ~) */
    HDR_NRAILS = HDR_READY + 2,
    HDR_NEED = HDR_NRAILS + 2,    /* rails this rank asks for at least: 2 (auto), 1 (ucx) */
    HDR_POLICY = HDR_NEED + 2,
    HDR_ADDR_LEN = HDR_POLICY + 2, /* longest worker address */
    HDR_ADAPT = HDR_ADDR_LEN + 2,  /* coll_qtopo_rail_adapt_calls, 0 for fixed weights */
    HDR_W = HDR_ADAPT + 2,         /* weight per rail */
    HDR_WORDS = HDR_W + 2 * QTOPO_RAILS_MAX
};

/* The exchanges go in pieces of this many bytes (a buffer on the stack each). */
#define QTOPO_RAIL_EXCHANGE_CHUNK 16384

/* Longest worker address qtopo exchanges (TCP: ~100 bytes, InfiniBand: a few hundred). */
#define QTOPO_RAIL_ADDR_MAX 4096

/* Time a rail's endpoints get to flush at teardown before they are closed by force. */
#define QTOPO_RAIL_CLOSE_SECONDS 2.0

/* Bytes a rank must have timed on a rail since the last offer to offer a rate for it. */
#define QTOPO_RAIL_MEASURE_MIN ((unsigned long) 1 << 20)

/* Every communicator's rails, for the progress callback. */
static pthread_mutex_t all_rails_lock = PTHREAD_MUTEX_INITIALIZER;
static mca_coll_qtopo_rails_t *all_rails;

bool mca_coll_qtopo_rails_wait(mca_coll_qtopo_rails_t *rails, int r, void *req, double deadline)
{
    while (UCS_INPROGRESS == ucp_request_check_status(req) && qtopo_now() < deadline) {
        (void) ucp_worker_progress(rails->worker[r]);
    }
    return UCS_INPROGRESS != ucp_request_check_status(req);
}

/* ---- devices ------------------------------------------------------------------------------ */

static bool read_line(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    bool ok = NULL != f && NULL != fgets(buf, (int) len, f);

    if (NULL != f) {
        fclose(f);
    }
    return ok;
}

/* The state line of a device ("mlx5_0:1" is an InfiniBand port, anything else a network
 * interface): false when the host has no such device. */
static bool device_state(const char *name, char *line, size_t len)
{
    char path[256], dev[QTOPO_RAIL_NAME_MAX];
    const char *colon = strchr(name, ':');

    if (NULL != colon) {
        snprintf(dev, sizeof(dev), "%.*s", (int) (colon - name), name);
        snprintf(path, sizeof(path), "/sys/class/infiniband/%s/ports/%s/state", dev, colon + 1);
    } else {
        snprintf(path, sizeof(path), "/sys/class/net/%s/operstate", name);
    }
    return read_line(path, line, len);
}

static bool device_exists(const char *name)
{
    char line[64];

    return device_state(name, line, sizeof(line));
}

/* The device is up: a network interface whose operstate is not down (lo and some
 * virtual devices say "unknown" and work), an InfiniBand port ACTIVE. */
static bool device_up(const char *name)
{
    char line[64];

    if (!device_state(name, line, sizeof(line))) {
        return false;
    }
    if (NULL != strchr(name, ':')) {
        return NULL != strstr(line, "ACTIVE");
    }
    return 0 != strncmp("down", line, 4) && 0 != strncmp("lowerlayerdown", line, 14)
           && 0 != strncmp("notpresent", line, 10);
}

/* Link speed in Mbit/s, 0 when unknown. */
static unsigned device_speed(const char *name)
{
    char path[256], line[128], dev[QTOPO_RAIL_NAME_MAX];
    const char *colon = strchr(name, ':');
    long v;

    if (NULL != colon) {
        snprintf(dev, sizeof(dev), "%.*s", (int) (colon - name), name);
        snprintf(path, sizeof(path), "/sys/class/infiniband/%s/ports/%s/rate", dev, colon + 1);
        /* "100 Gb/sec (4X EDR)" */
        return read_line(path, line, sizeof(line)) && 0 < (v = atol(line)) ? (unsigned) v * 1000
                                                                           : 0;
    }
    snprintf(path, sizeof(path), "/sys/class/net/%s/speed", name);
    return read_line(path, line, sizeof(line)) && 0 < (v = atol(line)) ? (unsigned) v : 0;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp((const char *) a, (const char *) b);
}

/* Network interfaces that are up, except lo, sorted by name. */
static int auto_net_devices(char names[][QTOPO_RAIL_NAME_MAX], int max)
{
    DIR *d = opendir("/sys/class/net");
    struct dirent *e;
    int n = 0;

    while (NULL != d && NULL != (e = readdir(d)) && n < max) {
        char path[300], state[32];

        if ('.' == e->d_name[0] || 0 == strcmp("lo", e->d_name)
            || QTOPO_RAIL_NAME_MAX <= strlen(e->d_name)) {
            continue;
        }
        snprintf(path, sizeof(path), "/sys/class/net/%s/operstate", e->d_name);
        if (read_line(path, state, sizeof(state)) && 0 == strncmp("up", state, 2)) {
            snprintf(names[n++], QTOPO_RAIL_NAME_MAX, "%s", e->d_name);
        }
    }
    if (NULL != d) {
        closedir(d);
    }
    qsort(names, (size_t) n, QTOPO_RAIL_NAME_MAX, compare_names);
    return n;
}

/* Active InfiniBand ports ("dev:port"), sorted. */
static int auto_ib_devices(char names[][QTOPO_RAIL_NAME_MAX], int max)
{
    DIR *d = opendir("/sys/class/infiniband");
    struct dirent *e;
    int n = 0, port;

    while (NULL != d && NULL != (e = readdir(d)) && n < max) {
        for (port = 1; '.' != e->d_name[0] && port <= 2 && n < max; ++port) {
            char path[300], state[64];

            snprintf(path, sizeof(path), "/sys/class/infiniband/%s/ports/%d/state", e->d_name,
                     port);
            if (read_line(path, state, sizeof(state)) && NULL != strstr(state, "ACTIVE")
                && QTOPO_RAIL_NAME_MAX > strlen(e->d_name) + 3) {
                snprintf(names[n++], QTOPO_RAIL_NAME_MAX, "%s:%d", e->d_name, port);
            }
        }
    }
    if (NULL != d) {
        closedir(d);
    }
    qsort(names, (size_t) n, QTOPO_RAIL_NAME_MAX, compare_names);
    return n;
}

/* The devices named by coll_qtopo_rails that this host has (others reported once). */
static int listed_devices(const char *list, char names[][QTOPO_RAIL_NAME_MAX], int max)
{
    char *copy = strdup(list), *tok, *save = NULL;
    int n = 0;

    for (tok = NULL != copy ? strtok_r(copy, ",", &save) : NULL; NULL != tok && n < max;
         tok = strtok_r(NULL, ",", &save)) {
        if (QTOPO_RAIL_NAME_MAX > strlen(tok) && device_exists(tok)) {
            snprintf(names[n++], QTOPO_RAIL_NAME_MAX, "%s", tok);
        } else {
            mca_coll_qtopo_show_help("rail-unknown", tok);
        }
    }
    free(copy);
    return n;
}

static int find_devices(char names[][QTOPO_RAIL_NAME_MAX])
{
    const char *list = mca_coll_qtopo_component.rails;
    int n;

    if (NULL != list && 0 != strcmp("auto", list) && '\0' != list[0]) {
        return listed_devices(list, names, QTOPO_RAILS_MAX);
    }
    n = auto_ib_devices(names, QTOPO_RAILS_MAX);
    return 0 < n ? n : auto_net_devices(names, QTOPO_RAILS_MAX);
}

static bool all_known(const unsigned *w, int n)
{
    int r;

    for (r = 0; r < n; ++r) {
        if (0 == w[r]) {
            return false;
        }
    }
    return true;
}

/* Weights of the n rails: the parameter, or link speeds (equal where unknown). */
static bool find_weights(mca_coll_qtopo_rails_t *rails)
{
    const char *text = mca_coll_qtopo_component.rail_weights;
    unsigned w[QTOPO_RAILS_MAX];
    int r;

    if (NULL != text && 0 != strcmp("auto", text) && '\0' != text[0]) {
        if (rails->n != qtopo_rail_parse_weights(text, w, QTOPO_RAILS_MAX)) {
            mca_coll_qtopo_show_help("rail-weights", text, rails->n);
            return false;
        }
        memcpy(rails->weights, w, sizeof(w[0]) * (size_t) rails->n);
        return true;
    }
    rails->adapt = 0 < mca_coll_qtopo_component.rail_adapt_calls;
    for (r = 0; r < rails->n; ++r) {
        w[r] = device_speed(rails->name[r]);
    }
    for (r = 0; r < rails->n; ++r) {
        /* one unknown speed: all equal */
        rails->weights[r] = all_known(w, rails->n) ? w[r] : 1;
    }
    return true;
}

/* ---- contexts and workers ---------------------------------------------------------------- */

/* Socket send buffer of an eager TCP rail (see the top of this file). */
#define QTOPO_RAIL_EAGER_SNDBUF "128k"

/* Whether this rank's settings ask for weights that follow the network. */
static bool adaptive_weights_asked(void)
{
    const mca_coll_qtopo_component_t *c = &mca_coll_qtopo_component;

    return (NULL == c->rail_weights || '\0' == c->rail_weights[0]
            || 0 == strcmp("auto", c->rail_weights))
           && QTOPO_RAIL_STRIPE == c->rail_policy && 0 < c->rail_adapt_calls;
}

/* Whether rail r's context sends eagerly (coll_qtopo_rail_eager): auto on network
 * interfaces with fixed weights. */
static bool eager_rail(const mca_coll_qtopo_rails_t *rails, int r)
{
    int eager = mca_coll_qtopo_component.rail_eager;

    if (QTOPO_EAGER_AUTO == eager) {
        return NULL == strchr(rails->name[r], ':') && !adaptive_weights_asked();
    }
    return QTOPO_EAGER_ON == eager;
}

/* UCX setting `name` = value in config, unless the user set UCX_<name>. */
static ucs_status_t set_unless_env(ucp_config_t *config, const char *name, const char *value)
{
    char env[64];

    snprintf(env, sizeof(env), "UCX_%s", name);
    return NULL != getenv(env) ? UCS_OK : ucp_config_modify(config, name, value);
}

static int open_rail(mca_coll_qtopo_rails_t *rails, int r)
{
    ucp_params_t params;
    ucp_worker_params_t wparams;
    ucp_config_t *config = NULL;
    ucs_status_t st;

    st = ucp_config_read(NULL, NULL, &config);
    if (UCS_OK != st) {
        return -1;
    }
    st = ucp_config_modify(config, "NET_DEVICES", rails->name[r]);
    /* a rail is for other nodes: no shared memory, which UCX would also pick between
     * containers or namespaces on one host (the test bed), bypassing the device */
    if (UCS_OK == st) {
        st = set_unless_env(config, "TLS", "^sm,self");
    }
    /* UCX's keep-alive finds a silent peer on an idle connection within about twice
     * the interval: half of qtopo's own watchdog timeout */
    if (UCS_OK == st) {
        char interval[32];

        snprintf(interval, sizeof(interval), "%.3fs",
                 0.5 * mca_coll_qtopo_component.rail_timeout);
        st = set_unless_env(config, "KEEPALIVE_INTERVAL", interval);
    }
    if (UCS_OK == st && eager_rail(rails, r)) {
        st = set_unless_env(config, "RNDV_THRESH", "inf");
        if (UCS_OK == st) {
            st = set_unless_env(config, "TCP_SNDBUF", QTOPO_RAIL_EAGER_SNDBUF);
        }
    }
    memset(&params, 0, sizeof(params));
    params.field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_MT_WORKERS_SHARED;
    params.features = UCP_FEATURE_TAG;
    params.mt_workers_shared = 0;
    if (UCS_OK == st) {
        st = ucp_init(&params, config, &rails->ctx[r]);
    }
    ucp_config_release(config);
    if (UCS_OK != st) {
        rails->ctx[r] = NULL;
        return -1;
    }
    memset(&wparams, 0, sizeof(wparams));
    /* one thread at a time: MPI runs one collective per communicator at once */
    wparams.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
    wparams.thread_mode = UCS_THREAD_MODE_SERIALIZED;
    if (UCS_OK != ucp_worker_create(rails->ctx[r], &wparams, &rails->worker[r])) {
        ucp_cleanup(rails->ctx[r]);
        rails->ctx[r] = NULL;
        rails->worker[r] = NULL;
        return -1;
    }
    return 0;
}

static void close_endpoints(mca_coll_qtopo_rails_t *rails, int r)
{
    ucp_request_param_t param;
    int p;

    /* force: the peers close theirs too (the communicator is freed on every rank), and
     * a flush towards a peer that has already destroyed its worker would only time out */
    memset(&param, 0, sizeof(param));
    param.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
    param.flags = UCP_EP_CLOSE_FLAG_FORCE;
    for (p = 0; NULL != rails->eps && p < rails->size; ++p) {
        ucp_ep_h ep = rails->eps[r * rails->size + p];
        ucs_status_ptr_t req;
        double t0 = qtopo_now();

        if (NULL == ep) {
            continue;
        }
        req = ucp_ep_close_nbx(ep, &param);
        if (UCS_PTR_IS_PTR(req)) {
            if (!mca_coll_qtopo_rails_wait(rails, r, req, t0 + QTOPO_RAIL_CLOSE_SECONDS)) {
                /* the peer is gone: the worker's destruction ends it */
                ucp_request_cancel(rails->worker[r], req);
            }
            ucp_request_free(req);
        }
        rails->eps[r * rails->size + p] = NULL;
    }
}

/* Endpoints, workers and contexts of the rails (a dead one is left alone). */
static void close_rails(mca_coll_qtopo_rails_t *rails)
{
    int r;

    for (r = rails->n - 1; r >= 0; --r) {
        if (rails->dead[r]) {
            continue;
        }
        close_endpoints(rails, r);
        if (NULL != rails->worker[r]) {
            ucp_worker_destroy(rails->worker[r]);
        }
        if (NULL != rails->ctx[r]) {
            ucp_cleanup(rails->ctx[r]);
        }
        rails->worker[r] = NULL;
        rails->ctx[r] = NULL;
    }
}

static void free_rails(mca_coll_qtopo_rails_t *rails)
{
    close_rails(rails);
    free(rails->eps);
    free(rails->addrs);
    free(rails->node);
    free(rails->local);
    free(rails->send_seq);
    free(rails->recv_seq);
    pthread_mutex_destroy(&rails->lock);
    free(rails);
}

/* ---- progress between calls ------------------------------------------------------------- */

static int progress_all_rails(void)
{
    mca_coll_qtopo_rails_t *rails;
    int r, events = 0;

    if (0 != pthread_mutex_trylock(&all_rails_lock)) {
        return 0;
    }
    for (rails = all_rails; NULL != rails; rails = rails->next) {
        if (0 != pthread_mutex_trylock(&rails->lock)) {
            continue; /* a call runs on them and progresses them itself */
        }
        for (r = 0; r < rails->n; ++r) {
            events += NULL != rails->worker[r] && !rails->dead[r]
                          ? (int) ucp_worker_progress(rails->worker[r])
                          : 0;
        }
        pthread_mutex_unlock(&rails->lock);
    }
    pthread_mutex_unlock(&all_rails_lock);
    return events;
}

static void link_rails(mca_coll_qtopo_rails_t *rails)
{
    pthread_mutex_lock(&all_rails_lock);
    if (NULL == all_rails) {
        (void) opal_progress_register(progress_all_rails);
    }
    rails->next = all_rails;
    all_rails = rails;
    pthread_mutex_unlock(&all_rails_lock);
}

static void unlink_rails(mca_coll_qtopo_rails_t *rails)
{
    mca_coll_qtopo_rails_t **p;

    pthread_mutex_lock(&all_rails_lock);
    for (p = &all_rails; NULL != *p && rails != *p; p = &(*p)->next) {
    }
    if (NULL != *p) {
        *p = rails->next;
    }
    if (NULL == all_rails) {
        (void) opal_progress_unregister(progress_all_rails);
    }
    pthread_mutex_unlock(&all_rails_lock);
}

void mca_coll_qtopo_rails_hold(mca_coll_qtopo_rails_t *rails)
{
    pthread_mutex_lock(&rails->lock);
}

void mca_coll_qtopo_rails_release(mca_coll_qtopo_rails_t *rails)
{
    pthread_mutex_unlock(&rails->lock);
}

void mca_coll_qtopo_rails_count(mca_coll_qtopo_rails_t *rails, int r, size_t sent, size_t recv)
{
    rails->bytes_sent[r] += sent;
    rails->bytes_recv[r] += recv;
    __atomic_fetch_add(&mca_coll_qtopo_component.rail_bytes_sent[r], (unsigned long) sent,
                       __ATOMIC_RELAXED);
    __atomic_fetch_add(&mca_coll_qtopo_component.rail_bytes_recv[r], (unsigned long) recv,
                       __ATOMIC_RELAXED);
}

/* ---- adaptive weights --------------------------------------------------------------------- */

static bool adapt_due(const mca_coll_qtopo_rails_t *rails, uint64_t call)
{
    int every = mca_coll_qtopo_component.rail_adapt_calls;

    return rails->adapt && 0 < every && 0 < call && 0 == call % (uint64_t) every;
}

void mca_coll_qtopo_rails_offer(mca_coll_qtopo_rails_t *rails, uint64_t call, uint64_t *words)
{
    int r;

    if (!adapt_due(rails, call)) {
        return;
    }
    for (r = 0; r < rails->n; ++r) {
        if (QTOPO_RAIL_MEASURE_MIN <= rails->meas_bytes[r] && 0.0 < rails->meas_sec[r]) {
            /* KiB/s, at least 1: a rate of 0 would read as "measured dead" */
            double kib_s = (double) rails->meas_bytes[r] / 1024.0 / rails->meas_sec[r];

            words[r] = 1.0 < kib_s ? (uint64_t) kib_s : 1;
        }
        rails->meas_bytes[r] = 0;
        rails->meas_sec[r] = 0.0;
    }
}

void mca_coll_qtopo_rails_accept(mca_coll_qtopo_rails_t *rails, uint64_t call,
                                 const uint64_t *words, const char *comm_name)
{
    char text[256] = "";
    size_t len = 0;
    int r;

    if (!adapt_due(rails, call) || !qtopo_rail_adapt_weights(rails->weights, words, rails->n)) {
        return;
    }
    for (r = 0; r < rails->n && len < sizeof(text); ++r) {
        len += (size_t) snprintf(text + len, sizeof(text) - len, "%s%s %u (%llu KiB/s)",
                                 0 < r ? ", " : "", rails->name[r], rails->weights[r],
                                 (unsigned long long) words[r]);
    }
    if (0 == rails->rank) {
        QTOPO_VERBOSE(1, "%s: rail weights at call %llu: %s", comm_name,
                      (unsigned long long) call, text);
    }
}

void mca_coll_qtopo_rails_destroy(mca_coll_qtopo_rails_t *rails, const char *comm_name)
{
    int r;

    if (NULL == rails) {
        return;
    }
    unlink_rails(rails);
    for (r = 0; r < rails->n; ++r) {
        QTOPO_VERBOSE(1, "rank %d of %s: rail %d (%s, weight %u): %lu bytes sent, %lu received",
                      rails->rank, comm_name, r, rails->name[r], rails->weights[r],
                      rails->bytes_sent[r], rails->bytes_recv[r]);
    }
    free_rails(rails);
}

/* "rail X is down" once per process and rail position, from the first rank of a node
 * (speak): the first process of the job may well see it up. */
static void say_down(const char *name, int position, bool speak)
{
    static unsigned said;

    if (speak && 0 == (said & (1u << position))) {
        said |= 1u << position;
        mca_coll_qtopo_show_help_here("rail-down", name);
    }
}

/* Opens this rank's rails; longest address in *addr_len. A device that is down keeps
 * its place in the list (weight 0 here, so no rank uses it: the agreed weight is the
 * smallest), with one message per node. False when no rail is usable. */
static bool open_rails(mca_coll_qtopo_rails_t *rails, size_t *addr_len, bool speak)
{
    char names[QTOPO_RAILS_MAX][QTOPO_RAIL_NAME_MAX];
    int n = find_devices(names), i, open = 0;

    *addr_len = 0;
    rails->n = n;
    for (i = 0; i < n; ++i) {
        ucp_address_t *a;
        size_t len;

        memcpy(rails->name[i], names[i], QTOPO_RAIL_NAME_MAX);
        if (!device_up(names[i])) {
            say_down(names[i], i, speak);
            continue;
        }
        if (0 != open_rail(rails, i)) {
            mca_coll_qtopo_show_help("rail-unknown", names[i]);
            continue;
        }
        if (UCS_OK != ucp_worker_get_address(rails->worker[i], &a, &len)) {
            close_rails(rails);
            return false;
        }
        ucp_worker_release_address(rails->worker[i], a);
        *addr_len = len > *addr_len ? len : *addr_len;
        open++;
    }
    if (0 == open || QTOPO_RAIL_ADDR_MAX < *addr_len || !find_weights(rails)) {
        return false;
    }
    for (i = 0; i < n; ++i) {
        rails->weights[i] = NULL != rails->worker[i] ? rails->weights[i] : 0;
    }
    return true;
}

/* ---- the agreement on the rails ---------------------------------------------------------- */

/*
 * Elementwise MAX of `bytes` at v over every rank (elements of esize = 1 or 8 bytes), in
 * pieces of QTOPO_RAIL_EXCHANGE_CHUNK: a dissemination allreduce over the PML with
 * qtopo's own tag, as the agreement's (MAX is idempotent: any rank count). Not through
 * the previous component: its allreduce tag is the one the agreement watches for.
 */
static int rails_max(struct ompi_communicator_t *comm, void *v, size_t bytes, size_t esize)
{
    uint64_t in[QTOPO_RAIL_EXCHANGE_CHUNK / sizeof(uint64_t)];
    int size = ompi_comm_size(comm), dist, rc = OMPI_SUCCESS;
    size_t off, i;

    for (off = 0; OMPI_SUCCESS == rc && off < bytes; off += QTOPO_RAIL_EXCHANGE_CHUNK) {
        size_t n = bytes - off < QTOPO_RAIL_EXCHANGE_CHUNK ? bytes - off
                                                           : QTOPO_RAIL_EXCHANGE_CHUNK;
        uint8_t *c = (uint8_t *) v + off;

        for (dist = 1; OMPI_SUCCESS == rc && dist < size; dist *= 2) {
            /* the buffers are this stack's: a failed round waits for its send */
            rc = mca_coll_qtopo_exchange_round(comm, QTOPO_TAG_RAILS, c, in, n, dist, 0, NULL);
            for (i = 0; OMPI_SUCCESS == rc && i < n / esize; ++i) {
                if (8 == esize) {
                    uint64_t *w = (uint64_t *) c;

                    w[i] = in[i] > w[i] ? in[i] : w[i];
                } else {
                    c[i] = ((uint8_t *) in)[i] > c[i] ? ((uint8_t *) in)[i] : c[i];
                }
            }
        }
    }
    return rc;
}

static void put_pair(uint64_t *h, int i, uint64_t v)
{
    h[i] = v;
    h[i + 1] = ~v;
}

static uint64_t largest(const uint64_t *h, int i)
{
    return h[i];
}

static uint64_t smallest(const uint64_t *h, int i)
{
    return ~h[i + 1];
}

static void fill_header(const mca_coll_qtopo_rails_t *rails, bool ready, size_t addr_len,
                        uint64_t *h)
{
    int r;

    put_pair(h, HDR_READY, ready);
    put_pair(h, HDR_NRAILS, ready ? (uint64_t) rails->n : 0);
    put_pair(h, HDR_NEED, QTOPO_TRANSPORT_UCX == mca_coll_qtopo_component.transport ? 1 : 2);
    put_pair(h, HDR_POLICY, (uint64_t) mca_coll_qtopo_component.rail_policy);
    put_pair(h, HDR_ADDR_LEN, addr_len);
    put_pair(h, HDR_ADAPT, rails->adapt ? (uint64_t) mca_coll_qtopo_component.rail_adapt_calls : 0);
    for (r = 0; r < QTOPO_RAILS_MAX; ++r) {
        put_pair(h, HDR_W + 2 * r, ready && r < rails->n ? rails->weights[r] : 0);
    }
}

/* The verdict from the reduced vector, the same on every rank; NULL = rails, else the
 * reason why not. */
static const char *decide(mca_coll_qtopo_rails_t *rails, const uint64_t *h)
{
    unsigned long long wsum = 0;
    int r, in_service = 0;

    if (1 != smallest(h, HDR_READY)) {
        return "a rank has no usable rail (or coll_qtopo_transport pml)";
    }
    if (largest(h, HDR_NRAILS) != smallest(h, HDR_NRAILS)
        || largest(h, HDR_POLICY) != smallest(h, HDR_POLICY)) {
        return "ranks differ in rail count or coll_qtopo_rail_policy";
    }
    rails->n = (int) smallest(h, HDR_NRAILS);
    rails->policy = (int) smallest(h, HDR_POLICY);
    rails->slot = (size_t) largest(h, HDR_ADDR_LEN);
    /* adaptive only where every rank asks for it, at the same interval */
    rails->adapt = QTOPO_RAIL_STRIPE == rails->policy && 0 < smallest(h, HDR_ADAPT)
                   && smallest(h, HDR_ADAPT) == largest(h, HDR_ADAPT);
    for (r = 0; r < rails->n; ++r) {
        rails->weights[r] = (unsigned) smallest(h, HDR_W + 2 * r);
        wsum += rails->weights[r];
        in_service += 0 != rails->weights[r];
    }
    if (0 == wsum) {
        return "every rail has weight 0 (or is down) on some rank";
    }
    /* a rail of weight 0 (by the user, or down on some rank) is out of service */
    return in_service < (int) largest(h, HDR_NEED)
               ? "fewer usable rails than coll_qtopo_transport needs (auto: 2)"
               : NULL;
}

/* Every rank's worker addresses, [rank][rail][slot], MAX-reduced in chunks; addrs NULL:
 * this rank takes part with zeros. */
static int exchange_addresses(mca_coll_qtopo_module_t *m, struct ompi_communicator_t *comm,
                              mca_coll_qtopo_rails_t *rails)
{
    size_t per_rank = (size_t) rails->n * rails->slot, total = per_rank * (size_t) rails->size;
    int r, rc = OMPI_SUCCESS;

    for (r = 0; NULL != rails->addrs && r < rails->n; ++r) {
        ucp_address_t *a;
        size_t len;

        /* a rail down here has no worker: its slot stays zero (nobody uses it) */
        if (NULL != rails->worker[r] && UCS_OK == ucp_worker_get_address(rails->worker[r], &a, &len)) {
            memcpy(rails->addrs + (size_t) rails->rank * per_rank + r * rails->slot, a,
                   len <= rails->slot ? len : 0);
            ucp_worker_release_address(rails->worker[r], a);
        }
    }
    if (NULL != rails->addrs) {
        rc = rails_max(comm, rails->addrs, total, 1);
    } else {
        /* no memory: take part with zeros, a chunk at a time */
        uint8_t spare[QTOPO_RAIL_EXCHANGE_CHUNK];
        size_t off;

        for (off = 0; OMPI_SUCCESS == rc && off < total; off += sizeof(spare)) {
            memset(spare, 0, sizeof(spare));
            rc = rails_max(comm, spare, total - off < sizeof(spare) ? total - off : sizeof(spare),
                           1);
        }
    }
    return OMPI_SUCCESS == rc && NULL != rails->addrs ? 0 : -1;
}

/* Node label and local rank of every rank, from the agreed labels. */
static int fill_nodes(mca_coll_qtopo_rails_t *rails, const int *labels)
{
    int i, j;

    rails->node = malloc(sizeof(int) * (size_t) rails->size);
    rails->local = malloc(sizeof(int) * (size_t) rails->size);
    rails->send_seq = calloc((size_t) rails->size, sizeof(uint32_t));
    rails->recv_seq = calloc((size_t) rails->size, sizeof(uint32_t));
    rails->eps = calloc((size_t) rails->size * QTOPO_RAILS_MAX, sizeof(ucp_ep_h));
    if (NULL == rails->node || NULL == rails->local || NULL == rails->send_seq
        || NULL == rails->recv_seq || NULL == rails->eps) {
        return -1;
    }
    for (i = 0; i < rails->size; ++i) {
        rails->node[i] = labels[i];
        rails->local[i] = 0;
        for (j = 0; j < i; ++j) {
            rails->local[i] += labels[j] == labels[i];
        }
    }
    return 0;
}

static void report(const mca_coll_qtopo_rails_t *rails, struct ompi_communicator_t *comm)
{
    char text[512] = "";
    size_t len = 0;
    int r;

    for (r = 0; r < rails->n && len < sizeof(text); ++r) {
        len += (size_t) snprintf(text + len, sizeof(text) - len, "%s%s (weight %u)",
                                 0 < r ? ", " : "", rails->name[r], rails->weights[r]);
    }
    if (0 == rails->rank) {
        QTOPO_VERBOSE(1, "%s: %d rails, policy %s: %s", comm->c_name, rails->n,
                      QTOPO_RAIL_ALIGNED == rails->policy ? "aligned" : "stripe", text);
    }
}

/* Every rank learns whether every rank has set its rails up (one more allreduce). */
static bool all_ok(mca_coll_qtopo_module_t *m, struct ompi_communicator_t *comm, bool ok)
{
    uint64_t failed = !ok;

    return OMPI_SUCCESS == rails_max(comm, &failed, sizeof(failed), 8) && 0 == failed;
}

static void say_no(mca_coll_qtopo_module_t *m, struct ompi_communicator_t *comm, const char *no)
{
    if (0 != m->comm_rank) {
        return;
    }
    if (QTOPO_TRANSPORT_UCX == mca_coll_qtopo_component.transport) {
        mca_coll_qtopo_show_help_here("rails-unused", comm->c_name, no);
    } else {
        QTOPO_VERBOSE(1, "%s: inter-node traffic through the PML: %s", comm->c_name, no);
    }
}

/* Opens this rank's rails and agrees with every rank whether and which to use; NULL
 * reason = use them. */
static const char *agree_rails(mca_coll_qtopo_module_t *m, struct ompi_communicator_t *comm,
                               mca_coll_qtopo_rails_t *rails, bool can)
{
    uint64_t h[HDR_WORDS];
    size_t addr_len = 0;
    bool ready;

    ready = can && QTOPO_TRANSPORT_PML != mca_coll_qtopo_component.transport
            && open_rails(rails, &addr_len, 0 == m->nodes.local_rank);
    fill_header(rails, ready, addr_len, h);
    if (OMPI_SUCCESS != rails_max(comm, h, sizeof(h), 8)) {
        return "the exchange failed";
    }
    return decide(rails, h);
}

void mca_coll_qtopo_rails_setup(mca_coll_qtopo_module_t *m, struct ompi_communicator_t *comm)
{
    mca_coll_qtopo_rails_t spare, *rails;
    const char *no;
    bool ok;

    m->rails_decided = true;
    /* the node count is agreed: every rank skips alike */
    if (2 > m->nodes.nnodes || m->comm_size > (1 << 20)) {
        return;
    }
    rails = calloc(1, sizeof(*rails));
    if (NULL == rails) {
        /* no memory: take part in the exchange, not ready */
        memset(&spare, 0, sizeof(spare));
        spare.size = m->comm_size;
        (void) agree_rails(m, comm, &spare, false);
        say_no(m, comm, "out of memory");
        return;
    }
    rails->size = m->comm_size;
    rails->rank = m->comm_rank;
    rails->comm_id = QTOPO_COMM_ID(comm);
    pthread_mutex_init(&rails->lock, NULL);
    no = agree_rails(m, comm, rails, true);
    if (NULL == no) {
        rails->addrs = calloc((size_t) rails->size, (size_t) rails->n * rails->slot);
        ok = 0 == exchange_addresses(m, comm, rails) && 0 == fill_nodes(rails, m->labels);
        if (!all_ok(m, comm, ok)) {
            no = "out of memory or the address exchange failed";
        }
    }
    if (NULL != no) {
        say_no(m, comm, no);
        free_rails(rails);
        return;
    }
    report(rails, comm);
    link_rails(rails);
    m->rails = rails;
}

void mca_coll_qtopo_rails_suspect(mca_coll_qtopo_rails_t *rails, int r, int peer,
                                  const char *why)
{
    int i;

    rails->trouble = true;
    if (!rails->suspect[r]) {
        snprintf(rails->why[r], sizeof(rails->why[r]), "%s", why);
    }
    rails->suspect[r] = true;
    for (i = 0; 0 <= peer && i < rails->npeers[r] && rails->peers[r][i] != peer; ++i) {
    }
    if (0 <= peer && i == rails->npeers[r] && 8 > rails->npeers[r]) {
        rails->peers[r][rails->npeers[r]++] = peer;
    }
}

/* UCX found an endpoint broken (peer error handling, keep-alive). */
static void endpoint_failed(void *arg, ucp_ep_h ep, ucs_status_t status)
{
    mca_coll_qtopo_rails_t *rails = arg;
    int i;

    for (i = 0; i < rails->n * rails->size; ++i) {
        if (ep == rails->eps[i]) {
            mca_coll_qtopo_rails_suspect(rails, i / rails->size, i % rails->size,
                                         ucs_status_string(status));
        }
    }
}

ucp_ep_h mca_coll_qtopo_rails_ep(mca_coll_qtopo_rails_t *rails, int r, int peer)
{
    ucp_ep_h *ep = &rails->eps[r * rails->size + peer];
    ucp_ep_params_t params;
    ucs_status_t st;

    if (NULL != *ep) {
        return *ep;
    }
    memset(&params, 0, sizeof(params));
    /* peer failure mode: a broken connection fails its requests (and is reported)
     * instead of leaving them pending */
    params.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE
                        | UCP_EP_PARAM_FIELD_ERR_HANDLER;
    params.err_mode = UCP_ERR_HANDLING_MODE_PEER;
    params.err_handler.cb = endpoint_failed;
    params.err_handler.arg = rails;
    params.address = (const ucp_address_t *) (rails->addrs
                                              + ((size_t) peer * rails->n + r) * rails->slot);
    st = ucp_ep_create(rails->worker[r], &params, ep);
    if (UCS_OK != st) {
        opal_output(0, "coll:qtopo: rank %d: no endpoint to rank %d on rail %d (%s): %s",
                    rails->rank, peer, r, rails->name[r], ucs_status_string(st));
        *ep = NULL;
    }
    return *ep;
}

void mca_coll_qtopo_rails_progress(mca_coll_qtopo_rails_t *rails)
{
    int r;

    for (r = 0; r < rails->n; ++r) {
        if (NULL != rails->worker[r] && !rails->dead[r]) {
            (void) ucp_worker_progress(rails->worker[r]);
        }
    }
}

/* ---- rail failure (protocol at the top of coll_qtopo_agree.c) ---------------------------- */

/* Tag layout: epoch (12 bits), communicator id (8), sender (20), message number (24). */
#define QTOPO_RAIL_EPOCH_SHIFT 52

ucp_tag_t mca_coll_qtopo_rails_tag(const mca_coll_qtopo_rails_t *rails, int sender, uint32_t seq)
{
    return (uint64_t) (rails->epoch & 0xfff) << QTOPO_RAIL_EPOCH_SHIFT
           | (rails->comm_id & 0xffULL) << 44 | (uint64_t) (sender & 0xfffff) << 24
           | (uint64_t) (seq & 0xffffff);
}

/* How long a rail left in service may take to drop what the abandoned attempt left. */
#define QTOPO_RAIL_DRAIN_SECONDS 1.0

/* Messages of the abandoned attempt (the epoch that ends) that reached rail r after
 * their receives were cancelled are received and dropped, so that UCX neither keeps
 * them nor reports them at teardown. Bounded in time; a message whose data does not
 * come in time keeps its buffer (never freed under UCX's feet). */
static void drop_stale(mca_coll_qtopo_rails_t *rails, int r)
{
    ucp_tag_t tag = (uint64_t) (rails->epoch & 0xfff) << QTOPO_RAIL_EPOCH_SHIFT;
    ucp_tag_t mask = (ucp_tag_t) 0xfff << QTOPO_RAIL_EPOCH_SHIFT;
    double deadline = qtopo_now() + QTOPO_RAIL_DRAIN_SECONDS;
    ucp_request_param_t param;
    ucp_tag_recv_info_t info;
    ucp_tag_message_h msg;

    memset(&param, 0, sizeof(param));
    param.op_attr_mask = UCP_OP_ATTR_FLAG_NO_IMM_CMPL;
    (void) ucp_worker_progress(rails->worker[r]);
    while (qtopo_now() < deadline
           && NULL != (msg = ucp_tag_probe_nb(rails->worker[r], tag, mask, 1, &info))) {
        void *buf = malloc(0 < info.length ? info.length : 1), *req;

        req = NULL != buf ? ucp_tag_msg_recv_nbx(rails->worker[r], buf, info.length, msg, &param)
                          : NULL;
        if (UCS_PTR_IS_PTR(req)) {
            if (!mca_coll_qtopo_rails_wait(rails, r, req, deadline)) {
                buf = NULL; /* still being written: left to UCX */
            }
            ucp_request_free(req);
        }
        free(buf);
    }
}

bool mca_coll_qtopo_rails_usable(const mca_coll_qtopo_rails_t *rails)
{
    int r;

    for (r = 0; r < rails->n; ++r) {
        if (0 != rails->weights[r]) {
            return true;
        }
    }
    return false;
}

bool mca_coll_qtopo_rails_troubled(const mca_coll_qtopo_rails_t *rails)
{
    return rails->trouble;
}

void mca_coll_qtopo_rails_take_suspects(mca_coll_qtopo_rails_t *rails, uint64_t *suspect)
{
    int r;

    for (r = 0; r < QTOPO_RAILS_MAX; ++r) {
        suspect[r] = r < rails->n && rails->suspect[r] ? (uint64_t) rails->rank : UINT64_MAX;
    }
    rails->trouble = false;
}

/* "ranks 2, 6" from the peers this rank waited for on rail r. */
static void peer_list(const mca_coll_qtopo_rails_t *rails, int r, char *text, size_t len)
{
    size_t used = 0;
    int i;

    text[0] = '\0';
    for (i = 0; i < rails->npeers[r] && used < len; ++i) {
        used += (size_t) snprintf(text + used, len - used, "%s%d", 0 < i ? ", " : "",
                                  rails->peers[r][i]);
    }
}

void mca_coll_qtopo_rails_fail(mca_coll_qtopo_rails_t *rails, const uint64_t *suspect,
                               uint32_t epoch, const char *comm_name)
{
    bool named = false;
    int r;

    for (r = 0; r < rails->n; ++r) {
        named = named || (UINT64_MAX != suspect[r] && 0 != rails->weights[r]);
    }
    for (r = 0; r < rails->n; ++r) {
        char peers[128];

        /* no rail named (no rank could tell which): none can be trusted */
        if (0 == rails->weights[r] || (named && UINT64_MAX == suspect[r])) {
            continue;
        }
        if ((uint64_t) rails->rank == suspect[r]) {
            peer_list(rails, r, peers, sizeof(peers));
            opal_output(0, "coll:qtopo: rank %d of %s: rail %d (%s) failed: %s%s%s; it is out "
                        "of service on this communicator and the allreduce is redone over the "
                        "rails left (or the PML)", rails->rank, comm_name, r, rails->name[r],
                        rails->why[r], '\0' != peers[0] ? " with ranks " : "", peers);
        } else if (0 == rails->rank && UINT64_MAX == suspect[r]) {
            opal_output(0, "coll:qtopo: %s: a call on qtopo's rails failed and no rank could "
                        "tell which rail; rail %d (%s) is out of service", comm_name, r,
                        rails->name[r]);
        }
        /* never progressed again, so nothing left pending on it (a receive stuck on
         * the dead link, a send) can touch this process's memory; not destroyed either
         * (UCX 1.13 asserts when a worker with requests stuck on a dead link is
         * destroyed): its UCX objects stay until the process ends */
        rails->weights[r] = 0;
        rails->dead[r] = true;
    }
    for (r = 0; r < rails->n; ++r) {
        if (0 != rails->weights[r]) {
            drop_stale(rails, r);
        }
        rails->suspect[r] = false;
        rails->npeers[r] = 0;
    }
    rails->epoch = epoch;
    memset(rails->send_seq, 0, sizeof(*rails->send_seq) * (size_t) rails->size);
    memset(rails->recv_seq, 0, sizeof(*rails->recv_seq) * (size_t) rails->size);
}

#endif /* QTOPO_HAVE_UCX */
