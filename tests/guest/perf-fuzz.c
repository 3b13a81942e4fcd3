// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * pvperf-fuzz: a seeded, bounded fuzzer aimed at the pvperf PMU.
 *
 * trinity's perf_event_open generator walks every PMU in sysfs, so
 * pvperf's share of its calls is small, and its random attributes rarely
 * pass pvperf's event_init. This one opens pvperf events (the type from
 * sysfs) with random but mostly valid attributes: counting and sampling,
 * periods and frequencies, per task and per CPU, inherited, in groups of
 * pvperf events and with software events, and then does to their fds
 * what perf and self-monitoring programs do: ioctl (ENABLE, DISABLE,
 * RESET, REFRESH, PERIOD, SET_OUTPUT, PAUSE_OUTPUT, with and without
 * PERF_IOC_FLAG_GROUP), read, mmap and walk the ring, poll, close, from
 * forked children too, between busy loops (overflows) and sleeps (task
 * switches).
 *
 * Besides the kernel's own checks (the test boot fails on any splat), it
 * checks perf's contract as a user sees it: a count read(2) twice with
 * no RESET between never goes backwards, time running never exceeds time
 * enabled, and every ring record has a sane size. Exit status 1 when one
 * of these failed (in this process or a child), 2 on bad usage.
 *
 * usage: pvperf-fuzz SEED OPERATIONS [PMU]
 * (PMU: the sysfs name of the PMU under test, pvperf by default; another
 * one, software say, checks the fuzzer itself on a host)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/perf_event.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_FDS     48
#define MAX_KIDS    4
#define PAGE        4096

struct fuzz_fd {
    int fd;
    int pvperf;             /* a pvperf event (else a software one) */
    uint64_t read_format;
    void *ring;             /* its mmap, or NULL */
    size_t ring_len;
    int have_last;          /* last count read, valid until a RESET */
    int theirs;             /* a child's copy of its parent's fd */
    int member;             /* opened in another fd's group */
    uint64_t id;            /* PERF_EVENT_IOC_ID, for a member's reads */
    uint64_t last;
};

static struct fuzz_fd fds[MAX_FDS];
static int nfds;
static uint64_t rng;
static const char *pmu = "pvperf";
static int pv_type = -1, ncpu = 1, nentries = 16, is_kid;
static long n_ops, n_open, n_open_ok, n_read, n_ioctl, n_mmap, n_fork;
static long n_bad_rec, n_backwards, n_bad_time, n_kid_fail;
static pid_t kids[MAX_KIDS];
static int nkids;

static uint64_t rnd(void)
{
    /* xorshift64*: the same seed, the same run */
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545F4914F6CDD1DULL;
}

static unsigned pick(unsigned n)
{
    return n ? rnd() % n : 0;
}

static int chance(unsigned percent)
{
    return pick(100) < percent;
}

static int read_int(const char *path, int *val)
{
    FILE *f = fopen(path, "r");
    int ok;

    if (!f) {
        return -1;
    }
    ok = fscanf(f, "%d", val) == 1;
    fclose(f);
    return ok ? 0 : -1;
}

static void setup(void)
{
    char path[256];
    int n = 0;

    snprintf(path, sizeof(path), "/sys/bus/event_source/devices/%s/type",
             pmu);
    if (read_int(path, &pv_type)) {
        fprintf(stderr, "pvperf-fuzz: no %s PMU (%s)\n", pmu, path);
        exit(2);
    }
    ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu < 1) {
        ncpu = 1;
    }
    /* the catalog's entries are the format's event=0..N-1: count them */
    snprintf(path, sizeof(path), "ls /sys/bus/event_source/devices/%s/"
             "events 2>/dev/null | grep -vc '\\.'", pmu);
    FILE *p = popen(path, "r");
    if (p) {
        if (fscanf(p, "%d", &n) != 1) {
            n = 0;
        }
        pclose(p);
    }
    /* a few indexes past the end: the refusals are paths too */
    nentries = (n > 0 ? n : 8) + 3;
}

static long perf_open(struct perf_event_attr *attr, pid_t pid, int cpu,
                      int group, unsigned long flags)
{
    return syscall(__NR_perf_event_open, attr, pid, cpu, group, flags);
}

