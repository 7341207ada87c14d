/*
 * Unit test of the locality probe (coll_qtopo_locality.c): invariants of what the
 * probe finds here, the include filter, the rail-aligned NIC choice, bounded
 * formatting, concurrent probes, and, when root may create network namespaces, a
 * throwaway namespace with veth interfaces rail0/rail1 that the probe must find,
 * both through `ip netns exec` (sysfs remounted) and through a bare setns().
 *
 * Run as "test_locality --in-netns" it only checks the namespace it runs in.
 */

#define _GNU_SOURCE /* setns */

#include <fcntl.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "coll_qtopo_locality.h"
#include "qt_check.h"

int qt_checks_passed, qt_checks_failed;

static int nic_index(const qtopo_locality_t *loc, const char *name)
{
    for (int i = 0; i < loc->nnics; i++) {
        if (0 == strcmp(loc->nics[i].name, name)) {
            return i;
        }
    }
    return -1;
}

static void print_locality(const char *what, const qtopo_locality_t *loc)
{
    char line[1024];

    qtopo_locality_format(loc, line, sizeof(line));
    printf("%s: %s\n", what, line);
}

/* 1 if interface name is up in this network namespace. */
static int interface_up(const char *name)
{
    struct ifreq req;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int up;

    if (0 > fd) {
        return 0;
    }
    memset(&req, 0, sizeof(req));
    snprintf(req.ifr_name, sizeof(req.ifr_name), "%s", name);
    up = 0 == ioctl(fd, SIOCGIFFLAGS, &req) && 0 != (req.ifr_flags & IFF_UP);
    close(fd);
    return up;
}

static void check_invariants(const qtopo_locality_t *loc, int rc)
{
    CHECK((0 == rc) == (0 < loc->nnics), "rc=%d nnics=%d", rc, loc->nnics);
    CHECK(0 <= loc->nnics && QTOPO_MAX_NICS >= loc->nnics, "nnics=%d", loc->nnics);
    CHECK(-1 <= loc->numa, "numa=%d", loc->numa);
    for (int i = 0; i < loc->nnics && i < QTOPO_MAX_NICS; i++) {
        const qtopo_nic_t *nic = &loc->nics[i];

        CHECK(NULL != memchr(nic->name, '\0', sizeof(nic->name)), "nic %d not terminated", i);
        CHECK('\0' != nic->name[0], "nic %d has no name", i);
        CHECK(-1 <= nic->numa, "%s numa=%d", nic->name, nic->numa);
        CHECK(-1 == nic->speed_mbps || 0 < nic->speed_mbps, "%s speed=%ld", nic->name,
              nic->speed_mbps);
        CHECK(0 == nic->near || 1 == nic->near, "%s near=%d", nic->name, nic->near);
        CHECK(0 == i || nic->near <= loc->nics[i - 1].near, "%s near after far", nic->name);
        CHECK(0 > nic->numa || 0 > loc->numa || nic->near == (nic->numa == loc->numa),
              "%s numa %d near %d, process numa %d", nic->name, nic->numa, nic->near,
              loc->numa);
    }
}

static void test_probe_here(void)
{
    qtopo_locality_t loc;
    int rc = qtopo_locality_probe(&loc, NULL);

    print_locality("probe", &loc);
    check_invariants(&loc, rc);
    CHECK(0 > nic_index(&loc, "lo"), "loopback listed without being named");
    CHECK(-1 == qtopo_locality_probe(NULL, NULL), "NULL loc accepted");

    memset(&loc, 0x5a, sizeof(loc));
    rc = qtopo_locality_probe(&loc, "");
    check_invariants(&loc, rc);
}

static void test_include(void)
{
    qtopo_locality_t all, loc;
    int rc;

    qtopo_locality_probe(&all, NULL);
    if (0 < all.nnics) {
        char list[80];

        snprintf(list, sizeof(list), " nosuch0 ,%s , ", all.nics[0].name);
        rc = qtopo_locality_probe(&loc, list);
        check_invariants(&loc, rc);
        CHECK(1 == loc.nnics && 0 == strcmp(loc.nics[0].name, all.nics[0].name),
              "include \"%s\": nnics=%d", list, loc.nnics);
    }

    rc = qtopo_locality_probe(&loc, "nosuch0,nosuch1");
    CHECK(-1 == rc && 0 == loc.nnics, "unknown names: rc=%d nnics=%d", rc, loc.nnics);

    rc = qtopo_locality_probe(&loc, "l,lo0,lo");
    check_invariants(&loc, rc);
    CHECK(interface_up("lo") == loc.nnics && (0 == rc) == interface_up("lo")
              && (0 == loc.nnics || 0 == strcmp(loc.nics[0].name, "lo")),
          "named loopback: nnics=%d", loc.nnics);
}

