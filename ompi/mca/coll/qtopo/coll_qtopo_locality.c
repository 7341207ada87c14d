/*
 * The calling process's NUMA node and network interfaces (see coll_qtopo_locality.h).
 *
 * The interfaces come from getifaddrs(), which always answers for the caller's network
 * namespace; hwloc only adds the NUMA locality of those it finds in the PCI tree, and
 * the OpenFabrics devices a caller names. Link speeds come from sysfs.
 */

#define _GNU_SOURCE /* strverscmp */

#include <ctype.h>
#include <ifaddrs.h>
#include <limits.h>
#include <net/if.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <hwloc.h>

#include "coll_qtopo_locality.h"

/* Interfaces gathered before sorting and keeping the first QTOPO_MAX_NICS. */
#define QTOPO_LOC_MAX_CANDIDATES (4 * QTOPO_MAX_NICS)

typedef struct qtopo_loc_candidates {
    int n;
    qtopo_nic_t nic[QTOPO_LOC_MAX_CANDIDATES];
} qtopo_loc_candidates_t;

static pthread_once_t topo_once = PTHREAD_ONCE_INIT;
static hwloc_topology_t topo_cached; /* NULL while unloaded or when hwloc failed */

/*
 * hwloc components that would start GPU runtimes (slow, and they hold resources) for
 * devices qtopo never looks at. Names hwloc does not have are refused, harmlessly.
 */
static const char *const topo_skipped_components[] = {"opencl", "gl",   "cuda",
                                                       "nvml",   "rsmi", "levelzero"};

/* Loads this process's own topology, with the important I/O devices. */
static void topo_load(void)
{
    hwloc_topology_t topo;
    size_t i;

    if (HWLOC_API_VERSION >> 16 != hwloc_get_api_version() >> 16) {
        return; /* built against another hwloc ABI: locality stays unknown */
    }
    if (0 != hwloc_topology_init(&topo)) {
        return;
    }
    for (i = 0; i < sizeof(topo_skipped_components) / sizeof(topo_skipped_components[0]); i++) {
        (void) hwloc_topology_set_components(topo, HWLOC_TOPOLOGY_COMPONENTS_FLAG_BLACKLIST,
                                             topo_skipped_components[i]);
    }
    if (0 != hwloc_topology_set_io_types_filter(topo, HWLOC_TYPE_FILTER_KEEP_IMPORTANT)
        || 0 != hwloc_topology_load(topo)) {
        hwloc_topology_destroy(topo);
        return;
    }
    topo_cached = topo;
}

/* Frees the cached topology when the program ends or the DSO is unloaded. */
static void __attribute__((destructor)) topo_unload(void)
{
    if (NULL != topo_cached) {
        hwloc_topology_destroy(topo_cached);
        topo_cached = NULL;
    }
}

/* 1 if name is one of the comma-separated names in list (spaces around names ignored). */
static int name_listed(const char *list, const char *name)
{
    size_t n = strlen(name);

    while ('\0' != *list) {
        size_t len, end;

        list += strspn(list, " \t,");
        len = strcspn(list, ",");
        end = len;
        while (0 < end && isspace((unsigned char) list[end - 1])) {
            end--;
        }
        if (0 < end && end == n && 0 == strncmp(list, name, n)) {
            return 1;
        }
        list += len;
    }
    return 0;
}

static int include_given(const char *include)
{
    return NULL != include && '\0' != include[0];
}

/* Link speed from a sysfs file holding a number (first field), times scale; -1 if none. */
static long sysfs_mbps(const char *dir, const char *dev, const char *leaf, double scale)
{
    char path[256];
    double value = -1.0;
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s/%s", dir, dev, leaf);
    f = fopen(path, "r");
    if (NULL == f) {
        return -1;
    }
    if (1 != fscanf(f, "%lf", &value)) {
        value = -1.0; /* e.g. EINVAL from a link that is down */
    }
    fclose(f);
    value *= scale;
    return 0.0 < value && (double) LONG_MAX > value ? (long) value : -1;
}

static int candidate_find(const qtopo_loc_candidates_t *c, const char *name)
{
    for (int i = 0; i < c->n; i++) {
        if (0 == strcmp(c->nic[i].name, name)) {
            return i;
        }
    }
    return -1;
}

