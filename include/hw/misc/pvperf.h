/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * pvperf: paravirtual access to host performance events.
 *
 * Guest/host ABI, version 1.3. docs/pvperf.rst is the specification; this
 * header is its machine-readable twin and is shared by the QEMU device,
 * its qtest and the Linux guest driver. It uses fixed-width types only
 * and depends on nothing else from QEMU or Linux.
 *
 * All registers are 32 bits wide, little-endian, and accessed with
 * naturally aligned 32-bit accesses. Shared-page fields are little-endian.
 */
#ifndef HW_MISC_PVPERF_H
#define HW_MISC_PVPERF_H

#ifdef __KERNEL__
#include <linux/types.h>
#else
#include <stdint.h>
#endif

#define TYPE_PVPERF "pvperf"

/* PCI identity */
#define PVPERF_PCI_VENDOR_ID        0x1af4
#define PVPERF_PCI_DEVICE_ID        0x10f0
#define PVPERF_PCI_SUBVENDOR_ID     0x1af4
#define PVPERF_PCI_SUBDEVICE_ID     0x10f0
#define PVPERF_PCI_REVISION         0x01
#define PVPERF_PCI_CLASS            0x1101  /* signal processing: perf counters */

#define PVPERF_MMIO_BAR             0       /* registers, 4 KiB memory BAR */
#define PVPERF_MMIO_SIZE            0x1000
#define PVPERF_IO_BAR               2       /* doorbell only, 4-byte I/O BAR */
#define PVPERF_IO_SIZE              4
#define PVPERF_IO_DOORBELL          0x0
#define PVPERF_MSIX_BAR             4       /* 1.2: MSI-X table and PBA */
#define PVPERF_MSIX_VECTORS_MAX     2048    /* vectors: one per vCPU, at most */

/* Identity values */
#define PVPERF_MAGIC                0x46505650u /* "PVPF" little-endian */
#define PVPERF_VERSION_MAJOR        1
#define PVPERF_VERSION_MINOR        3
#define PVPERF_VERSION              ((PVPERF_VERSION_MAJOR << 16) | \
                                     PVPERF_VERSION_MINOR)
#define PVPERF_VERSION_MAJOR_OF(v)  ((v) >> 16)
#define PVPERF_VERSION_MINOR_OF(v)  ((v) & 0xffff)

/* BAR 0 register offsets */
enum pvperf_reg {
    PVPERF_REG_MAGIC            = 0x000, /* RO */
    PVPERF_REG_VERSION          = 0x004, /* RO */
    PVPERF_REG_FEATURES         = 0x008, /* RO */
    PVPERF_REG_DRIVER_FEATURES  = 0x00c, /* RW */
    PVPERF_REG_NR_VCPUS         = 0x010, /* RO */
    PVPERF_REG_SLOTS_PER_VCPU   = 0x014, /* RO */
    PVPERF_REG_MAX_SLOTS        = 0x018, /* RO */
    PVPERF_REG_REFRESH_MS       = 0x01c, /* RO */
    PVPERF_REG_CATALOG_COUNT    = 0x020, /* RO */
    PVPERF_REG_CATALOG_SELECT   = 0x024, /* RW */
    PVPERF_REG_CATALOG_INFO     = 0x028, /* RO */
    PVPERF_REG_CATALOG_ERRNO    = 0x02c, /* RO */
    PVPERF_REG_NR_VECTORS       = 0x030, /* RO, 1.2: MSI-X vectors */
    PVPERF_REG_MAX_SAMPLE_RATE  = 0x034, /* RO, 1.2: overflows/s per vCPU */
    PVPERF_REG_CMD_VCPU         = 0x040, /* RW */
    PVPERF_REG_CMD_SLOT         = 0x044, /* RW */
    PVPERF_REG_CMD_EVENT        = 0x048, /* RW */
    PVPERF_REG_CMD_GROUP        = 0x04c, /* RW */
    PVPERF_REG_CMD_FLAGS        = 0x050, /* RW */
    PVPERF_REG_CMD_MASK_LO      = 0x058, /* RW */
    PVPERF_REG_CMD_MASK_HI      = 0x05c, /* RW */
    PVPERF_REG_CMD_ADDR_LO      = 0x060, /* RW */
    PVPERF_REG_CMD_ADDR_HI      = 0x064, /* RW */
    PVPERF_REG_CMD_PERIOD_LO    = 0x068, /* RW */
    PVPERF_REG_CMD_PERIOD_HI    = 0x06c, /* RW */
    PVPERF_REG_DOORBELL         = 0x070, /* WO */
    PVPERF_REG_STATUS           = 0x074, /* RO */
    PVPERF_REG_HOST_ERRNO       = 0x078, /* RO */
    PVPERF_REG_CATALOG_NAME     = 0x100, /* RO, PVPERF_NAME_SIZE bytes */
};

