/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * pvperf's host perf layer (hw/misc/pvperf-host.h): the catalog of
 * libpfm4 names with the host's attribute policy, and the host perf
 * events that the device's slots and vCPU watches are.
 */

#include "qemu/osdep.h"
#include "qemu/cutils.h"
#include "qemu/atomic.h"
#include "qapi/error.h"
#include "system/kvm.h"
#include "pvperf-host.h"
#include "trace/trace-pvperf_hw_misc.h"

#include <perfmon/pfmlib_perf_event.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>

/* Catalog ------------------------------------------------------------- */

static bool pvperf_name_char_ok(char c)
{
    return g_ascii_isalnum(c) || c == '_' || c == '.' || c == ':' || c == '-';
}

static uint32_t pvperf_kind_of(uint32_t perf_type)
{
    switch (perf_type) {
    case PERF_TYPE_HARDWARE:
        return PVPERF_KIND_HARDWARE;
    case PERF_TYPE_SOFTWARE:
        return PVPERF_KIND_SOFTWARE;
    case PERF_TYPE_TRACEPOINT:
        return PVPERF_KIND_TRACEPOINT;
    case PERF_TYPE_HW_CACHE:
        return PVPERF_KIND_HW_CACHE;
    case PERF_TYPE_RAW:
        return PVPERF_KIND_RAW;
    default:
        return PVPERF_KIND_OTHER;
    }
}

static bool pvperf_kind_is_cpu_pmu(uint32_t kind)
{
    return kind == PVPERF_KIND_HARDWARE || kind == PVPERF_KIND_HW_CACHE ||
           kind == PVPERF_KIND_RAW;
}

/* "subsystem:event" with one colon: the form of a tracepoint name */
static bool pvperf_looks_like_tracepoint(const char *name)
{
    const char *colon = strchr(name, ':');

    return colon && colon != name && colon[1] && colon[1] != ':' &&
           !strchr(colon + 1, ':');
}

static void pvperf_set_unavailable(PVPerfEvent *ev, int err,
                                   const char *fmt, ...) G_GNUC_PRINTF(3, 4);

static void pvperf_set_unavailable(PVPerfEvent *ev, int err,
                                   const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    ev->available = false;
    ev->probe_errno = err;
    g_free(ev->reason);
    ev->reason = g_strdup_vprintf(fmt, ap);
    va_end(ap);
}

/*
 * The host's policy for an event's attribute (docs/pvperf.rst, "Which
 * host event a slot is"): nothing here comes from the guest.
 */
static void pvperf_apply_policy(PVPerfEvent *ev)
{
    struct perf_event_attr *attr = &ev->attr;

    attr->size = sizeof(*attr);
    attr->disabled = 1;
    attr->inherit = 0;
    attr->pinned = 0;
    attr->exclusive = 0;
    /* every slot is read as a group (of one, or with its members) */
    attr->read_format = PERF_FORMAT_TOTAL_TIME_ENABLED |
                        PERF_FORMAT_TOTAL_TIME_RUNNING |
                        PERF_FORMAT_GROUP | PERF_FORMAT_ID;
    attr->sample_period = 0;
    attr->sample_type = 0;
    attr->exclude_user = 0;
    attr->exclude_kernel = 0;
    attr->exclude_hv = 1;
    attr->exclude_idle = 0;
    attr->exclude_guest = 0;
    attr->exclude_host = kvm_enabled() && pvperf_kind_is_cpu_pmu(ev->kind);
    /*
     * Sampling slots time their overflow records on QEMU's clock; the
     * host refuses a group whose events use different clocks, and a
     * sampling slot may lead counting members or join a counting leader.
     */
    attr->use_clockid = 1;
    attr->clockid = CLOCK_MONOTONIC;
}

static int pvperf_perf_event_open(struct perf_event_attr *attr, pid_t tid,
                                  int group_fd)
{
    long fd = syscall(SYS_perf_event_open, attr, tid, -1, group_fd,
                      PERF_FLAG_FD_CLOEXEC);

    return fd < 0 ? -errno : (int)fd;
}

