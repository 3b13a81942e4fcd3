/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * pvperf: a PCI device that gives the guest access to host performance
 * events (perf_event_open(2) on the vCPU threads), chosen from a catalog
 * of libpfm4 event names that the host configures.
 *
 * The guest/host ABI is docs/pvperf.rst; the constants live in
 * include/hw/misc/pvperf.h, shared with the qtest and the guest driver.
 */

#include "qemu/osdep.h"
#include "qemu/log.h"
#include "qemu/module.h"
#include "qemu/cutils.h"
#include "qapi/error.h"
#include "hw/pci/pci_device.h"
#include "hw/pci/msix.h"
#include "hw/qdev-properties.h"
#include "hw/boards.h"
#include "migration/vmstate.h"
#include "migration/misc.h"
#include "migration/client-options.h"
#include "system/runstate.h"
#include "qemu/timer.h"
#include "qemu/bitops.h"
#include "qemu/host-utils.h"
#include "hw/core/cpu.h"
#include "system/kvm.h"
#include "system/dma.h"
#include "system/runstate.h"
#include "qemu/main-loop.h"
#include "hw/misc/pvperf.h"
#include "pvperf-host.h"
#include "qapi/qapi-commands-pvperf.h"
#include "qapi/qapi-types-pvperf.h"
#include "trace/trace-pvperf_hw_misc.h"

OBJECT_DECLARE_SIMPLE_TYPE(PVPerfState, PVPERF)

#define PVPERF_MAX_SLOTS_LIMIT      65536
#define PVPERF_REFRESH_MS_LIMIT     60000
#define PVPERF_SAMPLE_RATE_MIN      100
#define PVPERF_SAMPLE_RATE_MAX      1000000

/* Migration: the catalog's names, comma-separated, NUL-padded */
#define PVPERF_MIG_NAMES_SIZE       (PVPERF_CATALOG_MAX * PVPERF_NAME_SIZE)

/* The features this build implements (docs/pvperf.rst, revision history) */
#define PVPERF_FEATURES \
    (PVPERF_F_COUNTING | PVPERF_F_GROUPS | PVPERF_F_IO_DOORBELL | \
     PVPERF_F_CMD_BLOCK | PVPERF_F_OVERFLOW)

/* Commands the access counters know by name: NOP .. SET_PERIOD, "other" */
#define PVPERF_CMD_COUNTED          (PVPERF_CMD_SET_PERIOD + 2)

/* Command argument registers, CMD_VCPU .. CMD_PERIOD_HI, as an array */
#define PVPERF_CMD_FIRST            PVPERF_REG_CMD_VCPU
#define PVPERF_CMD_NREGS \
    ((PVPERF_REG_CMD_PERIOD_HI - PVPERF_REG_CMD_VCPU) / 4 + 1)
#define PVPERF_CMD_IDX(reg)         (((reg) - PVPERF_CMD_FIRST) / 4)

/*
 * A command's arguments, from the CMD_* registers or a command block
 * entry (docs/pvperf.rst, "Command block"): the commands read nothing
 * else. @self is the vCPU that PVPERF_VCPU_SELF means.
 */
typedef struct PVPerfArgs {
    uint32_t vcpu;
    uint32_t slot;
    uint32_t event;
    uint32_t group;
    uint32_t flags;
    uint64_t mask;
    uint64_t addr;
    uint64_t period;
    uint32_t self;
} PVPerfArgs;

/* One open host event: (vCPU, slot) in the guest's terms */
typedef struct PVPerfSlot {
    int fd;                     /* perf_event_open fd, -1 when closed */
    uint64_t id;                /* PERF_EVENT_IOC_ID, to parse group reads */
    uint32_t event;             /* catalog index */
    uint32_t leader;            /* leader slot, or PVPERF_NO_GROUP */
    bool enabled;
    bool read_error;
    int read_errno;             /* of the last failed read, for QMP */
    uint32_t seq;               /* seqlock of the slot's record */
    /* the last values written to the guest */
    uint64_t count;
    uint64_t time_enabled;
    uint64_t time_running;
    uint64_t overflows;         /* lost included */
    /* sampling (OVERFLOW): a slot opened with a period */
    uint64_t period;            /* 0: counting */
    PVPerfRing ring;            /* its host ring buffer */
    uint64_t lost;
    uint64_t throttles;
    bool kernel_throttled;      /* the host kernel throttled it */
    bool held;                  /* off on the host by the rate limit */
    /*
     * Overflows the host kernel may still take before it disables the
     * event by itself (granted with PERF_EVENT_IOC_REFRESH, less those
     * drained): never less than what the kernel has left
     */
    uint64_t budget;
    bool ring_full;             /* lost overflows may be held back */
    /*
     * Migration (docs: "Migration"): what the source had counted, added to
     * what the host event here counts; the count at which the current
     * period began; the host event's first period is what was left of the
     * source's (first_period: the guest's period once it overflowed).
     */
    uint64_t off_count;
    uint64_t off_enabled;
    uint64_t off_running;
    uint64_t period_base;
    bool first_period;
    int orphan_errno;           /* not 0: no host event here (fd -1) */
} PVPerfSlot;

/*
 * The device's state for one vCPU, from its first SET_PAGE or OPEN until
 * RESET, device reset, or the end of the vCPU's host thread (unplug).
 */
typedef struct PVPerfVcpu {
    PVPerfState *s;
    uint32_t index;
    CPUState *cpu;              /* referenced: a replugged vCPU is another */
    int tid;                    /* the host thread the slots follow */
    PVPerfWatch watch;          /* polls HUP when the thread ends */
    uint64_t page;              /* count page GPA, 0 = none */
    bool page_unwritable;       /* the last write found it unwritable */
    uint64_t block;             /* command block GPA, 0 = none */
    uint64_t open;              /* bit n: slot n is open */
    PVPerfSlot slot[PVPERF_SLOTS_MAX];
    /* sampling */
    uint64_t sampling;          /* open slots with a ring buffer */
    uint64_t pending;           /* overflow_pending as the guest sees it */
    uint32_t hdr_seq;           /* seqlock of the page header */
    uint64_t fresh;             /* new overflows, for the next pass */
    uint64_t dirty;             /* records the next pass rewrites */
    bool limited;               /* slots held until the rate allows */
    int64_t oldest_ns;          /* the oldest overflow not signalled, or 0 */
    QEMUTimer *unhold_timer;
} PVPerfVcpu;

/*
 * The overflow rate limit of one vCPU index (docs: "Throttling and
 * limits"). It is the device's, not the vCPU state's: RESET, a device
 * reset or a replugged vCPU do not start it afresh.
 */
typedef struct PVPerfRate {
    int64_t win_start;          /* the window's start (realtime ms) */
    uint64_t win_overflows;     /* overflows in it */
    int64_t until;              /* held until then, 0 = not held */
} PVPerfRate;

typedef struct PVPerfHostError {
    const char *what;           /* NULL: none yet */
    uint32_t vcpu;
    uint32_t slot;
    int err;
} PVPerfHostError;

/* An open slot in the migration stream (docs: "Migration") */
typedef struct PVPerfMigSlot {
    uint32_t vcpu;
    uint32_t slot;
    uint32_t event;
    uint32_t leader;
    uint8_t enabled;
    uint64_t period;            /* 0: counting */
    uint64_t left;              /* of the current period, 1..period */
    uint64_t count;
    uint64_t time_enabled;
    uint64_t time_running;
    uint64_t overflows;
    uint64_t lost;
    uint64_t throttles;
} PVPerfMigSlot;

/* Counters at a query-pvperf, from which the next one's rates are */
typedef struct PVPerfSnap {
    int64_t ns;                 /* QEMU_CLOCK_REALTIME */
    uint64_t exits;
    uint64_t commands;
    uint64_t overflows;
    uint64_t interrupts;
} PVPerfSnap;

/* A vCPU's page state in the migration stream */
typedef struct PVPerfMigVcpu {
    uint64_t pending;           /* overflow_pending */
    uint64_t fresh;             /* overflows not passed to the guest yet */
    uint32_t hdr_seq;
    uint32_t seq[PVPERF_SLOTS_MAX];
} PVPerfMigVcpu;

struct PVPerfState {
    PCIDevice parent_obj;

    MemoryRegion mmio;
    MemoryRegion io;

    /* properties */
    char *events;
    uint32_t slots_per_vcpu;
    uint32_t max_slots;
    uint32_t refresh_ms;
    uint32_t max_sample_rate;

    /* catalog, fixed at realize */
    PVPerfEvent catalog[PVPERF_CATALOG_MAX];
    uint32_t catalog_count;
    char *catalog_names;        /* "name,name,...": checked on migration */
    uint32_t nr_vcpus;
    uint32_t nr_vectors;        /* MSI-X: vector v is vCPU v's */

    /* guest-visible registers */
    uint32_t driver_features;
    uint32_t catalog_select;
    uint32_t cmd[PVPERF_CMD_NREGS];
    uint32_t status;
    uint32_t host_errno;

    /* slot table: nr_vcpus pointers, each allocated on first use */
    PVPerfVcpu **vcpu;
    PVPerfRate *rate;           /* nr_vcpus */
    unsigned long *notify;      /* nr_vectors: messages a pass owes */
    uint32_t open_slots;
    PVPerfHostError last_error;
    /* what guests made the device do, for management: see query-pvperf */
    uint64_t mmio_reads;
    uint64_t mmio_writes;
    uint64_t io_writes;
    uint64_t io_reads;
    uint64_t commands[PVPERF_CMD_COUNTED];
    uint64_t failed;
    uint64_t block_entries;     /* of commands[], those run from blocks */
    uint64_t overflows;         /* over every slot, lost included */
    uint64_t interrupts;        /* MSI-X messages the device sent */
    uint64_t throttles;
    /* from an overflow on the host to its MSI-X message, in ns */
    uint64_t latency_sum;
    uint64_t latency_max;
    uint64_t latency_n;
    /* overflow passes: host records to guest pages, under the guard */
    QEMUBH *overflow_bh;
    /* RUN's copy of a command block */
    uint8_t *run_buf;
    /*
     * refresh-ms: the timer starts a pass, a bottom half (under the
     * device's re-entrancy guard) refreshes one vCPU per call, so that the
     * main loop runs between vCPUs; the next pass starts refresh_ms after
     * this one ended.
     */
    QEMUTimer *refresh_timer;
    QEMUBH *refresh_bh;
    uint32_t refresh_next;      /* the next vCPU of the current pass */

    /* the counters at the previous query-pvperf, for its rates */
    PVPerfSnap snap;

    /* migration only: the source's catalog names, page and block addresses */
    uint8_t mig_names[PVPERF_MIG_NAMES_SIZE];
    uint64_t *mig_pages;
    uint64_t *mig_blocks;
    /* ... its open slots and the vCPUs' page state (docs: "Migration") */
    uint32_t mig_nr_slots;
    PVPerfMigSlot *mig_slots;
    PVPerfMigVcpu *mig_vcpus;
    bool mig_restore;           /* loaded: reopen when the VM runs */
    /*
     * pvperf_exit() ran: under KVM a vCPU resolves its MMIO/PIO target
     * before it takes the BQL, so a doorbell can still reach a device
     * that another vCPU's eject unrealized meanwhile (its flatview holds
     * the object); set and read under the BQL
     */
    bool gone;
    bool mig_postcopy;          /* a migration that may go postcopy runs */
    VMChangeStateEntry *vm_change;
    NotifierWithReturn mig_notifier;
};

/* Catalog ------------------------------------------------------------- */

static bool pvperf_build_catalog(PVPerfState *s, Error **errp)
{
    return pvperf_host_catalog(s->events, s->catalog, &s->catalog_count,
                               &s->catalog_names, errp);
}

static void pvperf_free_catalog(PVPerfState *s)
{
    pvperf_host_catalog_free(s->catalog, &s->catalog_count);
    g_clear_pointer(&s->catalog_names, g_free);
}

/* Slots and count pages --------------------------------------------- */

#define CMD(s, reg)     ((s)->cmd[PVPERF_CMD_IDX(PVPERF_REG_CMD_##reg)])

static uint32_t pvperf_host_error(PVPerfState *s, const char *what,
                                  uint32_t v, uint32_t n, int err);

static uint64_t pvperf_cmd64(PVPerfState *s, uint32_t lo_reg)
{
    return deposit64(s->cmd[PVPERF_CMD_IDX(lo_reg)], 32, 32,
                     s->cmd[PVPERF_CMD_IDX(lo_reg + 4)]);
}

/* The arguments of a command rung through the registers */
static void pvperf_reg_args(PVPerfState *s, PVPerfArgs *a)
{
    *a = (PVPerfArgs) {
        .vcpu = CMD(s, VCPU),
        .slot = CMD(s, SLOT),
        .event = CMD(s, EVENT),
        .group = CMD(s, GROUP),
        .flags = CMD(s, FLAGS),
        .mask = pvperf_cmd64(s, PVPERF_REG_CMD_MASK_LO),
        .addr = pvperf_cmd64(s, PVPERF_REG_CMD_ADDR_LO),
        .period = pvperf_cmd64(s, PVPERF_REG_CMD_PERIOD_LO),
        .self = current_cpu ? current_cpu->cpu_index : 0,
    };
}

static uint64_t pvperf_slot_bits(PVPerfState *s)
{
    return MAKE_64BIT_MASK(0, s->slots_per_vcpu);
}

static bool pvperf_slot_ok(PVPerfState *s, uint32_t n, const char *cmd)
{
    if (n >= s->slots_per_vcpu) {
        qemu_log_mask(LOG_GUEST_ERROR, "%s: slot %u, the device has %u per "
                      "vCPU\n", cmd, n, s->slots_per_vcpu);
        return false;
    }
    return true;
}

static bool pvperf_is_member(const PVPerfSlot *sl)
{
    return sl->leader != PVPERF_NO_GROUP;
}

/* Slots whose leader is @n on this vCPU */
static uint64_t pvperf_members(PVPerfVcpu *vc, uint32_t n)
{
    uint64_t m = 0;

    for (uint64_t open = vc->open; open; open &= open - 1) {
        uint32_t i = ctz64(open);

        if (vc->slot[i].leader == n) {
            m |= 1ull << i;
        }
    }
    return m;
}

/* A slot's record; a closed slot's is zeroes but for its seq */
static void pvperf_fill_record(PVPerfVcpu *vc, uint32_t n,
                               struct pvperf_slot_record *rec)
{
    PVPerfSlot *sl = &vc->slot[n];

    memset(rec, 0, sizeof(*rec));
    rec->seq = cpu_to_le32(sl->seq);
    if (!(vc->open & (1ull << n))) {
        return;
    }
    rec->flags = cpu_to_le32(PVPERF_SLOT_OPEN |
                             (sl->enabled ? PVPERF_SLOT_ENABLED : 0) |
                             (sl->read_error ? PVPERF_SLOT_READ_ERROR : 0) |
                             (sl->period ? PVPERF_SLOT_SAMPLING : 0) |
                             (sl->held || sl->kernel_throttled ?
                              PVPERF_SLOT_THROTTLED : 0));
    rec->count = cpu_to_le64(sl->count);
    rec->time_enabled = cpu_to_le64(sl->time_enabled);
    rec->time_running = cpu_to_le64(sl->time_running);
    rec->overflows = cpu_to_le64(sl->overflows);
    /* 32-bit counters that wrap: the guest takes differences */
    rec->lost = cpu_to_le32((uint32_t)sl->lost);
    rec->throttles = cpu_to_le32((uint32_t)sl->throttles);
}

/*
 * May the device write a count page at @gpa now (docs/pvperf.rst, "Shared
 * count page")? Aligned, the whole page plain guest RAM as the device sees
 * it (not ROM, not MMIO, not a RAM device such as a VFIO BAR), and bus
 * mastering on. RAM is judged in the device's DMA address space behind the
 * bus-master switch, so that the answer does not depend on that switch.
 */