static void forget_counts(void);

static void forget(int i)
{
    /*
     * Closing a leader makes its members groups of their own: a group
     * read of a member then starts with its own count, not the leader's
     */
    forget_counts();
    if (fds[i].ring) {
        munmap(fds[i].ring, fds[i].ring_len);
    }
    close(fds[i].fd);
    fds[i] = fds[--nfds];
}

static void op_open(void)
{
    static const uint64_t periods[] = {
        1, 10, 1000, 100000, 1000000, 4000000, 10000000, 1000000000ULL,
    };
    static const uint64_t freqs[] = { 1, 10, 100, 1000, 4000, 100000 };
    static const uint64_t types[] = {
        PERF_SAMPLE_IP, PERF_SAMPLE_TID, PERF_SAMPLE_TIME,
        PERF_SAMPLE_ADDR, PERF_SAMPLE_READ, PERF_SAMPLE_CALLCHAIN,
        PERF_SAMPLE_ID, PERF_SAMPLE_CPU, PERF_SAMPLE_PERIOD,
        PERF_SAMPLE_STREAM_ID, PERF_SAMPLE_IDENTIFIER, PERF_SAMPLE_RAW,
        PERF_SAMPLE_BRANCH_STACK, PERF_SAMPLE_WEIGHT,
        PERF_SAMPLE_DATA_SRC, PERF_SAMPLE_PHYS_ADDR,
    };
    struct perf_event_attr attr;
    struct fuzz_fd *g = NULL;
    int group = -1, cpu = -1, i;
    pid_t pid = 0;
    long fd;

    if (nfds == MAX_FDS) {
        forget(pick(nfds));
    }
    memset(&attr, 0, sizeof(attr));
    attr.size = chance(3) ? PERF_ATTR_SIZE_VER0 : sizeof(attr);
    if (chance(88)) {
        attr.type = pv_type;     /* the PMU under test */
        /* mostly the clocks and counts the catalog has */
        attr.config = chance(95) ? pick(nentries) : rnd();
    } else {
        attr.type = PERF_TYPE_SOFTWARE;
        attr.config = pick(PERF_COUNT_SW_DUMMY + 1);
    }
    if (chance(3)) {
        attr.config1 = rnd();
    }
    if (chance(50)) {
        if (chance(30)) {
            attr.freq = 1;
            attr.sample_freq = freqs[pick(6)];
        } else {
            attr.sample_period = chance(90) ? periods[pick(8)] : rnd();
        }
        for (i = 0; i < 16; i++) {
            if (chance(i < 11 ? 30 : 4)) {
                attr.sample_type |= types[i];
            }
        }
        if (chance(10)) {
            attr.sample_type |= PERF_SAMPLE_REGS_INTR;
            attr.sample_regs_intr = chance(50) ? 0xff : rnd();
        }
        attr.wakeup_events = pick(4);
        if (chance(20)) {
            attr.watermark = 1;
            attr.wakeup_watermark = pick(8192);
        }
    }
    attr.read_format = rnd() & (PERF_FORMAT_TOTAL_TIME_ENABLED |
                                PERF_FORMAT_TOTAL_TIME_RUNNING |
                                PERF_FORMAT_ID | PERF_FORMAT_GROUP |
                                (1U << 4) /* PERF_FORMAT_LOST, 6.0 */);
    attr.disabled = chance(40);
    attr.inherit = chance(30);
    attr.inherit_stat = chance(5);
    attr.pinned = chance(3);
    attr.exclusive = chance(2);
    attr.exclude_user = chance(6);
    attr.exclude_kernel = chance(8);
    attr.exclude_hv = chance(6);
    attr.exclude_idle = chance(4);
    attr.exclude_host = chance(2);
    attr.exclude_guest = chance(2);
    attr.precise_ip = chance(3) ? pick(4) : 0;
    attr.mmap = chance(20);
    attr.comm = chance(20);
    attr.task = chance(10);
    attr.sample_id_all = chance(30);
    attr.context_switch = chance(5);
    attr.remove_on_exec = chance(3);
    if (chance(5)) {
        attr.use_clockid = 1;
        attr.clockid = chance(80) ? CLOCK_MONOTONIC : pick(12);
    }
    if (nfds && chance(30)) {
        g = &fds[pick(nfds)];
        group = g->fd;
    }
    switch (pick(10)) {
    case 0: case 1:
        pid = -1;
        cpu = pick(ncpu);
        break;
    case 2:
        cpu = chance(90) ? (int)pick(ncpu) : ncpu + 3;
        break;
    case 3:
        pid = getppid();   /* another task (init, or the parent) */
        break;
    default:
        break;
    }
    n_open++;
    fd = perf_open(&attr, pid, cpu, group,
                   chance(50) ? PERF_FLAG_FD_CLOEXEC : 0);
    if (fd < 0) {
        return;
    }
    if (attr.type == (uint32_t)pv_type) {
        n_open_ok++;
    }
    fds[nfds] = (struct fuzz_fd){
        .fd = fd, .pvperf = attr.type == (uint32_t)pv_type,
        .read_format = attr.read_format,
        .theirs = g && g->theirs,   /* in a group of the parent's */
        .member = group != -1,
    };
    if (group != -1 && ioctl(fd, PERF_EVENT_IOC_ID, &fds[nfds].id)) {
        fds[nfds].id = 0;
    }
    nfds++;
}