/* FEATURES / DRIVER_FEATURES bits */
#define PVPERF_F_COUNTING           (1u << 0) /* SET_PAGE OPEN CLOSE ENABLE DISABLE READ */
#define PVPERF_F_GROUPS             (1u << 1) /* CMD_GROUP, group read in one call */
#define PVPERF_F_OVERFLOW           (1u << 2) /* 1.2: periods, MSI-X, ACK_OVERFLOW, SET_PERIOD */
#define PVPERF_F_IO_DOORBELL        (1u << 3) /* BAR 2 doorbell */
#define PVPERF_F_CMD_BLOCK          (1u << 4) /* 1.1: SET_BLOCK, RUN */
#define PVPERF_F_ALL_V1             0x0000001fu

/* Catalog */
#define PVPERF_CATALOG_MAX          64
#define PVPERF_NAME_SIZE            64  /* including the terminating NUL */

/* CATALOG_INFO */
#define PVPERF_INFO_KIND_MASK       0x000000ffu
#define PVPERF_INFO_AVAILABLE       (1u << 8)
#define PVPERF_INFO_UNIT_SHIFT      12          /* 1.3: enum pvperf_unit */
#define PVPERF_INFO_UNIT_MASK       0x0000f000u

/* What an entry's count is in (1.3; 0 before) */
enum pvperf_unit {
    PVPERF_UNIT_COUNT           = 0, /* occurrences: no unit */
    PVPERF_UNIT_NS              = 1, /* time in nanoseconds (software clocks) */
};

enum pvperf_kind {
    PVPERF_KIND_HARDWARE        = 0, /* CPU PMU: cycles, instructions, ... */
    PVPERF_KIND_SOFTWARE        = 1, /* kernel software events */
    PVPERF_KIND_TRACEPOINT      = 2, /* host kernel tracepoints */
    PVPERF_KIND_HW_CACHE        = 3, /* CPU cache events */
    PVPERF_KIND_RAW             = 4, /* raw CPU PMU encodings */
    PVPERF_KIND_OTHER           = 5, /* any other host PMU */
};

/* Values of 32-bit command registers with a special meaning */
#define PVPERF_VCPU_SELF            0xffffffffu /* CMD_VCPU: the caller */
#define PVPERF_NO_GROUP             0xffffffffu /* CMD_GROUP: no leader */
#define PVPERF_SLOTS_MAX            64          /* per vCPU: one mask bit each */

/* CMD_FLAGS for OPEN */
#define PVPERF_OPEN_ENABLED         (1u << 0)
#define PVPERF_OPEN_FLAGS_ALL       PVPERF_OPEN_ENABLED

/* DOORBELL commands */
enum pvperf_cmd {
    PVPERF_CMD_NOP              = 0x00,
    PVPERF_CMD_RESET            = 0x01,
    PVPERF_CMD_SET_PAGE         = 0x02,
    PVPERF_CMD_OPEN             = 0x03,
    PVPERF_CMD_CLOSE            = 0x04,
    PVPERF_CMD_ENABLE           = 0x05,
    PVPERF_CMD_DISABLE          = 0x06,
    PVPERF_CMD_READ             = 0x07,
    PVPERF_CMD_ACK_OVERFLOW     = 0x08,
    PVPERF_CMD_SET_BLOCK        = 0x09, /* 1.1, CMD_BLOCK */
    PVPERF_CMD_RUN              = 0x0a, /* 1.1, CMD_BLOCK */
    PVPERF_CMD_SET_PERIOD       = 0x0b, /* 1.2, OVERFLOW */
};