/* Can the host count this event on one of its threads? */
static void pvperf_probe(PVPerfEvent *ev)
{
    int fd = pvperf_perf_event_open(&ev->attr, 0, -1);

    if (fd < 0) {
        const char *why = "";

        if (fd == -ENOENT || fd == -EOPNOTSUPP || fd == -ENODEV) {
            why = pvperf_kind_is_cpu_pmu(ev->kind) ?
                  ": the host has no hardware PMU for it" :
                  ": the host kernel does not provide it";
        } else if (fd == -EACCES || fd == -EPERM) {
            why = ": not permitted (host privileges or "
                  "/proc/sys/kernel/perf_event_paranoid)";
        }
        pvperf_set_unavailable(ev, -fd, "perf_event_open: %s%s",
                               strerror(-fd), why);
        return;
    }
    ev->keep_fd = fd;
    ev->available = true;
    ev->probe_errno = 0;
}

/*
 * Resolve one name with libpfm4 into ev. A name libpfm4 does not know is
 * an error when the user configured it; in the default catalog it only
 * makes the entry unavailable (the default must work on every host).
 */
static bool pvperf_resolve(PVPerfEvent *ev, bool user_given, Error **errp)
{
    pfm_perf_encode_arg_t arg = { 0 };
    int ret;

    memset(&ev->attr, 0, sizeof(ev->attr));
    arg.attr = &ev->attr;
    arg.size = sizeof(arg);
    ret = pfm_get_os_event_encoding(ev->name, PFM_PLM0 | PFM_PLM3,
                                    PFM_OS_PERF_EVENT, &arg);
    if (ret == PFM_ERR_NOTFOUND && pvperf_looks_like_tracepoint(ev->name) &&
        access("/sys/kernel/debug/tracing/events", F_OK) != 0) {
        /* libpfm4 reads tracepoints from debugfs only */
        ev->kind = PVPERF_KIND_TRACEPOINT;
        pvperf_set_unavailable(ev, ENOENT,
                               "tracepoints need debugfs mounted at "
                               "/sys/kernel/debug (libpfm4 reads them there)");
        return true;
    }
    if (ret != PFM_SUCCESS) {
        if (user_given) {
            error_setg(errp, "event '%s': %s in libpfm4", ev->name,
                       ret == PFM_ERR_NOTFOUND ? "not found" :
                       pfm_strerror(ret));
            return false;
        }
        ev->kind = PVPERF_KIND_OTHER;
        pvperf_set_unavailable(ev, ENOENT, "libpfm4: %s", pfm_strerror(ret));
        return true;
    }
    ev->kind = pvperf_kind_of(ev->attr.type);
    /* the software clocks count nanoseconds of the vCPU thread */
    if (ev->attr.type == PERF_TYPE_SOFTWARE &&
        (ev->attr.config == PERF_COUNT_SW_CPU_CLOCK ||
         ev->attr.config == PERF_COUNT_SW_TASK_CLOCK)) {
        ev->unit = PVPERF_UNIT_NS;
    }
    pvperf_apply_policy(ev);
    pvperf_probe(ev);
    return true;
}

bool pvperf_host_catalog(const char *list, PVPerfEvent *catalog,
                         uint32_t *count, char **names_out, Error **errp)
{
    bool user_given = list != NULL;
    g_auto(GStrv) names = g_strsplit(user_given ? list : PVPERF_DEFAULT_EVENTS,
                                     ",", -1);
    uint32_t n = g_strv_length(names);
    int ret;

    if (n == 0 || (n == 1 && !names[0][0])) {
        error_setg(errp, "events: the catalog is empty");
        return false;
    }
    if (n > PVPERF_CATALOG_MAX) {
        error_setg(errp, "events: %u names, at most %d are allowed",
                   n, PVPERF_CATALOG_MAX);
        return false;
    }
    for (uint32_t i = 0; i < n; i++) {
        const char *name = names[i];
        size_t len = strlen(name);

        if (len == 0) {
            error_setg(errp, "events: name %u is empty", i + 1);
            return false;
        }
        if (len >= PVPERF_NAME_SIZE) {
            error_setg(errp, "events: name '%s' is %zu bytes, at most %d "
                       "are allowed", name, len, PVPERF_NAME_SIZE - 1);
            return false;
        }
        for (size_t j = 0; j < len; j++) {
            if (!pvperf_name_char_ok(name[j])) {
                error_setg(errp, "events: name '%s' has character '%c'; "
                           "names use [A-Za-z0-9_.:-]", name, name[j]);
                return false;
            }
        }
        for (uint32_t j = 0; j < i; j++) {
            if (!strcmp(names[j], name)) {
                error_setg(errp, "events: '%s' is listed twice", name);
                return false;
            }
        }
    }

    ret = pfm_initialize();
    if (ret != PFM_SUCCESS) {
        error_setg(errp, "libpfm4 initialization failed: %s",
                   pfm_strerror(ret));
        return false;
    }
    for (uint32_t i = 0; i < n; i++) {
        PVPerfEvent *ev = &catalog[i];

        ev->keep_fd = -1;
        pstrcpy(ev->name, sizeof(ev->name), names[i]);
        if (!pvperf_resolve(ev, user_given, errp)) {
            return false;
        }
        *count = i + 1;
        trace_pvperf_catalog_entry(i, ev->name, ev->attr.type,
                                   ev->attr.config, ev->available,
                                   ev->probe_errno);
    }
    /* at most 64 names of at most 63 bytes, 63 commas */
    *names_out = g_strjoinv(",", names);
    return true;
}