static uint32_t pvperf_page_check(PVPerfState *s, uint64_t gpa,
                                  const char **why)
{
    PCIDevice *pdev = PCI_DEVICE(s);
    AddressSpace *as = pci_device_iommu_address_space(pdev);
    hwaddr xlat, len = PVPERF_PAGE_SIZE;
    MemoryRegion *mr;
    bool ram;

    if (gpa & (PVPERF_PAGE_SIZE - 1)) {
        *why = "is not 4 KiB aligned";
        return PVPERF_ST_BAD_ADDRESS;
    }
    if (gpa > UINT64_MAX - PVPERF_PAGE_SIZE) {
        *why = "wraps around the end of the address space";
        return PVPERF_ST_BAD_ADDRESS;
    }
    WITH_RCU_READ_LOCK_GUARD() {
        mr = address_space_translate(as, gpa, &xlat, &len, true,
                                     MEMTXATTRS_UNSPECIFIED);
        ram = memory_region_is_ram(mr) && !memory_region_is_rom(mr) &&
              !memory_region_is_ram_device(mr) && len >= PVPERF_PAGE_SIZE;
    }
    if (!ram) {
        *why = "is not writable guest RAM";
        return PVPERF_ST_BAD_ADDRESS;
    }
    if (!(pci_get_word(pdev->config + PCI_COMMAND) & PCI_COMMAND_MASTER)) {
        *why = "may not be written: bus mastering is off";
        return PVPERF_ST_NO_BUS_MASTER;
    }
    return PVPERF_ST_OK;
}

/*
 * Check a registered page before a write. An unwritable page is left
 * alone and stays registered (a BAR being sized or moved, bus mastering
 * off for a while); the change is logged once, not on every write.
 */
static void pvperf_write_records(PVPerfState *s, PVPerfVcpu *vc,
                                 uint64_t mask);
static void pvperf_write_header(PVPerfState *s, PVPerfVcpu *vc);

static uint32_t pvperf_page_ready(PVPerfState *s, PVPerfVcpu *vc)
{
    const char *why;
    uint32_t st = pvperf_page_check(s, vc->page, &why);

    if (st && !vc->page_unwritable) {
        qemu_log_mask(LOG_GUEST_ERROR, "%s: vCPU %u: count page 0x%" PRIx64
                      " %s: the device writes nothing there until it is "
                      "writable again\n", __func__, vc->index, vc->page, why);
        vc->page_unwritable = true;
    } else if (!st && vc->page_unwritable) {
        /* writes were skipped meanwhile: bring every record up to date */
        vc->page_unwritable = false;
        pvperf_write_records(s, vc, pvperf_slot_bits(s));
        pvperf_write_header(s, vc);
    }
    return st;
}

static void pvperf_dma_failed(PVPerfVcpu *vc, MemTxResult r)
{
    qemu_log_mask(LOG_GUEST_ERROR, "%s: vCPU %u: writing the count page at "
                  "0x%" PRIx64 " failed (MemTxResult %d)\n", __func__,
                  vc->index, vc->page, r);
}

/*
 * Write one slot record under its seqlock (docs/pvperf.rst, "Seqlock
 * protocol"). Every caller holds the BQL, so there is one writer only.
 */
static void pvperf_write_record(PVPerfState *s, PVPerfVcpu *vc, uint32_t n)
{
    PCIDevice *pdev = PCI_DEVICE(s);
    PVPerfSlot *sl = &vc->slot[n];
    struct pvperf_slot_record rec;
    dma_addr_t at;
    MemTxResult r;

    if (!vc->page || pvperf_page_ready(s, vc)) {
        return;
    }
    at = vc->page + PVPERF_SLOT_RECORD_OFFSET(n);
    sl->seq++;                                  /* odd: writing */
    r = stl_le_pci_dma(pdev, at, sl->seq, MEMTXATTRS_UNSPECIFIED);
    smp_wmb();
    pvperf_fill_record(vc, n, &rec);
    r |= pci_dma_write(pdev, at + 4, (uint8_t *)&rec + 4, sizeof(rec) - 4);
    smp_wmb();
    sl->seq++;                                  /* even: done */
    r |= stl_le_pci_dma(pdev, at, sl->seq, MEMTXATTRS_UNSPECIFIED);
    if (r != MEMTX_OK) {
        pvperf_dma_failed(vc, r);
    }
    trace_pvperf_record(vc->index, n, sl->count, sl->time_enabled,
                        sl->time_running);
}

static void pvperf_write_records(PVPerfState *s, PVPerfVcpu *vc,
                                 uint64_t mask)
{
    for (; mask; mask &= mask - 1) {
        pvperf_write_record(s, vc, ctz64(mask));
    }
}

/* Write the whole page, checked by the caller: header, records, seqs even */
static MemTxResult pvperf_write_page(PVPerfState *s, PVPerfVcpu *vc)
{
    g_autofree uint8_t *page = g_malloc0(PVPERF_PAGE_SIZE);
    struct pvperf_page_header *hdr = (struct pvperf_page_header *)page;

    hdr->magic = cpu_to_le32(PVPERF_PAGE_MAGIC);
    hdr->layout = cpu_to_le32(PVPERF_PAGE_LAYOUT);
    hdr->vcpu = cpu_to_le32(vc->index);
    hdr->nr_slots = cpu_to_le32(s->slots_per_vcpu);
    hdr->seq = cpu_to_le32(vc->hdr_seq);
    hdr->overflow_pending = cpu_to_le64(vc->pending);
    for (uint32_t n = 0; n < s->slots_per_vcpu; n++) {
        pvperf_fill_record(vc, n, (struct pvperf_slot_record *)
                           (page + PVPERF_SLOT_RECORD_OFFSET(n)));
    }
    return pci_dma_write(PCI_DEVICE(s), vc->page, page, PVPERF_PAGE_SIZE);
}

/* The page header's overflow_pending, under its seqlock */
static void pvperf_write_header(PVPerfState *s, PVPerfVcpu *vc)
{
    PCIDevice *pdev = PCI_DEVICE(s);
    MemTxResult r;

    if (!vc->page || pvperf_page_ready(s, vc)) {
        return;
    }
    vc->hdr_seq++;                              /* odd: writing */
    r = stl_le_pci_dma(pdev, vc->page + 16, vc->hdr_seq,
                       MEMTXATTRS_UNSPECIFIED);
    smp_wmb();
    r |= stq_le_pci_dma(pdev, vc->page + 24, vc->pending,
                        MEMTXATTRS_UNSPECIFIED);
    smp_wmb();
    vc->hdr_seq++;                              /* even: done */
    r |= stl_le_pci_dma(pdev, vc->page + 16, vc->hdr_seq,
                        MEMTXATTRS_UNSPECIFIED);
    if (r != MEMTX_OK) {
        pvperf_dma_failed(vc, r);
    }
}

static void pvperf_sample_ready(void *opaque);

/*
 * Open the host event of vCPU @vc's slot @n as its fields say (event,
 * leader, period), disabled, with a sample period of @host_period if it
 * samples: its fd, and for a sampling slot its ring buffer and fd handler.
 * 0, or -errno with the failing call in *@what and the slot without a
 * host event.
 */
static int pvperf_slot_host_open(PVPerfState *s, PVPerfVcpu *vc, uint32_t n,
                                 uint64_t host_period, const char **what)
{
    PVPerfSlot *sl = &vc->slot[n];
    int lead_fd = pvperf_is_member(sl) ? vc->slot[sl->leader].fd : -1;
    int fd, ret;

    if (pvperf_is_member(sl) && lead_fd < 0) {
        *what = "perf_event_open (no leader)";
        return -EBADF;                  /* never on its own by mistake */
    }
    fd = pvperf_host_open(&s->catalog[sl->event], vc->tid, lead_fd,
                          sl->period ? host_period : 0, &sl->id, what);
    if (fd < 0) {
        return fd;
    }
    if (sl->period) {
        ret = pvperf_host_ring_map(fd, &sl->ring, what);
        if (ret < 0) {
            close(fd);
            return ret;
        }
        vc->sampling |= 1ull << n;
        qemu_set_fd_handler(fd, pvperf_sample_ready, NULL, vc);
    }
    sl->fd = fd;
    return 0;
}

/* Close the host side of vCPU @vc's slot @n, if it has one */
static void pvperf_slot_host_close(PVPerfVcpu *vc, uint32_t n)
{
    PVPerfSlot *sl = &vc->slot[n];

    if (sl->ring.base) {
        qemu_set_fd_handler(sl->fd, NULL, NULL, NULL);
        pvperf_host_ring_unmap(&sl->ring);
    }
    if (sl->fd >= 0) {
        close(sl->fd);
    }
    sl->fd = -1;
    vc->sampling &= ~(1ull << n);
}

static void pvperf_close_slot(PVPerfState *s, PVPerfVcpu *vc, uint32_t n)
{
    PVPerfSlot *sl = &vc->slot[n];

    /* like perf: a leader's members carry on as events of their own */
    for (uint64_t m = pvperf_members(vc, n); m; m &= m - 1) {
        vc->slot[ctz64(m)].leader = PVPERF_NO_GROUP;
    }
    pvperf_slot_host_close(vc, n);
    sl->enabled = false;
    sl->period = 0;
    sl->held = false;
    sl->orphan_errno = 0;
    vc->open &= ~(1ull << n);
    vc->pending &= ~(1ull << n);
    vc->fresh &= ~(1ull << n);
    vc->dirty &= ~(1ull << n);
    s->open_slots--;
    trace_pvperf_close(vc->index, n);
}

/* Close a vCPU's slots, stop watching its thread, forget its page */
static void pvperf_release_vcpu(PVPerfState *s, uint32_t v)
{
    PVPerfVcpu *vc = s->vcpu[v];

    if (!vc) {
        return;
    }
    while (vc->open) {
        pvperf_close_slot(s, vc, ctz64(vc->open));
    }
    qemu_set_fd_handler(vc->watch.fd, NULL, NULL, NULL);
    pvperf_host_watch_close(&vc->watch);
    timer_free(vc->unhold_timer);
    object_unref(OBJECT(vc->cpu));
    g_free(vc);
    s->vcpu[v] = NULL;
}

/* Close every slot and forget every page: RESET, device reset, unrealize */
static void pvperf_release_all(PVPerfState *s)
{
    for (uint32_t v = 0; s->vcpu && v < s->nr_vcpus; v++) {
        pvperf_release_vcpu(s, v);
    }
    assert(s->open_slots == 0);
}

/* The vCPU's host thread ended: it was unplugged (docs: "vCPU hotplug") */
static void pvperf_vcpu_watch(void *opaque)
{
    PVPerfVcpu *vc = opaque;
    PVPerfState *s = vc->s;

    trace_pvperf_vcpu_gone(vc->index, vc->tid, ctpop64(vc->open));
    pvperf_release_vcpu(s, vc->index);
}

/*
 * vCPU @v if it is plugged in and has a host thread, else NULL. Only a
 * vCPU with a thread of its own can be counted (KVM, multi-threaded TCG).
 */
static CPUState *pvperf_vcpu_present(uint32_t v)
{
    CPUState *cpu = qemu_get_cpu(v);

    return cpu && cpu->thread_id > 0 ? cpu : NULL;
}

/*
 * The state of vCPU @v, or NULL when it has none. State left behind by
 * an unplugged vCPU whose end the watch has not reported yet (or that no
 * watch can see: single-threaded TCG), or by a vCPU replugged since, is
 * released first, so that it never applies to another vCPU. Every path
 * that uses a vCPU's state comes through here.
 */
static PVPerfVcpu *pvperf_vcpu_get(PVPerfState *s, uint32_t v)
{
    PVPerfVcpu *vc = s->vcpu[v];
    CPUState *cpu = pvperf_vcpu_present(v);

    if (vc && (vc->cpu != cpu || vc->tid != cpu->thread_id)) {
        trace_pvperf_vcpu_gone(v, vc->tid, ctpop64(vc->open));
        pvperf_release_vcpu(s, v);
        vc = NULL;
    }
    return vc;
}

static void pvperf_unhold(void *opaque);
static int pvperf_sample_arm(PVPerfState *s, PVPerfVcpu *vc, uint32_t n);

/* Get or create the state of a present vCPU; fails with a status */
static uint32_t pvperf_vcpu_state(PVPerfState *s, uint32_t v,
                                  PVPerfVcpu **out)
{
    PVPerfVcpu *vc = pvperf_vcpu_get(s, v);
    CPUState *cpu = pvperf_vcpu_present(v);
    PVPerfWatch watch;
    const char *what;
    int ret;

    if (vc) {
        *out = vc;
        return PVPERF_ST_OK;
    }
    if (!cpu) {
        qemu_log_mask(LOG_GUEST_ERROR, "%s: vCPU %u is not present\n",
                      __func__, v);
        return PVPERF_ST_BAD_VCPU;
    }
    ret = pvperf_host_watch(cpu->thread_id, &watch, &what);
    if (ret < 0) {
        return pvperf_host_error(s, what, v, PVPERF_NO_GROUP, -ret);
    }
    vc = g_new0(PVPerfVcpu, 1);
    vc->s = s;
    vc->index = v;
    vc->cpu = cpu;
    object_ref(OBJECT(cpu));
    vc->tid = cpu->thread_id;
    vc->watch = watch;
    for (int n = 0; n < PVPERF_SLOTS_MAX; n++) {
        vc->slot[n].fd = -1;
        vc->slot[n].leader = PVPERF_NO_GROUP;
    }
    vc->unhold_timer = timer_new_ms(QEMU_CLOCK_REALTIME, pvperf_unhold, vc);
    /* a hold outlives RESET and the vCPU state: slots enabled now wait */
    if (s->rate[v].until) {
        vc->limited = true;
        timer_mod(vc->unhold_timer, s->rate[v].until);
    }
    qemu_set_fd_handler(watch.fd, pvperf_vcpu_watch, NULL, vc);
    s->vcpu[v] = vc;
    *out = vc;
    return PVPERF_ST_OK;
}

/*
 * The vCPU a command targets. PVPERF_VCPU_SELF is the vCPU that rang, or
 * vCPU 0 when none did (a qtest, a device model).
 */
static uint32_t pvperf_target(PVPerfState *s, const PVPerfArgs *a,
                              uint32_t *v)
{
    uint32_t want = a->vcpu == PVPERF_VCPU_SELF ? a->self : a->vcpu;

    if (want >= s->nr_vcpus) {
        qemu_log_mask(LOG_GUEST_ERROR, "%s: vCPU %u does not exist (%u "
                      "vCPUs)\n", __func__, want, s->nr_vcpus);
        return PVPERF_ST_BAD_VCPU;
    }
    *v = want;
    return PVPERF_ST_OK;
}

/* ... and the vCPU must be plugged in (SET_PAGE, OPEN) */
static uint32_t pvperf_target_present(PVPerfState *s, const PVPerfArgs *a,
                                      uint32_t *v)
{
    uint32_t st = pvperf_target(s, a, v);

    if (!st && !pvperf_vcpu_present(*v)) {
        qemu_log_mask(LOG_GUEST_ERROR, "%s: vCPU %u is not present\n",
                      __func__, *v);
        st = PVPERF_ST_BAD_VCPU;
    }
    return st;
}

/* Remember a failed host system call for management (query-pvperf) */
static void pvperf_note_host_error(PVPerfState *s, const char *what,
                                   uint32_t v, uint32_t n, int err)
{
    s->last_error = (PVPerfHostError) {
        .vcpu = v, .slot = n, .err = err, .what = what,
    };
    trace_pvperf_host_error(v, n, what, err);
}

/* ... and, when it failed the guest's command, tell the guest too */
static uint32_t pvperf_host_error(PVPerfState *s, const char *what,
                                  uint32_t v, uint32_t n, int err)
{
    s->host_errno = err;
    pvperf_note_host_error(s, what, v, n, err);
    qemu_log_mask(LOG_GUEST_ERROR, "%s: vCPU %u slot %u: %s: %s\n",
                  __func__, v, n, what, strerror(err));
    return PVPERF_ST_HOST_ERROR;
}