/* STATUS values */
enum pvperf_status {
    PVPERF_ST_OK                = 0,
    PVPERF_ST_BAD_COMMAND       = 1,
    PVPERF_ST_UNSUPPORTED       = 2,
    PVPERF_ST_BAD_ARG           = 3,
    PVPERF_ST_BAD_VCPU          = 4,
    PVPERF_ST_BAD_SLOT          = 5,
    PVPERF_ST_BAD_EVENT         = 6,
    PVPERF_ST_UNAVAILABLE       = 7,
    PVPERF_ST_SLOT_BUSY         = 8,
    PVPERF_ST_SLOT_FREE         = 9,
    PVPERF_ST_BAD_GROUP         = 10,
    PVPERF_ST_LIMIT             = 11,
    PVPERF_ST_NO_PAGE           = 12,
    PVPERF_ST_BAD_ADDRESS       = 13,
    PVPERF_ST_NO_BUS_MASTER     = 14,
    PVPERF_ST_HOST_ERROR        = 15,
    PVPERF_ST_NOT_RUN           = 16, /* 1.1: entry after a failed one */
    PVPERF_ST_BUDGET            = 17, /* 1.1: the block's work budget */
};

/* OPEN and SET_PERIOD: sample periods are 1 .. 2^63 - 1 (0 at OPEN counts) */
#define PVPERF_PERIOD_MAX           0x7fffffffffffffffull

/*
 * 1.2: an interrupt's time window of the overflow rate limit
 * (MAX_SAMPLE_RATE overflows per second and vCPU, counted per window)
 */
#define PVPERF_RATE_WINDOW_MS       10

/* 1.1: what a guest puts in a block's status before RUN; never a status */
#define PVPERF_ST_PENDING           0xffffffffu

/* Count page: one 4 KiB page per vCPU, written by the host only */
#define PVPERF_PAGE_SIZE            4096
#define PVPERF_PAGE_MAGIC           0x43505650u /* "PVPC" little-endian */
#define PVPERF_PAGE_LAYOUT          1

struct pvperf_page_header {
    uint32_t magic;             /* PVPERF_PAGE_MAGIC */
    uint32_t layout;            /* PVPERF_PAGE_LAYOUT */
    uint32_t vcpu;              /* vCPU index the page belongs to */
    uint32_t nr_slots;          /* = SLOTS_PER_VCPU */
    uint32_t seq;               /* seqlock over overflow_pending */
    uint32_t reserved0;
    uint64_t overflow_pending;  /* bit n: slot n overflowed, not yet acked */
    uint64_t reserved1[4];
};

/* slot record flags */
#define PVPERF_SLOT_OPEN            (1u << 0)
#define PVPERF_SLOT_ENABLED         (1u << 1)
#define PVPERF_SLOT_READ_ERROR      (1u << 2)
#define PVPERF_SLOT_SAMPLING        (1u << 3) /* 1.2: opened with a period */
#define PVPERF_SLOT_THROTTLED       (1u << 4) /* 1.2: the host stopped it */

struct pvperf_slot_record {
    uint32_t seq;               /* odd while the host writes the record */
    uint32_t flags;             /* PVPERF_SLOT_* */
    uint64_t count;             /* raw count, not scaled */
    uint64_t time_enabled;      /* ns */
    uint64_t time_running;      /* ns */
    uint64_t overflows;         /* overflows the host saw (lost included) */
    uint32_t lost;              /* 1.2: of those, lost by the host's buffer */
    uint32_t throttles;         /* 1.2: times the host throttled the slot */
};

