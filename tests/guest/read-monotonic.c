// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * pvperf-read-monotonic: read(2) of a sampling event's count, from
 * another CPU while the event overflows, never goes back.
 *
 * The parent, on CPU 0, opens a sampling event of a PMU's entry on
 * itself (a fixed period, its ring mapped so that samples are taken) and
 * busy-loops; a forked child, on CPU 1, reads the parent's event through
 * the inherited fd as fast as it can (each read runs the PMU's read on
 * CPU 0 by IPI, then takes the count) and counts the reads whose count is
 * below the one before. It prints one line and exits 1 if any was.
 *
 * usage: pvperf-read-monotonic SECONDS PERIOD [EVENT [PMU]]
 * (EVENT: an entry of the PMU's events/, default task-clock; PMU:
 * default pvperf)
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <linux/perf_event.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void pin(int cpu)
{
    cpu_set_t set;

    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set)) {
        perror("sched_setaffinity");
        exit(2);
    }
}

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* "event=0x3" (an events/ file) or a number -> config */
static int read_config(const char *pmu, const char *name, uint64_t *config,
                       int *type)
{
    char path[256], buf[128];
    FILE *f;

    snprintf(path, sizeof(path), "/sys/bus/event_source/devices/%s/type",
             pmu);
    f = fopen(path, "r");
    if (!f || fscanf(f, "%d", type) != 1) {
        fprintf(stderr, "no PMU %s\n", pmu);
        return -1;
    }
    fclose(f);
    if (name[0] >= '0' && name[0] <= '9') {
        *config = strtoull(name, NULL, 0);
        return 0;
    }
    snprintf(path, sizeof(path),
             "/sys/bus/event_source/devices/%s/events/%s", pmu, name);
    f = fopen(path, "r");
    if (!f || !fgets(buf, sizeof(buf), f) || strncmp(buf, "event=", 6)) {
        fprintf(stderr, "no event %s/%s\n", pmu, name);
        return -1;
    }
    fclose(f);
    *config = strtoull(buf + 6, NULL, 0);
    return 0;
}

int main(int argc, char **argv)
{
    const char *pmu = argc > 4 ? argv[4] : "pvperf";
    const char *name = argc > 3 ? argv[3] : "task-clock";
    struct perf_event_attr attr;
    double secs, end;
    int fd, type, st;
    uint64_t config;
    void *ring;
    pid_t kid;

    if (argc < 3 || (secs = atof(argv[1])) <= 0) {
        fprintf(stderr, "usage: pvperf-read-monotonic SECONDS PERIOD "
                "[EVENT [PMU]]\n");
        return 2;
    }
    if (read_config(pmu, name, &config, &type)) {
        return 2;
    }
    pin(0);
    memset(&attr, 0, sizeof(attr));
    attr.size = sizeof(attr);
    attr.type = type;
    attr.config = config;
    attr.sample_period = strtoull(argv[2], NULL, 0);
    attr.sample_type = PERF_SAMPLE_IP | PERF_SAMPLE_TID | PERF_SAMPLE_PERIOD;
    attr.wakeup_events = 1000000;
    fd = syscall(__NR_perf_event_open, &attr, 0, -1, -1, 0);
    if (fd < 0) {
        perror("perf_event_open");
        return 2;
    }
    ring = mmap(NULL, 9 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (ring == MAP_FAILED) {
        perror("mmap");
        return 2;
    }
    end = now() + secs;
    kid = fork();
    if (kid == 0) {
        long reads = 0, back = 0;
        uint64_t last = 0, v, worst = 0;

        pin(1);
        while (now() < end) {
            if (read(fd, &v, sizeof(v)) != sizeof(v)) {
                perror("read");
                _exit(2);
            }
            reads++;
            if (v < last) {
                back++;
                if (last - v > worst) {
                    worst = last - v;
                }
            }
            last = v;
        }
        printf("pvperf-read-monotonic: %s/%s/ period %s: %ld reads from "
               "CPU 1, %ld below the read before (by up to %" PRIu64
               "), last count %" PRIu64 "\n", pmu, name, argv[2], reads,
               back, worst, last);
        fflush(stdout);
        _exit(back ? 1 : 0);
    }
    while (now() < end + 0.05) {
        for (volatile int i = 0; i < 100000; i++) {
        }
    }
    if (waitpid(kid, &st, 0) != kid) {
        return 2;
    }
    printf("pvperf-read-monotonic: %" PRIu64 " bytes of samples written\n",
           (uint64_t)((struct perf_event_mmap_page *)ring)->data_head);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 2;
}