/* Appends an interface with unknown locality (near); NULL when the list is full. */
static qtopo_nic_t *candidate_add(qtopo_loc_candidates_t *c, const char *name, long speed_mbps)
{
    qtopo_nic_t *nic;

    if (QTOPO_LOC_MAX_CANDIDATES <= c->n) {
        return NULL;
    }
    nic = &c->nic[c->n++];
    snprintf(nic->name, sizeof(nic->name), "%s", name);
    nic->numa = -1;
    nic->speed_mbps = speed_mbps;
    nic->near = 1;
    return nic;
}

/* The interfaces that are up in the caller's network namespace and pass the filter. */
static void add_up_interfaces(const char *include, qtopo_loc_candidates_t *c)
{
    struct ifaddrs *all, *ifa;

    if (0 != getifaddrs(&all)) {
        return;
    }
    for (ifa = all; NULL != ifa; ifa = ifa->ifa_next) {
        /* one entry per link (AF_PACKET, or no address); skip per-address entries */
        int link = NULL == ifa->ifa_addr || AF_PACKET == ifa->ifa_addr->sa_family;
        int loopback = 0 != (ifa->ifa_flags & IFF_LOOPBACK);

        if (!link || NULL == ifa->ifa_name || '\0' == ifa->ifa_name[0]
            || 0 == (ifa->ifa_flags & IFF_UP) || 0 <= candidate_find(c, ifa->ifa_name)) {
            continue;
        }
        if (include_given(include) ? name_listed(include, ifa->ifa_name) : !loopback) {
            candidate_add(c, ifa->ifa_name,
                          sysfs_mbps("/sys/class/net", ifa->ifa_name, "speed", 1.0));
        }
    }
    freeifaddrs(all);
}

/* The OS index of the only NUMA node in nodes; -1 for none, several or unknown. */
static int single_node(hwloc_const_nodeset_t nodes)
{
    return NULL != nodes && 1 == hwloc_bitmap_weight(nodes) ? hwloc_bitmap_first(nodes) : -1;
}

/* The NUMA nodes the process's CPU binding touches; NULL if unknown. Caller frees. */
static hwloc_nodeset_t process_nodeset(hwloc_topology_t topo)
{
    hwloc_cpuset_t cpus = hwloc_bitmap_alloc();
    hwloc_nodeset_t nodes = hwloc_bitmap_alloc();

    if (NULL == cpus || NULL == nodes
        || 0 != hwloc_get_cpubind(topo, cpus, HWLOC_CPUBIND_PROCESS)
        || 0 != hwloc_cpuset_to_nodeset(topo, cpus, nodes) || hwloc_bitmap_iszero(nodes)) {
        hwloc_bitmap_free(nodes);
        hwloc_bitmap_free(cpus);
        return NULL;
    }
    hwloc_bitmap_free(cpus);
    return nodes;
}

/* Sets nic's NUMA node from the nearest non-I/O ancestor of its OS device. */
static void set_nic_locality(hwloc_topology_t topo, hwloc_obj_t dev,
                             hwloc_const_nodeset_t mine, qtopo_nic_t *nic)
{
    hwloc_obj_t parent = hwloc_get_non_io_ancestor_obj(topo, dev);

    if (NULL == parent || NULL == parent->nodeset || hwloc_bitmap_iszero(parent->nodeset)) {
        return;
    }
    nic->numa = single_node(parent->nodeset);
    nic->near = NULL == mine || hwloc_bitmap_intersects(parent->nodeset, mine);
}

/*
 * Adds hwloc's locality to the interfaces already listed, and appends the OpenFabrics
 * devices that include names (their speed from port 1's rate in Gb/s).
 */
static void add_hwloc_locality(hwloc_topology_t topo, hwloc_const_nodeset_t mine,
                               const char *include, qtopo_loc_candidates_t *c)
{
    hwloc_obj_t dev = NULL;

    while (NULL != (dev = hwloc_get_next_osdev(topo, dev))) {
        qtopo_nic_t *nic = NULL;

        if (NULL == dev->name) {
            continue;
        }
        if (HWLOC_OBJ_OSDEV_NETWORK == dev->attr->osdev.type) {
            int i = candidate_find(c, dev->name);

            nic = 0 <= i ? &c->nic[i] : NULL;
        } else if (HWLOC_OBJ_OSDEV_OPENFABRICS == dev->attr->osdev.type
                   && include_given(include) && name_listed(include, dev->name)
                   && 0 > candidate_find(c, dev->name)) {
            nic = candidate_add(c, dev->name, sysfs_mbps("/sys/class/infiniband", dev->name,
                                                         "ports/1/rate", 1000.0));
        }
        if (NULL != nic) {
            set_nic_locality(topo, dev, mine, nic);
        }
    }
}