/*
 * What SET_PAGE and SET_BLOCK check, in the documented order: the vCPU;
 * for an address other than 0, that the vCPU is present, then the page
 * (aligned, plain RAM, bus mastering). On OK, *@vc is the vCPU's state to
 * register @a->addr in; for address 0 it is NULL when the vCPU has none.
 */
static uint32_t pvperf_page_target(PVPerfState *s, const PVPerfArgs *a,
                                   const char *cmd, const char *what,
                                   uint32_t *v, PVPerfVcpu **vc)
{
    const char *why;
    uint32_t st;

    st = pvperf_target(s, a, v);
    if (st) {
        return st;
    }
    if (a->addr == 0) {
        *vc = pvperf_vcpu_get(s, *v);
        return PVPERF_ST_OK;
    }
    st = pvperf_target_present(s, a, v);
    if (st) {
        return st;
    }
    st = pvperf_page_check(s, a->addr, &why);
    if (st) {
        qemu_log_mask(LOG_GUEST_ERROR, "%s: %s 0x%" PRIx64 " %s\n", cmd,
                      what, a->addr, why);
        return st;
    }
    return pvperf_vcpu_state(s, *v, vc);
}

static uint32_t pvperf_cmd_set_page(PVPerfState *s, const PVPerfArgs *a)
{
    uint64_t gpa = a->addr, old;
    bool old_unwritable;
    PVPerfVcpu *vc;
    uint32_t v, st;
    MemTxResult r;

    st = pvperf_page_target(s, a, "SET_PAGE", "count page", &v, &vc);
    if (st) {
        return st;
    }
    if (gpa == 0) {
        if (vc) {
            vc->page = 0;
        }
        trace_pvperf_set_page(v, 0);
        return PVPERF_ST_OK;
    }
    old = vc->page;
    old_unwritable = vc->page_unwritable;
    vc->page = gpa;
    vc->page_unwritable = false;
    r = pvperf_write_page(s, vc);
    if (r != MEMTX_OK) {
        /*
         * Not reached while pvperf_page_target() checked plain RAM in
         * this same BQL section; if it were, the device stays as it was,
         * its earlier page registered
         */
        pvperf_dma_failed(vc, r);
        vc->page = old;
        vc->page_unwritable = old_unwritable;
        return PVPERF_ST_BAD_ADDRESS;
    }
    trace_pvperf_set_page(v, gpa);
    return PVPERF_ST_OK;
}

static uint32_t pvperf_cmd_open(PVPerfState *s, const PVPerfArgs *a)
{
    uint32_t n = a->slot, ev_idx = a->event, lead = a->group;
    uint32_t flags = a->flags, v, st;
    uint64_t period = a->period;
    const PVPerfEvent *ev;
    const char *what;
    PVPerfVcpu *vc;
    uint64_t open;
    bool held;
    int ret;

    st = pvperf_target_present(s, a, &v);
    if (st) {
        return st;
    }
    if (!pvperf_slot_ok(s, n, __func__)) {
        return PVPERF_ST_BAD_SLOT;
    }
    if (ev_idx >= s->catalog_count) {
        qemu_log_mask(LOG_GUEST_ERROR, "%s: event %u, the catalog has %u\n",
                      __func__, ev_idx, s->catalog_count);
        return PVPERF_ST_BAD_EVENT;
    }
    if (flags & ~PVPERF_OPEN_FLAGS_ALL) {
        qemu_log_mask(LOG_GUEST_ERROR, "%s: reserved flags 0x%x\n", __func__,
                      flags & ~PVPERF_OPEN_FLAGS_ALL);
        return PVPERF_ST_BAD_ARG;
    }
    if (period > PVPERF_PERIOD_MAX) {
        qemu_log_mask(LOG_GUEST_ERROR, "%s: period %" PRIu64 " is beyond "
                      "2^63 - 1\n", __func__, period);
        return PVPERF_ST_BAD_ARG;
    }
    if (period && v >= s->nr_vectors) {
        qemu_log_mask(LOG_GUEST_ERROR, "%s: vCPU %u has no MSI-X vector "
                      "(the device has %u): it cannot sample\n", __func__, v,
                      s->nr_vectors);
        return PVPERF_ST_UNSUPPORTED;
    }
    vc = pvperf_vcpu_get(s, v);
    open = vc ? vc->open : 0;
    if (open & (1ull << n)) {
        qemu_log_mask(LOG_GUEST_ERROR, "%s: vCPU %u slot %u is open\n",
                      __func__, v, n);
        return PVPERF_ST_SLOT_BUSY;
    }
    if (lead != PVPERF_NO_GROUP &&
        (lead >= s->slots_per_vcpu || lead == n ||
         !(open & (1ull << lead)) || pvperf_is_member(&vc->slot[lead]))) {
        qemu_log_mask(LOG_GUEST_ERROR, "%s: slot %u is not an open group "
                      "leader on vCPU %u\n", __func__, lead, v);
        return PVPERF_ST_BAD_GROUP;
    }
    ev = &s->catalog[ev_idx];
    if (!ev->available) {
        qemu_log_mask(LOG_GUEST_ERROR, "%s: event %u (%s) is unavailable: "
                      "%s\n", __func__, ev_idx, ev->name, ev->reason);
        return PVPERF_ST_UNAVAILABLE;
    }
    if (s->open_slots >= s->max_slots) {
        qemu_log_mask(LOG_GUEST_ERROR, "%s: %u slots open, the limit "
                      "(max-slots)\n", __func__, s->open_slots);
        return PVPERF_ST_LIMIT;
    }
    if (lead != PVPERF_NO_GROUP && vc->slot[lead].orphan_errno) {
        /* a leader that has no host event here (docs: "Migration") */
        return pvperf_host_error(s, "perf_event_open", v, n,
                                 vc->slot[lead].orphan_errno);
    }
    st = pvperf_vcpu_state(s, v, &vc);
    if (st) {
        return st;
    }
    /* a sampling slot enabled while its vCPU is over the rate: held */
    held = (flags & PVPERF_OPEN_ENABLED) && period && vc->limited;
    vc->slot[n] = (PVPerfSlot) {
        .fd = -1,
        .event = ev_idx,
        .leader = lead,
        .enabled = flags & PVPERF_OPEN_ENABLED,
        .seq = vc->slot[n].seq,
        .period = period,
        .held = held,
        /* a member's times are its leader's, migrated offsets included */
        .off_enabled = lead == PVPERF_NO_GROUP ? 0 :
                       vc->slot[lead].off_enabled,
        .off_running = lead == PVPERF_NO_GROUP ? 0 :
                       vc->slot[lead].off_running,
    };
    ret = pvperf_slot_host_open(s, vc, n, period, &what);
    if (ret < 0) {
        vc->slot[n] = (PVPerfSlot) { .fd = -1, .seq = vc->slot[n].seq };
        return pvperf_host_error(s, what, v, n, -ret);
    }
    if ((flags & PVPERF_OPEN_ENABLED) && !held) {
        ret = period ? pvperf_sample_arm(s, vc, n) :
                       pvperf_host_enable(vc->slot[n].fd, true, false);
    }
    if (ret) {
        pvperf_slot_host_close(vc, n);
        vc->slot[n] = (PVPerfSlot) { .fd = -1, .seq = vc->slot[n].seq };
        return pvperf_host_error(s, "ioctl", v, n, ret);
    }
    vc->open |= 1ull << n;
    s->open_slots++;
    pvperf_write_record(s, vc, n);
    trace_pvperf_open(v, n, ev->name, lead, vc->slot[n].fd);
    return PVPERF_ST_OK;
}

/* vCPU @v's state if its slot @n is open; else NULL, logged (SLOT_FREE) */
static PVPerfVcpu *pvperf_open_slot_vcpu(PVPerfState *s, uint32_t v,
                                         uint32_t n, const char *cmd)
{
    PVPerfVcpu *vc = pvperf_vcpu_get(s, v);

    if (!vc || !(vc->open & (1ull << n))) {
        qemu_log_mask(LOG_GUEST_ERROR, "%s: vCPU %u slot %u is not open\n",
                      cmd, v, n);
        return NULL;
    }
    return vc;
}

static uint32_t pvperf_cmd_close(PVPerfState *s, const PVPerfArgs *a)
{
    uint32_t n = a->slot, v, st;
    PVPerfVcpu *vc;
    uint64_t members, pending;

    st = pvperf_target(s, a, &v);
    if (st) {
        return st;
    }
    if (!pvperf_slot_ok(s, n, __func__)) {
        return PVPERF_ST_BAD_SLOT;
    }
    vc = pvperf_open_slot_vcpu(s, v, n, __func__);
    if (!vc) {
        return PVPERF_ST_SLOT_FREE;
    }
    members = pvperf_members(vc, n);
    pending = vc->pending;
    pvperf_close_slot(s, vc, n);
    pvperf_write_records(s, vc, members | (1ull << n));
    if (pending != vc->pending) {
        pvperf_write_header(s, vc);
    }
    return PVPERF_ST_OK;
}

/*
 * Check a mask command's vCPU and mask; all bits or none. *@vc is the
 * vCPU's state, NULL only for an empty mask on a vCPU without state.
 */
static uint32_t pvperf_mask_target(PVPerfState *s, const PVPerfArgs *a,
                                   PVPerfVcpu **vc, uint64_t *mask)
{
    uint32_t v, st = pvperf_target(s, a, &v);
    uint64_t open;

    if (st) {
        return st;
    }
    *mask = a->mask;
    if (*mask & ~pvperf_slot_bits(s)) {
        qemu_log_mask(LOG_GUEST_ERROR, "%s: mask 0x%" PRIx64 " names slots "
                      "beyond %u\n", __func__, *mask, s->slots_per_vcpu);
        return PVPERF_ST_BAD_SLOT;
    }
    *vc = pvperf_vcpu_get(s, v);
    open = *vc ? (*vc)->open : 0;
    if (*mask & ~open) {
        qemu_log_mask(LOG_GUEST_ERROR, "%s: mask 0x%" PRIx64 " names slots "
                      "that are not open (open: 0x%" PRIx64 ")\n", __func__,
                      *mask, open);
        return PVPERF_ST_SLOT_FREE;
    }
    return PVPERF_ST_OK;
}

/* read(2) of a leader with PERF_FORMAT_GROUP: the leader and its members */
static int pvperf_read_group(PVPerfVcpu *vc, uint32_t lead,
                             uint64_t *touched)
{
    uint64_t group = pvperf_members(vc, lead) | (1ull << lead);
    PVPerfGroupRead rd;
    ssize_t len = 0;
    int err = vc->slot[lead].orphan_errno;

    if (!err) {
        err = pvperf_host_read_group(vc->slot[lead].fd, &rd, &len);
    }
    trace_pvperf_read_group(vc->index, lead, len, err, len >= 8 ? rd.nr : 0,
                            len >= 24 ? rd.time_enabled : 0,
                            len >= 24 ? rd.time_running : 0);
    *touched |= group;
    for (uint64_t g = group; g; g &= g - 1) {
        PVPerfSlot *sl = &vc->slot[ctz64(g)];
        int e = sl->orphan_errno ? sl->orphan_errno : err;

        sl->read_error = e != 0;
        sl->read_errno = e;
    }
    if (err) {
        return err;
    }
    for (uint64_t i = 0; i < rd.nr; i++) {
        uint64_t value = rd.v[i].value, id = rd.v[i].id;

        for (uint64_t g = group; g; g &= g - 1) {
            PVPerfSlot *sl = &vc->slot[ctz64(g)];

            if (sl->id == id && !sl->orphan_errno) {
                /* a member's times are its leader's: they run together */
                sl->count = value + sl->off_count;
                sl->time_enabled = rd.time_enabled + sl->off_enabled;
                sl->time_running = rd.time_running + sl->off_running;
                break;
            }
        }
    }
    return 0;
}

/*
 * Read the slots in @mask (and their groups) and write their records.
 * Returns 0 or the first errno, with the leader it came from in *@failed.
 */
static int pvperf_read_slots(PVPerfState *s, PVPerfVcpu *vc, uint64_t mask,
                             uint32_t *failed, uint64_t *groups)
{
    uint64_t leaders = 0, touched = 0;
    int first_err = 0;

    for (uint64_t m = mask; m; m &= m - 1) {
        PVPerfSlot *sl = &vc->slot[ctz64(m)];

        leaders |= 1ull << (pvperf_is_member(sl) ? sl->leader : ctz64(m));
    }
    for (; leaders; leaders &= leaders - 1) {
        int err = pvperf_read_group(vc, ctz64(leaders), &touched);

        if (err && !first_err) {
            first_err = err;
            *failed = ctz64(leaders);
        }
    }
    pvperf_write_records(s, vc, touched);
    if (groups) {
        *groups = touched;      /* every slot of the groups it read */
    }
    return first_err;
}

/*
 * ENABLE of slot @n (with @members if it leads them) when a sampling slot
 * is among them: never the group-wide ioctl, which would enable sampling
 * slots without an overflow budget, or held ones. Slot by slot: each
 * sampling slot armed (pvperf_sample_arm), or held while its vCPU is over the
 * rate limit (the limit's end arms it, pvperf_unhold()), each other one
 * enabled on its own, so that the group runs whole once its leader does.
 */
static int pvperf_enable_each(PVPerfState *s, PVPerfVcpu *vc, uint32_t n,
                              uint64_t members)
{
    /* the members first: the leader then starts the group whole */
    for (uint64_t g = members | (1ull << n); g; ) {
        uint32_t i = g == 1ull << n ? n : ctz64(g & ~(1ull << n));
        PVPerfSlot *sl = &vc->slot[i];
        int err;

        g &= ~(1ull << i);
        if (sl->period && vc->limited) {
            sl->held = true;
            continue;
        }
        sl->held = false;
        err = sl->period ? pvperf_sample_arm(s, vc, i) :
                           pvperf_host_enable(sl->fd, true, false);
        if (err) {
            return err;
        }
    }
    return 0;
}

/*
 * The reason the first slot in @mask has no host event (that slot in
 * *@which), or 0
 */
static int pvperf_orphan_errno(PVPerfVcpu *vc, uint64_t mask, uint32_t *which)
{
    for (uint64_t m = mask; m; m &= m - 1) {
        if (vc->slot[ctz64(m)].orphan_errno) {
            *which = ctz64(m);
            return vc->slot[*which].orphan_errno;
        }
    }
    return 0;
}

/*
 * ENABLE/DISABLE: slot by slot in mask order; a failing ioctl stops the
 * command there (the slots before it changed, their records say so).
 */
static uint32_t pvperf_cmd_enable(PVPerfState *s, const PVPerfArgs *a,
                                  bool enable)
{
    uint64_t mask, touched = 0;
    uint32_t st, orphan;
    PVPerfVcpu *vc;

    st = pvperf_mask_target(s, a, &vc, &mask);
    if (st || !mask) {
        return st;
    }
    for (uint64_t m = mask; m; m &= m - 1) {
        uint32_t n = ctz64(m);
        PVPerfSlot *sl = &vc->slot[n];
        uint64_t group = pvperf_is_member(sl) ? 0 : pvperf_members(vc, n);
        int err;

        err = pvperf_orphan_errno(vc, group | (1ull << n), &orphan);
        if (err) {
            /* no host event here (docs: "Migration") */
        } else if (enable && ((group | (1ull << n)) & vc->sampling)) {
            err = pvperf_enable_each(s, vc, n, group);
        } else {
            err = pvperf_host_enable(sl->fd, enable, group);
            sl->held = false;
        }
        if (err) {
            st = pvperf_host_error(s, "ioctl", vc->index, n, err);
            break;
        }
        group |= 1ull << n;
        for (uint64_t g = group; g; g &= g - 1) {
            vc->slot[ctz64(g)].enabled = enable;
        }
        touched |= group;
    }
    /* the records carry the counts as of now: one exit for the guest */
    if (vc->page && touched) {
        uint32_t failed;

        pvperf_read_slots(s, vc, touched, &failed, NULL);
    }
    return st;
}