static void set_nic(qtopo_nic_t *nic, const char *name, int numa, long speed, int near)
{
    snprintf(nic->name, sizeof(nic->name), "%s", name);
    nic->numa = numa;
    nic->speed_mbps = speed;
    nic->near = near;
}

static void test_pick(void)
{
    qtopo_locality_t loc = {.numa = 0, .nnics = 4};
    int pick;

    set_nic(&loc.nics[0], "rail0", 0, 500, 1);
    set_nic(&loc.nics[1], "rail1", 1, 500, 0);
    set_nic(&loc.nics[2], "rail2", 0, 500, 1);
    set_nic(&loc.nics[3], "rail3", 1, 500, 0);
    for (int r = 0; r < 6; r++) {
        pick = qtopo_locality_pick_nic(&loc, r, 6);
        CHECK((0 == r % 2 ? 0 : 2) == pick, "rank %d of 6 picked %d", r, pick);
    }

    for (int i = 0; i < 4; i++) {
        loc.nics[i].near = 0;
    }
    for (int r = 0; r < 5; r++) {
        pick = qtopo_locality_pick_nic(&loc, r, 5);
        CHECK(r % 4 == pick, "none near: rank %d picked %d", r, pick);
    }

    CHECK(-1 == qtopo_locality_pick_nic(&loc, 2, 2), "rank beyond size");
    CHECK(-1 == qtopo_locality_pick_nic(&loc, -1, 2), "negative rank");
    CHECK(-1 == qtopo_locality_pick_nic(NULL, 0, 1), "NULL loc");
    loc.nnics = 0;
    CHECK(-1 == qtopo_locality_pick_nic(&loc, 0, 1), "no NICs");
    loc.nnics = -3;
    CHECK(-1 == qtopo_locality_pick_nic(&loc, 0, 1), "negative nnics");
}

/* Every buffer size gives a terminated prefix of the full line and writes nothing past. */
static void check_format_bounded(const qtopo_locality_t *loc, const char *full)
{
    char buf[64 + 8];
    size_t flen = strlen(full);

    for (size_t len = 0; len <= 64; len++) {
        size_t want = len ? (flen < len - 1 ? flen : len - 1) : 0;

        memset(buf, '#', sizeof(buf));
        qtopo_locality_format(loc, buf, len);
        CHECK(0 == len || (strlen(buf) == want && 0 == strncmp(buf, full, want)),
              "len %zu: \"%s\"", len, len ? buf : "");
        CHECK('#' == buf[len], "len %zu: wrote past the end", len);
    }
}

static void test_format(void)
{
    qtopo_locality_t loc = {.numa = 0, .nnics = 2};
    char full[4096];

    set_nic(&loc.nics[0], "rail0", 0, 500, 1);
    set_nic(&loc.nics[1], "rail1", -1, -1, 1);
    qtopo_locality_format(&loc, full, sizeof(full));
    CHECK(0 == strcmp(full, "numa 0; nics rail0 (numa 0, 500 Mb/s), rail1 (?)"), "got \"%s\"",
          full);
    check_format_bounded(&loc, full);

    set_nic(&loc.nics[1], "eth2", 1, -1, 0);
    loc.numa = -1;
    qtopo_locality_format(&loc, full, sizeof(full));
    CHECK(0 == strcmp(full, "numa ?; nics rail0 (numa 0, 500 Mb/s), eth2 (numa 1, far)"),
          "got \"%s\"", full);

    loc.nnics = QTOPO_MAX_NICS;
    for (int i = 0; i < QTOPO_MAX_NICS; i++) {
        memset(loc.nics[i].name, 'x', sizeof(loc.nics[i].name)); /* no terminator */
        loc.nics[i].speed_mbps = 400000;
    }
    qtopo_locality_format(&loc, full, sizeof(full));
    check_format_bounded(&loc, full);

    loc.nnics = 0;
    qtopo_locality_format(&loc, full, sizeof(full));
    CHECK(0 == strcmp(full, "numa ?; nics none"), "got \"%s\"", full);
    qtopo_locality_format(NULL, full, sizeof(full));
    CHECK('\0' == full[0], "NULL loc gave \"%s\"", full);
    qtopo_locality_format(&loc, NULL, 0);
}