#define PVPERF_PAGE_SLOTS_OFFSET    64
#define PVPERF_SLOT_RECORD_OFFSET(slot) \
    (PVPERF_PAGE_SLOTS_OFFSET + (slot) * sizeof(struct pvperf_slot_record))

/*
 * Command block (1.1, CMD_BLOCK): one 4 KiB page of guest RAM per vCPU,
 * registered with SET_BLOCK. The guest writes a header and up to
 * PVPERF_BLOCK_ENTRIES entries, rings RUN once, and reads each entry's
 * status; the device runs the entries in order and stops at the first
 * that fails (docs/pvperf.rst, "Command block").
 */
#define PVPERF_BLOCK_SIZE           4096
#define PVPERF_BLOCK_ENTRIES        63
/* Work one RUN may do, in slots: this times SLOTS_PER_VCPU */
#define PVPERF_BLOCK_BUDGET_SLOTS   4

struct pvperf_block_header {
    uint32_t nr;                /* guest: entries to run, 0..63 */
    uint32_t status;            /* host: OK, or the first failure */
    uint32_t done;              /* host: entries that ran and succeeded */
    uint32_t reserved0;
    uint64_t reserved[6];
};

struct pvperf_block_entry {
    uint32_t cmd;               /* guest: PVPERF_CMD_* */
    uint32_t vcpu;              /* guest: as CMD_VCPU */
    uint32_t slot;              /* guest: as CMD_SLOT */
    uint32_t event;             /* guest: as CMD_EVENT */
    uint32_t group;             /* guest: as CMD_GROUP */
    uint32_t flags;             /* guest: as CMD_FLAGS */
    uint64_t mask;              /* guest: as CMD_MASK_HI:LO */
    uint64_t addr;              /* guest: as CMD_ADDR_HI:LO */
    uint64_t period;            /* guest: as CMD_PERIOD_HI:LO */
    uint32_t status;            /* host: PVPERF_ST_* */
    uint32_t host_errno;        /* host: errno for HOST_ERROR, else 0 */
    uint64_t reserved;
};

#define PVPERF_BLOCK_ENTRY_OFFSET(i) \
    (sizeof(struct pvperf_block_header) + \
     (i) * sizeof(struct pvperf_block_entry))

_Static_assert(sizeof(struct pvperf_block_header) == 64, "block header");
_Static_assert(sizeof(struct pvperf_block_entry) == 64, "block entry");
_Static_assert(__builtin_offsetof(struct pvperf_block_entry, mask) == 24,
               "entry mask offset");
_Static_assert(__builtin_offsetof(struct pvperf_block_entry, status) == 48,
               "entry status offset");
_Static_assert(PVPERF_BLOCK_ENTRY_OFFSET(PVPERF_BLOCK_ENTRIES) <=
               PVPERF_BLOCK_SIZE, "entries fit in the block");

_Static_assert(sizeof(struct pvperf_page_header) == 64, "header size");
_Static_assert(sizeof(struct pvperf_slot_record) == 48, "record size");
_Static_assert(__builtin_offsetof(struct pvperf_page_header,
                                  overflow_pending) == 24, "pending offset");
_Static_assert(__builtin_offsetof(struct pvperf_slot_record, count) == 8,
               "count offset");
_Static_assert(__builtin_offsetof(struct pvperf_slot_record,
                                  overflows) == 32, "overflows offset");
_Static_assert(__builtin_offsetof(struct pvperf_slot_record, lost) == 40,
               "lost offset");
_Static_assert(PVPERF_PAGE_SLOTS_OFFSET +
               PVPERF_SLOTS_MAX * sizeof(struct pvperf_slot_record) <=
               PVPERF_PAGE_SIZE, "slot records fit in the page");
_Static_assert(PVPERF_REG_CATALOG_NAME + PVPERF_NAME_SIZE <= PVPERF_MMIO_SIZE,
               "name window inside BAR 0");

#endif /* HW_MISC_PVPERF_H */