static uint32_t pvperf_cmd_read(PVPerfState *s, const PVPerfArgs *a)
{
    uint64_t mask, groups;
    uint32_t st, failed = 0;
    PVPerfVcpu *vc;
    int err;

    st = pvperf_mask_target(s, a, &vc, &mask);
    if (st || !mask) {
        return st;                      /* an empty mask does nothing */
    }
    if (!vc->page) {
        qemu_log_mask(LOG_GUEST_ERROR, "%s: vCPU %u has no count page\n",
                      __func__, vc->index);
        return PVPERF_ST_NO_PAGE;
    }
    st = pvperf_page_ready(s, vc);
    if (st) {
        return st;
    }
    err = pvperf_read_slots(s, vc, mask, &failed, &groups);
    if (!err) {
        /*
         * A slot of a group it read (READ of a slot reads its whole
         * group) without a host event here, its leader read fine
         */
        err = pvperf_orphan_errno(vc, groups, &failed);
    }
    return err ? pvperf_host_error(s, "read", vc->index, failed, err) :
                 PVPERF_ST_OK;
}

static void pvperf_arm_refresh(PVPerfState *s)
{
    timer_mod(s->refresh_timer,
              qemu_clock_get_ms(QEMU_CLOCK_VIRTUAL) + s->refresh_ms);
}

/* refresh-ms: the timer starts a pass over the vCPUs */
static void pvperf_refresh(void *opaque)
{
    PVPerfState *s = opaque;

    s->refresh_next = 0;
    qemu_bh_schedule(s->refresh_bh);
}

/*
 * One vCPU per call: the reads of at most SLOTS_PER_VCPU groups, so that
 * the main loop (QMP, other devices) runs between vCPUs however many
 * slots are open. Runs under the device's re-entrancy guard.
 */
static void pvperf_refresh_bh(void *opaque)
{
    PVPerfState *s = opaque;

    /* the VM stopped during the pass: it ends, no writes until it runs */
    for (uint32_t v = s->refresh_next;
         v < s->nr_vcpus && runstate_is_running(); v++) {
        PVPerfVcpu *vc = pvperf_vcpu_get(s, v);
        uint64_t enabled = 0;
        uint32_t failed = 0;
        int err;

        if (!vc || !vc->page) {
            continue;
        }
        for (uint64_t m = vc->open; m; m &= m - 1) {
            enabled |= vc->slot[ctz64(m)].enabled ? 1ull << ctz64(m) : 0;
        }
        if (!enabled || pvperf_page_ready(s, vc)) {
            continue;
        }
        err = pvperf_read_slots(s, vc, enabled, &failed, NULL);
        if (err) {
            /* not the guest's command: STATUS/HOST_ERRNO stay as they are */
            pvperf_note_host_error(s, "read", v, failed, err);
        }
        if (v + 1 < s->nr_vcpus) {
            s->refresh_next = v + 1;
            qemu_bh_schedule(s->refresh_bh);
            return;
        }
    }
    pvperf_arm_refresh(s);
}

/* Sampling (OVERFLOW) ------------------------------------------------- */

/* Overflows a vCPU may have in one rate window (docs: "Throttling") */
static uint64_t pvperf_rate_quota(PVPerfState *s)
{
    return MAX(1, (uint64_t)s->max_sample_rate * PVPERF_RATE_WINDOW_MS / 1000);
}

static uint64_t pvperf_drain_slot(PVPerfState *s, PVPerfVcpu *vc, uint32_t n);

/*
 * Enable vCPU @vc's sampling slot @n on the host with its overflow budget
 * topped up to the quota (docs: "Throttling and limits"): the host kernel
 * disables it when the budget is used up, so however late the main loop
 * drains, a slot takes at most a quota of overflows between two of its
 * drains. The slot is drained first, so the budget is exact: never more
 * than the quota (a guest looping ENABLE cannot grow it), never enabled
 * with none left, which the kernel takes as no limit. Returns 0 or errno.
 */
static int pvperf_grant(PVPerfState *s, PVPerfVcpu *vc, uint32_t n)
{
    PVPerfSlot *sl = &vc->slot[n];
    uint64_t quota = pvperf_rate_quota(s);
    uint64_t found = pvperf_drain_slot(s, vc, n);
    uint32_t more;
    int err;

    if (found) {
        s->rate[vc->index].win_overflows += found;
        qemu_bh_schedule(s->overflow_bh);
    }
    if (sl->budget >= quota && !sl->ring_full) {
        /* a quota left and no lost overflows held back: on as it is */
        return pvperf_host_enable(sl->fd, true, false);
    }
    /* one more when some may be held back: the next record reports them */
    more = sl->budget < quota ? quota - sl->budget : 1;
    err = pvperf_host_refresh(sl->fd, more);
    if (!err) {
        sl->budget += more;
        sl->ring_full = false;
    }
    return err;
}

/*
 * pvperf_grant() for vCPU @vc's slot @n. The host schedules a group whole:
 * a member enabled while its leader runs may stay off until the group is
 * next scheduled in (seen with a task-clock member of a context-switches
 * leader: a few overflows a second instead of all), so a running leader
 * goes off around it and on again (with a grant of its own if it
 * samples).
 */
static int pvperf_sample_arm(PVPerfState *s, PVPerfVcpu *vc, uint32_t n)
{
    PVPerfSlot *sl = &vc->slot[n];
    PVPerfSlot *lead;
    int err, err2;

    if (!pvperf_is_member(sl)) {
        return pvperf_grant(s, vc, n);
    }
    lead = &vc->slot[sl->leader];
    if (!lead->enabled || lead->held) {
        return pvperf_grant(s, vc, n);  /* starts when its leader does */
    }
    err = pvperf_host_enable(lead->fd, false, false);
    if (err) {
        return err;
    }
    err = pvperf_grant(s, vc, n);
    err2 = lead->period ? pvperf_grant(s, vc, sl->leader) :
                          pvperf_host_enable(lead->fd, true, false);
    return err ? err : err2;
}

/*
 * After a drain: an enabled sampling slot of a vCPU under the limit gets
 * its budget topped up once half of it is used, and one more overflow
 * when its ring buffer was full (the host reports lost overflows with the
 * next record, which a slot out of budget would never write).
 */
static void pvperf_topup(PVPerfState *s, PVPerfVcpu *vc, uint32_t n)
{
    PVPerfSlot *sl = &vc->slot[n];
    int err;

    if (vc->limited || !sl->enabled || sl->held ||
        (sl->budget > pvperf_rate_quota(s) / 2 && !sl->ring_full)) {
        return;
    }
    err = pvperf_sample_arm(s, vc, n);
    if (err) {
        pvperf_note_host_error(s, "ioctl (refresh)", vc->index, n, err);
    }
}

/* Held until the window's overflows are paid for at the quota */
static void pvperf_hold_until(PVPerfState *s, PVPerfVcpu *vc)
{
    PVPerfRate *r = &s->rate[vc->index];
    uint64_t windows = DIV_ROUND_UP(r->win_overflows, pvperf_rate_quota(s));

    r->until = r->win_start + PVPERF_RATE_WINDOW_MS * MIN(windows, 1000);
    timer_mod(vc->unhold_timer, r->until);
}

/*
 * The vCPU went over MAX_SAMPLE_RATE in this window: its enabled sampling
 * slots go off on the host (a leader alone: its group stops with it) for
 * as many windows as its overflows take at the quota, counted from the
 * window's start: the ones the main loop found late and the ones the ring
 * buffers lost count too, so the rate over time stays at the quota
 * whatever the guest's periods and the main loop's latency. The guest's
 * view (ENABLED) does not change.
 */
static void pvperf_hold(PVPerfState *s, PVPerfVcpu *vc)
{
    for (uint64_t m = vc->sampling; m; m &= m - 1) {
        uint32_t n = ctz64(m);
        PVPerfSlot *sl = &vc->slot[n];
        int err;

        if (!sl->enabled || sl->held) {
            continue;
        }
        err = pvperf_host_enable(sl->fd, false, false);
        if (err) {
            pvperf_note_host_error(s, "ioctl (rate limit)", vc->index, n, err);
            continue;
        }
        sl->held = true;
        sl->throttles++;
        s->throttles++;
        vc->dirty |= 1ull << n;
    }
    vc->limited = true;
    pvperf_hold_until(s, vc);
    trace_pvperf_hold(vc->index, s->rate[vc->index].win_overflows);
}

/* The window ended: what the guest has enabled counts and samples again */
static void pvperf_unhold(void *opaque)
{
    PVPerfVcpu *vc = opaque;
    PVPerfState *s = vc->s;

    for (uint64_t m = vc->sampling; m; m &= m - 1) {
        uint32_t n = ctz64(m);
        PVPerfSlot *sl = &vc->slot[n];
        int err;

        if (!sl->held) {
            continue;
        }
        sl->held = false;
        vc->dirty |= 1ull << n;
        err = sl->enabled ? pvperf_sample_arm(s, vc, n) : 0;
        if (err) {
            pvperf_note_host_error(s, "ioctl (rate limit)", vc->index, n, err);
        }
    }
    vc->limited = false;
    s->rate[vc->index] = (PVPerfRate) {
        .win_start = qemu_clock_get_ms(QEMU_CLOCK_REALTIME),
    };
    qemu_bh_schedule(s->overflow_bh);
}

static bool pvperf_overflow_pass(PVPerfState *s, PVPerfVcpu *vc);

/* Take sampling slot @n's records from its ring buffer; its new overflows */
static uint64_t pvperf_drain_slot(PVPerfState *s, PVPerfVcpu *vc, uint32_t n)
{
    PVPerfSlot *sl = &vc->slot[n];
    PVPerfRingNews news = { 0 };
    uint64_t ovf;

    pvperf_host_ring_drain(&sl->ring, &news);
    ovf = news.samples + news.lost;
    sl->budget -= MIN(ovf, sl->budget);
    sl->ring_full |= news.full;
    if (news.first_ns > 0 &&
        (!vc->oldest_ns || news.first_ns < vc->oldest_ns)) {
        vc->oldest_ns = news.first_ns;
    }
    if (ovf && sl->first_period) {
        /*
         * What was left of the source's period is over: the guest's
         * period from now on, set while the event is off (its budget was
         * that one overflow), so that every kind of event starts it
         * whole at the next enable (an active software event would
         * overflow again at once)
         */
        int err = pvperf_host_enable(sl->fd, false, false);

        err = err ? err : pvperf_host_set_period(sl->fd, sl->period);
        sl->first_period = false;
        sl->period_base += sl->period;
        if (err) {
            pvperf_note_host_error(s, "ioctl (period)", vc->index, n, err);
        }
    }
    if (ovf) {
        sl->overflows += ovf;
        sl->lost += news.lost;
        s->overflows += ovf;
        vc->fresh |= 1ull << n;
        trace_pvperf_overflow(vc->index, n, news.samples, news.lost);
    }
    if (news.throttle_state) {
        sl->kernel_throttled = news.throttle_state == 1;
        sl->throttles += news.throttles;
        s->throttles += news.throttles;
        vc->dirty |= 1ull << n;
    }
    if (news.corrupt) {
        pvperf_note_host_error(s, "sample buffer", vc->index, n, EIO);
    }
    return ovf;
}

/*
 * @found new overflows of vCPU @vc, just drained: the rate limit's
 * accounting (a hold when the window is over the quota), then the budgets
 * of its slots topped up
 */
static void pvperf_rate_account(PVPerfState *s, PVPerfVcpu *vc,
                                uint64_t found)
{
    int64_t now = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
    PVPerfRate *r = &s->rate[vc->index];

    if (!vc->limited && now - r->win_start >= PVPERF_RATE_WINDOW_MS) {
        r->win_start = now;
        r->win_overflows = 0;
    }
    r->win_overflows += found;
    if (!vc->limited && r->win_overflows > pvperf_rate_quota(s)) {
        pvperf_hold(s, vc);
    } else if (vc->limited && found) {
        /* in flight when the slots went off: they pay for them too */
        pvperf_hold_until(s, vc);
    }
    for (uint64_t m = vc->sampling; m; m &= m - 1) {
        pvperf_topup(s, vc, ctz64(m));
    }
}

/*
 * A sampling slot of this vCPU has overflow records (its fd polls readable
 * after each, wakeup_events = 1). Runs in the main loop with the BQL:
 * drains every ring buffer of the vCPU, counts, applies the rate limit,
 * and runs the vCPU's overflow pass.
 */
static void pvperf_sample_ready(void *opaque)
{
    PVPerfVcpu *vc = opaque;
    PVPerfState *s = vc->s;
    uint32_t v = vc->index;
    MemReentrancyGuard *guard = &DEVICE(s)->mem_reentrancy_guard;
    uint64_t found = 0;

    /*
     * A vCPU whose thread ended has its sampling fds ready together with
     * its watch, maybe first: its state goes now (vc with it), unread.
     */
    if (pvperf_vcpu_get(s, v) != vc) {
        return;
    }

    for (uint64_t m = vc->sampling; m; m &= m - 1) {
        found += pvperf_drain_slot(s, vc, ctz64(m));
    }
    pvperf_rate_account(s, vc, found);
    /* the guest's memory is not written while the VM does not run */
    if (!runstate_is_running()) {
        return;
    }
    /*
     * The pass at once, not in a bottom half (a main loop iteration less
     * of skid), under the re-entrancy guard a guarded bottom half would
     * hold: its DMA can never reach the device's own registers. Its
     * MSI-X message is sent last, with nothing of vc used after: the
     * guest chooses where it goes, and a write to another device's
     * register (a bridge's bus reset, a slot's power) may reset or
     * remove this device and free vc, which the reference on s outlives.
     */
    if (!(vc->fresh | vc->dirty)) {
        return;
    }
    if (guard->engaged_in_io) {
        qemu_bh_schedule(s->overflow_bh);
        return;
    }
    object_ref(OBJECT(s));
    guard->engaged_in_io = true;
    if (pvperf_overflow_pass(s, vc)) {
        msix_notify(PCI_DEVICE(s), v);
    }
    guard->engaged_in_io = false;
    object_unref(OBJECT(s));
}

/*
 * An overflow pass for one vCPU (docs: "Sampling", "Interrupts"): write the
 * records of the slots that overflowed or changed state and set their bits
 * in overflow_pending. It reads nothing from the host: a read(2) of an
 * event running on another host CPU is an IPI to it, which would interrupt
 * the very vCPU thread that samples, once per overflow. Returns whether
 * the caller must send the vCPU's MSI-X message, which it does last (see
 * pvperf_sample_ready). Writes guest memory: callers hold the device's
 * re-entrancy guard.
 */
static bool pvperf_overflow_pass(PVPerfState *s, PVPerfVcpu *vc)
{
    PCIDevice *pdev = PCI_DEVICE(s);
    uint64_t fresh = vc->fresh;
    int64_t oldest = vc->oldest_ns;

    vc->oldest_ns = 0;
    if (!(vc->fresh | vc->dirty)) {
        return false;
    }
    if (!vc->page) {
        /* counted, not signalled: nowhere to say which slot */
        vc->fresh = vc->dirty = 0;
        return false;
    }
    pvperf_write_records(s, vc, vc->fresh | vc->dirty);
    vc->fresh = vc->dirty = 0;
    if (!fresh) {
        return false;
    }
    vc->pending |= fresh;
    pvperf_write_header(s, vc);
    if (vc->page_unwritable || !msix_enabled(pdev)) {
        return false;
    }
    s->interrupts++;
    trace_pvperf_notify(vc->index, vc->pending);
    /* the skid's host part (docs: "Skid"), as of the message */
    if (oldest) {
        uint64_t lat = MAX(get_clock() - oldest, 0);

        s->latency_sum += lat;
        s->latency_max = MAX(s->latency_max, lat);
        s->latency_n++;
    }
    return true;
}

/*
 * The passes that a timer (the rate limit's end) or a busy guard left to
 * a bottom half: every vCPU's, then their messages (after which nothing
 * of the vCPUs' state is used, see pvperf_sample_ready).
 */