static void forget_counts(void)
{
    for (int i = 0; i < nfds; i++) {
        fds[i].have_last = 0;
    }
}

static void op_ioctl(void)
{
    static const unsigned long cmds[] = {
        PERF_EVENT_IOC_ENABLE, PERF_EVENT_IOC_DISABLE,
        PERF_EVENT_IOC_RESET, PERF_EVENT_IOC_REFRESH,
        PERF_EVENT_IOC_PERIOD, PERF_EVENT_IOC_SET_OUTPUT,
        PERF_EVENT_IOC_ID, PERF_EVENT_IOC_PAUSE_OUTPUT,
    };
    struct fuzz_fd *f;
    unsigned long cmd;
    uint64_t arg64, id;
    unsigned long flag;

    if (!nfds) {
        return;
    }
    f = &fds[pick(nfds)];
    cmd = cmds[pick(8)];
    flag = chance(30) ? PERF_IOC_FLAG_GROUP : 0;
    n_ioctl++;
    switch (cmd) {
    case PERF_EVENT_IOC_RESET:
        /* a child's RESET would move its parent's counts back */
        if (is_kid) {
            break;
        }
        forget_counts();
        ioctl(f->fd, cmd, flag);
        break;
    case PERF_EVENT_IOC_REFRESH:
        ioctl(f->fd, cmd, (unsigned long)pick(4));
        break;
    case PERF_EVENT_IOC_PERIOD:
        arg64 = chance(80) ? 1000 + pick(10000000) : rnd();
        ioctl(f->fd, cmd, &arg64);
        break;
    case PERF_EVENT_IOC_SET_OUTPUT:
        ioctl(f->fd, cmd, chance(20) ? -1 : fds[pick(nfds)].fd);
        break;
    case PERF_EVENT_IOC_ID:
        ioctl(f->fd, cmd, &id);
        break;
    case PERF_EVENT_IOC_PAUSE_OUTPUT:
        ioctl(f->fd, cmd, (unsigned long)pick(2));
        break;
    default:
        ioctl(f->fd, cmd, flag);
        break;
    }
}

/*
 * Without PERF_FORMAT_GROUP: value, [enabled], [running], [id], [lost];
 * with it: nr, [enabled], [running], then nr of {value, [id], [lost]},
 * the leader's first. A member's own value is the one with its id: its
 * leader can go away (closed here, the last copy of its fd closed by a
 * child later), and then the member leads a group of its own.
 */
