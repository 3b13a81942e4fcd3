// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A bare 32-bit multiboot guest that drives pvperf from a real KVM vCPU,
 * where a Linux guest cannot run (this host's nested KVM cannot boot
 * Linux, but runs this). QEMU loads it with -kernel; it finds the device
 * by its PCI IDs, runs every command from its vCPU thread, counts its own
 * exits with host events (kvm:kvm_userspace_exit, kvm:kvm_pio) and times
 * them with the TSC.
 *
 * Output goes to isa-debugcon (port 0xe9) as lines "PASS name: detail",
 * "FAIL name: detail", "SKIP name: why", "INFO key value"; the guest ends
 * with isa-debug-exit (port 0xf4). scripts/kvm-bare-tests builds and runs
 * it. The catalog it expects: task-clock, kvm:kvm_userspace_exit,
 * kvm:kvm_pio (in that order).
 */
#include <stdint.h>
#include "hw/misc/pvperf.h"

#define DEBUGCON        0xe9
#define DEBUG_EXIT      0xf4
#define DIAG_PORT       0x80    /* QEMU ignores it: the cheapest exit */

enum { EV_TASK_CLOCK, EV_USER_EXIT, EV_PIO };

/* Multiboot header (flags 0: an ELF image, nothing asked of the loader) */
__attribute__((section(".multiboot"), used, aligned(4)))
static const uint32_t mb_header[3] = {
    0x1badb002, 0, (uint32_t)-(0x1badb002 + 0),
};

uint8_t stack[16384] __attribute__((aligned(16), used));
static uint8_t page[PVPERF_PAGE_SIZE] __attribute__((aligned(4096)));
static uint8_t block_mem[PVPERF_BLOCK_SIZE] __attribute__((aligned(4096)));
static uint8_t scratch[4096] __attribute__((aligned(4096)));

void _start(void);
void main32(void);
__asm__(".globl _start\n"
        "_start:\n"
        "  mov $stack + 16384, %esp\n"
        "  call main32\n"
        "1: hlt\n"
        "  jmp 1b\n");