static void pvperf_overflow_bh(void *opaque)
{
    PVPerfState *s = opaque;

    /* the VM change-state handler schedules it again when it runs */
    if (!runstate_is_running()) {
        return;
    }
    for (uint32_t v = 0; v < s->nr_vcpus; v++) {
        PVPerfVcpu *vc = pvperf_vcpu_get(s, v);

        if (vc && pvperf_overflow_pass(s, vc) && v < s->nr_vectors) {
            set_bit(v, s->notify);
        }
    }
    /* a message may unrealize the device: s->notify is NULL then */
    object_ref(OBJECT(s));
    for (uint32_t v = 0; s->notify && v < s->nr_vectors; v++) {
        if (test_and_clear_bit(v, s->notify)) {
            msix_notify(PCI_DEVICE(s), v);
        }
    }
    object_unref(OBJECT(s));
}

static uint32_t pvperf_cmd_set_period(PVPerfState *s, const PVPerfArgs *a)
{
    uint32_t n = a->slot, v, st;
    PVPerfVcpu *vc;
    PVPerfSlot *sl;
    int err;

    st = pvperf_target(s, a, &v);
    if (st) {
        return st;
    }
    if (!pvperf_slot_ok(s, n, __func__)) {
        return PVPERF_ST_BAD_SLOT;
    }
    if (a->period == 0 || a->period > PVPERF_PERIOD_MAX) {
        qemu_log_mask(LOG_GUEST_ERROR, "%s: period %" PRIu64 ": periods are "
                      "1 to 2^63 - 1\n", __func__, a->period);
        return PVPERF_ST_BAD_ARG;
    }
    vc = pvperf_open_slot_vcpu(s, v, n, __func__);
    if (!vc) {
        return PVPERF_ST_SLOT_FREE;
    }
    sl = &vc->slot[n];
    if (!sl->period) {
        qemu_log_mask(LOG_GUEST_ERROR, "%s: vCPU %u slot %u counts: it was "
                      "opened without a period\n", __func__, v, n);
        return PVPERF_ST_BAD_ARG;
    }
    if (sl->orphan_errno) {
        return pvperf_host_error(s, "ioctl (period)", v, n, sl->orphan_errno);
    }
    /*
     * The overflows of the old period go into the slot's overflows first
     * (the next record written shows them), so that a guest can weigh
     * them at the old period: docs, "Interrupts"
     */
    pvperf_rate_account(s, vc, pvperf_drain_slot(s, vc, n));
    sl->period_base = sl->count;
    sl->first_period = false;
    err = pvperf_host_set_period(sl->fd, a->period);
    if (err) {
        return pvperf_host_error(s, "ioctl (period)", v, n, err);
    }
    sl->period = a->period;
    trace_pvperf_set_period(v, n, a->period);
    return PVPERF_ST_OK;
}

static uint32_t pvperf_cmd_ack_overflow(PVPerfState *s, const PVPerfArgs *a)
{
    uint64_t mask;
    PVPerfVcpu *vc;
    uint32_t st = pvperf_mask_target(s, a, &vc, &mask);

    if (st || !mask) {
        return st;
    }
    trace_pvperf_ack(vc->index, mask, vc->pending);
    if (vc->pending & mask) {
        vc->pending &= ~mask;
        pvperf_write_header(s, vc);
    }
    return PVPERF_ST_OK;
}

/* Commands ------------------------------------------------------------ */

static void pvperf_reset_cmd_regs(PVPerfState *s)
{
    memset(s->cmd, 0, sizeof(s->cmd));
    s->cmd[PVPERF_CMD_IDX(PVPERF_REG_CMD_VCPU)] = PVPERF_VCPU_SELF;
    s->cmd[PVPERF_CMD_IDX(PVPERF_REG_CMD_GROUP)] = PVPERF_NO_GROUP;
}

static const char *pvperf_cmd_name(uint32_t cmd)
{
    static const char *const names[] = {
        [PVPERF_CMD_NOP] = "NOP",
        [PVPERF_CMD_RESET] = "RESET",
        [PVPERF_CMD_SET_PAGE] = "SET_PAGE",
        [PVPERF_CMD_OPEN] = "OPEN",
        [PVPERF_CMD_CLOSE] = "CLOSE",
        [PVPERF_CMD_ENABLE] = "ENABLE",
        [PVPERF_CMD_DISABLE] = "DISABLE",
        [PVPERF_CMD_READ] = "READ",
        [PVPERF_CMD_ACK_OVERFLOW] = "ACK_OVERFLOW",
        [PVPERF_CMD_SET_BLOCK] = "SET_BLOCK",
        [PVPERF_CMD_RUN] = "RUN",
        [PVPERF_CMD_SET_PERIOD] = "SET_PERIOD",
    };

    return cmd < ARRAY_SIZE(names) ? names[cmd] : "unknown";
}

static uint32_t pvperf_cmd_set_block(PVPerfState *s, const PVPerfArgs *a)
{
    PVPerfVcpu *vc;
    uint32_t v, st;

    st = pvperf_page_target(s, a, "SET_BLOCK", "command block", &v, &vc);
    if (st) {
        return st;
    }
    if (vc) {                   /* NULL: address 0 on a vCPU without state */
        vc->block = a->addr;
    }
    trace_pvperf_set_block(v, a->addr);
    return PVPERF_ST_OK;
}

static uint32_t pvperf_cmd_run(PVPerfState *s, uint32_t self);

/*
 * What an entry of a command block costs the host, in slots (docs: "Command
 * block"): the slots a mask command names, a whole page of records for
 * SET_PAGE, 1 for the rest. A RUN may spend PVPERF_BLOCK_BUDGET_SLOTS *
 * SLOTS_PER_VCPU, so that one exit holds the BQL for at most a few mask
 * commands' worth of host system calls.
 */
static uint32_t pvperf_entry_cost(PVPerfState *s, uint32_t cmd,
                                  const PVPerfArgs *a)
{
    switch (cmd) {
    case PVPERF_CMD_ENABLE:
    case PVPERF_CMD_DISABLE:
    case PVPERF_CMD_READ:
        return MAX(ctpop64(a->mask), 1);
    case PVPERF_CMD_SET_PAGE:
        return s->slots_per_vcpu;
    default:
        return 1;
    }
}

/*
 * Run one command, from the registers or from a command block entry
 * (@in_block: RESET, SET_BLOCK and RUN are not allowed there). Returns
 * its status; s->host_errno is its errno (0 unless HOST_ERROR).
 */
static uint32_t pvperf_command(PVPerfState *s, uint32_t cmd,
                               const PVPerfArgs *a, bool in_block)
{
    uint32_t status;

    s->host_errno = 0;
    s->commands[MIN(cmd, PVPERF_CMD_COUNTED - 1)]++;
    if (in_block && (cmd == PVPERF_CMD_RESET || cmd == PVPERF_CMD_SET_BLOCK ||
                     cmd == PVPERF_CMD_RUN)) {
        qemu_log_mask(LOG_GUEST_ERROR, "%s: %s is not allowed in a command "
                      "block\n", __func__, pvperf_cmd_name(cmd));
        s->failed++;
        return PVPERF_ST_BAD_COMMAND;
    }
    switch (cmd) {
    case PVPERF_CMD_NOP:
        status = PVPERF_ST_OK;
        break;
    case PVPERF_CMD_RESET:
        pvperf_release_all(s);
        pvperf_reset_cmd_regs(s);
        status = PVPERF_ST_OK;
        break;
    case PVPERF_CMD_SET_PAGE:
        status = pvperf_cmd_set_page(s, a);
        break;
    case PVPERF_CMD_OPEN:
        status = pvperf_cmd_open(s, a);
        break;
    case PVPERF_CMD_CLOSE:
        status = pvperf_cmd_close(s, a);
        break;
    case PVPERF_CMD_ENABLE:
    case PVPERF_CMD_DISABLE:
        status = pvperf_cmd_enable(s, a, cmd == PVPERF_CMD_ENABLE);
        break;
    case PVPERF_CMD_READ:
        status = pvperf_cmd_read(s, a);
        break;
    case PVPERF_CMD_ACK_OVERFLOW:
        status = pvperf_cmd_ack_overflow(s, a);
        break;
    case PVPERF_CMD_SET_PERIOD:
        status = pvperf_cmd_set_period(s, a);
        break;
    case PVPERF_CMD_SET_BLOCK:
        status = pvperf_cmd_set_block(s, a);
        break;
    case PVPERF_CMD_RUN:
        status = pvperf_cmd_run(s, a->self);
        break;
    default:
        qemu_log_mask(LOG_GUEST_ERROR, "%s: unknown command 0x%x\n",
                      __func__, cmd);
        status = PVPERF_ST_BAD_COMMAND;
        break;
    }
    if (status != PVPERF_ST_OK) {
        s->failed++;
    }
    trace_pvperf_command(pvperf_cmd_name(cmd), cmd, status, s->host_errno);
    return status;
}

/*
 * RUN: the command block of vCPU @self (docs/pvperf.rst, "Command
 * block"). The block is read into s->run_buf at once, so the guest cannot
 * change an entry while it runs, and written back, results filled in, with
 * one DMA write. It runs inside the MMIO/PIO handler: the device's
 * re-entrancy guard is engaged, and the block is checked to be plain RAM
 * before each access, so neither access can reach the device's registers.
 */
static uint32_t pvperf_cmd_run(PVPerfState *s, uint32_t self)
{
    PCIDevice *pdev = PCI_DEVICE(s);
    struct pvperf_block_header *hdr = (void *)s->run_buf;
    PVPerfVcpu *vc = self < s->nr_vcpus ? pvperf_vcpu_get(s, self) : NULL;
    uint32_t nr, status = PVPERF_ST_OK, done = 0;
    uint32_t budget = PVPERF_BLOCK_BUDGET_SLOTS * s->slots_per_vcpu;
    int err = 0;
    const char *why;
    uint64_t gpa;
    size_t len;

    if (!vc || !vc->block) {
        qemu_log_mask(LOG_GUEST_ERROR, "%s: vCPU %u has no command block\n",
                      __func__, self);
        return PVPERF_ST_BAD_ADDRESS;
    }
    gpa = vc->block;
    status = pvperf_page_check(s, gpa, &why);
    /* the header and the first entry in one read: most blocks hold one */
    if (status || pci_dma_read(pdev, gpa, hdr, PVPERF_BLOCK_ENTRY_OFFSET(1))
        != MEMTX_OK) {
        qemu_log_mask(LOG_GUEST_ERROR, "%s: vCPU %u: command block 0x%"
                      PRIx64 " %s\n", __func__, self, gpa,
                      status ? why : "could not be read");
        return status ? status : PVPERF_ST_BAD_ADDRESS;
    }
    nr = le32_to_cpu(hdr->nr);
    if (nr > PVPERF_BLOCK_ENTRIES) {
        qemu_log_mask(LOG_GUEST_ERROR, "%s: vCPU %u: %u entries in the "
                      "command block, at most %d\n", __func__, self, nr,
                      PVPERF_BLOCK_ENTRIES);
        status = PVPERF_ST_BAD_ARG;
        nr = 0;
    } else if (nr > 1 &&
               pci_dma_read(pdev, gpa + PVPERF_BLOCK_ENTRY_OFFSET(1),
                            s->run_buf + PVPERF_BLOCK_ENTRY_OFFSET(1),
                            (nr - 1) * sizeof(struct pvperf_block_entry))
               != MEMTX_OK) {
        qemu_log_mask(LOG_GUEST_ERROR, "%s: vCPU %u: command block 0x%"
                      PRIx64 " could not be read\n", __func__, self, gpa);
        return PVPERF_ST_BAD_ADDRESS;
    }
    trace_pvperf_run(self, nr);
    for (uint32_t i = 0; i < nr; i++) {
        struct pvperf_block_entry *e = (void *)(s->run_buf +
                                                PVPERF_BLOCK_ENTRY_OFFSET(i));
        PVPerfArgs a = {
            .vcpu = le32_to_cpu(e->vcpu),
            .slot = le32_to_cpu(e->slot),
            .event = le32_to_cpu(e->event),
            .group = le32_to_cpu(e->group),
            .flags = le32_to_cpu(e->flags),
            .mask = le64_to_cpu(e->mask),
            .addr = le64_to_cpu(e->addr),
            .period = le64_to_cpu(e->period),
            .self = self,
        };
        uint32_t st = PVPERF_ST_NOT_RUN, cmd = le32_to_cpu(e->cmd);
        uint32_t cost = pvperf_entry_cost(s, cmd, &a);

        s->host_errno = 0;
        if (status == PVPERF_ST_OK && cost > budget) {
            qemu_log_mask(LOG_GUEST_ERROR, "%s: vCPU %u: entry %u (%s) "
                          "would cost %u slots, %u left of the block's "
                          "budget\n", __func__, self, i,
                          pvperf_cmd_name(cmd), cost, budget);
            status = st = PVPERF_ST_BUDGET;
            s->failed++;
        } else if (status == PVPERF_ST_OK) {
            budget -= cost;
            s->block_entries++;
            st = pvperf_command(s, cmd, &a, true);
            if (st == PVPERF_ST_OK) {
                done++;
            } else {
                status = st;
                err = s->host_errno;
            }
        }
        e->status = cpu_to_le32(st);
        e->host_errno = cpu_to_le32(st == PVPERF_ST_NOT_RUN ? 0 :
                                    s->host_errno);
    }
    hdr->status = cpu_to_le32(status);
    hdr->done = cpu_to_le32(done);
    s->host_errno = err;                /* for the trace; restored after */
    /* checked again: the write must not reach anything but plain RAM */
    len = PVPERF_BLOCK_ENTRY_OFFSET(nr);
    if (pvperf_page_check(s, gpa, &why) ||
        pci_dma_write(pdev, gpa, s->run_buf, len) != MEMTX_OK) {
        qemu_log_mask(LOG_GUEST_ERROR, "%s: vCPU %u: the results could not "
                      "be written to command block 0x%" PRIx64 "\n",
                      __func__, self, gpa);
    }
    return status;
}

static void pvperf_restore(PVPerfState *s);

static void pvperf_doorbell(PVPerfState *s, uint32_t cmd)
{
    uint32_t host_errno = s->host_errno;
    PVPerfArgs a;

    if (s->gone) {
        /* no vCPU table, no run buffer, no bus master address space */
        qemu_log_mask(LOG_GUEST_ERROR, "pvperf: command 0x%x reached the "
                      "device after its removal: ignored\n", cmd);
        if (cmd != PVPERF_CMD_RUN) {
            s->status = PVPERF_ST_BAD_COMMAND;
        }
        return;
    }
    if (s->mig_restore) {
        /*
         * A command between an incoming migration's load and the VM's
         * start (a guest's vCPUs do not run then: qtest, or a paused VM's
         * DMA): the migrated slots are restored first, so that it acts
         * on them as it would once the VM runs
         */
        pvperf_restore(s);
    }

    pvperf_reg_args(s, &a);
    if (cmd == PVPERF_CMD_RUN) {
        /* RUN touches no register: other vCPUs may be using them */
        pvperf_command(s, cmd, &a, false);
        s->host_errno = host_errno;
        return;
    }
    s->status = pvperf_command(s, cmd, &a, false);
}

/* Registers ----------------------------------------------------------- */

static const PVPerfEvent *pvperf_selected(PVPerfState *s)
{
    return s->catalog_select < s->catalog_count ?
           &s->catalog[s->catalog_select] : NULL;
}

static uint32_t pvperf_read_name(PVPerfState *s, hwaddr off)
{
    const PVPerfEvent *ev = pvperf_selected(s);
    uint32_t val = 0;

    if (ev) {
        /* name[] is NUL-padded to PVPERF_NAME_SIZE: see pvperf_resolve */
        val = ldl_le_p(ev->name + off);
    }
    return val;
}

static bool pvperf_access_ok(hwaddr addr, unsigned size, bool write)
{
    if (size != 4 || (addr & 3)) {
        qemu_log_mask(LOG_GUEST_ERROR, "%s: %u-byte %s at 0x%" HWADDR_PRIx
                      ": registers take aligned 32-bit accesses only\n",
                      __func__, size, write ? "write" : "read", addr);
        return false;
    }
    return true;
}