static void read_fd(struct fuzz_fd *f, size_t len)
{
    uint64_t buf[3 + 3 * 32], rf = f->read_format;
    uint64_t value, enabled = 0, running = 0;
    int group = !!(rf & PERF_FORMAT_GROUP), k = group;
    ssize_t n;

    n_read++;
    n = read(f->fd, buf, len < sizeof(buf) ? len : sizeof(buf));
    if (n < 8 || (group && buf[0] == 0)) {
        return;
    }
    if (!group) {
        k++;            /* the value comes first */
    }
    if (rf & PERF_FORMAT_TOTAL_TIME_ENABLED) {
        enabled = buf[k++];
    }
    if (rf & PERF_FORMAT_TOTAL_TIME_RUNNING) {
        running = buf[k++];
    }
    if ((size_t)n < (size_t)(k + group) * sizeof(uint64_t)) {
        fprintf(stderr, "pvperf-fuzz: fd %d: read gave %zd bytes\n",
                f->fd, n);
        n_bad_time++;
        return;
    }
    value = group ? buf[k] : buf[0];
    if (group && f->member) {
        size_t each = 1 + !!(rf & PERF_FORMAT_ID) + !!(rf & (1U << 4));
        uint64_t i, nr = buf[0];

        if (!(rf & PERF_FORMAT_ID) || !f->id) {
            return;         /* no way to tell which value is its own */
        }
        for (i = 0; i < nr; i++) {
            size_t at = k + i * each;

            if ((at + 2) * sizeof(uint64_t) > (size_t)n) {
                return;
            }
            if (buf[at + 1] == f->id) {
                value = buf[at];
                break;
            }
        }
        if (i == nr) {
            return;
        }
    }
    if ((rf & PERF_FORMAT_TOTAL_TIME_ENABLED) &&
        (rf & PERF_FORMAT_TOTAL_TIME_RUNNING) && running > enabled) {
        n_bad_time++;
        fprintf(stderr, "pvperf-fuzz: fd %d: running %" PRIu64
                " > enabled %" PRIu64 "\n", f->fd, running, enabled);
    }
    /* a pvperf count, not a software one (perf's own business) */
    if (f->pvperf && !f->theirs && f->have_last && value < f->last) {
        n_backwards++;
        fprintf(stderr, "pvperf-fuzz: fd %d: count went back from %"
                PRIu64 " to %" PRIu64 "\n", f->fd, f->last, value);
    }
    f->last = value;
    f->have_last = 1;
}

static void op_read(void)
{
    if (nfds) {
        /* mostly room for a group of 32, sometimes too short */
        read_fd(&fds[pick(nfds)], chance(90) ? 8 * 99 : pick(8 * 99));
    }
}

static void walk_ring(struct fuzz_fd *f)
{
    struct perf_event_mmap_page *pg = f->ring;
    size_t size = f->ring_len - PAGE;
    uint64_t head, tail;

    /* one reader per ring: a child's would race its parent's */
    if (!size || is_kid) {
        return;
    }
    head = __atomic_load_n(&pg->data_head, __ATOMIC_ACQUIRE);
    tail = pg->data_tail;
    if (head - tail > size) {
        n_bad_rec++;
        fprintf(stderr, "pvperf-fuzz: fd %d: ring head %" PRIu64
                " tail %" PRIu64 " beyond %zu\n", f->fd, head, tail, size);
        return;
    }
    while (tail < head) {
        const unsigned char *data = (const unsigned char *)f->ring + PAGE;
        struct perf_event_header h;
        size_t off = tail % size;

        /* a header may wrap around the end of the ring */
        for (size_t b = 0; b < sizeof(h); b++) {
            ((unsigned char *)&h)[b] = data[(off + b) % size];
        }
        if (h.size < sizeof(h) || h.size > head - tail || h.size % 8) {
            n_bad_rec++;
            fprintf(stderr, "pvperf-fuzz: fd %d: record type %u size %u "
                    "at %" PRIu64 " (head %" PRIu64 ")\n", f->fd, h.type,
                    h.size, tail, head);
            break;
        }
        tail += h.size;
    }
    __atomic_store_n(&pg->data_tail, head, __ATOMIC_RELEASE);
}

static void op_mmap(void)
{
    struct fuzz_fd *f;
    size_t len;
    void *p;

    if (!nfds) {
        return;
    }
    f = &fds[pick(nfds)];
    if (f->ring) {
        if (chance(70)) {
            walk_ring(f);
        } else {
            munmap(f->ring, f->ring_len);
            f->ring = NULL;
        }
        return;
    }
    len = (1 + (chance(20) ? 0 : 1u << pick(4))) * PAGE;
    n_mmap++;
    p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, f->fd, 0);
    if (p != MAP_FAILED) {
        f->ring = p;
        f->ring_len = len;
    }
}

