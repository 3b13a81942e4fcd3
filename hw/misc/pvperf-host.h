/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * pvperf's host perf layer: the event catalog (libpfm4 names and the
 * host's attribute policy) and the host perf events behind the device's
 * slots and vCPU watches. It knows nothing of registers, guest memory or
 * QOM; hw/misc/pvperf.c is the device on top of it.
 */
#ifndef HW_MISC_PVPERF_HOST_H
#define HW_MISC_PVPERF_HOST_H

#include <linux/perf_event.h>
#include "hw/misc/pvperf.h"

/* The catalog when the events property is not set */
#define PVPERF_DEFAULT_EVENTS \
    "task-clock,context-switches,cpu-migrations,page-faults,major-faults," \
    "cycles,instructions,kvm:kvm_exit"

/* One catalog entry */
typedef struct PVPerfEvent {
    char name[PVPERF_NAME_SIZE];
    struct perf_event_attr attr;
    uint32_t kind;              /* enum pvperf_kind */
    uint32_t unit;              /* enum pvperf_unit */
    bool available;
    int probe_errno;            /* positive errno when unavailable */
    char *reason;               /* why unavailable, for management */
    /*
     * An available entry's probe event, kept open (disabled, on the main
     * thread) while the device exists: the host kernel then registers its
     * hooks (tracepoint probes, static keys) once, not on every OPEN/CLOSE.
     */
    int keep_fd;
} PVPerfEvent;

/*
 * Build the catalog of @list (comma-separated libpfm4 names; NULL: the
 * default catalog) into @catalog. *@count is the number of entries that
 * need pvperf_host_catalog_free(), also on failure; *@names the names
 * joined by commas. A name libpfm4 does not know is an error in a list
 * the user gave, an unavailable entry in the default one.
 */
bool pvperf_host_catalog(const char *list, PVPerfEvent *catalog,
                         uint32_t *count, char **names, Error **errp);
void pvperf_host_catalog_free(PVPerfEvent *catalog, uint32_t *count);

/*
 * Open @ev's host event on host thread @tid, disabled, in the group of
 * @group_fd (-1: none); its perf ID in *@id. @period 0 counts; any other
 * samples: an overflow record every @period events, a wakeup for each.
 * Returns the fd or -errno, with the failing call in *@what.
 */
int pvperf_host_open(const PVPerfEvent *ev, int tid, int group_fd,
                     uint64_t period, uint64_t *id, const char **what);
/* Change a sampling event's period (it restarts); errno or 0 */
int pvperf_host_set_period(int fd, uint64_t period);
/* Enable or disable an open event (@group: with its members); errno or 0 */
int pvperf_host_enable(int fd, bool enable, bool group);

/* A read(2) of a group leader: its own and its members' counts */
typedef struct PVPerfGroupRead {
    uint64_t nr;
    uint64_t time_enabled;
    uint64_t time_running;
    struct {
        uint64_t value;
        uint64_t id;
    } v[PVPERF_SLOTS_MAX];
} PVPerfGroupRead;

/* Returns 0 or errno (EIO for a short read); *@len what read(2) returned */
int pvperf_host_read_group(int fd, PVPerfGroupRead *g, ssize_t *len);

/*
 * A host event's ring buffer: one metadata page and, for a sampling
 * event, PVPERF_RING_DATA_PAGES data pages, mapped read-write so that the
 * device can move data_tail (the kernel then never overwrites records
 * that were not consumed: it counts them as lost). A sampling event's fd
 * polls readable after each overflow record (wakeup_events = 1).
 */
#define PVPERF_RING_DATA_PAGES  1

typedef struct PVPerfRing {
    void *base;                 /* NULL: not mapped */
    size_t size;
} PVPerfRing;

/*
 * A vCPU watch: a disabled dummy event on the vCPU's host thread, whose
 * fd polls HUP when the thread ends (with a ring buffer of its metadata
 * page alone, so that it does not poll at once).
 */
typedef struct PVPerfWatch {
    int fd;
    PVPerfRing ring;
} PVPerfWatch;

/* What one drain of a ring buffer found */
typedef struct PVPerfRingNews {
    uint64_t samples;           /* PERF_RECORD_SAMPLE: overflows */
    uint64_t lost;              /* PERF_RECORD_LOST: overflows dropped */
    uint32_t throttles;         /* PERF_RECORD_THROTTLE */
    /* the last THROTTLE or UNTHROTTLE: 1 throttle, 2 unthrottle, 0 none */
    uint8_t throttle_state;
    int64_t first_ns;           /* CLOCK_MONOTONIC of the first sample, or 0 */
    bool corrupt;               /* a record that cannot be: skipped all */
    /* the ring was (nearly) full: the host may hold lost overflows back */
    bool full;
} PVPerfRingNews;

/* Map @fd's ring buffer: 0 or -errno (EPERM: perf_event_mlock_kb) */
int pvperf_host_ring_map(int fd, PVPerfRing *r, const char **what);
void pvperf_host_ring_unmap(PVPerfRing *r);
/* Consume every record in the ring; adds what it found to *@news */
void pvperf_host_ring_drain(PVPerfRing *r, PVPerfRingNews *news);

/*
 * (Re-)enable sampling event @fd with @n more overflows allowed (n >= 1):
 * the host kernel disables it by itself when they are used up. An event
 * enabled any other way has no such limit. Returns 0 or errno.
 */
int pvperf_host_refresh(int fd, uint32_t n);

/* 0 or -errno, with the failing call in *@what */
int pvperf_host_watch(int tid, PVPerfWatch *w, const char **what);
void pvperf_host_watch_close(PVPerfWatch *w);

#endif