static void *probe_thread(void *arg)
{
    qtopo_locality_t *loc = arg;

    qtopo_locality_probe(loc, NULL);
    return NULL;
}

static void test_threads(void)
{
    qtopo_locality_t loc[4];
    pthread_t tid[4];

    for (int i = 0; i < 4; i++) {
        CHECK(0 == pthread_create(&tid[i], NULL, probe_thread, &loc[i]), "thread %d", i);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(tid[i], NULL);
    }
    for (int i = 1; i < 4; i++) {
        CHECK(0 == memcmp(&loc[0], &loc[i], sizeof(loc[0])), "thread %d saw another probe", i);
    }
}

/* Checks of a namespace holding up interfaces rail0, rail1 and nothing else. */
static void check_two_rails(const char *how)
{
    qtopo_locality_t loc;
    int rc = qtopo_locality_probe(&loc, NULL);
    char what[64];

    snprintf(what, sizeof(what), "probe in netns (%s)", how);
    print_locality(what, &loc);
    check_invariants(&loc, rc);
    CHECK(2 == loc.nnics && 0 == nic_index(&loc, "rail0") && 1 == nic_index(&loc, "rail1"),
          "%s: nnics=%d", how, loc.nnics);
    CHECK(2 == loc.nnics && loc.nics[0].near && loc.nics[1].near && -1 == loc.nics[0].numa,
          "%s: rails not near with unknown numa", how);
    CHECK(0 == qtopo_locality_pick_nic(&loc, 0, 2) && 1 == qtopo_locality_pick_nic(&loc, 1, 2)
              && 0 == qtopo_locality_pick_nic(&loc, 2, 3),
          "%s: not rail-aligned", how);

    rc = qtopo_locality_probe(&loc, "rail1");
    CHECK(0 == rc && 1 == loc.nnics && 0 == strcmp(loc.nics[0].name, "rail1"),
          "%s: include rail1: rc=%d nnics=%d", how, rc, loc.nnics);
}

static int run(const char *cmd)
{
    int status = system(cmd);

    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Forked child: enters ns with setns() only, /sys still shows the old namespace. */
static void test_bare_setns(const char *ns)
{
    int status = -1;
    pid_t pid;

    fflush(stdout);
    pid = fork();
    if (0 == pid) {
        char path[128];
        int fd;

        snprintf(path, sizeof(path), "/run/netns/%s", ns);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (0 > fd || 0 != setns(fd, CLONE_NEWNET)) {
            _exit(2);
        }
        close(fd);
        qt_checks_failed = 0;
        check_two_rails("setns");
        fflush(stdout);
        _exit(0 < qt_checks_failed);
    }
    CHECK(0 < pid && pid == waitpid(pid, &status, 0) && WIFEXITED(status)
              && 0 == WEXITSTATUS(status),
          "setns child: status %d", status);
}

static void test_netns(const char *self)
{
    char ns[32], cmd[512];
    int rc;

    snprintf(ns, sizeof(ns), "qtopo_loc_%d", (int) getpid());
    snprintf(cmd, sizeof(cmd),
             "ip netns add %1$s"
             " && ip -n %1$s link add rail0 type veth peer name qtp0"
             " && ip -n %1$s link add rail1 type veth peer name qtp1"
             " && ip -n %1$s link set rail0 up && ip -n %1$s link set rail1 up",
             ns);
    if (0 != geteuid() || 0 != run(cmd)) {
        printf("skip: network namespace test (needs root and `ip netns`)\n");
        snprintf(cmd, sizeof(cmd), "ip netns del %s 2>/dev/null", ns);
        run(cmd);
        return;
    }

    fflush(stdout);
    snprintf(cmd, sizeof(cmd), "ip netns exec %s '%s' --in-netns", ns, self);
    rc = run(cmd);
    CHECK(0 == rc, "ip netns exec child exited %d", rc);
    test_bare_setns(ns);

    snprintf(cmd, sizeof(cmd), "ip netns del %s", ns);
    CHECK(0 == run(cmd), "%s failed", cmd);
}

int main(int argc, char **argv)
{
    char self[256];
    ssize_t n;

    if (2 == argc && 0 == strcmp(argv[1], "--in-netns")) {
        check_two_rails("ip netns exec");
        return 0 < qt_checks_failed;
    }

    test_probe_here();
    test_include();
    test_pick();
    test_format();
    test_threads();

    n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (0 < n) {
        self[n] = '\0';
        test_netns(self);
    } else {
        printf("skip: network namespace test (no /proc/self/exe)\n");
    }
    return qt_check_summary();
}