void pvperf_host_catalog_free(PVPerfEvent *catalog, uint32_t *count)
{
    for (uint32_t i = 0; i < *count; i++) {
        g_clear_pointer(&catalog[i].reason, g_free);
        if (catalog[i].keep_fd >= 0) {
            close(catalog[i].keep_fd);
            catalog[i].keep_fd = -1;
        }
    }
    *count = 0;
}

/* Host events ---------------------------------------------------------- */

int pvperf_host_open(const PVPerfEvent *ev, int tid, int group_fd,
                     uint64_t period, uint64_t *id, const char **what)
{
    struct perf_event_attr attr = ev->attr;
    int fd;

    if (period) {
        /*
         * Only the overflow and its time matter, not what the host would
         * sample (its own IP is QEMU's): 16-byte records, a wakeup for
         * each, timed on CLOCK_MONOTONIC (QEMU's get_clock()) so that the
         * device can tell how long an overflow took to reach the guest.
         */
        attr.freq = 0;
        attr.sample_period = period;
        attr.sample_type = PERF_SAMPLE_TIME;
        attr.wakeup_events = 1;
    }
    fd = pvperf_perf_event_open(&attr, tid, group_fd);

    if (fd < 0) {
        *what = "perf_event_open";
        return fd;
    }
    if (ioctl(fd, PERF_EVENT_IOC_ID, id) < 0) {
        int err = errno;

        close(fd);
        *what = "ioctl";
        return -err;
    }
    return fd;
}

int pvperf_host_enable(int fd, bool enable, bool group)
{
    unsigned long op = enable ? PERF_EVENT_IOC_ENABLE : PERF_EVENT_IOC_DISABLE;

    return ioctl(fd, op, group ? PERF_IOC_FLAG_GROUP : 0) < 0 ? errno : 0;
}

int pvperf_host_refresh(int fd, uint32_t n)
{
    if (n == 0) {
        return EINVAL;          /* would enable it with the limit it has */
    }
    /*
     * PERF_EVENT_IOC_REFRESH adds n to the event's overflow limit and
     * enables it. The overflow that used the limit up only marks the
     * event for disabling (an irq_work on its CPU, or its sched-out),
     * which may come after a refresh that found it still running and
     * leave it off with a limit left: disabling first clears that mark.
     */
    if (ioctl(fd, PERF_EVENT_IOC_DISABLE, 0) < 0 ||
        ioctl(fd, PERF_EVENT_IOC_REFRESH, (unsigned long)n) < 0) {
        return errno;
    }
    return 0;
}

int pvperf_host_set_period(int fd, uint64_t period)
{
    return ioctl(fd, PERF_EVENT_IOC_PERIOD, &period) < 0 ? errno : 0;
}

/*
 * Map @fd's ring buffer, its metadata page and @data_pages data pages
 * (counted against perf_event_mlock_kb): 0 or -errno
 */
static int pvperf_ring_map(int fd, unsigned data_pages, PVPerfRing *r)
{
    size_t size = (1 + data_pages) * qemu_real_host_page_size();
    void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

    if (base == MAP_FAILED) {
        return -errno;
    }
    r->base = base;
    r->size = size;
    return 0;
}

int pvperf_host_ring_map(int fd, PVPerfRing *r, const char **what)
{
    int ret = pvperf_ring_map(fd, PVPERF_RING_DATA_PAGES, r);

    if (ret < 0) {
        *what = "mmap (sample buffer)";
    }
    return ret;
}

void pvperf_host_ring_unmap(PVPerfRing *r)
{
    if (r->base) {
        munmap(r->base, r->size);
        r->base = NULL;
    }
}

