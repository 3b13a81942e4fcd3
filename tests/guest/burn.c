// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * pvperf-burn: a guest program for the sampling tests. burn_three() and
 * burn_one() run the same loop, three times as many iterations in the
 * first, interleaved in short rounds from burn_work(): a profiler should
 * find them in a 3:1 ratio, and burn_work() as their caller.
 *
 * usage: pvperf-burn [seconds]   (default 2)
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static volatile unsigned long sink;


__attribute__((noinline)) void burn_three(unsigned long n)
{
    for (int r = 0; r < 3; r++) {
        for (unsigned long i = 0; i < n; i++) {
            sink += i * i;
        }
    }
}

__attribute__((noinline)) void burn_one(unsigned long n)
{
    for (unsigned long i = 0; i < n; i++) {
        sink += i * i;
    }
}

__attribute__((noinline)) void burn_work(unsigned long n)
{
    burn_three(n);
    burn_one(n);
}

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 2.0;
    double end = now() + secs;
    unsigned long rounds = 0;

    while (now() < end) {
        burn_work(20000);
        rounds++;
    }
    printf("pvperf-burn: %lu rounds in %.1f s\n", rounds, secs);
    return 0;
}