static void op_poll(void)
{
    struct pollfd p;

    if (!nfds) {
        return;
    }
    p.fd = fds[pick(nfds)].fd;
    p.events = POLLIN | POLLHUP;
    poll(&p, 1, 0);
}

static void spin(unsigned usec)
{
    struct timespec a, b;
    volatile unsigned long x = 0;

    clock_gettime(CLOCK_MONOTONIC, &a);
    do {
        for (int i = 0; i < 1000; i++) {
            x += i;
        }
        clock_gettime(CLOCK_MONOTONIC, &b);
    } while ((b.tv_sec - a.tv_sec) * 1000000 +
             (b.tv_nsec - a.tv_nsec) / 1000 < usec);
}

static void reap(int block)
{
    for (int i = 0; i < nkids; i++) {
        int st;

        if (waitpid(kids[i], &st, block ? 0 : WNOHANG) == kids[i]) {
            if (!WIFEXITED(st) || WEXITSTATUS(st)) {
                n_kid_fail++;
            }
            kids[i--] = kids[--nkids];
        }
    }
}

static void fuzz(long ops);

static void op_fork(void)
{
    pid_t pid;

    reap(0);
    if (nkids == MAX_KIDS) {
        return;
    }
    n_fork++;
    rnd();
    pid = fork();
    if (pid == 0) {
        /* the child: inherited events, the parent's fds, a few ops */
        rng ^= (uint64_t)getpid() << 17;
        nkids = 0;
        is_kid = 1;
        n_backwards = n_bad_rec = n_bad_time = 0;
        for (int i = 0; i < nfds; i++) {
            fds[i].theirs = 1;  /* the parent may RESET them */
        }
        fuzz(20 + pick(60));
        _exit(n_backwards || n_bad_rec || n_bad_time ? 1 : 0);
    }
    if (pid > 0) {
        kids[nkids++] = pid;
    }
}

static void fuzz(long ops)
{
    for (long i = 0; i < ops; i++) {
        unsigned r = pick(100);

        n_ops++;
        if (r < 24) {
            op_open();
        } else if (r < 44) {
            op_ioctl();
        } else if (r < 60) {
            op_read();
        } else if (r < 70) {
            op_mmap();
        } else if (r < 73) {
            op_poll();
        } else if (r < 82) {
            if (nfds) {
                forget(pick(nfds));
            }
        } else if (r < 85) {
            if (!is_kid) {
                op_fork();
            }
        } else if (r < 93) {
            spin(200 + pick(3000));
        } else if (r < 98) {
            struct timespec ts = { 0, 100000 + pick(900000) };
            nanosleep(&ts, NULL);
        } else {
            prctl(chance(50) ? PR_TASK_PERF_EVENTS_DISABLE :
                  PR_TASK_PERF_EVENTS_ENABLE);
        }
    }
}

int main(int argc, char **argv)
{
    uint64_t seed;
    long ops;

    if (argc < 3 || argc > 4 || (ops = atol(argv[2])) <= 0) {
        fprintf(stderr, "usage: pvperf-fuzz SEED OPERATIONS [PMU]\n");
        return 2;
    }
    if (argc == 4) {
        pmu = argv[3];
    }
    seed = strtoull(argv[1], NULL, 0);
    rng = seed ? seed : 1;
    setup();
    fuzz(ops);
    while (nfds) {
        read_fd(&fds[nfds - 1], 8 * 99);
        forget(nfds - 1);
    }
    reap(1);
    printf("pvperf-fuzz: seed %" PRIu64 ": %ld operations: %ld opens "
           "(%ld %s events opened), %ld reads, %ld ioctls, %ld mmaps, "
           "%ld forks; %ld counts backwards, %ld running > enabled, "
           "%ld bad ring records, %ld children failed\n", seed, n_ops,
           n_open, n_open_ok, pmu, n_read, n_ioctl, n_mmap, n_fork, n_backwards,
           n_bad_time, n_bad_rec, n_kid_fail);
    return n_backwards || n_bad_time || n_bad_rec || n_kid_fail ? 1 : 0;
}