/* Near ones first, then by name in natural order (eth2 before eth10). */
static int nic_order(const void *a, const void *b)
{
    const qtopo_nic_t *x = a, *y = b;

    if (x->near != y->near) {
        return y->near - x->near;
    }
    return strverscmp(x->name, y->name);
}

int qtopo_locality_probe(qtopo_locality_t *loc, const char *include)
{
    qtopo_loc_candidates_t c;

    if (NULL == loc) {
        return -1;
    }
    memset(loc, 0, sizeof(*loc));
    loc->numa = -1;
    memset(&c, 0, sizeof(c)); /* no stray bytes reach *loc: callers may compare or send it */

    add_up_interfaces(include, &c);
    pthread_once(&topo_once, topo_load);
    if (NULL != topo_cached) {
        hwloc_nodeset_t mine = process_nodeset(topo_cached);

        loc->numa = single_node(mine);
        add_hwloc_locality(topo_cached, mine, include, &c);
        hwloc_bitmap_free(mine);
    }

    qsort(c.nic, (size_t) c.n, sizeof(c.nic[0]), nic_order);
    loc->nnics = QTOPO_MAX_NICS < c.n ? QTOPO_MAX_NICS : c.n;
    memcpy(loc->nics, c.nic, (size_t) loc->nnics * sizeof(loc->nics[0]));
    return 0 < loc->nnics ? 0 : -1;
}

/* loc->nnics, clamped to what nics[] can hold (callers may fill *loc themselves). */
static int nic_count(const qtopo_locality_t *loc)
{
    if (0 > loc->nnics) {
        return 0;
    }
    return QTOPO_MAX_NICS < loc->nnics ? QTOPO_MAX_NICS : loc->nnics;
}

/* snprintf at *off in buf, which stays NUL-terminated; output past len is dropped. */
static void append(char *buf, size_t len, size_t *off, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (*off + 1 >= len) {
        return;
    }
    va_start(ap, fmt);
    n = vsnprintf(buf + *off, len - *off, fmt, ap);
    va_end(ap);
    if (0 < n) {
        *off = (size_t) n < len - *off ? *off + (size_t) n : len - 1;
    }
}

/* "name (numa N, S Mb/s, far)" with the unknown parts left out, "name (?)" if all are. */
static void format_nic(const qtopo_nic_t *nic, char *buf, size_t len, size_t *off)
{
    int parts = 0;

    append(buf, len, off, "%.*s (", (int) sizeof(nic->name), nic->name);
    if (0 <= nic->numa) {
        append(buf, len, off, "numa %d", nic->numa);
        parts++;
    }
    if (0 < nic->speed_mbps) {
        append(buf, len, off, "%s%ld Mb/s", 0 < parts++ ? ", " : "", nic->speed_mbps);
    }
    if (!nic->near) {
        append(buf, len, off, "%sfar", 0 < parts++ ? ", " : "");
    }
    append(buf, len, off, "%s)", 0 < parts ? "" : "?");
}

void qtopo_locality_format(const qtopo_locality_t *loc, char *buf, size_t len)
{
    size_t off = 0;
    int n;

    if (NULL == buf || 0 == len) {
        return;
    }
    buf[0] = '\0';
    if (NULL == loc) {
        return;
    }
    n = nic_count(loc);
    if (0 > loc->numa) {
        append(buf, len, &off, "numa ?; nics ");
    } else {
        append(buf, len, &off, "numa %d; nics ", loc->numa);
    }
    if (0 == n) {
        append(buf, len, &off, "none");
    }
    for (int i = 0; i < n; i++) {
        append(buf, len, &off, "%s", 0 < i ? ", " : "");
        format_nic(&loc->nics[i], buf, len, &off);
    }
}

int qtopo_locality_pick_nic(const qtopo_locality_t *loc, int local_rank, int local_size)
{
    int n, nnear = 0, k;

    if (NULL == loc || 0 > local_rank || local_rank >= local_size || 0 == nic_count(loc)) {
        return -1;
    }
    n = nic_count(loc);
    for (int i = 0; i < n; i++) {
        nnear += 0 != loc->nics[i].near;
    }
    /* the k-th near NIC, or the k-th of all when none is near */
    k = local_rank % (0 < nnear ? nnear : n);
    for (int i = 0; i < n; i++) {
        if ((0 == nnear || loc->nics[i].near) && 0 == k--) {
            return i;
        }
    }
    return -1;
}