static inline void outb(uint16_t port, uint8_t v)
{
    __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline void outl(uint16_t port, uint32_t v)
{
    __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint32_t inl(uint16_t port)
{
    uint32_t v;

    __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;

    __asm__ volatile("lfence; rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

/* Output (each byte is an exit: never inside a measured window) */
static void putc_(char c)
{
    outb(DEBUGCON, c);
}

static void puts_(const char *s)
{
    while (*s) {
        putc_(*s++);
    }
}

/* Decimal without 64-bit division (no libgcc in a freestanding -m32) */
static void putu(uint64_t v)
{
    static const uint64_t p10[] = {
        10000000000000000000ull, 1000000000000000000ull,
        100000000000000000ull, 10000000000000000ull, 1000000000000000ull,
        100000000000000ull, 10000000000000ull, 1000000000000ull,
        100000000000ull, 10000000000ull, 1000000000ull, 100000000ull,
        10000000ull, 1000000ull, 100000ull, 10000ull, 1000ull, 100ull,
        10ull, 1ull,
    };
    int started = 0;

    for (unsigned i = 0; i < sizeof(p10) / sizeof(p10[0]); i++) {
        char d = '0';

        while (v >= p10[i]) {
            v -= p10[i];
            d++;
        }
        if (d != '0' || started || i == sizeof(p10) / sizeof(p10[0]) - 1) {
            putc_(d);
            started = 1;
        }
    }
}

static void puthex(uint32_t v)
{
    puts_("0x");
    for (int i = 28; i >= 0; i -= 4) {
        putc_("0123456789abcdef"[(v >> i) & 0xf]);
    }
}

static int failures;

static void result(int ok, const char *name)
{
    if (!ok) {
        failures++;
    }
    puts_(ok ? "PASS kvm/" : "FAIL kvm/");
    puts_(name);
    puts_(": ");
}

/* PCI configuration mechanism #1 */
static uint32_t pci_rd(uint32_t bdf, uint32_t off)
{
    outl(0xcf8, 0x80000000u | (bdf << 8) | (off & 0xfc));
    return inl(0xcfc);
}

static void pci_wr(uint32_t bdf, uint32_t off, uint32_t v)
{
    outl(0xcf8, 0x80000000u | (bdf << 8) | (off & 0xfc));
    outl(0xcfc, v);
}

static volatile uint32_t *regs;
static uint16_t iodb;

static uint32_t rd(uint32_t reg)
{
    return regs[reg / 4];
}

static void wr(uint32_t reg, uint32_t v)
{
    regs[reg / 4] = v;
}

static uint32_t ring(uint32_t cmd)
{
    wr(PVPERF_REG_DOORBELL, cmd);
    return rd(PVPERF_REG_STATUS);
}

static struct pvperf_block_header *const hdr =
    (struct pvperf_block_header *)block_mem;

static struct pvperf_block_entry *entry(int i)
{
    return (struct pvperf_block_entry *)(block_mem +
                                         PVPERF_BLOCK_ENTRY_OFFSET(i));
}

/* Fill entry @i (the x86 guest is little-endian, like the ABI) */
static void fill(struct pvperf_block_entry *e, uint32_t cmd, uint32_t slot,
                 uint32_t event, uint32_t flags, uint64_t mask, uint64_t addr)
{

    e->cmd = cmd;
    e->vcpu = PVPERF_VCPU_SELF;
    e->slot = slot;
    e->event = event;
    e->group = PVPERF_NO_GROUP;
    e->flags = flags;
    e->mask = mask;
    e->addr = addr;
    e->period = 0;
    e->status = 0xeeee;
    e->host_errno = 0xeeee;
    e->reserved = 0;
}

static void put(int i, uint32_t cmd, uint32_t slot, uint32_t event,
                uint32_t flags, uint64_t mask, uint64_t addr)
{
    fill(entry(i), cmd, slot, event, flags, mask, addr);
}

/* RUN @nr entries with one I/O write; returns the header's status */
static uint32_t run(uint32_t nr)
{
    hdr->nr = nr;
    hdr->status = PVPERF_ST_PENDING;
    __asm__ volatile("" ::: "memory");
    outl(iodb, PVPERF_CMD_RUN);
    __asm__ volatile("" ::: "memory");
    return hdr->status;
}

static uint32_t run1(uint32_t cmd, uint32_t slot, uint32_t event,
                     uint32_t flags, uint64_t mask, uint64_t addr)
{
    put(0, cmd, slot, event, flags, mask, addr);
    return run(1);
}

/* A slot's count, read the documented way (seqlock) */
static uint64_t count_of(uint32_t slot, uint32_t *flags)
{
    const struct pvperf_slot_record *r = (const void *)(page +
        PVPERF_SLOT_RECORD_OFFSET(slot));
    uint32_t s1, s2;
    uint64_t c;

    do {
        s1 = *(volatile uint32_t *)&r->seq;
        __asm__ volatile("" ::: "memory");
        c = *(volatile uint64_t *)&r->count;
        *flags = *(volatile uint32_t *)&r->flags;
        __asm__ volatile("" ::: "memory");
        s2 = *(volatile uint32_t *)&r->seq;
    } while ((s1 & 1) || s1 != s2);
    return c;
}

static int available(uint32_t idx)
{
    wr(PVPERF_REG_CATALOG_SELECT, idx);
    return rd(PVPERF_REG_CATALOG_INFO) & PVPERF_INFO_AVAILABLE;
}

#define N_PORT  1000
#define N_RUN   1000
#define N_MMIO  300

static void test_commands(void)
{
    uint32_t st[12], fl0, fl1, i = 0;
    int ok;

    /* every command, from this vCPU's thread under KVM */
    st[i++] = ring(PVPERF_CMD_NOP);
    st[i++] = ring(PVPERF_CMD_RESET);
    wr(PVPERF_REG_DRIVER_FEATURES, PVPERF_F_ALL_V1);
    wr(PVPERF_REG_CMD_VCPU, PVPERF_VCPU_SELF);
    wr(PVPERF_REG_CMD_ADDR_LO, (uint32_t)block_mem);
    wr(PVPERF_REG_CMD_ADDR_HI, 0);
    st[i++] = ring(PVPERF_CMD_SET_BLOCK);
    st[i++] = run1(PVPERF_CMD_SET_PAGE, 0, 0, 0, 0, (uint32_t)page);
    st[i++] = run1(PVPERF_CMD_OPEN, 0, EV_TASK_CLOCK, PVPERF_OPEN_ENABLED,
                   0, 0);
    st[i++] = run1(PVPERF_CMD_DISABLE, 0, 0, 0, 1, 0);
    st[i++] = run1(PVPERF_CMD_ENABLE, 0, 0, 0, 1, 0);
    st[i++] = run1(PVPERF_CMD_READ, 0, 0, 0, 1, 0);
    st[i++] = run1(PVPERF_CMD_OPEN, 5, EV_TASK_CLOCK, 0, 0, 0);
    st[i++] = run1(PVPERF_CMD_CLOSE, 5, 0, 0, 0, 0);
    /* 1.2: ACK_OVERFLOW of an open slot with nothing pending is OK */
    st[i++] = run1(PVPERF_CMD_ACK_OVERFLOW, 0, 0, 0, 1, 0);
    count_of(0, &fl0);
    count_of(5, &fl1);
    ok = st[0] == 0 && st[1] == 0 && st[2] == 0 && st[3] == 0 &&
         st[4] == 0 && st[5] == 0 && st[6] == 0 && st[7] == 0 &&
         st[8] == 0 && st[9] == 0 && st[10] == PVPERF_ST_OK &&
         *(uint32_t *)(page + 8) == 0 &&
         fl0 == (PVPERF_SLOT_OPEN | PVPERF_SLOT_ENABLED) && fl1 == 0;
    result(ok, "commands");
    puts_("NOP RESET SET_BLOCK SET_PAGE OPEN DISABLE ENABLE READ OPEN CLOSE "
          "ACK_OVERFLOW from a KVM vCPU, statuses");
    for (uint32_t k = 0; k < i; k++) {
        putc_(' ');
        putu(st[k]);
    }
    puts_("; page of vCPU ");
    putu(*(uint32_t *)(page + 8));
    puts_(", slot 0 flags ");
    putu(fl0);
    putc_('\n');

    /* a failing entry stops the run: the rest is NOT_RUN */
    put(0, PVPERF_CMD_NOP, 0, 0, 0, 0, 0);
    put(1, PVPERF_CMD_OPEN, 0, EV_TASK_CLOCK, 0, 0, 0);     /* busy */
    put(2, PVPERF_CMD_CLOSE, 0, 0, 0, 0, 0);
    st[0] = run(3);
    ok = st[0] == PVPERF_ST_SLOT_BUSY && hdr->done == 1 &&
         entry(1)->status == PVPERF_ST_SLOT_BUSY &&
         entry(2)->status == PVPERF_ST_NOT_RUN;
    result(ok, "block-stops-at-failure");
    puts_("status ");
    putu(st[0]);
    puts_(", done ");
    putu(hdr->done);
    puts_(", entries ");
    putu(entry(0)->status);
    putc_(' ');
    putu(entry(1)->status);
    putc_(' ');
    putu(entry(2)->status);
    putc_('\n');
}

/*
 * The host counts this vCPU thread's exits to QEMU (kvm:kvm_userspace_exit)
 * and its port I/O exits (kvm:kvm_pio); the guest knows how many it made.
 */
static void test_exits(void)
{
    uint32_t fl;
    uint64_t u0, u1, p0, p1, du, dp, want_u, want_p;

    if (!available(EV_USER_EXIT) || !available(EV_PIO)) {
        puts_("SKIP kvm/userspace-exits: kvm:kvm_userspace_exit or "
              "kvm:kvm_pio unavailable on this host (CATALOG_ERRNO ");
        putu(rd(PVPERF_REG_CATALOG_ERRNO));
        puts_(")\n");
        return;
    }
    put(0, PVPERF_CMD_OPEN, 1, EV_USER_EXIT, PVPERF_OPEN_ENABLED, 0, 0);
    put(1, PVPERF_CMD_OPEN, 2, EV_PIO, PVPERF_OPEN_ENABLED, 0, 0);
    if (run(2) != PVPERF_ST_OK) {
        result(0, "userspace-exits");
        puts_("OPEN failed\n");
        return;
    }
    put(0, PVPERF_CMD_NOP, 0, 0, 0, 0, 0);
    put(1, PVPERF_CMD_READ, 0, 0, 0, 6, 0);
    /* window: from the RUN of this READ to the RUN of the next */
    run(2);
    u0 = count_of(1, &fl);
    p0 = count_of(2, &fl);
    for (int i = 0; i < N_PORT; i++) {
        outb(DIAG_PORT, 0);
    }
    for (int i = 0; i < N_RUN; i++) {
        run(1);                         /* NOP */
    }
    for (int i = 0; i < N_MMIO; i++) {
        (void)rd(PVPERF_REG_MAGIC);
    }
    run(2);
    u1 = count_of(1, &fl);
    p1 = count_of(2, &fl);
    du = u1 - u0;
    dp = p1 - p0;
    /* the closing RUN's exit is counted before its READ reads */
    want_u = N_PORT + N_RUN + N_MMIO + 1;
    want_p = N_PORT + N_RUN + 1;
    result(du >= want_u && du <= want_u + 3 && dp >= want_p &&
           dp <= want_p + 3, "userspace-exits");
    puts_("guest made ");
    putu(N_PORT);
    puts_(" port 0x80 writes, ");
    putu(N_RUN + 1);
    puts_(" RUNs, ");
    putu(N_MMIO);
    puts_(" BAR 0 reads: host kvm:kvm_userspace_exit +");
    putu(du);
    puts_(" (expected ");
    putu(want_u);
    puts_("), kvm:kvm_pio +");
    putu(dp);
    puts_(" (expected ");
    putu(want_p);
    puts_(")\n");
}

/* Where vCPU 0's MSI-X message lands: plain RAM, so no APIC is needed */
static volatile uint32_t msi_word;

/*
 * Sampling (ABI 1.2) from a KVM vCPU: kvm:kvm_userspace_exit with period
 * 100, then 1,000 port 0x80 writes (each an exit to QEMU): about 10
 * overflows must reach the record, overflow_pending and vCPU 0's MSI-X
 * vector, whose message this guest points at msi_word.
 */
static void test_sampling(uint32_t bdf)
{
    uint32_t cap = pci_rd(bdf, 0x34) & 0xfc, tab, fl;
    const struct pvperf_slot_record *r = (const void *)(page +
        PVPERF_SLOT_RECORD_OFFSET(7));
    const struct pvperf_page_header *h = (const void *)page;
    volatile uint32_t *entry0;
    uint64_t t0, ovf, pend;
    uint32_t bar_lo, bar_hi, st;

    if (!available(EV_USER_EXIT)) {
        puts_("SKIP kvm/sampling: kvm:kvm_userspace_exit unavailable\n");
        return;
    }
    while (cap && (pci_rd(bdf, cap) & 0xff) != 0x11) {    /* MSI-X */
        cap = (pci_rd(bdf, cap) >> 8) & 0xfc;
    }
    tab = cap ? pci_rd(bdf, cap + 4) : 0;
    bar_lo = pci_rd(bdf, 0x10 + 4 * (tab & 7)) & ~0xfu;
    bar_hi = pci_rd(bdf, 0x14 + 4 * (tab & 7));
    if (!cap || (tab & 7) != PVPERF_MSIX_BAR || bar_hi || !bar_lo) {
        result(0, "sampling");
        puts_("no MSI-X table in a 32-bit-addressable BAR 4\n");
        return;
    }
    entry0 = (volatile uint32_t *)(bar_lo + (tab & ~7u));
    entry0[0] = (uint32_t)&msi_word;        /* address */
    entry0[1] = 0;
    entry0[2] = 0x5a5a;                     /* data */
    entry0[3] = 0;                          /* unmasked */
    pci_wr(bdf, cap, pci_rd(bdf, cap) | (1u << 31));   /* MSI-X enable */
    msi_word = 0;

    put(0, PVPERF_CMD_OPEN, 7, EV_USER_EXIT, PVPERF_OPEN_ENABLED, 0, 0);
    entry(0)->period = 100;
    st = run(1);
    for (int i = 0; i < N_PORT; i++) {
        outb(DIAG_PORT, 0);
    }
    /* QEMU's main loop takes the overflows: wait up to ~1 s of TSC */
    t0 = rdtsc();
    while (!msi_word && rdtsc() - t0 < 3000000000ull) {
        __asm__ volatile("pause");
    }
    ovf = *(volatile uint64_t *)&r->overflows;
    fl = *(volatile uint32_t *)&r->flags;
    pend = *(volatile uint64_t *)&h->overflow_pending;
    result(st == PVPERF_ST_OK && msi_word == 0x5a5a && ovf >= 9 &&
           ovf <= 12 && (pend & (1u << 7)) &&
           (fl & PVPERF_SLOT_SAMPLING), "sampling");
    puts_("kvm:kvm_userspace_exit with period 100, 1000 port 0x80 writes: "
          "OPEN status ");
    putu(st);
    puts_(", record overflows ");
    putu(ovf);
    puts_(", overflow_pending ");
    puthex((uint32_t)pend);
    puts_(", vCPU 0's MSI-X message ");
    puthex(msi_word);
    putc_('\n');
    run1(PVPERF_CMD_CLOSE, 7, 0, 0, 0, 0);
}

/*
 * TSC cycles of N exits of each kind, three rounds, as "INFO kind N
 * cycles" lines; scripts/kvm-bare-tests --bench prints the table.
 *   port80        outb to port 0x80, which QEMU ignores: the floor
 *   store-port80  a store to guest memory, then that outb
 *   fill-port80   the stores and the load of a whole command (an entry,
 *                 the header, the status read back) to a page of its own,
 *                 with that outb: the floor of a command whose arguments
 *                 travel in memory
 *   io-nop        NOP on the I/O doorbell (registers, no guest memory)
 *   run-bare      RUN of a block left as it was (one NOP entry)
 *   run-nop       a whole NOP command: entry and header written, RUN,
 *                 status read
 *   run-read      a whole READ of one slot through the block
 *   regs-read     the same READ through the registers: CMD_VCPU, the two
 *                 mask halves, DOORBELL, STATUS (scaled to N)
 */
static void time_exits(void)
{
    uint64_t t0, t1;
    int i;

#define TIME(name, n, body) do {                                   \
        t0 = rdtsc();                                              \
        for (i = 0; i < (n); i++) {                                \
            body;                                                  \
        }                                                          \
        t1 = rdtsc();                                              \
        puts_("INFO " name " ");                                   \
        putu(n);                                                   \
        putc_(' ');                                                \
        putu(t1 - t0);                                             \
        putc_('\n');                                               \
    } while (0)

    for (int round = 0; round < 3; round++) {
        TIME("port80", N_PORT, outb(DIAG_PORT, 0));
        TIME("store-port80", N_PORT,
             (*(volatile uint32_t *)scratch = i, outb(DIAG_PORT, 0)));
        TIME("fill-port80", N_PORT,
             (fill((struct pvperf_block_entry *)(scratch + 64),
                   PVPERF_CMD_NOP, 0, 0, 0, 0, 0),
              *(volatile uint32_t *)scratch = 1,
              *(volatile uint32_t *)(scratch + 4) = PVPERF_ST_PENDING,
              outb(DIAG_PORT, 0),
              (void)*(volatile uint32_t *)(scratch + 4)));
        TIME("io-nop", N_RUN, outl(iodb, PVPERF_CMD_NOP));
        put(0, PVPERF_CMD_NOP, 0, 0, 0, 0, 0);
        hdr->nr = 1;
        TIME("run-bare", N_RUN, outl(iodb, PVPERF_CMD_RUN));
        TIME("run-nop", N_RUN, (put(0, PVPERF_CMD_NOP, 0, 0, 0, 0, 0),
                                run(1)));
        TIME("run-read", N_RUN, (put(0, PVPERF_CMD_READ, 0, 0, 0, 1, 0),
                                 run(1)));
        TIME("regs-read", N_MMIO, (wr(PVPERF_REG_CMD_VCPU, PVPERF_VCPU_SELF),
                                   wr(PVPERF_REG_CMD_MASK_LO, 1),
                                   wr(PVPERF_REG_CMD_MASK_HI, 0),
                                   wr(PVPERF_REG_DOORBELL, PVPERF_CMD_READ),
                                   (void)rd(PVPERF_REG_STATUS)));
    }
#undef TIME
}

void main32(void)
{
    uint32_t bdf, id = 0, cmd;

    puts_("# pvperf bare KVM guest\n");
    for (bdf = 0; bdf < 32 * 8; bdf += 8) {
        id = pci_rd(bdf, 0);
        if (id == (PVPERF_PCI_VENDOR_ID | (PVPERF_PCI_DEVICE_ID << 16))) {
            break;
        }
    }
    if (bdf >= 32 * 8) {
        result(0, "find-device");
        puts_("no 1af4:10f0 on bus 0\n");
        goto out;
    }
    regs = (volatile uint32_t *)(pci_rd(bdf, 0x10) & ~0xfu);
    iodb = pci_rd(bdf, 0x18) & ~0x3u;
    cmd = pci_rd(bdf, 0x04) & 0xffff;
    pci_wr(bdf, 0x04, cmd | 0x7);       /* I/O, memory, bus master */
    result(rd(PVPERF_REG_MAGIC) == PVPERF_MAGIC &&
           rd(PVPERF_REG_VERSION) == PVPERF_VERSION &&
           (rd(PVPERF_REG_FEATURES) & PVPERF_F_CMD_BLOCK) &&
           (rd(PVPERF_REG_FEATURES) & PVPERF_F_IO_DOORBELL), "identity");
    puts_("MAGIC ");
    puthex(rd(PVPERF_REG_MAGIC));
    puts_(", VERSION ");
    puthex(rd(PVPERF_REG_VERSION));
    puts_(", FEATURES ");
    puthex(rd(PVPERF_REG_FEATURES));
    puts_(", BAR 0 at ");
    puthex((uint32_t)regs);
    puts_(", I/O doorbell at ");
    puthex(iodb);
    putc_('\n');
    test_commands();
    test_exits();
    test_sampling(bdf);
    time_exits();
out:
    puts_("DONE ");
    putu(failures);
    putc_('\n');
    outb(DEBUG_EXIT, failures ? 1 : 0);
}