static uint64_t pvperf_mmio_read(void *opaque, hwaddr addr, unsigned size)
{
    PVPerfState *s = opaque;
    const PVPerfEvent *ev;
    uint64_t val = 0;

    s->mmio_reads++;
    if (!pvperf_access_ok(addr, size, false)) {
        return 0;
    }
    switch (addr) {
    case PVPERF_REG_MAGIC:
        val = PVPERF_MAGIC;
        break;
    case PVPERF_REG_VERSION:
        val = PVPERF_VERSION;
        break;
    case PVPERF_REG_FEATURES:
        val = PVPERF_FEATURES;
        break;
    case PVPERF_REG_DRIVER_FEATURES:
        val = s->driver_features;
        break;
    case PVPERF_REG_NR_VCPUS:
        val = s->nr_vcpus;
        break;
    case PVPERF_REG_SLOTS_PER_VCPU:
        val = s->slots_per_vcpu;
        break;
    case PVPERF_REG_MAX_SLOTS:
        val = s->max_slots;
        break;
    case PVPERF_REG_REFRESH_MS:
        val = s->refresh_ms;
        break;
    case PVPERF_REG_CATALOG_COUNT:
        val = s->catalog_count;
        break;
    case PVPERF_REG_CATALOG_SELECT:
        val = s->catalog_select;
        break;
    case PVPERF_REG_CATALOG_INFO:
        ev = pvperf_selected(s);
        if (ev) {
            val = ev->kind | (ev->available ? PVPERF_INFO_AVAILABLE : 0) |
                  ev->unit << PVPERF_INFO_UNIT_SHIFT;
        }
        break;
    case PVPERF_REG_CATALOG_ERRNO:
        ev = pvperf_selected(s);
        val = ev ? ev->probe_errno : 0;
        break;
    case PVPERF_REG_NR_VECTORS:
        val = s->nr_vectors;
        break;
    case PVPERF_REG_MAX_SAMPLE_RATE:
        val = s->max_sample_rate;
        break;
    case PVPERF_REG_CMD_VCPU ... PVPERF_REG_CMD_FLAGS:
    case PVPERF_REG_CMD_MASK_LO ... PVPERF_REG_CMD_PERIOD_HI:
        val = s->cmd[PVPERF_CMD_IDX(addr)];
        break;
    case PVPERF_REG_DOORBELL:
        qemu_log_mask(LOG_GUEST_ERROR, "%s: DOORBELL is write-only\n",
                      __func__);
        break;
    case PVPERF_REG_STATUS:
        val = s->status;
        break;
    case PVPERF_REG_HOST_ERRNO:
        val = s->host_errno;
        break;
    case PVPERF_REG_CATALOG_NAME ...
         PVPERF_REG_CATALOG_NAME + PVPERF_NAME_SIZE - 1:
        val = pvperf_read_name(s, addr - PVPERF_REG_CATALOG_NAME);
        break;
    default:
        qemu_log_mask(LOG_GUEST_ERROR, "%s: read of undefined offset 0x%"
                      HWADDR_PRIx "\n", __func__, addr);
        break;
    }
    trace_pvperf_mmio_read(addr, val);
    return val;
}

static void pvperf_mmio_write(void *opaque, hwaddr addr, uint64_t val,
                              unsigned size)
{
    PVPerfState *s = opaque;

    s->mmio_writes++;
    if (!pvperf_access_ok(addr, size, true)) {
        return;
    }
    trace_pvperf_mmio_write(addr, val);
    switch (addr) {
    case PVPERF_REG_DRIVER_FEATURES:
        /* unknown bits are ignored, not an error (compatibility rule) */
        s->driver_features = val & PVPERF_FEATURES;
        break;
    case PVPERF_REG_CATALOG_SELECT:
        s->catalog_select = val;
        if (val >= s->catalog_count) {
            qemu_log_mask(LOG_GUEST_ERROR, "%s: CATALOG_SELECT %" PRIu64
                          " is beyond the catalog's %u entries\n",
                          __func__, val, s->catalog_count);
        }
        break;
    case PVPERF_REG_CMD_VCPU ... PVPERF_REG_CMD_FLAGS:
    case PVPERF_REG_CMD_MASK_LO ... PVPERF_REG_CMD_PERIOD_HI:
        s->cmd[PVPERF_CMD_IDX(addr)] = val;
        break;
    case PVPERF_REG_DOORBELL:
        pvperf_doorbell(s, val);
        break;
    case PVPERF_REG_MAGIC:
    case PVPERF_REG_VERSION:
    case PVPERF_REG_FEATURES:
    case PVPERF_REG_NR_VCPUS ... PVPERF_REG_CATALOG_COUNT:
    case PVPERF_REG_CATALOG_INFO:
    case PVPERF_REG_CATALOG_ERRNO:
    case PVPERF_REG_NR_VECTORS:
    case PVPERF_REG_MAX_SAMPLE_RATE:
    case PVPERF_REG_STATUS:
    case PVPERF_REG_HOST_ERRNO:
    case PVPERF_REG_CATALOG_NAME ...
         PVPERF_REG_CATALOG_NAME + PVPERF_NAME_SIZE - 1:
        qemu_log_mask(LOG_GUEST_ERROR, "%s: write to read-only register 0x%"
                      HWADDR_PRIx " ignored\n", __func__, addr);
        break;
    default:
        qemu_log_mask(LOG_GUEST_ERROR, "%s: write to undefined offset 0x%"
                      HWADDR_PRIx " ignored\n", __func__, addr);
        break;
    }
}

static const MemoryRegionOps pvperf_mmio_ops = {
    .read = pvperf_mmio_read,
    .write = pvperf_mmio_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    /* every size reaches us, so that bad ones are logged and dropped here */
    .valid = { .min_access_size = 1, .max_access_size = 8, .unaligned = true },
    .impl = { .min_access_size = 1, .max_access_size = 8, .unaligned = true },
};

static uint64_t pvperf_io_read(void *opaque, hwaddr addr, unsigned size)
{
    PVPerfState *s = opaque;

    s->io_reads++;
    qemu_log_mask(LOG_GUEST_ERROR, "%s: the I/O doorbell is write-only\n",
                  __func__);
    return 0;
}

static void pvperf_io_write(void *opaque, hwaddr addr, uint64_t val,
                            unsigned size)
{
    PVPerfState *s = opaque;

    s->io_writes++;
    if (addr != PVPERF_IO_DOORBELL || size != 4) {
        qemu_log_mask(LOG_GUEST_ERROR, "%s: %u-byte write at 0x%" HWADDR_PRIx
                      ": the doorbell takes 32-bit writes at 0\n",
                      __func__, size, addr);
        return;
    }
    trace_pvperf_io_doorbell(val);
    pvperf_doorbell(s, val);
}

static const MemoryRegionOps pvperf_io_ops = {
    .read = pvperf_io_read,
    .write = pvperf_io_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    .valid = { .min_access_size = 1, .max_access_size = 4, .unaligned = true },
    .impl = { .min_access_size = 1, .max_access_size = 4, .unaligned = true },
};

/* Management: query-pvperf -------------------------------------------- */