/* Copy @len bytes at ring offset @pos, which may wrap */
static void pvperf_ring_copy(const uint8_t *data, uint64_t size,
                             uint64_t pos, void *dst, size_t len)
{
    uint64_t off = pos % size;
    size_t first = MIN(len, size - off);

    memcpy(dst, data + off, first);
    memcpy((uint8_t *)dst + first, data, len - first);
}

/*
 * The reader's side of the kernel's ring buffer protocol
 * (include/uapi/linux/perf_event.h, struct perf_event_mmap_page): read
 * data_head, a read barrier, the records, a full barrier, then store
 * data_tail. The kernel wrote the records, but a record that cannot be
 * (shorter than its header, longer than what is there) ends the drain
 * with everything skipped rather than loops.
 */
void pvperf_host_ring_drain(PVPerfRing *r, PVPerfRingNews *news)
{
    struct perf_event_mmap_page *pg = r->base;
    uint64_t psize = qemu_real_host_page_size();
    const uint8_t *data = (const uint8_t *)r->base + psize;
    uint64_t size = r->size - psize;
    uint64_t head, tail;

    if (!pg) {
        return;
    }
    /* 64-bit on a 64-bit host; the device is not built for others */
    head = qatomic_read__nocheck(&pg->data_head);
    smp_rmb();
    tail = pg->data_tail;
    if (head - tail > size) {
        news->corrupt = true;           /* never more than the buffer */
        tail = head;
    }
    /* room for less than a sample and a LOST record: some may wait */
    if (head - tail + 64 > size || news->corrupt) {
        news->full = true;
    }
    while (tail != head) {
        struct perf_event_header h;
        uint64_t lost[2];

        pvperf_ring_copy(data, size, tail, &h, sizeof(h));
        if (h.size < sizeof(h) || h.size > head - tail) {
            news->corrupt = news->full = true;
            break;
        }
        switch (h.type) {
        case PERF_RECORD_SAMPLE:         /* { header; u64 time; } */
            if (!news->samples && h.size >= sizeof(h) + 8) {
                uint64_t t;

                pvperf_ring_copy(data, size, tail + sizeof(h), &t, 8);
                news->first_ns = t;
            }
            news->samples++;
            break;
        case PERF_RECORD_LOST:          /* { header; u64 id; u64 lost; } */
            if (h.size >= sizeof(h) + sizeof(lost)) {
                pvperf_ring_copy(data, size, tail + sizeof(h), lost,
                                 sizeof(lost));
                news->lost += lost[1];
            }
            break;
        case PERF_RECORD_THROTTLE:
            news->throttles++;
            news->throttle_state = 1;
            break;
        case PERF_RECORD_UNTHROTTLE:
            news->throttle_state = 2;
            break;
        default:
            break;
        }
        tail += h.size;
    }
    smp_mb();
    qatomic_set__nocheck(&pg->data_tail, head);
}

int pvperf_host_read_group(int fd, PVPerfGroupRead *g, ssize_t *len)
{
    QEMU_BUILD_BUG_ON(sizeof(*g) != (3 + 2 * PVPERF_SLOTS_MAX) * 8);

    *len = read(fd, g, sizeof(*g));
    if (*len < 0) {
        return errno;
    }
    if (*len < 3 * 8 || g->nr > PVPERF_SLOTS_MAX ||
        (size_t)*len < (3 + 2 * g->nr) * 8) {
        return EIO;                      /* short read: never expected */
    }
    return 0;
}

int pvperf_host_watch(int tid, PVPerfWatch *w, const char **what)
{
    struct perf_event_attr attr = {
        .size = sizeof(attr),
        .type = PERF_TYPE_SOFTWARE,
        .config = PERF_COUNT_SW_DUMMY,
        .disabled = 1,
        .exclude_hv = 1,
    };
    int fd = pvperf_perf_event_open(&attr, tid, -1);
    int ret;

    if (fd < 0) {
        *what = "perf_event_open (vCPU watch)";
        return fd;
    }
    /* a perf fd polls HUP at once unless it has a ring buffer */
    ret = pvperf_ring_map(fd, 0, &w->ring);
    if (ret < 0) {
        close(fd);
        *what = "mmap (vCPU watch)";
        return ret;
    }
    w->fd = fd;
    return 0;
}

void pvperf_host_watch_close(PVPerfWatch *w)
{
    pvperf_host_ring_unmap(&w->ring);
    close(w->fd);
    w->fd = -1;
}
