// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * pvperf-sleep: a task that sleeps and wakes in a loop without forking,
 * for the exits-per-switch measurements: each round is one switch out
 * (the sleep) and one switch in (the wakeup) of this task.
 *
 * usage: pvperf-sleep [rounds [usec]]   (default 300 rounds of 500 us)
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? atol(argv[1]) : 300;
    long usec = argc > 2 ? atol(argv[2]) : 500;
    struct timespec ts = { usec / 1000000, (usec % 1000000) * 1000 };

    if (rounds < 0 || usec <= 0) {
        fprintf(stderr, "usage: pvperf-sleep [rounds [usec]]\n");
        return 2;
    }
    for (long i = 0; i < rounds; i++) {
        nanosleep(&ts, NULL);
    }
    return 0;
}