/* The QAPI enum lists the kinds in the ABI's order */
#define PVPERF_SAME_KIND(k) \
    QEMU_BUILD_BUG_ON((int)PVPERF_EVENT_KIND_##k != (int)PVPERF_KIND_##k)
PVPERF_SAME_KIND(HARDWARE);
PVPERF_SAME_KIND(SOFTWARE);
PVPERF_SAME_KIND(TRACEPOINT);
PVPERF_SAME_KIND(HW_CACHE);
PVPERF_SAME_KIND(RAW);
PVPERF_SAME_KIND(OTHER);

/* The rates since the previous query of this device (docs: "QMP") */
static PvperfRates *pvperf_rates(PVPerfState *s, uint64_t exits)
{
    PvperfRates *r = g_new0(PvperfRates, 1);
    int64_t now = qemu_clock_get_ns(QEMU_CLOCK_REALTIME);
    uint64_t commands = 0;
    double secs;

    for (uint32_t c = 0; c < PVPERF_CMD_COUNTED; c++) {
        commands += s->commands[c];
    }
    secs = MAX(now - s->snap.ns, 1) / 1e9;
    r->interval_ms = (now - s->snap.ns) / 1000000;
    r->exits = (exits - s->snap.exits) / secs;
    r->commands = (commands - s->snap.commands) / secs;
    r->overflows = (s->overflows - s->snap.overflows) / secs;
    r->interrupts = (s->interrupts - s->snap.interrupts) / secs;
    s->snap = (PVPerfSnap) {
        .ns = now,
        .exits = exits,
        .commands = commands,
        .overflows = s->overflows,
        .interrupts = s->interrupts,
    };
    return r;
}

static PvperfInfo *pvperf_query_info(PVPerfState *s, bool with_slots)
{
    PvperfInfo *info = g_new0(PvperfInfo, 1);
    DeviceState *dev = DEVICE(s);
    PvperfCatalogEntryList **cat_tail = &info->catalog;
    PvperfPageList **page_tail = &info->pages;
    PvperfPageList **block_tail = &info->blocks;
    PvperfCommandCountList **cmd_tail;
    PvperfStats *st;
    PvperfSlotList **slot_tail = &info->slots;

    info->qom_path = object_get_canonical_path(OBJECT(s));
    info->id = g_strdup(dev->id);
    info->features = PVPERF_FEATURES;
    info->driver_features = s->driver_features;
    info->limits = g_new0(PvperfLimits, 1);
    info->limits->slots_per_vcpu = s->slots_per_vcpu;
    info->limits->max_slots = s->max_slots;
    info->limits->refresh_ms = s->refresh_ms;
    info->limits->max_sample_rate = s->max_sample_rate;
    info->open_slots = s->open_slots;

    for (uint32_t i = 0; i < s->catalog_count; i++) {
        const PVPerfEvent *ev = &s->catalog[i];
        PvperfCatalogEntry *e = g_new0(PvperfCatalogEntry, 1);

        e->index = i;
        e->name = g_strdup(ev->name);
        e->kind = (PvperfEventKind)ev->kind;
        e->perf_type = ev->attr.type;
        e->perf_config = ev->attr.config;
        if (ev->unit == PVPERF_UNIT_NS) {
            e->unit = g_strdup("ns");
        }
        e->available = ev->available;
        if (!ev->available) {
            e->has_q_errno = true;
            e->q_errno = ev->probe_errno;
            e->reason = g_strdup(ev->reason);
        }
        QAPI_LIST_APPEND(cat_tail, e);
    }

    for (uint32_t v = 0; v < s->nr_vcpus; v++) {
        PVPerfVcpu *vc = pvperf_vcpu_get(s, v);

        if (!vc) {
            continue;
        }
        if (vc->page) {
            PvperfPage *p = g_new0(PvperfPage, 1);

            p->vcpu = v;
            p->address = vc->page;
            p->writable = !vc->page_unwritable;
            QAPI_LIST_APPEND(page_tail, p);
        }
        if (vc->block) {
            PvperfPage *b = g_new0(PvperfPage, 1);
            const char *why;

            b->vcpu = v;
            b->address = vc->block;
            b->writable = !pvperf_page_check(s, vc->block, &why);
            QAPI_LIST_APPEND(block_tail, b);
        }
        for (uint64_t m = with_slots ? vc->open : 0; m; m &= m - 1) {
            uint32_t n = ctz64(m);
            const PVPerfSlot *sl = &vc->slot[n];
            PvperfSlot *o = g_new0(PvperfSlot, 1);

            o->vcpu = v;
            o->slot = n;
            o->event = sl->event;
            o->event_name = g_strdup(s->catalog[sl->event].name);
            o->has_leader = pvperf_is_member(sl);
            o->leader = o->has_leader ? sl->leader : 0;
            o->enabled = sl->enabled;
            o->count = sl->count;
            o->time_enabled = sl->time_enabled;
            o->time_running = sl->time_running;
            o->has_last_errno = sl->read_error;
            o->last_errno = sl->read_errno;
            if (sl->period) {
                o->sampling = g_new0(PvperfSampling, 1);
                o->sampling->period = sl->period;
                o->sampling->overflows = sl->overflows;
                o->sampling->lost = sl->lost;
                o->sampling->throttles = sl->throttles;
                o->sampling->throttled = sl->held || sl->kernel_throttled;
                o->sampling->pending = !!(vc->pending & (1ull << n));
            }
            QAPI_LIST_APPEND(slot_tail, o);
        }
    }

    if (s->last_error.what) {
        info->last_host_error = g_new0(PvperfHostError, 1);
        info->last_host_error->vcpu = s->last_error.vcpu;
        info->last_host_error->slot = s->last_error.slot;
        info->last_host_error->operation = g_strdup(s->last_error.what);
        info->last_host_error->q_errno = s->last_error.err;
        info->last_host_error->message = g_strdup(strerror(s->last_error.err));
    }

    st = info->stats = g_new0(PvperfStats, 1);
    st->mmio_reads = s->mmio_reads;
    st->mmio_writes = s->mmio_writes;
    st->io_writes = s->io_writes;
    st->exits = s->mmio_reads + s->mmio_writes + s->io_writes + s->io_reads;
    st->block_entries = s->block_entries;
    st->failed = s->failed;
    st->overflows = s->overflows;
    st->interrupts = s->interrupts;
    st->throttles = s->throttles;
    st->latency_avg_ns = s->latency_n ? s->latency_sum / s->latency_n : 0;
    st->latency_max_ns = s->latency_max;
    st->rates = pvperf_rates(s, st->exits);
    cmd_tail = &st->commands;
    for (uint32_t c = 0; c < PVPERF_CMD_COUNTED; c++) {
        PvperfCommandCount *cc;

        if (!s->commands[c]) {
            continue;
        }
        cc = g_new0(PvperfCommandCount, 1);
        cc->command = c < PVPERF_CMD_COUNTED - 1 ?
                      g_ascii_strdown(pvperf_cmd_name(c), -1) :
                      g_strdup("other");
        g_strdelimit(cc->command, "_", '-');
        cc->count = s->commands[c];
        QAPI_LIST_APPEND(cmd_tail, cc);
    }
    return info;
}

typedef struct PVPerfQuery {
    PvperfInfoList **tail;
    const char *id;             /* NULL: every device */
    bool slots;
    bool found;
} PVPerfQuery;

static int pvperf_query_one(Object *obj, void *opaque)
{
    PVPerfQuery *q = opaque;
    g_autofree char *path = NULL;

    /* a device not (yet) realized has no slot table to show */
    if (!object_dynamic_cast(obj, TYPE_PVPERF) || !DEVICE(obj)->realized) {
        return 0;
    }
    if (q->id) {
        path = object_get_canonical_path(obj);
        if (g_strcmp0(DEVICE(obj)->id, q->id) && g_strcmp0(path, q->id)) {
            return 0;
        }
    }
    q->found = true;
    QAPI_LIST_APPEND(q->tail, pvperf_query_info(PVPERF(obj), q->slots));
    return 0;
}

PvperfInfoList *qmp_query_pvperf(const char *id, bool has_slots, bool slots,
                                 Error **errp)
{
    PvperfInfoList *list = NULL;
    PVPerfQuery q = {
        .tail = &list, .id = id, .slots = !has_slots || slots,
    };

    object_child_foreach_recursive(object_get_root(), pvperf_query_one, &q);
    if (id && !q.found) {
        error_setg(errp, "no pvperf device '%s'", id);
    }
    return list;
}

/* Device -------------------------------------------------------------- */

static void pvperf_mig_free_slots(PVPerfState *s);

static void pvperf_reset_hold(Object *obj, ResetType type)
{
    PVPerfState *s = PVPERF(obj);

    /* a reset after a load and before the VM ran: nothing to restore */
    pvperf_mig_free_slots(s);
    pvperf_release_all(s);
    s->driver_features = 0;
    s->catalog_select = 0;
    pvperf_reset_cmd_regs(s);
    s->status = PVPERF_ST_OK;
    s->host_errno = 0;
    trace_pvperf_reset();
}

static bool pvperf_check_limits(PVPerfState *s, Error **errp)
{
    if (s->slots_per_vcpu < 1 || s->slots_per_vcpu > PVPERF_SLOTS_MAX) {
        error_setg(errp, "slots-per-vcpu must be 1 to %d, not %u",
                   PVPERF_SLOTS_MAX, s->slots_per_vcpu);
        return false;
    }
    if (s->max_slots < 1 || s->max_slots > PVPERF_MAX_SLOTS_LIMIT) {
        error_setg(errp, "max-slots must be 1 to %d, not %u",
                   PVPERF_MAX_SLOTS_LIMIT, s->max_slots);
        return false;
    }
    if (s->max_sample_rate < PVPERF_SAMPLE_RATE_MIN ||
        s->max_sample_rate > PVPERF_SAMPLE_RATE_MAX) {
        error_setg(errp, "max-sample-rate must be %d to %d overflows per "
                   "second and vCPU, not %u", PVPERF_SAMPLE_RATE_MIN,
                   PVPERF_SAMPLE_RATE_MAX, s->max_sample_rate);
        return false;
    }
    if (s->refresh_ms > PVPERF_REFRESH_MS_LIMIT) {
        error_setg(errp, "refresh-ms must be at most %d (0 = off), not %u",
                   PVPERF_REFRESH_MS_LIMIT, s->refresh_ms);
        return false;
    }
    return true;
}

/* Migration (docs: "Migration") ----------------------------------------- */

static void pvperf_mig_free_slots(PVPerfState *s)
{
    g_clear_pointer(&s->mig_slots, g_free);
    g_clear_pointer(&s->mig_vcpus, g_free);
    s->mig_nr_slots = 0;
    s->mig_restore = false;
}

/*
 * Postcopy starts the destination before its memory has arrived: the
 * device would write count pages that are not there yet, so it refuses
 * postcopy while slots are open. Snapshots never use postcopy, whatever
 * the capability says, and never call the migration notifiers: only a
 * migration that may switch to postcopy sets the flag pre_save tests.
 */
static int pvperf_mig_notify(NotifierWithReturn *notifier, MigrationEvent *e,
                             Error **errp)
{
    PVPerfState *s = container_of(notifier, PVPerfState, mig_notifier);
    uint32_t open = s->mig_restore ? s->mig_nr_slots : s->open_slots;

    s->mig_postcopy = e->type == MIG_EVENT_PRECOPY_SETUP &&
                      migrate_postcopy_ram();
    if (s->mig_postcopy && open) {
        error_setg(errp, "pvperf: %u open slots cannot migrate with "
                   "postcopy-ram; migrate without it", open);
        return -EOPNOTSUPP;
    }
    return 0;
}

/*
 * The open slots as the stream carries them, with the VM stopped: every
 * overflow the host buffered is drained (the next pass here, or the
 * destination's first, passes it on) and every group read, so that the
 * last values are this moment's. Nothing is written to guest memory,
 * which has been sent.
 */
static void pvperf_save_slots(PVPerfState *s)
{
    uint32_t i = 0;

    if (s->mig_restore) {
        /* loaded, the VM not run since: the loaded slots go on as they are */
        return;
    }
    pvperf_mig_free_slots(s);
    if (!s->open_slots) {
        return;
    }
    s->mig_slots = g_new0(PVPerfMigSlot, s->open_slots);
    s->mig_vcpus = g_new0(PVPerfMigVcpu, s->nr_vcpus);
    for (uint32_t v = 0; v < s->nr_vcpus; v++) {
        PVPerfVcpu *vc = s->vcpu[v];
        uint64_t touched = 0;

        if (!vc) {
            continue;
        }
        for (uint64_t m = vc->sampling; m; m &= m - 1) {
            s->rate[v].win_overflows += pvperf_drain_slot(s, vc, ctz64(m));
        }
        for (uint64_t m = vc->open; m; m &= m - 1) {
            if (!pvperf_is_member(&vc->slot[ctz64(m)])) {
                pvperf_read_group(vc, ctz64(m), &touched);
            }
        }
        vc->dirty |= touched;
        s->mig_vcpus[v] = (PVPerfMigVcpu) {
            .pending = vc->pending,
            .fresh = vc->fresh,
            .hdr_seq = vc->hdr_seq,
        };
        for (uint32_t n = 0; n < PVPERF_SLOTS_MAX; n++) {
            s->mig_vcpus[v].seq[n] = vc->slot[n].seq;
        }
        for (uint64_t m = vc->open; m && i < s->open_slots; m &= m - 1) {
            uint32_t n = ctz64(m);
            PVPerfSlot *sl = &vc->slot[n];
            uint64_t done = 0;

            if (sl->period && sl->count >= sl->period_base) {
                done = (sl->count - sl->period_base) % sl->period;
            }
            s->mig_slots[i++] = (PVPerfMigSlot) {
                .vcpu = v,
                .slot = n,
                .event = sl->event,
                .leader = sl->leader,
                .enabled = sl->enabled,
                .period = sl->period,
                .left = sl->period - done,
                .count = sl->count,
                .time_enabled = sl->time_enabled,
                .time_running = sl->time_running,
                .overflows = sl->overflows,
                .lost = sl->lost,
                .throttles = sl->throttles,
            };
        }
    }
    s->mig_nr_slots = i;
}

/*
 * The loaded slots get the checks their commands would: bounds, present
 * vCPUs, one entry per slot, leaders that are open and lead; a sampling
 * slot has a vector and a period left within its period.
 */
static int pvperf_check_slots(PVPerfState *s)
{
    g_autofree uint64_t *seen = g_new0(uint64_t, s->nr_vcpus);
    g_autofree uint64_t *leads = g_new0(uint64_t, s->nr_vcpus);

    if (!s->mig_slots || !s->mig_vcpus) {
        error_report("pvperf: open slots without their vCPUs' state in the "
                     "migration stream");
        return -EINVAL;
    }
    for (uint32_t i = 0; i < s->mig_nr_slots; i++) {
        const PVPerfMigSlot *m = &s->mig_slots[i];
        const char *bad = NULL;

        if (m->vcpu >= s->nr_vcpus || !pvperf_vcpu_present(m->vcpu)) {
            bad = "a vCPU that is not present here";
        } else if (m->slot >= s->slots_per_vcpu) {
            bad = "a slot beyond SLOTS_PER_VCPU";
        } else if (seen[m->vcpu] & (1ull << m->slot)) {
            bad = "a slot twice";
        } else if (m->event >= s->catalog_count) {
            bad = "an event beyond the catalog";
        } else if (m->enabled > 1) {
            bad = "a bad enabled state";
        } else if (m->period > PVPERF_PERIOD_MAX ||
                   (m->period && (m->left == 0 || m->left > m->period))) {
            bad = "a bad period";
        } else if (m->period && m->vcpu >= s->nr_vectors) {
            bad = "a sampling slot on a vCPU without a vector";
        } else if (m->leader != PVPERF_NO_GROUP &&
                   (m->leader >= s->slots_per_vcpu || m->leader == m->slot)) {
            bad = "a bad group leader";
        }
        if (bad) {
            error_report("pvperf: vCPU %u slot %u in the migration stream: "
                         "%s", m->vcpu, m->slot, bad);
            return -EINVAL;
        }
        seen[m->vcpu] |= 1ull << m->slot;
        if (m->leader == PVPERF_NO_GROUP) {
            leads[m->vcpu] |= 1ull << m->slot;
        }
    }
    for (uint32_t i = 0; i < s->mig_nr_slots; i++) {
        const PVPerfMigSlot *m = &s->mig_slots[i];

        if (m->leader != PVPERF_NO_GROUP &&
            !(leads[m->vcpu] & (1ull << m->leader))) {
            error_report("pvperf: vCPU %u slot %u in the migration stream: "
                         "its leader %u is no open leader", m->vcpu, m->slot,
                         m->leader);
            return -EINVAL;
        }
    }
    return 0;
}

/*
 * Migrated slot @m into the table, with a host event opened here if it
 * can be; else it stays open for the guest with READ_ERROR and its last
 * values, the reason recorded. Leaders come before their members.
 */
static void pvperf_restore_slot(PVPerfState *s, const PVPerfMigSlot *m)
{
    const PVPerfEvent *ev = &s->catalog[m->event];
    const char *what = "perf_event_open";
    PVPerfVcpu *vc;
    PVPerfSlot *sl;
    int err = 0;

    if (pvperf_vcpu_state(s, m->vcpu, &vc) != PVPERF_ST_OK) {
        error_report("pvperf: vCPU %u slot %u could not be restored: no "
                     "state for its vCPU", m->vcpu, m->slot);
        return;
    }
    if (vc->open & (1ull << m->slot)) {
        /* pvperf_doorbell() restores before any command: cannot be */
        error_report("pvperf: vCPU %u slot %u was open before its restore: "
                     "closed first", m->vcpu, m->slot);
        pvperf_close_slot(s, vc, m->slot);
    }
    sl = &vc->slot[m->slot];
    *sl = (PVPerfSlot) {
        .fd = -1,
        .event = m->event,
        .leader = m->leader,
        .enabled = m->enabled,
        .seq = sl->seq,
        .count = m->count,
        .time_enabled = m->time_enabled,
        .time_running = m->time_running,
        .overflows = m->overflows,
        .period = m->period,
        .lost = m->lost,
        .throttles = m->throttles,
        .off_count = m->count,
        .off_enabled = m->time_enabled,
        .off_running = m->time_running,
        /* where the source's current period began: left is what remains */
        .period_base = m->period ? m->count - (m->period - m->left) : 0,
        .first_period = m->period && m->left != m->period,
    };
    if (!ev->available) {
        err = ev->probe_errno ? ev->probe_errno : ENOENT;
        what = "perf_event_open (event unavailable here)";
    } else if (pvperf_is_member(sl) &&
               (!(vc->open & (1ull << m->leader)) ||
                vc->slot[m->leader].orphan_errno)) {
        err = vc->slot[m->leader].orphan_errno ?: EBADF;
        what = "perf_event_open (its leader failed)";
    } else {
        err = -pvperf_slot_host_open(s, vc, m->slot,
                                     m->period ? m->left : 0, &what);
    }
    if (err) {
        sl->orphan_errno = err;
        sl->read_error = true;
        sl->read_errno = err;
        pvperf_note_host_error(s, what, m->vcpu, m->slot, err);
    }
    vc->open |= 1ull << m->slot;
    s->open_slots++;
    trace_pvperf_open(m->vcpu, m->slot, ev->name, m->leader, sl->fd);
}

/* Start what the guest has enabled: members first, groups start whole */
static void pvperf_restore_enable(PVPerfState *s, PVPerfVcpu *vc)
{
    for (int leaders = 0; leaders < 2; leaders++) {
        for (uint64_t m = vc->open; m; m &= m - 1) {
            uint32_t n = ctz64(m);
            PVPerfSlot *sl = &vc->slot[n];
            int err;

            if (!sl->enabled || sl->orphan_errno ||
                pvperf_is_member(sl) == leaders) {
                continue;
            }
            if (sl->period && vc->limited) {
                sl->held = true;        /* a hold this vCPU index had */
                continue;
            }
            if (sl->first_period) {
                /* one overflow: the rest of the source's period */
                err = pvperf_host_refresh(sl->fd, 1);
                sl->budget = err ? 0 : 1;
            } else {
                err = sl->period ? pvperf_grant(s, vc, n) :
                                   pvperf_host_enable(sl->fd, true, false);
            }
            if (err) {
                pvperf_note_host_error(s, "ioctl (migration)", vc->index, n,
                                       err);
            }
        }
    }
}

/*
 * The migrated slots, when the VM is about to run (a VM change-state
 * handler: host resources come back before the vCPUs do, as vhost's and
 * VFIO's): host events on this QEMU's vCPU threads, offsets so that
 * nothing goes backwards, the page state. The records, headers and the
 * messages of overflows the source had not passed on are for the
 * overflow pass, a guarded bottom half.
 */
static void pvperf_restore(PVPerfState *s)
{
    for (int members = 0; members < 2; members++) {
        for (uint32_t i = 0; i < s->mig_nr_slots; i++) {
            const PVPerfMigSlot *m = &s->mig_slots[i];

            if ((m->leader != PVPERF_NO_GROUP) == members) {
                pvperf_restore_slot(s, m);
            }
        }
    }
    for (uint32_t v = 0; v < s->nr_vcpus; v++) {
        PVPerfVcpu *vc = pvperf_vcpu_get(s, v);
        uint64_t samplers = 0;

        if (!vc) {
            continue;
        }
        for (uint32_t n = 0; n < PVPERF_SLOTS_MAX; n++) {
            /* even: no write in progress, whatever the stream says */
            vc->slot[n].seq = s->mig_vcpus[v].seq[n] & ~1u;
            if ((vc->open & (1ull << n)) && vc->slot[n].period) {
                samplers |= 1ull << n;
            }
        }
        vc->hdr_seq = s->mig_vcpus[v].hdr_seq & ~1u;
        /* sampling slots only, which only vCPUs with a vector have */
        vc->pending = s->mig_vcpus[v].pending & samplers;
        vc->fresh = s->mig_vcpus[v].fresh & samplers;
        vc->dirty = vc->open;
        pvperf_restore_enable(s, vc);
    }
    pvperf_mig_free_slots(s);
    qemu_bh_schedule(s->overflow_bh);
}

/*
 * The VM runs (again): migrated slots are restored; and what happened
 * while it was stopped (overflows drained by a save, or found by the fd
 * handlers, budgets used up meanwhile) is passed to the guest now.
 */
static void pvperf_vm_state_change(void *opaque, bool running,
                                   RunState state)
{
    PVPerfState *s = opaque;

    if (!running) {
        return;
    }
    if (s->mig_restore) {
        pvperf_restore(s);
        return;
    }
    for (uint32_t v = 0; v < s->nr_vcpus; v++) {
        PVPerfVcpu *vc = s->vcpu[v];

        for (uint64_t m = vc ? vc->sampling : 0; m; m &= m - 1) {
            pvperf_topup(s, vc, ctz64(m));
        }
    }
    qemu_bh_schedule(s->overflow_bh);
}

static void pvperf_realize(PCIDevice *pdev, Error **errp)
{
    ERRP_GUARD();
    PVPerfState *s = PVPERF(pdev);
    MachineState *ms = MACHINE(qdev_get_machine());

    s->nr_vcpus = ms->smp.max_cpus;
    if (!pvperf_check_limits(s, errp) || !pvperf_build_catalog(s, errp)) {
        pvperf_free_catalog(s);
        error_prepend(errp, "pvperf: ");
        return;
    }

    pci_config_set_interrupt_pin(pdev->config, 0);
    /* one MSI-X vector per vCPU: vCPU v's overflows raise vector v */
    s->nr_vectors = MIN(s->nr_vcpus, PVPERF_MSIX_VECTORS_MAX);
    if (msix_init_exclusive_bar(pdev, s->nr_vectors, PVPERF_MSIX_BAR,
                                errp)) {
        pvperf_free_catalog(s);
        return;
    }
    for (uint32_t v = 0; v < s->nr_vectors; v++) {
        msix_vector_use(pdev, v);
    }

    memory_region_init_io(&s->mmio, OBJECT(s), &pvperf_mmio_ops, s,
                          "pvperf-mmio", PVPERF_MMIO_SIZE);
    pci_register_bar(pdev, PVPERF_MMIO_BAR, PCI_BASE_ADDRESS_SPACE_MEMORY,
                     &s->mmio);
    memory_region_init_io(&s->io, OBJECT(s), &pvperf_io_ops, s,
                          "pvperf-io", PVPERF_IO_SIZE);
    pci_register_bar(pdev, PVPERF_IO_BAR, PCI_BASE_ADDRESS_SPACE_IO, &s->io);

    s->vcpu = g_new0(PVPerfVcpu *, s->nr_vcpus);
    s->rate = g_new0(PVPerfRate, s->nr_vcpus);
    s->notify = bitmap_new(s->nr_vectors);
    s->run_buf = g_malloc0(PVPERF_BLOCK_SIZE);
    /* writes guest memory outside the MMIO handlers: guard it */
    s->overflow_bh = qemu_bh_new_guarded(pvperf_overflow_bh, s,
                                         &DEVICE(s)->mem_reentrancy_guard);
    if (s->refresh_ms) {
        s->refresh_timer = timer_new_ms(QEMU_CLOCK_VIRTUAL, pvperf_refresh, s);
        /* writes guest memory outside the MMIO handlers: guard it */
        s->refresh_bh = qemu_bh_new_guarded(pvperf_refresh_bh, s,
                                            &DEVICE(s)->mem_reentrancy_guard);
        pvperf_arm_refresh(s);
    }
    pvperf_reset_cmd_regs(s);
    s->snap.ns = qemu_clock_get_ns(QEMU_CLOCK_REALTIME);
    s->vm_change = qemu_add_vm_change_state_handler(pvperf_vm_state_change,
                                                    s);
    migration_add_notifier(&s->mig_notifier, pvperf_mig_notify);
    trace_pvperf_realize(s->catalog_count, s->nr_vcpus);
}

static void pvperf_exit(PCIDevice *pdev)
{
    PVPerfState *s = PVPERF(pdev);

    s->gone = true;             /* first: see pvperf_doorbell() */

    if (s->vm_change) {
        qemu_del_vm_change_state_handler(s->vm_change);
        s->vm_change = NULL;
        migration_remove_notifier(&s->mig_notifier);
    }
    pvperf_mig_free_slots(s);
    pvperf_release_all(s);
    g_clear_pointer(&s->vcpu, g_free);
    g_clear_pointer(&s->rate, g_free);
    g_clear_pointer(&s->notify, g_free);
    g_clear_pointer(&s->run_buf, g_free);
    if (s->refresh_timer) {
        timer_free(s->refresh_timer);
        s->refresh_timer = NULL;
        g_clear_pointer(&s->refresh_bh, qemu_bh_delete);
    }
    g_clear_pointer(&s->overflow_bh, qemu_bh_delete);
    msix_unuse_all_vectors(pdev);
    msix_uninit_exclusive_bar(pdev);
    pvperf_free_catalog(s);
}

static int pvperf_pre_save(void *opaque)
{
    PVPerfState *s = opaque;

    for (uint32_t v = 0; v < s->nr_vcpus; v++) {
        pvperf_vcpu_get(s, v);              /* drops an unplugged vCPU's */
    }
    /* the notifier refused it at setup; slots opened since */
    if ((s->open_slots || s->mig_restore) && s->mig_postcopy) {
        error_report("pvperf: %u open slots cannot migrate with postcopy-ram",
                     s->mig_restore ? s->mig_nr_slots : s->open_slots);
        return -EOPNOTSUPP;
    }
    pvperf_save_slots(s);
    memset(s->mig_names, 0, sizeof(s->mig_names));
    pstrcpy((char *)s->mig_names, sizeof(s->mig_names), s->catalog_names);
    g_free(s->mig_pages);
    g_free(s->mig_blocks);
    s->mig_pages = g_new0(uint64_t, s->nr_vcpus);
    s->mig_blocks = g_new0(uint64_t, s->nr_vcpus);
    for (uint32_t v = 0; v < s->nr_vcpus; v++) {
        s->mig_pages[v] = s->vcpu[v] ? s->vcpu[v]->page : 0;
        s->mig_blocks[v] = s->vcpu[v] ? s->vcpu[v]->block : 0;
    }
    return 0;
}

static int pvperf_post_save(void *opaque)
{
    PVPerfState *s = opaque;

    g_clear_pointer(&s->mig_pages, g_free);
    g_clear_pointer(&s->mig_blocks, g_free);
    if (!s->mig_restore) {
        pvperf_mig_free_slots(s);
    }
    /*
     * overflows the save drained reach the guest if this VM runs on: the
     * change-state handler's pass
     */
    return 0;
}

/*
 * A migrated count page gets SET_PAGE's checks: here those that do not
 * depend on the memory map, which other devices are still loading; the
 * RAM and bus-master checks come before every write, as for every page.
 */
static int pvperf_load_pages(PVPerfState *s, const uint64_t *addrs,
                             bool block)
{
    const char *what = block ? "command block" : "count page";

    for (uint32_t v = 0; addrs && v < s->nr_vcpus; v++) {
        uint64_t gpa = addrs[v];
        PVPerfVcpu *vc;

        if (!gpa) {
            continue;
        }
        if ((gpa & (PVPERF_PAGE_SIZE - 1)) ||
            gpa > UINT64_MAX - PVPERF_PAGE_SIZE) {
            error_report("pvperf: vCPU %u's %s 0x%" PRIx64 " in the "
                         "migration stream is not a page address", v, what,
                         gpa);
            return -EINVAL;
        }
        switch (pvperf_vcpu_state(s, v, &vc)) {
        case PVPERF_ST_OK:
            break;
        case PVPERF_ST_BAD_VCPU:
            error_report("pvperf: vCPU %u has a %s on the migration "
                         "source but is not present here", v, what);
            return -EINVAL;
        default:
            error_report("pvperf: vCPU %u's %s: %s: %s", v, what,
                         s->last_error.what, strerror(s->last_error.err));
            return -EINVAL;
        }
        if (block) {
            vc->block = gpa;
        } else {
            vc->page = gpa;
        }
    }
    return 0;
}

/* Nothing of an earlier, failed load may be taken for this one's */
static int pvperf_pre_load(void *opaque)
{
    PVPerfState *s = opaque;

    g_clear_pointer(&s->mig_pages, g_free);
    g_clear_pointer(&s->mig_blocks, g_free);
    pvperf_mig_free_slots(s);
    return 0;
}

static int pvperf_post_load(void *opaque, int version_id)
{
    PVPerfState *s = opaque;
    const char *names = (const char *)s->mig_names;
    int ret = 0;

    if (!memchr(names, 0, sizeof(s->mig_names)) ||
        strcmp(names, s->catalog_names)) {
        s->mig_names[sizeof(s->mig_names) - 1] = 0;
        error_report("pvperf: the migration source's event catalog (events "
                     "property) is '%s', this destination's is '%s'",
                     names, s->catalog_names);
        ret = -EINVAL;
    } else {
        /*
         * No slot was open (pvperf_pre_save sees to that): pages only.
         * What this device held before (loadvm) does not survive.
         */
        pvperf_release_all(s);
        s->driver_features &= PVPERF_FEATURES;
        ret = pvperf_load_pages(s, s->mig_pages, false);
        if (!ret) {
            ret = pvperf_load_pages(s, s->mig_blocks, true);
        }
        if (!ret && s->mig_nr_slots) {
            ret = pvperf_check_slots(s);
        }
    }
    g_clear_pointer(&s->mig_pages, g_free);
    g_clear_pointer(&s->mig_blocks, g_free);
    if (ret || !s->mig_nr_slots) {
        pvperf_mig_free_slots(s);
    } else {
        s->mig_restore = true;          /* when the VM runs */
    }
    return ret;
}

/* Command block addresses: only when some vCPU has one (ABI 1.1) */
static bool pvperf_blocks_needed(void *opaque)
{
    PVPerfState *s = opaque;

    for (uint32_t v = 0; s->mig_blocks && v < s->nr_vcpus; v++) {
        if (s->mig_blocks[v]) {
            return true;
        }
    }
    return false;
}

/* A stream that repeats the subsection must not leak the first copy */
static int pvperf_blocks_pre_load(void *opaque)
{
    PVPerfState *s = opaque;

    g_clear_pointer(&s->mig_blocks, g_free);
    return 0;
}

static const VMStateDescription vmstate_pvperf_blocks = {
    .name = "pvperf/blocks",
    .version_id = 1,
    .minimum_version_id = 1,
    .needed = pvperf_blocks_needed,
    .pre_load = pvperf_blocks_pre_load,
    .fields = (const VMStateField[]) {
        VMSTATE_VARRAY_UINT32_ALLOC(mig_blocks, PVPerfState, nr_vcpus, 0,
                                    vmstate_info_uint64, uint64_t),
        VMSTATE_END_OF_LIST()
    },
};

/* Open slots: only when some are (docs: "Migration") */
static bool pvperf_slots_needed(void *opaque)
{
    PVPerfState *s = opaque;

    return s->mig_nr_slots > 0;
}

/* Before the array is allocated: never more than the device may have */
static bool pvperf_mig_nr_ok(void *opaque, int version_id)
{
    PVPerfState *s = opaque;

    if (s->mig_nr_slots > s->max_slots ||
        s->mig_nr_slots > (uint64_t)s->nr_vcpus * s->slots_per_vcpu) {
        error_report("pvperf: %u open slots in the migration stream, this "
                     "device has at most %u", s->mig_nr_slots,
                     s->max_slots);
        return false;
    }
    return true;
}

static const VMStateDescription vmstate_pvperf_mig_slot = {
    .name = "pvperf/slot",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT32(vcpu, PVPerfMigSlot),
        VMSTATE_UINT32(slot, PVPerfMigSlot),
        VMSTATE_UINT32(event, PVPerfMigSlot),
        VMSTATE_UINT32(leader, PVPerfMigSlot),
        VMSTATE_UINT8(enabled, PVPerfMigSlot),
        VMSTATE_UINT64(period, PVPerfMigSlot),
        VMSTATE_UINT64(left, PVPerfMigSlot),
        VMSTATE_UINT64(count, PVPerfMigSlot),
        VMSTATE_UINT64(time_enabled, PVPerfMigSlot),
        VMSTATE_UINT64(time_running, PVPerfMigSlot),
        VMSTATE_UINT64(overflows, PVPerfMigSlot),
        VMSTATE_UINT64(lost, PVPerfMigSlot),
        VMSTATE_UINT64(throttles, PVPerfMigSlot),
        VMSTATE_END_OF_LIST()
    },
};

static const VMStateDescription vmstate_pvperf_mig_vcpu = {
    .name = "pvperf/vcpu",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT64(pending, PVPerfMigVcpu),
        VMSTATE_UINT64(fresh, PVPerfMigVcpu),
        VMSTATE_UINT32(hdr_seq, PVPerfMigVcpu),
        VMSTATE_UINT32_ARRAY(seq, PVPerfMigVcpu, PVPERF_SLOTS_MAX),
        VMSTATE_END_OF_LIST()
    },
};

/* An array of structs whose length is a uint32_t field, allocated on load */
#define PVPERF_VMSTATE_STRUCTS(_field, _state, _num, _vmsd, _type) {       \
    .name       = (stringify(_field)),                                    \
    .vmsd       = &(_vmsd),                                               \
    .num_offset = vmstate_offset_value(_state, _num, uint32_t),           \
    .size       = sizeof(_type),                                          \
    .flags      = VMS_STRUCT | VMS_VARRAY_UINT32 | VMS_ALLOC | VMS_POINTER, \
    .offset     = vmstate_offset_pointer(_state, _field, _type),          \
}

/* A stream that repeats the subsection must not leak the first copy */
static int pvperf_slots_pre_load(void *opaque)
{
    pvperf_mig_free_slots(opaque);
    return 0;
}

static const VMStateDescription vmstate_pvperf_slots = {
    .name = "pvperf/slots",
    .version_id = 1,
    .minimum_version_id = 1,
    .needed = pvperf_slots_needed,
    .pre_load = pvperf_slots_pre_load,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT32(mig_nr_slots, PVPerfState),
        VMSTATE_VALIDATE("pvperf open slots", pvperf_mig_nr_ok),
        PVPERF_VMSTATE_STRUCTS(mig_slots, PVPerfState, mig_nr_slots,
                               vmstate_pvperf_mig_slot, PVPerfMigSlot),
        PVPERF_VMSTATE_STRUCTS(mig_vcpus, PVPerfState, nr_vcpus,
                               vmstate_pvperf_mig_vcpu, PVPerfMigVcpu),
        VMSTATE_END_OF_LIST()
    },
};

static const VMStateDescription vmstate_pvperf = {
    .name = "pvperf",
    .version_id = 3,
    .minimum_version_id = 3,
    .pre_save = pvperf_pre_save,
    .post_save = pvperf_post_save,
    .pre_load = pvperf_pre_load,
    .post_load = pvperf_post_load,
    .fields = (const VMStateField[]) {
        VMSTATE_PCI_DEVICE(parent_obj, PVPerfState),
        /* before the MSI-X table, whose size it gives */
        VMSTATE_UINT32_EQUAL(nr_vcpus, PVPerfState, NULL),
        VMSTATE_MSIX(parent_obj, PVPerfState),
        VMSTATE_BUFFER(mig_names, PVPerfState),
        VMSTATE_UINT32(driver_features, PVPerfState),
        VMSTATE_UINT32(catalog_select, PVPerfState),
        VMSTATE_UINT32_ARRAY(cmd, PVPerfState, PVPERF_CMD_NREGS),
        VMSTATE_UINT32(status, PVPerfState),
        VMSTATE_UINT32(host_errno, PVPerfState),
        VMSTATE_VARRAY_UINT32_ALLOC(mig_pages, PVPerfState, nr_vcpus, 0,
                                    vmstate_info_uint64, uint64_t),
        VMSTATE_END_OF_LIST()
    },
    .subsections = (const VMStateDescription * const []) {
        &vmstate_pvperf_blocks,
        &vmstate_pvperf_slots,
        NULL
    },
};

static const Property pvperf_properties[] = {
    DEFINE_PROP_STRING("events", PVPerfState, events),
    DEFINE_PROP_UINT32("slots-per-vcpu", PVPerfState, slots_per_vcpu,
                       PVPERF_SLOTS_MAX),
    DEFINE_PROP_UINT32("max-slots", PVPerfState, max_slots, 1024),
    DEFINE_PROP_UINT32("refresh-ms", PVPerfState, refresh_ms, 0),
    DEFINE_PROP_UINT32("max-sample-rate", PVPerfState, max_sample_rate,
                       20000),
};

static void pvperf_class_init(ObjectClass *klass, void *data)
{
    DeviceClass *dc = DEVICE_CLASS(klass);
    PCIDeviceClass *pc = PCI_DEVICE_CLASS(klass);
    ResettableClass *rc = RESETTABLE_CLASS(klass);

    pc->realize = pvperf_realize;
    pc->exit = pvperf_exit;
    pc->vendor_id = PVPERF_PCI_VENDOR_ID;
    pc->device_id = PVPERF_PCI_DEVICE_ID;
    pc->subsystem_vendor_id = PVPERF_PCI_SUBVENDOR_ID;
    pc->subsystem_id = PVPERF_PCI_SUBDEVICE_ID;
    pc->revision = PVPERF_PCI_REVISION;
    pc->class_id = PVPERF_PCI_CLASS;

    rc->phases.hold = pvperf_reset_hold;
    dc->desc = "Paravirtual host performance events (perf_event_open)";
    dc->vmsd = &vmstate_pvperf;
    device_class_set_props(dc, pvperf_properties);
    object_class_property_set_description(klass, "events",
        "catalog: comma-separated libpfm4 event names (double each comma "
        "on the command line); default " PVPERF_DEFAULT_EVENTS);
    object_class_property_set_description(klass, "slots-per-vcpu",
        "slots each vCPU may open, 1-64");
    object_class_property_set_description(klass, "max-slots",
        "open slots over all vCPUs, 1-65536");
    object_class_property_set_description(klass, "max-sample-rate",
        "overflows per second and vCPU the guest may have; beyond, its "
        "sampling slots are held until its rate is back within it (at "
        "most 10 s), 100-1000000");
    object_class_property_set_description(klass, "refresh-ms",
        "refresh enabled slots in the count pages every N ms, 0 = off");
    set_bit(DEVICE_CATEGORY_MISC, dc->categories);
}

static const TypeInfo pvperf_info = {
    .name = TYPE_PVPERF,
    .parent = TYPE_PCI_DEVICE,
    .instance_size = sizeof(PVPerfState),
    .class_init = pvperf_class_init,
    .interfaces = (InterfaceInfo[]) {
        { INTERFACE_CONVENTIONAL_PCI_DEVICE },
        { }
    },
};

static void pvperf_register_types(void)
{
    type_register_static(&pvperf_info);
}

type_init(pvperf_register_types)
