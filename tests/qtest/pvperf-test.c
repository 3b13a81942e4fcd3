/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * QTest for the pvperf device: PCI identity, ABI registers, the event
 * catalog, property validation at realize and hostile register accesses.
 * The ABI is docs/pvperf.rst; the constants come from hw/misc/pvperf.h.
 */

#include "qemu/osdep.h"
#include <sys/resource.h>
#include "libqtest.h"
#include "qemu/units.h"
#include "qemu/bswap.h"
#include "qemu/cutils.h"
#include "libqos/pci.h"
#include "libqos/pci-pc.h"
#include "qobject/qbool.h"
#include "qobject/qdict.h"
#include "qobject/qjson.h"
#include "qobject/qlist.h"
#include "qobject/qnum.h"
#include "qapi/error.h"
#include "hw/pci/pci_regs.h"
#include "hw/misc/pvperf.h"

#include <linux/perf_event.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#define PVPERF_DEVFN QPCI_DEVFN(4, 0)

static const char *const default_events[] = {
    "task-clock", "context-switches", "cpu-migrations", "page-faults",
    "major-faults", "cycles", "instructions", "kvm:kvm_exit",
};

typedef struct Fixture {
    QTestState *qts;
    QPCIBus *bus;
    QPCIDevice *dev;
    QPCIBar bar;        /* BAR 0, registers */
    QPCIBar iobar;      /* BAR 2, doorbell */
    uint64_t bar_size;
    uint64_t iobar_size;
    char *log_path;
} Fixture;

static void fixture_start(Fixture *f, const char *device_args,
                          const char *extra)
{
    int fd;

    memset(f, 0, sizeof(*f));
    fd = g_file_open_tmp("pvperf-test-XXXXXX.log", &f->log_path, NULL);
    g_assert(fd >= 0);
    close(fd);
    f->qts = qtest_initf("-d guest_errors -D %s %s "
                         "-device pvperf,addr=04.0%s%s",
                         f->log_path, extra ? extra : "",
                         device_args ? "," : "",
                         device_args ? device_args : "");
    f->bus = qpci_new_pc(f->qts, NULL);
    f->dev = qpci_device_find(f->bus, PVPERF_DEVFN);
    g_assert(f->dev);
    qpci_device_enable(f->dev);
    f->bar = qpci_iomap(f->dev, PVPERF_MMIO_BAR, &f->bar_size);
    f->iobar = qpci_iomap(f->dev, PVPERF_IO_BAR, &f->iobar_size);
}

static void fixture_stop(Fixture *f)
{
    g_free(f->dev);
    qpci_free_pc(f->bus);
    qtest_quit(f->qts);
    unlink(f->log_path);
    g_free(f->log_path);
}

/*
 * After a system reset: nothing runs firmware under qtest, so the BARs
 * stay unassigned until the test assigns them again, as the BIOS would.
 */
static void fixture_remap(Fixture *f)
{
    qpci_config_writel(f->dev, PCI_BASE_ADDRESS_0, f->bar.addr);
    qpci_config_writel(f->dev, PCI_BASE_ADDRESS_2, f->iobar.addr);
    qpci_device_enable(f->dev);
    g_assert_cmphex(qpci_io_readl(f->dev, f->bar, PVPERF_REG_MAGIC), ==,
                    PVPERF_MAGIC);
}

static char *fixture_log(Fixture *f)
{
    char *text = NULL;

    g_assert(g_file_get_contents(f->log_path, &text, NULL, NULL));
    return text;
}

static void assert_logged(Fixture *f, const char *needle)
{
    g_autofree char *text = fixture_log(f);

    if (!strstr(text, needle)) {
        g_test_message("log was:\n%s", text);
    }
    g_assert_nonnull(strstr(text, needle));
}

static uint32_t rd(Fixture *f, uint32_t reg)
{
    return qpci_io_readl(f->dev, f->bar, reg);
}

static void wr(Fixture *f, uint32_t reg, uint32_t val)
{
    qpci_io_writel(f->dev, f->bar, reg, val);
}

static uint32_t ring(Fixture *f, uint32_t cmd)
{
    wr(f, PVPERF_REG_DOORBELL, cmd);
    return rd(f, PVPERF_REG_STATUS);
}

static void read_name(Fixture *f, uint32_t idx, char *buf)
{
    wr(f, PVPERF_REG_CATALOG_SELECT, idx);
    for (int i = 0; i < PVPERF_NAME_SIZE; i += 4) {
        uint32_t w = rd(f, PVPERF_REG_CATALOG_NAME + i);

        memcpy(buf + i, &w, 4);    /* little-endian host, like the ABI */
    }
}

/* What the test process itself can open: the device must agree. */
static int host_can_open(uint32_t type, uint64_t config)
{
    struct perf_event_attr attr = {
        .size = sizeof(attr), .type = type, .config = config,
        .disabled = 1, .exclude_hv = 1,
    };
    long fd = syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0);

    if (fd < 0) {
        return errno;
    }
    close(fd);
    return 0;
}

static bool debugfs_tracing(void)
{
    return access("/sys/kernel/debug/tracing/events", F_OK) == 0;
}

/* ---------------------------------------------------------------- */

static void test_pci_identity(void)
{
    Fixture f;
    uint8_t cap;

    fixture_start(&f, NULL, "-smp 3");
    g_assert_cmphex(qpci_config_readw(f.dev, PCI_VENDOR_ID), ==,
                    PVPERF_PCI_VENDOR_ID);
    g_assert_cmphex(qpci_config_readw(f.dev, PCI_DEVICE_ID), ==,
                    PVPERF_PCI_DEVICE_ID);
    g_assert_cmphex(qpci_config_readw(f.dev, PCI_SUBSYSTEM_VENDOR_ID), ==,
                    PVPERF_PCI_SUBVENDOR_ID);
    g_assert_cmphex(qpci_config_readw(f.dev, PCI_SUBSYSTEM_ID), ==,
                    PVPERF_PCI_SUBDEVICE_ID);
    g_assert_cmphex(qpci_config_readb(f.dev, PCI_REVISION_ID), ==,
                    PVPERF_PCI_REVISION);
    g_assert_cmphex(qpci_config_readw(f.dev, PCI_CLASS_DEVICE), ==,
                    PVPERF_PCI_CLASS);
    g_assert_cmphex(qpci_config_readb(f.dev, PCI_INTERRUPT_PIN), ==, 0);

    /* BAR 0: 4 KiB memory; BAR 2: 4-byte I/O */
    g_assert_false(qpci_config_readl(f.dev, PCI_BASE_ADDRESS_0) &
                   PCI_BASE_ADDRESS_SPACE_IO);
    g_assert_true(qpci_config_readl(f.dev, PCI_BASE_ADDRESS_2) &
                  PCI_BASE_ADDRESS_SPACE_IO);
    g_assert_cmpuint(f.bar_size, ==, PVPERF_MMIO_SIZE);
    g_assert_cmpuint(f.iobar_size, ==, PVPERF_IO_SIZE);

    /* ABI 1.2: MSI-X, one vector per vCPU, no MSI */
    g_assert_cmpuint(qpci_find_capability(f.dev, PCI_CAP_ID_MSI, 0), ==, 0);
    cap = qpci_find_capability(f.dev, PCI_CAP_ID_MSIX, 0);
    g_assert_cmpuint(cap, !=, 0);
    g_assert_cmpuint(qpci_msix_table_size(f.dev), ==, 3);
    g_assert_cmpuint(qpci_config_readl(f.dev, cap + PCI_MSIX_TABLE) &
                     PCI_MSIX_FLAGS_BIRMASK, ==, PVPERF_MSIX_BAR);

    g_assert_cmphex(rd(&f, PVPERF_REG_MAGIC), ==, PVPERF_MAGIC);
    g_assert_cmphex(rd(&f, PVPERF_REG_VERSION), ==, PVPERF_VERSION);
    g_assert_cmpuint(PVPERF_VERSION_MAJOR_OF(rd(&f, PVPERF_REG_VERSION)),
                     ==, 1);
    /* only ABI v1 bits, and this build's I/O doorbell */
    g_assert_cmphex(rd(&f, PVPERF_REG_FEATURES) & ~PVPERF_F_ALL_V1, ==, 0);
    g_assert_true(rd(&f, PVPERF_REG_FEATURES) & PVPERF_F_IO_DOORBELL);
    g_assert_cmpuint(rd(&f, PVPERF_REG_NR_VCPUS), ==, 3);
    g_assert_cmpuint(rd(&f, PVPERF_REG_SLOTS_PER_VCPU), ==, 64);
    g_assert_cmpuint(rd(&f, PVPERF_REG_MAX_SLOTS), ==, 1024);
    g_assert_cmpuint(rd(&f, PVPERF_REG_REFRESH_MS), ==, 0);
    g_assert_cmpuint(rd(&f, PVPERF_REG_NR_VECTORS), ==, 3);
    g_assert_cmpuint(rd(&f, PVPERF_REG_MAX_SAMPLE_RATE), ==, 20000);

    /* command registers' reset values */
    g_assert_cmphex(rd(&f, PVPERF_REG_CMD_VCPU), ==, PVPERF_VCPU_SELF);
    g_assert_cmphex(rd(&f, PVPERF_REG_CMD_GROUP), ==, PVPERF_NO_GROUP);
    g_assert_cmphex(rd(&f, PVPERF_REG_CMD_SLOT), ==, 0);
    g_assert_cmphex(rd(&f, PVPERF_REG_STATUS), ==, PVPERF_ST_OK);
    fixture_stop(&f);
}

static void test_limits_properties(void)
{
    Fixture f;

    fixture_start(&f, "slots-per-vcpu=8,max-slots=100,refresh-ms=25", NULL);
    g_assert_cmpuint(rd(&f, PVPERF_REG_SLOTS_PER_VCPU), ==, 8);
    g_assert_cmpuint(rd(&f, PVPERF_REG_MAX_SLOTS), ==, 100);
    g_assert_cmpuint(rd(&f, PVPERF_REG_REFRESH_MS), ==, 25);
    fixture_stop(&f);
}

static void check_entry(Fixture *f, uint32_t idx, const char *name,
                        uint32_t kind, int expect_errno)
{
    char buf[PVPERF_NAME_SIZE];
    uint32_t info;

    read_name(f, idx, buf);
    g_assert_cmpstr(buf, ==, name);
    /* NUL-padded to the end of the window */
    for (size_t i = strlen(name); i < PVPERF_NAME_SIZE; i++) {
        g_assert_cmpint(buf[i], ==, 0);
    }
    info = rd(f, PVPERF_REG_CATALOG_INFO);
    g_assert_cmpuint(info & PVPERF_INFO_KIND_MASK, ==, kind);
    /* 1.3: the software clocks count ns, everything else occurrences */
    g_assert_cmpuint((info & PVPERF_INFO_UNIT_MASK) >> PVPERF_INFO_UNIT_SHIFT,
                     ==, !strcmp(name, "task-clock") ||
                         !strcmp(name, "cpu-clock") ?
                     PVPERF_UNIT_NS : PVPERF_UNIT_COUNT);
    g_assert_cmphex(info & ~(PVPERF_INFO_KIND_MASK | PVPERF_INFO_AVAILABLE |
                             PVPERF_INFO_UNIT_MASK), ==, 0);
    if (expect_errno == 0) {
        g_assert_true(info & PVPERF_INFO_AVAILABLE);
        g_assert_cmpuint(rd(f, PVPERF_REG_CATALOG_ERRNO), ==, 0);
    } else {
        g_test_message("%s: unavailable, errno %u", name,
                       rd(f, PVPERF_REG_CATALOG_ERRNO));
        g_assert_false(info & PVPERF_INFO_AVAILABLE);
        /* an unavailable entry always carries its reason */
        g_assert_cmpuint(rd(f, PVPERF_REG_CATALOG_ERRNO), !=, 0);
        if (expect_errno > 0) {
            g_assert_cmpuint(rd(f, PVPERF_REG_CATALOG_ERRNO), ==,
                             expect_errno);
        }
    }
}

static void test_catalog_default(void)
{
    Fixture f;
    int hw = host_can_open(PERF_TYPE_HARDWARE, PERF_COUNT_HW_CPU_CYCLES);
    int hw_insn = host_can_open(PERF_TYPE_HARDWARE,
                                PERF_COUNT_HW_INSTRUCTIONS);

    fixture_start(&f, NULL, NULL);
    g_assert_cmpuint(rd(&f, PVPERF_REG_CATALOG_COUNT), ==,
                     G_N_ELEMENTS(default_events));
    check_entry(&f, 0, "task-clock", PVPERF_KIND_SOFTWARE, 0);
    check_entry(&f, 1, "context-switches", PVPERF_KIND_SOFTWARE, 0);
    check_entry(&f, 2, "cpu-migrations", PVPERF_KIND_SOFTWARE, 0);
    check_entry(&f, 3, "page-faults", PVPERF_KIND_SOFTWARE, 0);
    check_entry(&f, 4, "major-faults", PVPERF_KIND_SOFTWARE, 0);
    if (hw) {
        g_test_message("host has no hardware PMU (%s): cycles and "
                       "instructions must show as unavailable", strerror(hw));
    }
    check_entry(&f, 5, "cycles", PVPERF_KIND_HARDWARE, hw);
    check_entry(&f, 6, "instructions", PVPERF_KIND_HARDWARE, hw_insn);
    /* present when debugfs is mounted and kvm is loaded; else a reason */
    wr(&f, PVPERF_REG_CATALOG_SELECT, 7);
    if (rd(&f, PVPERF_REG_CATALOG_INFO) & PVPERF_INFO_AVAILABLE) {
        check_entry(&f, 7, "kvm:kvm_exit", PVPERF_KIND_TRACEPOINT, 0);
    } else {
        g_test_message("kvm:kvm_exit unavailable on this host");
        g_assert_cmpuint(rd(&f, PVPERF_REG_CATALOG_ERRNO), !=, 0);
    }
    fixture_stop(&f);
}

static void test_catalog_property(void)
{
    Fixture f;
    int hw = host_can_open(PERF_TYPE_HARDWARE, PERF_COUNT_HW_INSTRUCTIONS);

    fixture_start(&f, "events=page-faults,,instructions,,sched:sched_switch"
                  ",,task-clock", NULL);
    g_assert_cmpuint(rd(&f, PVPERF_REG_CATALOG_COUNT), ==, 4);
    check_entry(&f, 0, "page-faults", PVPERF_KIND_SOFTWARE, 0);
    check_entry(&f, 1, "instructions", PVPERF_KIND_HARDWARE, hw);
    /* setup.sh mounts debugfs; without it the entry says why */
    check_entry(&f, 2, "sched:sched_switch", PVPERF_KIND_TRACEPOINT,
                debugfs_tracing() ? 0 : ENOENT);
    check_entry(&f, 3, "task-clock", PVPERF_KIND_SOFTWARE, 0);
    fixture_stop(&f);
}

static void test_catalog_select_out_of_range(void)
{
    Fixture f;
    char buf[PVPERF_NAME_SIZE];

    fixture_start(&f, NULL, NULL);
    for (uint32_t idx = G_N_ELEMENTS(default_events); idx != 0;
         idx = idx < 0x80000000u ? idx * 7 : 0) {
        read_name(&f, idx, buf);
        g_assert_cmpuint(rd(&f, PVPERF_REG_CATALOG_SELECT), ==, idx);
        g_assert_cmpuint(rd(&f, PVPERF_REG_CATALOG_INFO), ==, 0);
        g_assert_cmpuint(rd(&f, PVPERF_REG_CATALOG_ERRNO), ==, 0);
        for (int i = 0; i < PVPERF_NAME_SIZE; i++) {
            g_assert_cmpint(buf[i], ==, 0);
        }
    }
    assert_logged(&f, "CATALOG_SELECT");
    /* selecting a real entry again works */
    check_entry(&f, 0, "task-clock", PVPERF_KIND_SOFTWARE, 0);
    fixture_stop(&f);
}

/* device_add with bad properties must fail with a message naming it */
static void expect_realize_error(QTestState *qts, const char *props,
                                 const char *needle)
{
    g_autofree char *args = g_strdup_printf(
        "{'driver': 'pvperf', 'id': 'bad', %s}", props);
    QDict *resp = qtest_qmp(qts, "{'execute': 'device_add', 'arguments': %p}",
                            qobject_from_json(args, &error_abort));
    QDict *err = qdict_get_qdict(resp, "error");
    const char *desc;

    g_assert_nonnull(err);
    desc = qdict_get_str(err, "desc");
    g_test_message("%s -> %s", props, desc);
    if (!strstr(desc, needle)) {
        g_test_message("expected '%s' in the error", needle);
    }
    g_assert_nonnull(strstr(desc, needle));
    qobject_unref(resp);
}

static void test_realize_errors(void)
{
    QTestState *qts = qtest_init("-machine pc");
    GString *many = g_string_new("'events': '");
    g_autofree char *longname = g_strnfill(PVPERF_NAME_SIZE, 'a');
    g_autofree char *longprop = g_strdup_printf("'events': '%s'", longname);
    QDict *resp;

    for (int i = 0; i <= PVPERF_CATALOG_MAX; i++) {
        g_string_append_printf(many, "%stask-clock", i ? "," : "");
    }
    g_string_append_c(many, '\'');

    expect_realize_error(qts, "'events': 'task-clock,nosuchevent'",
                         "event 'nosuchevent': not found in libpfm4");
    expect_realize_error(qts, "'events': 'task-clock,'", "name 2 is empty");
    expect_realize_error(qts, "'events': ''", "the catalog is empty");
    expect_realize_error(qts, many->str, "65 names, at most 64");
    expect_realize_error(qts, longprop, "at most 63 are allowed");
    expect_realize_error(qts, "'events': 'task clock'",
                         "has character ' '");
    expect_realize_error(qts, "'events': 'page-faults,page-faults'",
                         "'page-faults' is listed twice");
    expect_realize_error(qts, "'slots-per-vcpu': 0", "slots-per-vcpu must be");
    expect_realize_error(qts, "'slots-per-vcpu': 65",
                         "slots-per-vcpu must be 1 to 64, not 65");
    expect_realize_error(qts, "'max-slots': 0", "max-slots must be");
    expect_realize_error(qts, "'refresh-ms': 60001", "refresh-ms must be");
    g_string_free(many, true);

    /* after all that, a good device still plugs in */
    resp = qtest_qmp(qts, "{'execute': 'device_add', 'arguments': "
                     "{'driver': 'pvperf', 'id': 'good', "
                     "'events': 'task-clock'}}");
    g_assert_false(qdict_haskey(resp, "error"));
    qobject_unref(resp);
    qtest_quit(qts);
}

static void test_bad_accesses(void)
{
    Fixture f;
    uint32_t count;

    fixture_start(&f, NULL, NULL);
    count = rd(&f, PVPERF_REG_CATALOG_COUNT);

    /* undefined offsets: read zero, writes dropped */
    for (uint32_t off = 0x38; off < 0x40; off += 4) {
        g_assert_cmphex(rd(&f, off), ==, 0);
        wr(&f, off, 0xdeadbeef);
        g_assert_cmphex(rd(&f, off), ==, 0);
    }
    g_assert_cmphex(rd(&f, 0x54), ==, 0);
    g_assert_cmphex(rd(&f, 0x7c), ==, 0);
    g_assert_cmphex(rd(&f, 0x140), ==, 0);
    g_assert_cmphex(rd(&f, PVPERF_MMIO_SIZE - 4), ==, 0);
    wr(&f, PVPERF_MMIO_SIZE - 4, 0xffffffff);
    assert_logged(&f, "undefined offset");

    /* read-only registers keep their values */
    wr(&f, PVPERF_REG_MAGIC, 0);
    wr(&f, PVPERF_REG_VERSION, 0x00020000);
    wr(&f, PVPERF_REG_FEATURES, 0xffffffff);
    wr(&f, PVPERF_REG_CATALOG_COUNT, 1000);
    wr(&f, PVPERF_REG_STATUS, 77);
    wr(&f, PVPERF_REG_CATALOG_NAME, 0x41414141);
    g_assert_cmphex(rd(&f, PVPERF_REG_MAGIC), ==, PVPERF_MAGIC);
    g_assert_cmphex(rd(&f, PVPERF_REG_VERSION), ==, PVPERF_VERSION);
    g_assert_cmphex(rd(&f, PVPERF_REG_FEATURES) & ~PVPERF_F_ALL_V1, ==, 0);
    g_assert_cmpuint(rd(&f, PVPERF_REG_CATALOG_COUNT), ==, count);
    g_assert_cmpuint(rd(&f, PVPERF_REG_STATUS), ==, PVPERF_ST_OK);
    check_entry(&f, 0, "task-clock", PVPERF_KIND_SOFTWARE, 0);
    assert_logged(&f, "read-only register");

    /* wrong sizes and misaligned accesses change nothing */
    g_assert_cmphex(qpci_io_readb(f.dev, f.bar, PVPERF_REG_MAGIC), ==, 0);
    g_assert_cmphex(qpci_io_readw(f.dev, f.bar, PVPERF_REG_MAGIC), ==, 0);
    g_assert_cmphex(qpci_io_readq(f.dev, f.bar, PVPERF_REG_MAGIC), ==, 0);
    g_assert_cmphex(rd(&f, PVPERF_REG_MAGIC + 2), ==, 0);
    qpci_io_writeb(f.dev, f.bar, PVPERF_REG_CATALOG_SELECT, 5);
    qpci_io_writew(f.dev, f.bar, PVPERF_REG_CATALOG_SELECT, 5);
    qpci_io_writeq(f.dev, f.bar, PVPERF_REG_CMD_SLOT, 0x500000005ull);
    wr(&f, PVPERF_REG_CMD_SLOT + 1, 5);
    qpci_io_writeb(f.dev, f.bar, PVPERF_REG_DOORBELL, 0x99);
    g_assert_cmpuint(rd(&f, PVPERF_REG_CATALOG_SELECT), ==, 0);
    g_assert_cmpuint(rd(&f, PVPERF_REG_CMD_SLOT), ==, 0);
    g_assert_cmpuint(rd(&f, PVPERF_REG_STATUS), ==, PVPERF_ST_OK);
    assert_logged(&f, "aligned 32-bit accesses only");

    /* reading the doorbell is harmless too */
    g_assert_cmphex(rd(&f, PVPERF_REG_DOORBELL), ==, 0);
    assert_logged(&f, "DOORBELL is write-only");

    /* and the device still works */
    g_assert_cmpuint(ring(&f, PVPERF_CMD_NOP), ==, PVPERF_ST_OK);
    check_entry(&f, 0, "task-clock", PVPERF_KIND_SOFTWARE, 0);
    fixture_stop(&f);
}

static void test_commands(void)
{
    Fixture f;
    static const uint32_t counting_cmds[] = {
        PVPERF_CMD_SET_PAGE, PVPERF_CMD_OPEN, PVPERF_CMD_CLOSE,
        PVPERF_CMD_ENABLE, PVPERF_CMD_DISABLE, PVPERF_CMD_READ,
        PVPERF_CMD_ACK_OVERFLOW,
    };
    uint32_t features;

    fixture_start(&f, NULL, NULL);
    features = rd(&f, PVPERF_REG_FEATURES);
    g_assert_cmpuint(ring(&f, PVPERF_CMD_NOP), ==, PVPERF_ST_OK);
    g_assert_cmpuint(ring(&f, 0x99), ==, PVPERF_ST_BAD_COMMAND);
    g_assert_cmpuint(ring(&f, 0xffffffff), ==, PVPERF_ST_BAD_COMMAND);
    assert_logged(&f, "unknown command");
    g_assert_cmpuint(ring(&f, PVPERF_CMD_NOP), ==, PVPERF_ST_OK);
    g_assert_cmpuint(rd(&f, PVPERF_REG_HOST_ERRNO), ==, 0);

    if (!(features & PVPERF_F_COUNTING)) {
        for (size_t i = 0; i < G_N_ELEMENTS(counting_cmds); i++) {
            g_assert_cmpuint(ring(&f, counting_cmds[i]), ==,
                             PVPERF_ST_UNSUPPORTED);
        }
    }

    /* DRIVER_FEATURES keeps only what the device offers */
    wr(&f, PVPERF_REG_DRIVER_FEATURES, 0xffffffff);
    g_assert_cmphex(rd(&f, PVPERF_REG_DRIVER_FEATURES), ==, features);
    wr(&f, PVPERF_REG_DRIVER_FEATURES, 0);
    g_assert_cmphex(rd(&f, PVPERF_REG_DRIVER_FEATURES), ==, 0);

    /* command registers hold what is written; RESET restores them */
    for (uint32_t reg = PVPERF_REG_CMD_VCPU; reg <= PVPERF_REG_CMD_PERIOD_HI;
         reg += 4) {
        if (reg == 0x54) {
            continue;
        }
        wr(&f, reg, 0x1000 + reg);
        g_assert_cmphex(rd(&f, reg), ==, 0x1000 + reg);
    }
    g_assert_cmpuint(ring(&f, PVPERF_CMD_RESET), ==, PVPERF_ST_OK);
    g_assert_cmphex(rd(&f, PVPERF_REG_CMD_VCPU), ==, PVPERF_VCPU_SELF);
    g_assert_cmphex(rd(&f, PVPERF_REG_CMD_GROUP), ==, PVPERF_NO_GROUP);
    g_assert_cmphex(rd(&f, PVPERF_REG_CMD_ADDR_HI), ==, 0);

    /* the I/O BAR doorbell runs the same commands */
    qpci_io_writel(f.dev, f.iobar, PVPERF_IO_DOORBELL, 0x77);
    g_assert_cmpuint(rd(&f, PVPERF_REG_STATUS), ==, PVPERF_ST_BAD_COMMAND);
    qpci_io_writel(f.dev, f.iobar, PVPERF_IO_DOORBELL, PVPERF_CMD_NOP);
    g_assert_cmpuint(rd(&f, PVPERF_REG_STATUS), ==, PVPERF_ST_OK);
    /* ... and ignores anything but a 32-bit write */
    qpci_io_writeb(f.dev, f.iobar, PVPERF_IO_DOORBELL, 0x77);
    g_assert_cmpuint(rd(&f, PVPERF_REG_STATUS), ==, PVPERF_ST_OK);
    g_assert_cmphex(qpci_io_readl(f.dev, f.iobar, PVPERF_IO_DOORBELL), ==, 0);
    assert_logged(&f, "the doorbell takes 32-bit writes");
    fixture_stop(&f);
}

static void test_system_reset(void)
{
    Fixture f;

    fixture_start(&f, NULL, NULL);
    wr(&f, PVPERF_REG_CATALOG_SELECT, 3);
    wr(&f, PVPERF_REG_CMD_SLOT, 9);
    wr(&f, PVPERF_REG_DRIVER_FEATURES, PVPERF_F_IO_DOORBELL);
    ring(&f, 0x55);
    qtest_qmp_assert_success(f.qts, "{'execute': 'system_reset'}");
    qtest_qmp_eventwait(f.qts, "RESET");
    fixture_remap(&f);
    g_assert_cmpuint(rd(&f, PVPERF_REG_CATALOG_SELECT), ==, 0);
    g_assert_cmpuint(rd(&f, PVPERF_REG_CMD_SLOT), ==, 0);
    g_assert_cmpuint(rd(&f, PVPERF_REG_DRIVER_FEATURES), ==, 0);
    g_assert_cmpuint(rd(&f, PVPERF_REG_STATUS), ==, PVPERF_ST_OK);
    fixture_stop(&f);
}


/* Counting ------------------------------------------------------------ */

#define PAGE_GPA        0x100000ull     /* guest RAM, 1 MiB */
#define PAGE2_GPA       0x200000ull

/*
 * Counting tests need vCPU threads that run: TCG with a 64 KiB "BIOS"
 * whose reset vector is "jmp $", so vCPU 0 spins and its task-clock grows.
 */
static char *spin_bios;

static const char *spin_args(void)
{
    static char *args;

    if (!args) {
        g_autofree uint8_t *img = g_malloc0(64 * KiB);
        int fd = g_file_open_tmp("pvperf-spin-XXXXXX.bin", &spin_bios, NULL);

        g_assert(fd >= 0);
        close(fd);
        img[0xfff0] = 0xeb;         /* jmp $ */
        img[0xfff1] = 0xfe;
        g_assert(g_file_set_contents(spin_bios, (char *)img, 64 * KiB, NULL));
        args = g_strdup_printf("-accel tcg -bios %s -m 64", spin_bios);
    }
    return args;
}

typedef struct Rec {
    uint32_t seq, flags;
    uint64_t count, time_enabled, time_running, overflows;
    uint32_t lost, throttles;
} Rec;

static Rec get_rec(Fixture *f, uint64_t page, uint32_t slot)
{
    struct pvperf_slot_record r;
    Rec out;

    qtest_memread(f->qts, page + PVPERF_SLOT_RECORD_OFFSET(slot), &r,
                  sizeof(r));
    out.seq = le32_to_cpu(r.seq);
    out.flags = le32_to_cpu(r.flags);
    out.count = le64_to_cpu(r.count);
    out.time_enabled = le64_to_cpu(r.time_enabled);
    out.time_running = le64_to_cpu(r.time_running);
    out.overflows = le64_to_cpu(r.overflows);
    out.lost = le32_to_cpu(r.lost);
    out.throttles = le32_to_cpu(r.throttles);
    return out;
}

static uint32_t cmd_vcpu(Fixture *f, uint32_t vcpu)
{
    wr(f, PVPERF_REG_CMD_VCPU, vcpu);
    return vcpu;
}

static uint32_t set_page(Fixture *f, uint32_t vcpu, uint64_t gpa)
{
    cmd_vcpu(f, vcpu);
    wr(f, PVPERF_REG_CMD_ADDR_LO, (uint32_t)gpa);
    wr(f, PVPERF_REG_CMD_ADDR_HI, gpa >> 32);
    return ring(f, PVPERF_CMD_SET_PAGE);
}

static uint32_t open_slot(Fixture *f, uint32_t vcpu, uint32_t slot,
                          uint32_t event, uint32_t group, uint32_t flags)
{
    cmd_vcpu(f, vcpu);
    wr(f, PVPERF_REG_CMD_SLOT, slot);
    wr(f, PVPERF_REG_CMD_EVENT, event);
    wr(f, PVPERF_REG_CMD_GROUP, group);
    wr(f, PVPERF_REG_CMD_FLAGS, flags);
    return ring(f, PVPERF_CMD_OPEN);
}

static uint32_t close_slot(Fixture *f, uint32_t vcpu, uint32_t slot)
{
    cmd_vcpu(f, vcpu);
    wr(f, PVPERF_REG_CMD_SLOT, slot);
    return ring(f, PVPERF_CMD_CLOSE);
}

static uint32_t mask_cmd(Fixture *f, uint32_t cmd, uint32_t vcpu,
                         uint64_t mask)
{
    cmd_vcpu(f, vcpu);
    wr(f, PVPERF_REG_CMD_MASK_LO, (uint32_t)mask);
    wr(f, PVPERF_REG_CMD_MASK_HI, mask >> 32);
    return ring(f, cmd);
}

static int count_fds(pid_t pid)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/fd", pid);
    GDir *dir = g_dir_open(path, 0, NULL);
    int n = 0;

    g_assert(dir);
    while (g_dir_read_name(dir)) {
        n++;
    }
    g_dir_close(dir);
    return n;
}

enum { EV_TASK_CLOCK, EV_CSW, EV_MIGR, EV_PGFAULT, EV_MAJFAULT, EV_CYCLES,
       EV_INSN, EV_KVM_EXIT };

static void test_count_lifecycle(void)
{
    Fixture f;
    Rec a, b, m, c;
    uint32_t status;

    fixture_start(&f, NULL, spin_args());
    g_assert_true(rd(&f, PVPERF_REG_FEATURES) & PVPERF_F_COUNTING);
    g_assert_true(rd(&f, PVPERF_REG_FEATURES) & PVPERF_F_GROUPS);

    g_assert_cmpuint(set_page(&f, 0, PAGE_GPA), ==, PVPERF_ST_OK);
    g_assert_cmphex(qtest_readl(f.qts, PAGE_GPA), ==, PVPERF_PAGE_MAGIC);
    g_assert_cmpuint(qtest_readl(f.qts, PAGE_GPA + 4), ==, PVPERF_PAGE_LAYOUT);
    g_assert_cmpuint(qtest_readl(f.qts, PAGE_GPA + 8), ==, 0);
    g_assert_cmpuint(qtest_readl(f.qts, PAGE_GPA + 12), ==, 64);

    /* slot 3: task-clock, enabled; slot 5: context-switches in its group */
    g_assert_cmpuint(open_slot(&f, 0, 3, EV_TASK_CLOCK, PVPERF_NO_GROUP,
                               PVPERF_OPEN_ENABLED), ==, PVPERF_ST_OK);
    g_assert_cmpuint(open_slot(&f, 0, 5, EV_CSW, 3, 0), ==, PVPERF_ST_OK);
    a = get_rec(&f, PAGE_GPA, 3);
    g_assert_cmpuint(a.flags, ==, PVPERF_SLOT_OPEN | PVPERF_SLOT_ENABLED);
    g_assert_cmpuint(a.seq % 2, ==, 0);
    g_assert_cmpuint(get_rec(&f, PAGE_GPA, 5).flags, ==, PVPERF_SLOT_OPEN);

    /* enabling the leader enables its member too */
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_ENABLE, 0, 1ull << 3), ==,
                     PVPERF_ST_OK);
    g_assert_cmpuint(get_rec(&f, PAGE_GPA, 5).flags, ==,
                     PVPERF_SLOT_OPEN | PVPERF_SLOT_ENABLED);

    g_usleep(50 * 1000);
    c = get_rec(&f, PAGE_GPA, 5);
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_READ, 0, 1ull << 3), ==,
                     PVPERF_ST_OK);
    a = get_rec(&f, PAGE_GPA, 3);
    m = get_rec(&f, PAGE_GPA, 5);
    g_test_message("task-clock %" PRIu64 " ns, enabled %" PRIu64 " running %"
                   PRIu64 "; context-switches %" PRIu64, a.count,
                   a.time_enabled, a.time_running, m.count);
    g_assert_cmpuint(a.seq % 2, ==, 0);
    /* per-thread times grow while the vCPU thread is on a host CPU */
    g_assert_cmpuint(a.count, >, 0);
    g_assert_cmpuint(a.time_enabled, >, 0);
    g_assert_cmpuint(a.time_running, <=, a.time_enabled);
    /*
     * READ of the leader alone wrote the member too (one group read), with
     * the group's times and a value of its own: context switches of 50 ms,
     * not the leader's nanoseconds (the records are matched by host ID).
     */
    g_assert_cmpuint(m.seq, ==, c.seq + 2);
    g_assert_cmpuint(m.time_enabled, >, 0);
    g_assert_cmpuint(m.time_enabled, ==, a.time_enabled);
    g_assert_cmpuint(a.count, >, 1000000);
    g_assert_cmpuint(m.count, <, a.count / 1000);

    /* counts and time_enabled are monotonic; every update moves seq by 2 */
    for (int i = 0; i < 5; i++) {
        g_usleep(10 * 1000);
        g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_READ, 0,
                                  (1ull << 3) | (1ull << 5)), ==,
                         PVPERF_ST_OK);
        b = get_rec(&f, PAGE_GPA, 3);
        g_assert_cmpuint(b.seq, ==, a.seq + 2);
        g_assert_cmpuint(b.count, >, a.count);     /* vCPU 0 spins */
        g_assert_cmpuint(b.time_enabled, >, a.time_enabled);
        g_assert_cmpuint(b.time_running, >=, a.time_running);
        g_assert_cmpuint(get_rec(&f, PAGE_GPA, 5).count, >=, m.count);
        a = b;
    }

    /* disable: time_running (and the count) stop growing */
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_DISABLE, 0, 1ull << 3), ==,
                     PVPERF_ST_OK);
    g_assert_cmpuint(get_rec(&f, PAGE_GPA, 3).flags, ==, PVPERF_SLOT_OPEN);
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_READ, 0, 1ull << 3), ==,
                     PVPERF_ST_OK);
    a = get_rec(&f, PAGE_GPA, 3);
    g_usleep(30 * 1000);
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_READ, 0, 1ull << 3), ==,
                     PVPERF_ST_OK);
    b = get_rec(&f, PAGE_GPA, 3);
    g_assert_cmpuint(b.time_running, ==, a.time_running);
    g_assert_cmpuint(b.count, ==, a.count);

    /* re-enable: it grows again */
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_ENABLE, 0, 1ull << 3), ==,
                     PVPERF_ST_OK);
    g_usleep(20 * 1000);
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_READ, 0, 1ull << 3), ==,
                     PVPERF_ST_OK);
    g_assert_cmpuint(get_rec(&f, PAGE_GPA, 3).time_running, >,
                     b.time_running);

    /* a page moved to another address is written whole there */
    g_assert_cmpuint(set_page(&f, 0, PAGE2_GPA), ==, PVPERF_ST_OK);
    c = get_rec(&f, PAGE2_GPA, 3);
    g_assert_cmpuint(c.flags, ==, PVPERF_SLOT_OPEN | PVPERF_SLOT_ENABLED);
    g_assert_cmpuint(c.count, ==, get_rec(&f, PAGE_GPA, 3).count);

    /* close the leader: the member carries on alone, then close it too */
    g_assert_cmpuint(close_slot(&f, 0, 3), ==, PVPERF_ST_OK);
    g_assert_cmpuint(get_rec(&f, PAGE2_GPA, 3).flags, ==, 0);
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_READ, 0, 1ull << 5), ==,
                     PVPERF_ST_OK);
    g_assert_cmpuint(close_slot(&f, 0, 5), ==, PVPERF_ST_OK);
    g_assert_cmpuint(close_slot(&f, 0, 5), ==, PVPERF_ST_SLOT_FREE);

    /* a page registered now shows closed slots as zeroes, seq even */
    qtest_memset(f.qts, PAGE_GPA, 0xff, PVPERF_PAGE_SIZE);
    g_assert_cmpuint(set_page(&f, 0, PAGE_GPA), ==, PVPERF_ST_OK);
    for (uint32_t n = 3; n <= 5; n += 2) {
        c = get_rec(&f, PAGE_GPA, n);
        g_assert_cmpuint(c.seq % 2, ==, 0);
        g_assert_cmpuint(c.flags, ==, 0);
        g_assert_cmpuint(c.count, ==, 0);
        g_assert_cmpuint(c.time_enabled, ==, 0);
        g_assert_cmpuint(c.time_running, ==, 0);
    }
    g_assert_cmpuint(set_page(&f, 0, PAGE2_GPA), ==, PVPERF_ST_OK);

    /* reopen slot 3 as another event: a fresh count */
    status = open_slot(&f, 0, 3, EV_PGFAULT, PVPERF_NO_GROUP, 0);
    g_assert_cmpuint(status, ==, PVPERF_ST_OK);
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_READ, 0, 1ull << 3), ==,
                     PVPERF_ST_OK);
    c = get_rec(&f, PAGE2_GPA, 3);
    g_assert_cmpuint(c.flags, ==, PVPERF_SLOT_OPEN);
    g_assert_cmpuint(c.count, ==, 0);
    g_assert_cmpuint(c.time_enabled, ==, 0);
    fixture_stop(&f);
}

static void test_count_other_vcpu(void)
{
    Fixture f;
    g_autofree char *args = g_strdup_printf("-smp 2 %s", spin_args());

    fixture_start(&f, NULL, args);
    /* vCPU 1 (an AP, halted) gets its own page and slots */
    g_assert_cmpuint(set_page(&f, 1, PAGE2_GPA), ==, PVPERF_ST_OK);
    g_assert_cmpuint(qtest_readl(f.qts, PAGE2_GPA + 8), ==, 1);
    g_assert_cmpuint(open_slot(&f, 1, 0, EV_TASK_CLOCK, PVPERF_NO_GROUP,
                               PVPERF_OPEN_ENABLED), ==, PVPERF_ST_OK);
    /* slot 0 of vCPU 0 is another slot */
    g_assert_cmpuint(open_slot(&f, 0, 0, EV_TASK_CLOCK, PVPERF_NO_GROUP,
                               PVPERF_OPEN_ENABLED), ==, PVPERF_ST_OK);
    g_assert_cmpuint(set_page(&f, 0, PAGE_GPA), ==, PVPERF_ST_OK);
    g_usleep(30 * 1000);
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_READ, 1, 1), ==, PVPERF_ST_OK);
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_READ, 0, 1), ==, PVPERF_ST_OK);
    /* vCPU 0 spins, vCPU 1 waits for a SIPI that never comes */
    g_assert_cmpuint(get_rec(&f, PAGE_GPA, 0).count, >,
                     get_rec(&f, PAGE2_GPA, 0).count);
    /* SELF without a ringing vCPU means vCPU 0 */
    wr(&f, PVPERF_REG_CMD_VCPU, PVPERF_VCPU_SELF);
    wr(&f, PVPERF_REG_CMD_SLOT, 0);
    g_assert_cmpuint(ring(&f, PVPERF_CMD_OPEN), ==, PVPERF_ST_SLOT_BUSY);
    fixture_stop(&f);
}

static void test_count_refresh(void)
{
    Fixture f;
    Rec a, b, c;

    fixture_start(&f, "refresh-ms=5", spin_args());
    g_assert_cmpuint(set_page(&f, 0, PAGE_GPA), ==, PVPERF_ST_OK);
    g_assert_cmpuint(open_slot(&f, 0, 1, EV_TASK_CLOCK, PVPERF_NO_GROUP,
                               PVPERF_OPEN_ENABLED), ==, PVPERF_ST_OK);
    g_assert_cmpuint(open_slot(&f, 0, 2, EV_CSW, PVPERF_NO_GROUP, 0), ==,
                     PVPERF_ST_OK);
    a = get_rec(&f, PAGE_GPA, 1);
    c = get_rec(&f, PAGE_GPA, 2);
    g_usleep(100 * 1000);
    b = get_rec(&f, PAGE_GPA, 1);
    /* no READ was rung, yet the record moved on */
    g_assert_cmpuint(b.seq, >, a.seq);
    g_assert_cmpuint(b.seq % 2, ==, 0);
    g_assert_cmpuint(b.count, >, a.count);
    /* a disabled slot is left alone: its record was not written again */
    g_assert_cmpuint(get_rec(&f, PAGE_GPA, 2).seq, ==, c.seq);
    fixture_stop(&f);
}

static void check_still_works(Fixture *f)
{
    g_assert_cmpuint(ring(f, PVPERF_CMD_NOP), ==, PVPERF_ST_OK);
    g_assert_cmpuint(open_slot(f, 0, 0, EV_TASK_CLOCK, PVPERF_NO_GROUP,
                               PVPERF_OPEN_ENABLED), ==, PVPERF_ST_OK);
    g_assert_cmpuint(set_page(f, 0, PAGE_GPA), ==, PVPERF_ST_OK);
    g_assert_cmpuint(mask_cmd(f, PVPERF_CMD_READ, 0, 1), ==, PVPERF_ST_OK);
    g_assert_cmpuint(close_slot(f, 0, 0), ==, PVPERF_ST_OK);
}

/* The smallest fd number QEMU could get next */
static int lowest_free_fd(pid_t pid)
{
    for (int fd = 0;; fd++) {
        g_autofree char *path = g_strdup_printf("/proc/%d/fd/%d", pid, fd);

        if (access(path, F_OK) != 0) {
            return fd;
        }
    }
}

/*
 * OPEN while QEMU cannot get another fd: a real perf_event_open failure
 * (EMFILE). Returns the status; the fd limit is restored afterwards.
 */
static uint32_t open_out_of_fds(Fixture *f, uint32_t vcpu, uint32_t slot,
                                uint32_t event)
{
    pid_t pid = qtest_pid(f->qts);
    struct rlimit old, lim;
    uint32_t status;

    g_assert_cmpint(prlimit(pid, RLIMIT_NOFILE, NULL, &old), ==, 0);
    lim = old;
    lim.rlim_cur = lowest_free_fd(pid);
    g_assert_cmpint(prlimit(pid, RLIMIT_NOFILE, &lim, NULL), ==, 0);
    status = open_slot(f, vcpu, slot, event, PVPERF_NO_GROUP, 0);
    g_assert_cmpint(prlimit(pid, RLIMIT_NOFILE, &old, NULL), ==, 0);
    return status;
}

static void test_count_errors(void)
{
    Fixture f;
    int insn_err = host_can_open(PERF_TYPE_HARDWARE,
                                 PERF_COUNT_HW_INSTRUCTIONS);
    uint64_t bar_gpa;

    fixture_start(&f, "slots-per-vcpu=8,max-slots=3", "-smp 2 -m 64");

    /* BAD_VCPU */
    g_assert_cmpuint(open_slot(&f, 2, 0, EV_TASK_CLOCK, PVPERF_NO_GROUP, 0),
                     ==, PVPERF_ST_BAD_VCPU);
    g_assert_cmpuint(open_slot(&f, 0xfffffffe, 0, EV_TASK_CLOCK,
                               PVPERF_NO_GROUP, 0), ==, PVPERF_ST_BAD_VCPU);
    g_assert_cmpuint(set_page(&f, 7, PAGE_GPA), ==, PVPERF_ST_BAD_VCPU);
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_READ, 9, 1), ==,
                     PVPERF_ST_BAD_VCPU);
    /* BAD_SLOT */
    g_assert_cmpuint(open_slot(&f, 0, 8, EV_TASK_CLOCK, PVPERF_NO_GROUP, 0),
                     ==, PVPERF_ST_BAD_SLOT);
    g_assert_cmpuint(close_slot(&f, 0, 0xffffffff), ==, PVPERF_ST_BAD_SLOT);
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_ENABLE, 0, 1ull << 8), ==,
                     PVPERF_ST_BAD_SLOT);
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_READ, 0, 1ull << 63), ==,
                     PVPERF_ST_BAD_SLOT);
    /* BAD_EVENT */
    g_assert_cmpuint(open_slot(&f, 0, 0, 8, PVPERF_NO_GROUP, 0), ==,
                     PVPERF_ST_BAD_EVENT);
    g_assert_cmpuint(open_slot(&f, 0, 0, 0xffffffff, PVPERF_NO_GROUP, 0), ==,
                     PVPERF_ST_BAD_EVENT);
    /* BAD_ARG: reserved flags */
    g_assert_cmpuint(open_slot(&f, 0, 0, EV_TASK_CLOCK, PVPERF_NO_GROUP,
                               0x80000000), ==, PVPERF_ST_BAD_ARG);
    /* BAD_ARG: a period beyond 2^63 - 1 (1.2) */
    wr(&f, PVPERF_REG_CMD_PERIOD_HI, 0x80000000);
    g_assert_cmpuint(open_slot(&f, 0, 0, EV_TASK_CLOCK, PVPERF_NO_GROUP, 0),
                     ==, PVPERF_ST_BAD_ARG);
    wr(&f, PVPERF_REG_CMD_PERIOD_HI, 0);
    /* ACK_OVERFLOW checks its mask like the other mask commands */
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_ACK_OVERFLOW, 0, 1), ==,
                     PVPERF_ST_SLOT_FREE);
    /* UNAVAILABLE */
    if (insn_err) {
        g_assert_cmpuint(open_slot(&f, 0, 0, EV_INSN, PVPERF_NO_GROUP, 0),
                         ==, PVPERF_ST_UNAVAILABLE);
    } else {
        g_test_message("host has a PMU: no unavailable entry to open");
    }
    /* SLOT_FREE */
    g_assert_cmpuint(close_slot(&f, 0, 1), ==, PVPERF_ST_SLOT_FREE);
    g_assert_cmpuint(close_slot(&f, 1, 1), ==, PVPERF_ST_SLOT_FREE);
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_DISABLE, 1, 2), ==,
                     PVPERF_ST_SLOT_FREE);
    /* SLOT_BUSY */
    g_assert_cmpuint(open_slot(&f, 0, 1, EV_TASK_CLOCK, PVPERF_NO_GROUP, 0),
                     ==, PVPERF_ST_OK);
    g_assert_cmpuint(open_slot(&f, 0, 1, EV_CSW, PVPERF_NO_GROUP, 0), ==,
                     PVPERF_ST_SLOT_BUSY);
    /* a mask with one open and one closed slot acts on none */
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_ENABLE, 0, 0x6), ==,
                     PVPERF_ST_SLOT_FREE);
    /* BAD_GROUP: leader closed, leader == slot, leader is a member */
    g_assert_cmpuint(open_slot(&f, 0, 2, EV_CSW, 4, 0), ==,
                     PVPERF_ST_BAD_GROUP);
    g_assert_cmpuint(open_slot(&f, 0, 2, EV_CSW, 2, 0), ==,
                     PVPERF_ST_BAD_GROUP);
    g_assert_cmpuint(open_slot(&f, 0, 2, EV_CSW, 100, 0), ==,
                     PVPERF_ST_BAD_GROUP);
    g_assert_cmpuint(open_slot(&f, 0, 2, EV_CSW, 1, 0), ==, PVPERF_ST_OK);
    g_assert_cmpuint(open_slot(&f, 0, 3, EV_CSW, 2, 0), ==,
                     PVPERF_ST_BAD_GROUP);
    /* a leader on another vCPU is not a leader here */
    g_assert_cmpuint(open_slot(&f, 1, 3, EV_CSW, 1, 0), ==,
                     PVPERF_ST_BAD_GROUP);
    /* LIMIT: max-slots=3 */
    g_assert_cmpuint(open_slot(&f, 1, 0, EV_PGFAULT, PVPERF_NO_GROUP, 0), ==,
                     PVPERF_ST_OK);
    g_assert_cmpuint(open_slot(&f, 1, 1, EV_PGFAULT, PVPERF_NO_GROUP, 0), ==,
                     PVPERF_ST_LIMIT);
    /* NO_PAGE; an empty mask does nothing and succeeds, page or not */
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_READ, 0, 0x6), ==,
                     PVPERF_ST_NO_PAGE);
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_READ, 0, 0), ==, PVPERF_ST_OK);
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_READ, 1, 0), ==, PVPERF_ST_OK);
    /* BAD_ADDRESS: unaligned, beyond RAM, MMIO, the last page of 2^64 */
    g_assert_cmpuint(set_page(&f, 0, PAGE_GPA + 8), ==, PVPERF_ST_BAD_ADDRESS);
    g_assert_cmpuint(set_page(&f, 0, 0x100000000000ull), ==,
                     PVPERF_ST_BAD_ADDRESS);
    g_assert_cmpuint(set_page(&f, 0, 64 * MiB), ==,
                     PVPERF_ST_BAD_ADDRESS);
    bar_gpa = qpci_config_readl(f.dev, PCI_BASE_ADDRESS_0) & ~0xfull;
    g_assert_cmpuint(set_page(&f, 0, bar_gpa), ==, PVPERF_ST_BAD_ADDRESS);
    g_assert_cmpuint(set_page(&f, 0, 0xfffffffffffff000ull), ==,
                     PVPERF_ST_BAD_ADDRESS);
    g_assert_cmpuint(set_page(&f, 0, 0xfffc0000ull), ==,   /* BIOS ROM */
                     PVPERF_ST_BAD_ADDRESS);
    /* NO_BUS_MASTER */
    qpci_config_writew(f.dev, PCI_COMMAND,
                       qpci_config_readw(f.dev, PCI_COMMAND) &
                       ~PCI_COMMAND_MASTER);
    g_assert_cmpuint(set_page(&f, 0, PAGE_GPA), ==, PVPERF_ST_NO_BUS_MASTER);
    /* BAD_ADDRESS comes first: a page that is not RAM, master off or on */
    g_assert_cmpuint(set_page(&f, 0, 64 * MiB), ==, PVPERF_ST_BAD_ADDRESS);
    g_assert_cmpuint(set_page(&f, 0, bar_gpa), ==, PVPERF_ST_BAD_ADDRESS);
    qpci_device_enable(f.dev);
    g_assert_cmpuint(set_page(&f, 0, 64 * MiB - 4096), ==, PVPERF_ST_OK);
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_READ, 0, 0x6), ==, PVPERF_ST_OK);
    g_assert_cmpuint(rd(&f, PVPERF_REG_HOST_ERRNO), ==, 0);

    /* HOST_ERROR: QEMU out of file descriptors */
    g_assert_cmpuint(close_slot(&f, 1, 0), ==, PVPERF_ST_OK);
    g_assert_cmpuint(open_out_of_fds(&f, 1, 0, EV_TASK_CLOCK), ==,
                     PVPERF_ST_HOST_ERROR);
    g_assert_cmpuint(rd(&f, PVPERF_REG_HOST_ERRNO), ==, EMFILE);
    assert_logged(&f, "perf_event_open: Too many open files");
    /* the next command clears HOST_ERRNO */
    g_assert_cmpuint(ring(&f, PVPERF_CMD_NOP), ==, PVPERF_ST_OK);
    g_assert_cmpuint(rd(&f, PVPERF_REG_HOST_ERRNO), ==, 0);

    assert_logged(&f, "is not an open group leader");
    assert_logged(&f, "not 4 KiB aligned");
    assert_logged(&f, "bus mastering is off");

    g_assert_cmpuint(ring(&f, PVPERF_CMD_RESET), ==, PVPERF_ST_OK);
    check_still_works(&f);
    fixture_stop(&f);
}

/* Open slots hold fds; every way of getting rid of them closes them all */
static void test_count_cleanup(void)
{
    Fixture f;
    QDict *resp;
    int base;

    fixture_start(&f, NULL, "-smp 2");
    base = count_fds(qtest_pid(f.qts));
    for (uint32_t n = 0; n < 10; n++) {
        g_assert_cmpuint(open_slot(&f, n & 1, n, EV_TASK_CLOCK,
                                   PVPERF_NO_GROUP, PVPERF_OPEN_ENABLED), ==,
                         PVPERF_ST_OK);
    }
    /* one fd per slot, and one per vCPU that watches its thread */
    g_assert_cmpint(count_fds(qtest_pid(f.qts)), ==, base + 10 + 2);
    g_assert_cmpuint(ring(&f, PVPERF_CMD_RESET), ==, PVPERF_ST_OK);
    g_assert_cmpint(count_fds(qtest_pid(f.qts)), ==, base);

    /* device reset */
    for (uint32_t n = 0; n < 10; n++) {
        open_slot(&f, 0, n, EV_CSW, PVPERF_NO_GROUP, 0);
    }
    g_assert_cmpint(count_fds(qtest_pid(f.qts)), ==, base + 10 + 1);
    qtest_qmp_assert_success(f.qts, "{'execute': 'system_reset'}");
    qtest_qmp_eventwait(f.qts, "RESET");
    g_assert_cmpint(count_fds(qtest_pid(f.qts)), ==, base);
    fixture_remap(&f);

    /* hot-unplug (unrealize) of a second device with open slots */
    resp = qtest_qmp(f.qts, "{'execute': 'device_add', 'arguments': "
                     "{'driver': 'pvperf', 'id': 'pv2', 'addr': '05.0', "
                     "'events': 'task-clock'}}");
    g_assert_false(qdict_haskey(resp, "error"));
    qobject_unref(resp);
    {
        QPCIDevice *dev2 = qpci_device_find(f.bus, QPCI_DEVFN(5, 0));
        QPCIBar bar2;
        int with_dev;

        g_assert(dev2);
        qpci_device_enable(dev2);
        bar2 = qpci_iomap(dev2, PVPERF_MMIO_BAR, NULL);
        with_dev = count_fds(qtest_pid(f.qts));
        for (uint32_t n = 0; n < 5; n++) {
            qpci_io_writel(dev2, bar2, PVPERF_REG_CMD_VCPU, 1);
            qpci_io_writel(dev2, bar2, PVPERF_REG_CMD_SLOT, n);
            qpci_io_writel(dev2, bar2, PVPERF_REG_DOORBELL, PVPERF_CMD_OPEN);
            g_assert_cmpuint(qpci_io_readl(dev2, bar2, PVPERF_REG_STATUS),
                             ==, PVPERF_ST_OK);
        }
        g_assert_cmpint(count_fds(qtest_pid(f.qts)), ==, with_dev + 5 + 1);
        qpci_unplug_acpi_device_test(f.qts, "pv2", 5);
        g_assert_cmpint(count_fds(qtest_pid(f.qts)), <=, with_dev);
        g_free(dev2);
    }
    g_assert_cmpint(count_fds(qtest_pid(f.qts)), ==, base);
    check_still_works(&f);
    fixture_stop(&f);
}

/*
 * Seeded random stress: random register writes and commands, many of
 * them valid, the rest hostile. QEMU must survive, and RESET must bring
 * the fd count back to where it started.
 */
static void test_count_stress(void)
{
    static const uint32_t regs[] = {
        PVPERF_REG_DRIVER_FEATURES, PVPERF_REG_CATALOG_SELECT,
        PVPERF_REG_CMD_VCPU, PVPERF_REG_CMD_SLOT, PVPERF_REG_CMD_EVENT,
        PVPERF_REG_CMD_GROUP, PVPERF_REG_CMD_FLAGS, PVPERF_REG_CMD_MASK_LO,
        PVPERF_REG_CMD_MASK_HI, PVPERF_REG_CMD_ADDR_LO,
        PVPERF_REG_CMD_ADDR_HI, PVPERF_REG_CMD_PERIOD_LO,
        PVPERF_REG_CMD_PERIOD_HI,
    };
    const char *seed_env = getenv("PVPERF_STRESS_SEED");
    const char *ops_env = getenv("PVPERF_STRESS_OPS");
    uint32_t seed = seed_env ? strtoul(seed_env, NULL, 0) : 20261125;
    long ops = ops_env ? strtol(ops_env, NULL, 0) : 100000;
    GRand *rng = g_rand_new_with_seed(seed);
    uint32_t statuses[PVPERF_ST_HOST_ERROR + 1] = { 0 };
    Fixture f;
    int base;

    g_test_message("stress: seed %u, %ld operations "
                   "(PVPERF_STRESS_SEED, PVPERF_STRESS_OPS)", seed, ops);
    fixture_start(&f, "max-slots=40", "-smp 3 -m 64");
    base = count_fds(qtest_pid(f.qts));
    for (long i = 0; i < ops; i++) {
        uint32_t r = g_rand_int_range(rng, 0, 100);
        uint32_t val;

        if (r < 45) {
            /* a command register, mostly with plausible values */
            uint32_t reg = regs[g_rand_int_range(rng, 0, G_N_ELEMENTS(regs))];

            val = g_rand_boolean(rng) ? g_rand_int_range(rng, 0, 10) :
                  g_rand_int(rng);
            if (reg == PVPERF_REG_CMD_ADDR_LO && g_rand_boolean(rng)) {
                val = g_rand_int_range(rng, 0, 16 * 1024) * 4096;
            } else if (reg == PVPERF_REG_CMD_ADDR_HI && g_rand_boolean(rng)) {
                val = 0;
            }
            wr(&f, reg, val);
        } else if (r < 85) {
            /* ring: mostly real commands */
            val = g_rand_int_range(rng, 0, 100) < 95 ?
                  g_rand_int_range(rng, 0, PVPERF_CMD_ACK_OVERFLOW + 1) :
                  g_rand_int(rng);
            if (val == PVPERF_CMD_RESET && g_rand_int_range(rng, 0, 10)) {
                val = PVPERF_CMD_OPEN;      /* keep slots around longer */
            }
            wr(&f, PVPERF_REG_DOORBELL, val);
            val = rd(&f, PVPERF_REG_STATUS);
            g_assert_cmpuint(val, <=, PVPERF_ST_HOST_ERROR);
            statuses[val]++;
        } else if (r < 95) {
            /* any offset, any value, any size */
            uint32_t off = g_rand_int_range(rng, 0, PVPERF_MMIO_SIZE);

            switch (g_rand_int_range(rng, 0, 4)) {
            case 0:
                qpci_io_writeb(f.dev, f.bar, off, g_rand_int(rng));
                break;
            case 1:
                qpci_io_writew(f.dev, f.bar, off & ~1, g_rand_int(rng));
                break;
            case 2:
                qpci_io_writel(f.dev, f.bar, off & ~3, g_rand_int(rng));
                break;
            default:
                qpci_io_readl(f.dev, f.bar, off & ~3);
                break;
            }
        } else {
            qpci_io_writel(f.dev, f.iobar, 0, g_rand_int_range(rng, 0, 12));
        }
    }
    for (int i = 0; i <= PVPERF_ST_HOST_ERROR; i++) {
        g_test_message("status %2d: %u times", i, statuses[i]);
    }
    /* enough of the real paths were taken to mean something */
    g_assert_cmpuint(statuses[PVPERF_ST_OK], >, ops / 100);
    qpci_device_enable(f.dev);      /* the stress may have cleared it */
    g_assert_cmpuint(ring(&f, PVPERF_CMD_RESET), ==, PVPERF_ST_OK);
    g_assert_cmpint(count_fds(qtest_pid(f.qts)), ==, base);
    wr(&f, PVPERF_REG_CMD_PERIOD_LO, 0);
    wr(&f, PVPERF_REG_CMD_PERIOD_HI, 0);
    check_still_works(&f);
    g_rand_free(rng);
    fixture_stop(&f);
}

/* Management: query-pvperf and info pvperf ------------------------------ */

static QList *query(QTestState *qts)
{
    QDict *resp = qtest_qmp(qts, "{'execute': 'query-pvperf'}");
    QList *ret;

    g_assert(qdict_haskey(resp, "return"));
    ret = qdict_get_qlist(resp, "return");
    qobject_ref(ret);
    qobject_unref(resp);
    return ret;
}

/* The one device's PvperfInfo (the caller unrefs it) */
static QDict *query_one(QTestState *qts)
{
    QList *list = query(qts);
    QDict *info;

    g_assert_cmpint(qlist_size(list), ==, 1);
    info = qobject_to(QDict, qlist_peek(list));
    qobject_ref(info);
    qobject_unref(list);
    return info;
}

static QDict *list_at(QList *list, int idx)
{
    QListEntry *e;
    int i = 0;

    QLIST_FOREACH_ENTRY(list, e) {
        if (i++ == idx) {
            return qobject_to(QDict, qlist_entry_obj(e));
        }
    }
    g_assert_not_reached();
}

/* query-pvperf's arguments: one device by id or QOM path; no slot list */
static void test_qmp_arguments(void)
{
    Fixture f;
    QDict *resp;
    QList *list;
    const char *path;

    fixture_start(&f, NULL, "-m 64 -device pvperf,id=pvB,addr=05.0");
    g_assert_cmpuint(open_slot(&f, 0, 3, EV_TASK_CLOCK, PVPERF_NO_GROUP, 0),
                     ==, PVPERF_ST_OK);
    list = query(f.qts);
    g_assert_cmpint(qlist_size(list), ==, 2);
    qobject_unref(list);

    resp = qtest_qmp(f.qts, "{'execute': 'query-pvperf', 'arguments': "
                     "{'id': 'pvB'}}");
    list = qdict_get_qlist(resp, "return");
    g_assert_cmpint(qlist_size(list), ==, 1);
    g_assert_cmpstr(qdict_get_str(list_at(list, 0), "id"), ==, "pvB");
    path = qdict_get_str(list_at(list, 0), "qom-path");
    g_assert_cmpstr(path, ==, "/machine/peripheral/pvB");
    qobject_unref(resp);
    resp = qtest_qmp(f.qts, "{'execute': 'query-pvperf', 'arguments': "
                     "{'id': '/machine/peripheral/pvB'}}");
    g_assert_cmpint(qlist_size(qdict_get_qlist(resp, "return")), ==, 1);
    qobject_unref(resp);

    resp = qtest_qmp(f.qts, "{'execute': 'query-pvperf', 'arguments': "
                     "{'id': 'nope'}}");
    g_assert_true(qdict_haskey(resp, "error"));
    g_assert_cmpstr(qdict_get_str(qdict_get_qdict(resp, "error"), "desc"),
                    ==, "no pvperf device 'nope'");
    qobject_unref(resp);

    /* the fixture's device (no id) has one slot open: counted, not listed */
    resp = qtest_qmp(f.qts, "{'execute': 'query-pvperf', 'arguments': "
                     "{'slots': false}}");
    list = qdict_get_qlist(resp, "return");
    for (int i = 0; i < 2; i++) {
        QDict *info = list_at(list, i);

        g_assert_cmpint(qlist_size(qdict_get_qlist(info, "slots")), ==, 0);
        g_assert_cmpint(qdict_get_int(info, "open-slots"), ==,
                        qdict_haskey(info, "id") ? 0 : 1);
    }
    qobject_unref(resp);
    fixture_stop(&f);
}

static void test_qmp_no_device(void)
{
    QTestState *qts = qtest_init("-machine pc");
    QList *list = query(qts);
    g_autofree char *hmp = NULL;

    g_assert_cmpint(qlist_size(list), ==, 0);
    qobject_unref(list);
    hmp = qtest_hmp(qts, "info pvperf");
    g_assert_nonnull(strstr(hmp, "no pvperf device"));
    qtest_quit(qts);
}


/* Every line of HMP output @text within @cols columns */
static void assert_width(const char *text, size_t cols)
{
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);

    for (char **l = lines; *l; l++) {
        g_autofree char *line = g_strdup(*l);

        g_strchomp(line);               /* the monitor's \r */
        if (strlen(line) > cols) {
            g_test_message("%zu columns: '%s'", strlen(line), line);
        }
        g_assert_cmpuint(strlen(line), <=, cols);
    }
}

static void test_qmp_states(void)
{
    Fixture f;
    QDict *info, *e, *lim, *sl, *err;
    QList *cat, *slots, *pages;
    int hw = host_can_open(PERF_TYPE_HARDWARE, PERF_COUNT_HW_INSTRUCTIONS);
    g_autofree char *args = g_strdup_printf("-smp 2 %s", spin_args());
    g_autofree char *hmp = NULL;
    Rec r;

    fixture_start(&f, "id=pv0,slots-per-vcpu=16,max-slots=100", args);

    /* idle: the catalog and limits, nothing open */
    info = query_one(f.qts);
    g_assert_cmpstr(qdict_get_str(info, "id"), ==, "pv0");
    g_assert_cmpstr(qdict_get_str(info, "qom-path"), ==,
                    "/machine/peripheral/pv0");
    g_assert_cmpuint(qdict_get_int(info, "features"), ==,
                     rd(&f, PVPERF_REG_FEATURES));
    cat = qdict_get_qlist(info, "catalog");
    g_assert_cmpint(qlist_size(cat), ==, G_N_ELEMENTS(default_events));
    for (int i = 0; i < G_N_ELEMENTS(default_events); i++) {
        e = list_at(cat, i);
        g_assert_cmpint(qdict_get_int(e, "index"), ==, i);
        g_assert_cmpstr(qdict_get_str(e, "name"), ==, default_events[i]);
        /* the same availability the guest reads */
        wr(&f, PVPERF_REG_CATALOG_SELECT, i);
        g_assert_cmpint(qdict_get_bool(e, "available"), ==,
                        !!(rd(&f, PVPERF_REG_CATALOG_INFO) &
                           PVPERF_INFO_AVAILABLE));
        if (!qdict_get_bool(e, "available")) {
            g_assert_cmpint(qdict_get_int(e, "errno"), ==,
                            rd(&f, PVPERF_REG_CATALOG_ERRNO));
            g_assert_true(strlen(qdict_get_str(e, "reason")) > 10);
            g_test_message("%s: %s", default_events[i],
                           qdict_get_str(e, "reason"));
        } else {
            g_assert_false(qdict_haskey(e, "reason"));
        }
    }
    e = list_at(cat, EV_TASK_CLOCK);
    g_assert_cmpstr(qdict_get_str(e, "kind"), ==, "software");
    g_assert_cmpint(qdict_get_int(e, "perf-type"), ==, PERF_TYPE_SOFTWARE);
    g_assert_cmpint(qdict_get_int(e, "perf-config"), ==,
                    PERF_COUNT_SW_TASK_CLOCK);
    g_assert_cmpstr(qdict_get_str(e, "unit"), ==, "ns");
    e = list_at(cat, EV_INSN);
    g_assert_cmpstr(qdict_get_str(e, "kind"), ==, "hardware");
    g_assert_false(qdict_haskey(e, "unit"));
    g_assert_cmpint(qdict_get_bool(e, "available"), ==, hw == 0);
    lim = qdict_get_qdict(info, "limits");
    g_assert_cmpint(qdict_get_int(lim, "slots-per-vcpu"), ==, 16);
    g_assert_cmpint(qdict_get_int(lim, "max-slots"), ==, 100);
    g_assert_cmpint(qdict_get_int(lim, "refresh-ms"), ==, 0);
    g_assert_cmpint(qdict_get_int(info, "open-slots"), ==, 0);
    g_assert_cmpint(qlist_size(qdict_get_qlist(info, "pages")), ==, 0);
    g_assert_cmpint(qlist_size(qdict_get_qlist(info, "slots")), ==, 0);
    g_assert_false(qdict_haskey(info, "last-host-error"));
    qobject_unref(info);

    /* what the guest did: a page, a group of two, enabled, read */
    wr(&f, PVPERF_REG_DRIVER_FEATURES, PVPERF_F_COUNTING);
    g_assert_cmpuint(set_page(&f, 0, PAGE2_GPA), ==, PVPERF_ST_OK);
    g_assert_cmpuint(open_slot(&f, 0, 3, EV_TASK_CLOCK, PVPERF_NO_GROUP,
                               PVPERF_OPEN_ENABLED), ==, PVPERF_ST_OK);
    g_assert_cmpuint(open_slot(&f, 0, 5, EV_CSW, 3, 0), ==, PVPERF_ST_OK);
    g_assert_cmpuint(open_slot(&f, 1, 0, EV_PGFAULT, PVPERF_NO_GROUP, 0),
                     ==, PVPERF_ST_OK);
    g_usleep(20 * 1000);
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_READ, 0, 1ull << 3), ==,
                     PVPERF_ST_OK);
    r = get_rec(&f, PAGE2_GPA, 3);
    info = query_one(f.qts);
    g_assert_cmpuint(qdict_get_int(info, "driver-features"), ==,
                     PVPERF_F_COUNTING);
    g_assert_cmpint(qdict_get_int(info, "open-slots"), ==, 3);
    pages = qdict_get_qlist(info, "pages");
    g_assert_cmpint(qlist_size(pages), ==, 1);
    g_assert_cmpint(qdict_get_int(list_at(pages, 0), "vcpu"), ==, 0);
    g_assert_cmpuint(qdict_get_int(list_at(pages, 0), "address"), ==,
                     PAGE2_GPA);
    slots = qdict_get_qlist(info, "slots");
    g_assert_cmpint(qlist_size(slots), ==, 3);
    sl = list_at(slots, 0);
    g_assert_cmpint(qdict_get_int(sl, "vcpu"), ==, 0);
    g_assert_cmpint(qdict_get_int(sl, "slot"), ==, 3);
    g_assert_cmpint(qdict_get_int(sl, "event"), ==, EV_TASK_CLOCK);
    g_assert_cmpstr(qdict_get_str(sl, "event-name"), ==, "task-clock");
    g_assert_true(qdict_get_bool(sl, "enabled"));
    g_assert_false(qdict_haskey(sl, "leader"));
    /* the last count written to the guest, exactly */
    g_assert_cmpuint(r.count, >, 0);
    g_assert_cmpuint(qdict_get_int(sl, "count"), ==, r.count);
    g_assert_cmpuint(qdict_get_int(sl, "time-enabled"), ==, r.time_enabled);
    g_assert_cmpuint(qdict_get_int(sl, "time-running"), ==, r.time_running);
    sl = list_at(slots, 1);
    g_assert_cmpint(qdict_get_int(sl, "slot"), ==, 5);
    g_assert_cmpint(qdict_get_int(sl, "leader"), ==, 3);
    g_assert_cmpstr(qdict_get_str(sl, "event-name"), ==, "context-switches");
    g_assert_false(qdict_get_bool(sl, "enabled"));     /* opened disabled */
    g_assert_false(qdict_haskey(sl, "last-errno"));
    sl = list_at(slots, 2);                           /* then vCPU 1 */
    g_assert_cmpint(qdict_get_int(sl, "vcpu"), ==, 1);
    g_assert_cmpstr(qdict_get_str(sl, "event-name"), ==, "page-faults");
    g_assert_false(qdict_get_bool(sl, "enabled"));
    qobject_unref(info);

    /* rates: what happened since the previous query, per second */
    qobject_unref(query_one(f.qts));
    for (int i = 0; i < 10; i++) {
        g_assert_cmpuint(ring(&f, PVPERF_CMD_NOP), ==, PVPERF_ST_OK);
    }
    g_usleep(20 * 1000);
    info = query_one(f.qts);
    {
        QDict *rt = qdict_get_qdict(qdict_get_qdict(info, "stats"), "rates");
        double secs = qdict_get_int(rt, "interval-ms") / 1000.0;

        g_assert_cmpfloat(secs, >=, 0.02);
        /* ten NOPs, each one register write (the doorbell) and no read */
        g_assert_cmpfloat(qdict_get_double(rt, "commands") * secs, >=, 9);
        g_assert_cmpfloat(qdict_get_double(rt, "commands") * secs, <=, 11);
        g_assert_cmpfloat(qdict_get_double(rt, "exits"), >,
                          qdict_get_double(rt, "commands") - 1);
        g_assert_cmpfloat(qdict_get_double(rt, "overflows"), ==, 0);
    }
    qobject_unref(info);
    info = query_one(f.qts);
    g_assert_cmpfloat(qdict_get_double(qdict_get_qdict(qdict_get_qdict(
                      info, "stats"), "rates"), "commands"), ==, 0);
    qobject_unref(info);

    /* HMP shows the same, within 100 columns */
    hmp = qtest_hmp(f.qts, "info pvperf");
    g_test_message("info pvperf:\n%s", hmp);
    assert_width(hmp, 100);
    /* the cost now: the commands since the previous query */
    g_assert_nonnull(strstr(hmp, " s since the last query): "));
    g_assert_nonnull(strstr(hmp, "/machine/peripheral/pv0 (id pv0)"));
    g_assert_nonnull(strstr(hmp, "task-clock"));
    g_assert_nonnull(strstr(hmp, "16 slots per vCPU, 100 open slots at most "
                            "(3 open)"));
    g_assert_nonnull(strstr(hmp, "vCPU 0   0x200000"));
    g_assert_nonnull(strstr(hmp, "0    5    context-switches     3"));

    /* a failed open records the host error */
    g_assert_cmpuint(open_out_of_fds(&f, 0, 9, EV_CSW), ==,
                     PVPERF_ST_HOST_ERROR);
    info = query_one(f.qts);
    err = qdict_get_qdict(info, "last-host-error");
    g_assert_nonnull(err);
    g_assert_cmpstr(qdict_get_str(err, "operation"), ==, "perf_event_open");
    g_assert_cmpint(qdict_get_int(err, "errno"), ==, EMFILE);
    g_assert_cmpint(qdict_get_int(err, "vcpu"), ==, 0);
    g_assert_cmpint(qdict_get_int(err, "slot"), ==, 9);
    g_assert_cmpstr(qdict_get_str(err, "message"), ==, strerror(EMFILE));
    g_assert_cmpint(qdict_get_int(info, "open-slots"), ==, 3);
    qobject_unref(info);
    g_free(hmp);
    hmp = qtest_hmp(f.qts, "info pvperf");
    assert_width(hmp, 100);
    g_assert_nonnull(strstr(hmp, "last host error: vCPU 0 slot 9: "
                            "perf_event_open"));

    /* after RESET: nothing open, no pages; the catalog stays */
    g_assert_cmpuint(ring(&f, PVPERF_CMD_RESET), ==, PVPERF_ST_OK);
    info = query_one(f.qts);
    g_assert_cmpint(qdict_get_int(info, "open-slots"), ==, 0);
    g_assert_cmpint(qlist_size(qdict_get_qlist(info, "slots")), ==, 0);
    g_assert_cmpint(qlist_size(qdict_get_qlist(info, "pages")), ==, 0);
    g_assert_cmpint(qlist_size(qdict_get_qlist(info, "catalog")), ==,
                    G_N_ELEMENTS(default_events));
    qobject_unref(info);

    /* a second device shows up as a second entry */
    qtest_qmp_assert_success(f.qts, "{'execute': 'device_add', 'arguments': "
                             "{'driver': 'pvperf', 'id': 'pv1', "
                             "'events': 'page-faults'}}");
    slots = query(f.qts);
    g_assert_cmpint(qlist_size(slots), ==, 2);
    qobject_unref(slots);
    fixture_stop(&f);
}

/* Migration ------------------------------------------------------------ */

static uint32_t set_block(Fixture *f, uint32_t vcpu, uint64_t gpa);
static QDict *block_of(QDict *info, uint32_t vcpu);
#define BLOCK_GPA       0x300000ull

/* Whether a migration stream in @file carries a VMState section @name */
static bool stream_has(const char *file, const char *name)
{
    g_autofree char *data = NULL;
    gsize len;

    g_assert(g_file_get_contents(file, &data, &len, NULL));
    return memmem(data, len, name, strlen(name)) != NULL;
}

static const char *wait_migration(QTestState *qts)
{
    static char status[32];

    for (int i = 0; i < 1000; i++) {
        QDict *r = qtest_qmp_assert_success_ref(qts,
                                                "{'execute': 'query-migrate'}");
        const char *st = qdict_haskey(r, "status") ?
                         qdict_get_str(r, "status") : "none";

        if (!strcmp(st, "failed") && qdict_haskey(r, "error-desc")) {
            g_test_message("migration failed: %s",
                           qdict_get_str(r, "error-desc"));
        }
        pstrcpy(status, sizeof(status), st);
        qobject_unref(r);
        if (!strcmp(status, "completed") || !strcmp(status, "failed")) {
            return status;
        }
        g_usleep(10 * 1000);
    }
    return "timeout";
}

static void migrate_to_file(Fixture *f, const char *uri)
{
    qtest_qmp_assert_success(f->qts, "{'execute': 'migrate', 'arguments': "
                             "{'uri': %s}}", uri);
    g_assert_cmpstr(wait_migration(f->qts), ==, "completed");
}

static void migrate_from_file(Fixture *d, const char *uri)
{
    qtest_qmp_assert_success(d->qts, "{'execute': 'migrate-incoming', "
                             "'arguments': {'uri': %s}}", uri);
    g_assert_cmpstr(wait_migration(d->qts), ==, "completed");
}

/* A path for test file @name (@ext after it) in the temporary directory */
static char *tmp_path(const char *name, const char *ext)
{
    return g_strdup_printf("%s/pvperf-%s-%d%s", g_get_tmp_dir(), name,
                           getpid(), ext);
}

static void test_migration(void)
{
    g_autofree char *file = tmp_path("mig", "");
    g_autofree char *uri = g_strdup_printf("file:%s", file);
    Fixture f, d;
    QDict *resp;

    fixture_start(&f, "events=task-clock,,page-faults", "-smp 2 -m 64");
    wr(&f, PVPERF_REG_DRIVER_FEATURES, PVPERF_F_COUNTING);
    g_assert_cmpuint(set_page(&f, 1, PAGE2_GPA), ==, PVPERF_ST_OK);

    /* a slot opened and closed again: count pages only */
    g_assert_cmpuint(open_slot(&f, 1, 2, 0, PVPERF_NO_GROUP, 0), ==,
                     PVPERF_ST_OK);
    g_assert_cmpuint(close_slot(&f, 1, 2), ==, PVPERF_ST_OK);
    migrate_to_file(&f, uri);
    /*
     * no command block, no open slot: the stream is what the previous
     * revisions read
     */
    g_assert_true(stream_has(file, "pvperf"));
    g_assert_false(stream_has(file, "pvperf/blocks"));
    g_assert_false(stream_has(file, "pvperf/slots"));
    unlink(file);
    fixture_stop(&f);

    /* again with a command block on vCPU 1: its address is sent too */
    fixture_start(&f, "events=task-clock,,page-faults", "-smp 2 -m 64");
    wr(&f, PVPERF_REG_DRIVER_FEATURES, PVPERF_F_COUNTING);
    g_assert_cmpuint(set_page(&f, 1, PAGE2_GPA), ==, PVPERF_ST_OK);
    g_assert_cmpuint(set_block(&f, 1, BLOCK_GPA), ==, PVPERF_ST_OK);
    migrate_to_file(&f, uri);
    g_assert_true(stream_has(file, "pvperf/blocks"));

    fixture_start(&d, "events=task-clock,,page-faults",
                  "-smp 2 -m 64 -incoming defer");
    migrate_from_file(&d, uri);
    g_assert_cmpuint(rd(&d, PVPERF_REG_DRIVER_FEATURES), ==,
                     PVPERF_F_COUNTING);
    /* vCPU 1's page is known on the destination: READ needs no SET_PAGE */
    g_assert_cmpuint(open_slot(&d, 1, 2, 0, PVPERF_NO_GROUP,
                               PVPERF_OPEN_ENABLED), ==, PVPERF_ST_OK);
    g_assert_cmpuint(mask_cmd(&d, PVPERF_CMD_READ, 1, 1ull << 2), ==,
                     PVPERF_ST_OK);
    g_assert_cmpuint(get_rec(&d, PAGE2_GPA, 2).flags, ==,
                     PVPERF_SLOT_OPEN | PVPERF_SLOT_ENABLED);
    /* and its command block */
    resp = query_one(d.qts);
    g_assert_nonnull(block_of(resp, 1));
    g_assert_cmpuint(qdict_get_int(block_of(resp, 1), "address"), ==,
                     BLOCK_GPA);
    g_assert_null(block_of(resp, 0));
    qobject_unref(resp);
    /* vCPU 0 had no page on the source, and has none here */
    g_assert_cmpuint(open_slot(&d, 0, 0, 0, PVPERF_NO_GROUP, 0), ==,
                     PVPERF_ST_OK);
    g_assert_cmpuint(mask_cmd(&d, PVPERF_CMD_READ, 0, 1), ==,
                     PVPERF_ST_NO_PAGE);
    fixture_stop(&d);

    /* a destination with another catalog refuses the stream */
    fixture_start(&d, "events=task-clock", "-smp 2 -m 64 -incoming defer");
    qtest_qmp_assert_success(d.qts, "{'execute': 'migrate-incoming', "
                             "'arguments': {'uri': %s, "
                             "'exit-on-error': false}}", uri);
    g_assert_cmpstr(wait_migration(d.qts), ==, "failed");
    fixture_stop(&d);

    fixture_stop(&f);
    unlink(file);
}

/* Count pages that stop being RAM ------------------------------------- */

#define PAM_C0000       0x5a            /* i440FX PAM1: 0xc0000-0xc3fff */
#define PAM_RAM         0x33
#define PAM_PCI         0x00
#define PAM_PAGE_GPA    0xc0000ull

/* The element of PvperfInfo's list @key ("pages", "blocks") of @vcpu */
static QDict *vcpu_entry(QDict *info, const char *key, uint32_t vcpu)
{
    QList *list = qdict_get_qlist(info, key);

    for (int i = 0; i < qlist_size(list); i++) {
        if (qdict_get_int(list_at(list, i), "vcpu") == vcpu) {
            return list_at(list, i);
        }
    }
    return NULL;
}

static QDict *page_of(QDict *info, uint32_t vcpu)
{
    return vcpu_entry(info, "pages", vcpu);
}

static bool page_writable(Fixture *f, uint32_t vcpu)
{
    QDict *info = query_one(f->qts);
    QDict *p = page_of(info, vcpu);
    bool w;

    g_assert_nonnull(p);
    w = qdict_get_bool(p, "writable");
    qobject_unref(info);
    return w;
}

static int open_slots_of(Fixture *f)
{
    QDict *info = query_one(f->qts);
    int n = qdict_get_int(info, "open-slots");

    qobject_unref(info);
    return n;
}

/* Let the refresh timer fire @n times (virtual time, -accel qtest) */
static void refresh_ticks(Fixture *f, int n)
{
    for (int i = 0; i < n; i++) {
        qtest_clock_step(f->qts, 1000 * 1000);
        ring(f, PVPERF_CMD_NOP);            /* the main loop ran its BHs */
    }
}

/*
 * The guest turns its registered count page into the device's own
 * registers (i440FX PAM: 0xc0000 from RAM to PCI, BAR 0 moved there).
 * The refresh must then write nothing: a write would land on CMD_* and
 * ring DOORBELL (slot 1's seq, 0 -> 1, is RESET), freeing the slot table
 * under the refresh's feet. No command may run and nothing may be freed.
 */
static void test_page_remapped(void)
{
    Fixture f;
    QPCIDevice *host;
    Rec a, b;
    int fds;

    fixture_start(&f, "refresh-ms=1", "-m 64");
    host = qpci_device_find(f.bus, QPCI_DEVFN(0, 0));
    g_assert(host);
    qpci_config_writeb(host, PAM_C0000, PAM_RAM);
    /* slots first, so that the page's first refresh writes seq 1 */
    g_assert_cmpuint(open_slot(&f, 0, 0, EV_TASK_CLOCK, PVPERF_NO_GROUP,
                               PVPERF_OPEN_ENABLED), ==, PVPERF_ST_OK);
    g_assert_cmpuint(open_slot(&f, 0, 1, EV_CSW, PVPERF_NO_GROUP,
                               PVPERF_OPEN_ENABLED), ==, PVPERF_ST_OK);
    g_assert_cmpuint(set_page(&f, 0, PAM_PAGE_GPA), ==, PVPERF_ST_OK);
    g_assert_cmpuint(get_rec(&f, PAM_PAGE_GPA, 1).seq, ==, 0);
    wr(&f, PVPERF_REG_CMD_VCPU, 0x5678);
    wr(&f, PVPERF_REG_CMD_SLOT, 0x1234);
    fds = count_fds(qtest_pid(f.qts));

    /* the page becomes BAR 0 */
    qpci_config_writel(f.dev, PCI_BASE_ADDRESS_0, PAM_PAGE_GPA);
    qpci_config_writeb(host, PAM_C0000, PAM_PCI);
    g_assert_cmphex(qtest_readl(f.qts, PAM_PAGE_GPA + PVPERF_REG_MAGIC), ==,
                    PVPERF_MAGIC);
    refresh_ticks(&f, 10);
    /* nothing was written to the registers, no command ran */
    g_assert_cmphex(qtest_readl(f.qts, PAM_PAGE_GPA + PVPERF_REG_CMD_SLOT),
                    ==, 0x1234);
    g_assert_cmphex(qtest_readl(f.qts, PAM_PAGE_GPA + PVPERF_REG_CMD_VCPU),
                    ==, 0x5678);
    g_assert_cmpuint(qtest_readl(f.qts, PAM_PAGE_GPA + PVPERF_REG_STATUS),
                     ==, PVPERF_ST_OK);
    g_assert_cmpint(open_slots_of(&f), ==, 2);
    g_assert_cmpint(count_fds(qtest_pid(f.qts)), ==, fds);
    g_assert_false(page_writable(&f, 0));
    assert_logged(&f, "count page 0xc0000 is not writable guest RAM");

    /* RAM again: the page stayed registered and is refreshed again */
    qpci_config_writeb(host, PAM_C0000, PAM_RAM);
    qpci_config_writel(f.dev, PCI_BASE_ADDRESS_0, f.bar.addr);
    a = get_rec(&f, PAM_PAGE_GPA, 1);
    refresh_ticks(&f, 3);
    b = get_rec(&f, PAM_PAGE_GPA, 1);
    g_assert_cmpuint(b.seq, >, a.seq);
    g_assert_cmpuint(b.seq % 2, ==, 0);
    g_assert_cmpuint(b.flags, ==, PVPERF_SLOT_OPEN | PVPERF_SLOT_ENABLED);
    g_assert_true(page_writable(&f, 0));

    /* bus mastering off: the refresh writes nothing, READ fails */
    qpci_config_writew(f.dev, PCI_COMMAND,
                       qpci_config_readw(f.dev, PCI_COMMAND) &
                       ~PCI_COMMAND_MASTER);
    a = get_rec(&f, PAM_PAGE_GPA, 1);
    refresh_ticks(&f, 3);
    g_assert_cmpuint(get_rec(&f, PAM_PAGE_GPA, 1).seq, ==, a.seq);
    g_assert_false(page_writable(&f, 0));           /* the refresh saw it */
    assert_logged(&f, "may not be written: bus mastering is off");
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_READ, 0, 3), ==,
                     PVPERF_ST_NO_BUS_MASTER);
    /* on again: the records skipped meanwhile are written, then READ's */
    qpci_device_enable(f.dev);
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_READ, 0, 3), ==, PVPERF_ST_OK);
    b = get_rec(&f, PAM_PAGE_GPA, 1);
    g_assert_cmpuint(b.seq, ==, a.seq + 4);
    g_assert_cmpuint(b.seq % 2, ==, 0);
    g_assert_true(page_writable(&f, 0));

    /* an unwritable page: READ says BAD_ADDRESS, nothing else changes */
    qpci_config_writeb(host, PAM_C0000, PAM_PCI);
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_READ, 0, 3), ==,
                     PVPERF_ST_BAD_ADDRESS);
    qpci_config_writeb(host, PAM_C0000, PAM_RAM);
    g_assert_cmpint(open_slots_of(&f), ==, 2);
    g_free(host);
    fixture_stop(&f);
}

/* Command blocks (ABI 1.1) -------------------------------------------- */

typedef struct Entry {
    uint32_t cmd, vcpu, slot, event, group, flags;
    uint64_t mask, addr, period;
} Entry;

#define E_SELF(c, ...)  { .cmd = (c), .vcpu = PVPERF_VCPU_SELF, \
                          .group = PVPERF_NO_GROUP, __VA_ARGS__ }

static uint32_t set_block(Fixture *f, uint32_t vcpu, uint64_t gpa)
{
    cmd_vcpu(f, vcpu);
    wr(f, PVPERF_REG_CMD_ADDR_LO, (uint32_t)gpa);
    wr(f, PVPERF_REG_CMD_ADDR_HI, gpa >> 32);
    return ring(f, PVPERF_CMD_SET_BLOCK);
}

/*
 * Write a block as a driver does: the header with nr and status PENDING,
 * then the entries, their result fields poisoned so that the test sees
 * which ones the device wrote.
 */
static void block_write(Fixture *f, uint64_t gpa, const Entry *e, uint32_t nr)
{
    struct pvperf_block_header h = {
        .nr = cpu_to_le32(nr),
        .status = cpu_to_le32(PVPERF_ST_PENDING),
        .done = cpu_to_le32(0xdead),
    };

    qtest_memwrite(f->qts, gpa, &h, sizeof(h));
    for (uint32_t i = 0; i < nr && i < PVPERF_BLOCK_ENTRIES; i++) {
        struct pvperf_block_entry be = {
            .cmd = cpu_to_le32(e[i].cmd),
            .vcpu = cpu_to_le32(e[i].vcpu),
            .slot = cpu_to_le32(e[i].slot),
            .event = cpu_to_le32(e[i].event),
            .group = cpu_to_le32(e[i].group),
            .flags = cpu_to_le32(e[i].flags),
            .mask = cpu_to_le64(e[i].mask),
            .addr = cpu_to_le64(e[i].addr),
            .period = cpu_to_le64(e[i].period),
            .status = cpu_to_le32(0xeeee),
            .host_errno = cpu_to_le32(0xeeee),
        };

        qtest_memwrite(f->qts, gpa + PVPERF_BLOCK_ENTRY_OFFSET(i), &be,
                       sizeof(be));
    }
}

/* RUN on the I/O doorbell: the one access a driver makes */
static void run_io(Fixture *f)
{
    qpci_io_writel(f->dev, f->iobar, PVPERF_IO_DOORBELL, PVPERF_CMD_RUN);
}

/*
 * RUN that the device cannot process (no block, not RAM, no bus master):
 * the block at @gpa stays PENDING, and RUN changed no register.
 */
static void assert_run_refused(Fixture *f, uint64_t gpa)
{
    Entry nop = E_SELF(PVPERF_CMD_NOP);

    g_assert_cmpuint(ring(f, 0x55), ==, PVPERF_ST_BAD_COMMAND);
    block_write(f, gpa, &nop, 1);
    run_io(f);
    g_assert_cmphex(qtest_readl(f->qts, gpa + 4), ==, PVPERF_ST_PENDING);
    g_assert_cmphex(qtest_readl(f->qts, gpa + PVPERF_BLOCK_ENTRY_OFFSET(0) +
                                48), ==, 0xeeee);
    g_assert_cmpuint(rd(f, PVPERF_REG_STATUS), ==, PVPERF_ST_BAD_COMMAND);
}

static uint32_t blk_status(Fixture *f, uint64_t gpa)
{
    return qtest_readl(f->qts, gpa + 4);
}

static uint32_t blk_done(Fixture *f, uint64_t gpa)
{
    return qtest_readl(f->qts, gpa + 8);
}

static uint32_t ent_status(Fixture *f, uint64_t gpa, uint32_t i)
{
    return qtest_readl(f->qts, gpa + PVPERF_BLOCK_ENTRY_OFFSET(i) + 48);
}

static uint32_t ent_errno(Fixture *f, uint64_t gpa, uint32_t i)
{
    return qtest_readl(f->qts, gpa + PVPERF_BLOCK_ENTRY_OFFSET(i) + 52);
}

static int64_t stat_of(QDict *info, const char *key)
{
    return qdict_get_int(qdict_get_qdict(info, "stats"), key);
}

static int64_t cmd_count(QDict *info, const char *cmd)
{
    QList *l = qdict_get_qlist(qdict_get_qdict(info, "stats"), "commands");

    for (int i = 0; i < qlist_size(l); i++) {
        if (!strcmp(qdict_get_str(list_at(l, i), "command"), cmd)) {
            return qdict_get_int(list_at(l, i), "count");
        }
    }
    return 0;
}

static QDict *block_of(QDict *info, uint32_t vcpu)
{
    return vcpu_entry(info, "blocks", vcpu);
}

static void test_block_run(void)
{
    Fixture f;
    QDict *before, *after;
    g_autofree char *hmp = NULL;
    uint8_t buf[256];
    Rec a, b;
    Entry batch[] = {
        E_SELF(PVPERF_CMD_SET_PAGE, .addr = PAGE_GPA),
        E_SELF(PVPERF_CMD_OPEN, .slot = 3, .event = EV_TASK_CLOCK,
               .flags = PVPERF_OPEN_ENABLED),
        E_SELF(PVPERF_CMD_OPEN, .slot = 5, .event = EV_CSW, .group = 3),
        E_SELF(PVPERF_CMD_NOP),
        E_SELF(PVPERF_CMD_READ, .mask = 1ull << 3),
    };
    Entry read[] = { E_SELF(PVPERF_CMD_READ, .mask = (1ull << 3) | 1ull << 5) };

    fixture_start(&f, NULL, spin_args());
    g_assert_cmphex(rd(&f, PVPERF_REG_VERSION), ==, 0x00010003);
    g_assert_true(rd(&f, PVPERF_REG_FEATURES) & PVPERF_F_CMD_BLOCK);

    /* RUN with no block; SET_BLOCK's checks, which write nothing */
    assert_run_refused(&f, BLOCK_GPA);
    assert_logged(&f, "vCPU 0 has no command block");
    g_assert_cmpuint(set_block(&f, 0, BLOCK_GPA + 8), ==,
                     PVPERF_ST_BAD_ADDRESS);
    g_assert_cmpuint(set_block(&f, 0, 1ull << 40), ==, PVPERF_ST_BAD_ADDRESS);
    g_assert_cmpuint(set_block(&f, 0, f.bar.addr), ==, PVPERF_ST_BAD_ADDRESS);
    g_assert_cmpuint(set_block(&f, 9, BLOCK_GPA), ==, PVPERF_ST_BAD_VCPU);
    qtest_memset(f.qts, BLOCK_GPA, 0xab, PVPERF_BLOCK_SIZE);
    g_assert_cmpuint(set_block(&f, PVPERF_VCPU_SELF, BLOCK_GPA), ==,
                     PVPERF_ST_OK);
    qtest_memread(f.qts, BLOCK_GPA, buf, sizeof(buf));
    for (size_t i = 0; i < sizeof(buf); i++) {
        g_assert_cmphex(buf[i], ==, 0xab);
    }

    /* five commands, one exit, no register touched */
    wr(&f, PVPERF_REG_CMD_SLOT, 0x77);
    g_assert_cmpuint(ring(&f, 0x55), ==, PVPERF_ST_BAD_COMMAND);
    block_write(&f, BLOCK_GPA, batch, ARRAY_SIZE(batch));
    before = query_one(f.qts);
    run_io(&f);
    after = query_one(f.qts);
    g_assert_cmpint(stat_of(after, "io-writes"), ==,
                    stat_of(before, "io-writes") + 1);
    g_assert_cmpint(stat_of(after, "exits"), ==, stat_of(before, "exits") + 1);
    g_assert_cmpint(stat_of(after, "block-entries"), ==,
                    stat_of(before, "block-entries") + 5);
    g_assert_cmpint(cmd_count(after, "run"), ==, cmd_count(before, "run") + 1);
    g_assert_cmpint(cmd_count(after, "open"), ==, 2);
    g_assert_cmpint(cmd_count(after, "set-page"), ==, 1);
    g_assert_cmpint(stat_of(after, "failed"), ==, stat_of(before, "failed"));
    g_assert_cmpuint(qdict_get_int(block_of(after, 0), "address"), ==,
                     BLOCK_GPA);
    g_assert_true(qdict_get_bool(block_of(after, 0), "writable"));
    qobject_unref(before);
    qobject_unref(after);

    g_assert_cmpuint(blk_status(&f, BLOCK_GPA), ==, PVPERF_ST_OK);
    g_assert_cmpuint(blk_done(&f, BLOCK_GPA), ==, 5);
    for (uint32_t i = 0; i < ARRAY_SIZE(batch); i++) {
        g_assert_cmpuint(ent_status(&f, BLOCK_GPA, i), ==, PVPERF_ST_OK);
        g_assert_cmpuint(ent_errno(&f, BLOCK_GPA, i), ==, 0);
    }
    /* the request fields are as the guest wrote them */
    g_assert_cmpuint(qtest_readl(f.qts, BLOCK_GPA), ==, 5);
    g_assert_cmpuint(qtest_readl(f.qts, BLOCK_GPA +
                                 PVPERF_BLOCK_ENTRY_OFFSET(1)), ==,
                     PVPERF_CMD_OPEN);
    g_assert_cmpuint(qtest_readl(f.qts, BLOCK_GPA +
                                 PVPERF_BLOCK_ENTRY_OFFSET(2) + 8), ==, 5);
    /* the commands did what they do through the registers */
    g_assert_cmphex(qtest_readl(f.qts, PAGE_GPA), ==, PVPERF_PAGE_MAGIC);
    a = get_rec(&f, PAGE_GPA, 3);
    g_assert_cmpuint(a.flags, ==, PVPERF_SLOT_OPEN | PVPERF_SLOT_ENABLED);
    g_assert_cmpuint(get_rec(&f, PAGE_GPA, 5).flags, ==, PVPERF_SLOT_OPEN);
    g_assert_cmpuint(rd(&f, PVPERF_REG_CMD_SLOT), ==, 0x77);
    g_assert_cmpuint(rd(&f, PVPERF_REG_STATUS), ==, PVPERF_ST_BAD_COMMAND);

    /* and counting goes on, read with one exit */
    g_usleep(20 * 1000);
    block_write(&f, BLOCK_GPA, read, 1);
    run_io(&f);
    g_assert_cmpuint(blk_status(&f, BLOCK_GPA), ==, PVPERF_ST_OK);
    b = get_rec(&f, PAGE_GPA, 3);
    g_assert_cmpuint(b.seq, ==, a.seq + 2);
    g_assert_cmpuint(b.count, >, a.count);
    g_assert_cmpuint(get_rec(&f, PAGE_GPA, 5).time_enabled, ==,
                     b.time_enabled);

    hmp = qtest_hmp(f.qts, "info pvperf");
    g_assert_nonnull(strstr(hmp, "command blocks:"));
    g_assert_nonnull(strstr(hmp, "guest accesses:"));
    g_assert_nonnull(strstr(hmp, " run "));

    /* unregistered: RUN finds no block */
    g_assert_cmpuint(set_block(&f, 0, 0), ==, PVPERF_ST_OK);
    assert_run_refused(&f, BLOCK_GPA);
    fixture_stop(&f);
}

static void test_block_errors(void)
{
    Fixture f;
    QPCIDevice *host;
    Entry stop[] = {
        E_SELF(PVPERF_CMD_NOP),
        E_SELF(PVPERF_CMD_OPEN, .slot = 3, .event = 99),
        E_SELF(PVPERF_CMD_CLOSE, .slot = 0),
        E_SELF(PVPERF_CMD_NOP),
    };
    Entry close0[] = { E_SELF(PVPERF_CMD_CLOSE, .slot = 0) };
    Entry open7[] = { E_SELF(PVPERF_CMD_OPEN, .slot = 7, .event = 0) };
    static const uint32_t not_here[] = {
        PVPERF_CMD_RESET, PVPERF_CMD_SET_BLOCK, PVPERF_CMD_RUN, 0x55,
    };
    pid_t pid;
    struct rlimit old, lim;

    fixture_start(&f, NULL, "-m 64");
    host = qpci_device_find(f.bus, QPCI_DEVFN(0, 0));
    g_assert(host);
    g_assert_cmpuint(open_slot(&f, 0, 0, EV_TASK_CLOCK, PVPERF_NO_GROUP, 0),
                     ==, PVPERF_ST_OK);
    g_assert_cmpuint(set_block(&f, 0, BLOCK_GPA), ==, PVPERF_ST_OK);

    /* the first failure stops the run: before it done, after it NOT_RUN */
    g_assert_cmpuint(ring(&f, PVPERF_CMD_NOP), ==, PVPERF_ST_OK);
    block_write(&f, BLOCK_GPA, stop, ARRAY_SIZE(stop));
    run_io(&f);
    g_assert_cmpuint(blk_status(&f, BLOCK_GPA), ==, PVPERF_ST_BAD_EVENT);
    g_assert_cmpuint(blk_done(&f, BLOCK_GPA), ==, 1);
    g_assert_cmpuint(ent_status(&f, BLOCK_GPA, 0), ==, PVPERF_ST_OK);
    g_assert_cmpuint(ent_status(&f, BLOCK_GPA, 1), ==, PVPERF_ST_BAD_EVENT);
    g_assert_cmpuint(ent_status(&f, BLOCK_GPA, 2), ==, PVPERF_ST_NOT_RUN);
    g_assert_cmpuint(ent_status(&f, BLOCK_GPA, 3), ==, PVPERF_ST_NOT_RUN);
    g_assert_cmpuint(ent_errno(&f, BLOCK_GPA, 3), ==, 0);
    g_assert_cmpint(open_slots_of(&f), ==, 1);         /* CLOSE did not run */
    g_assert_cmpuint(rd(&f, PVPERF_REG_STATUS), ==, PVPERF_ST_OK); /* not RUN's */

    /* commands a block may not hold */
    for (size_t i = 0; i < ARRAY_SIZE(not_here); i++) {
        Entry e[] = { E_SELF(not_here[i], .addr = BLOCK_GPA),
                      E_SELF(PVPERF_CMD_CLOSE, .slot = 0) };

        block_write(&f, BLOCK_GPA, e, 2);
        run_io(&f);
        g_assert_cmpuint(ent_status(&f, BLOCK_GPA, 0), ==,
                         PVPERF_ST_BAD_COMMAND);
        g_assert_cmpuint(ent_status(&f, BLOCK_GPA, 1), ==, PVPERF_ST_NOT_RUN);
        g_assert_cmpuint(blk_done(&f, BLOCK_GPA), ==, 0);
    }
    g_assert_cmpint(open_slots_of(&f), ==, 1);         /* RESET did not run */
    assert_logged(&f, "RESET is not allowed in a command block");

    /* too many entries: nothing runs, only the header is written */
    block_write(&f, BLOCK_GPA, close0, 1);
    qtest_writel(f.qts, BLOCK_GPA, PVPERF_BLOCK_ENTRIES + 1);
    run_io(&f);
    g_assert_cmpuint(blk_status(&f, BLOCK_GPA), ==, PVPERF_ST_BAD_ARG);
    g_assert_cmpuint(blk_done(&f, BLOCK_GPA), ==, 0);
    g_assert_cmphex(ent_status(&f, BLOCK_GPA, 0), ==, 0xeeee);
    g_assert_cmpint(open_slots_of(&f), ==, 1);
    /* none: fine */
    block_write(&f, BLOCK_GPA, close0, 0);
    run_io(&f);
    g_assert_cmpuint(blk_status(&f, BLOCK_GPA), ==, PVPERF_ST_OK);
    g_assert_cmpuint(blk_done(&f, BLOCK_GPA), ==, 0);

    /* a host error: the entry has its errno, RUN's registers too */
    pid = qtest_pid(f.qts);
    block_write(&f, BLOCK_GPA, open7, 1);
    g_assert_cmpint(prlimit(pid, RLIMIT_NOFILE, NULL, &old), ==, 0);
    lim = old;
    lim.rlim_cur = lowest_free_fd(pid);
    g_assert_cmpint(prlimit(pid, RLIMIT_NOFILE, &lim, NULL), ==, 0);
    run_io(&f);
    g_assert_cmpint(prlimit(pid, RLIMIT_NOFILE, &old, NULL), ==, 0);
    g_assert_cmpuint(blk_status(&f, BLOCK_GPA), ==, PVPERF_ST_HOST_ERROR);
    g_assert_cmpuint(ent_status(&f, BLOCK_GPA, 0), ==, PVPERF_ST_HOST_ERROR);
    g_assert_cmpuint(ent_errno(&f, BLOCK_GPA, 0), ==, EMFILE);
    g_assert_cmpuint(rd(&f, PVPERF_REG_HOST_ERRNO), ==, 0);
    g_assert_cmpint(open_slots_of(&f), ==, 1);

    /* bus mastering off: the block is neither read nor written */
    block_write(&f, BLOCK_GPA, close0, 1);
    qpci_config_writew(f.dev, PCI_COMMAND,
                       qpci_config_readw(f.dev, PCI_COMMAND) &
                       ~PCI_COMMAND_MASTER);
    run_io(&f);
    g_assert_cmphex(blk_status(&f, BLOCK_GPA), ==, PVPERF_ST_PENDING);
    g_assert_cmpint(open_slots_of(&f), ==, 1);
    assert_run_refused(&f, BLOCK_GPA);
    assert_logged(&f, "may not be written: bus mastering is off");
    qpci_device_enable(f.dev);

    /*
     * A block that becomes the device's own registers (PAM to PCI, BAR 0
     * moved there): RUN reads and writes nothing, runs nothing.
     */
    qpci_config_writeb(host, PAM_C0000, PAM_RAM);
    g_assert_cmpuint(set_block(&f, 0, PAM_PAGE_GPA), ==, PVPERF_ST_OK);
    block_write(&f, PAM_PAGE_GPA, close0, 1);
    wr(&f, PVPERF_REG_CMD_SLOT, 0x1234);
    g_assert_cmpuint(ring(&f, 0x55), ==, PVPERF_ST_BAD_COMMAND);
    qpci_config_writel(f.dev, PCI_BASE_ADDRESS_0, PAM_PAGE_GPA);
    qpci_config_writeb(host, PAM_C0000, PAM_PCI);
    g_assert_cmphex(qtest_readl(f.qts, PAM_PAGE_GPA + PVPERF_REG_MAGIC), ==,
                    PVPERF_MAGIC);
    run_io(&f);
    g_assert_cmpuint(qtest_readl(f.qts, PAM_PAGE_GPA + PVPERF_REG_STATUS),
                     ==, PVPERF_ST_BAD_COMMAND);
    g_assert_cmphex(qtest_readl(f.qts, PAM_PAGE_GPA + PVPERF_REG_CMD_SLOT),
                    ==, 0x1234);
    g_assert_cmpint(open_slots_of(&f), ==, 1);
    assert_logged(&f, "command block 0xc0000 is not writable guest RAM");
    qpci_config_writeb(host, PAM_C0000, PAM_RAM);
    qpci_config_writel(f.dev, PCI_BASE_ADDRESS_0, f.bar.addr);
    run_io(&f);                                 /* RAM again: it runs */
    g_assert_cmpuint(blk_status(&f, PAM_PAGE_GPA), ==, PVPERF_ST_OK);
    g_assert_cmpint(open_slots_of(&f), ==, 0);

    /* RESET and a system reset forget the block */
    g_assert_cmpuint(ring(&f, PVPERF_CMD_RESET), ==, PVPERF_ST_OK);
    assert_run_refused(&f, BLOCK_GPA);
    g_assert_cmpuint(set_block(&f, 0, BLOCK_GPA), ==, PVPERF_ST_OK);
    qtest_system_reset(f.qts);
    fixture_remap(&f);
    assert_run_refused(&f, BLOCK_GPA);
    g_free(host);
    fixture_stop(&f);
}

/*
 * One RUN may not make the host work without bound: its entries cost the
 * slots they touch, at most PVPERF_BLOCK_BUDGET_SLOTS * SLOTS_PER_VCPU.
 */
static void test_block_budget(void)
{
    Entry e[PVPERF_BLOCK_ENTRIES];
    Fixture f;
    int64_t t0, t1;

    fixture_start(&f, "slots-per-vcpu=8", "-m 64");
    g_assert_cmpuint(set_page(&f, 0, PAGE_GPA), ==, PVPERF_ST_OK);
    for (uint32_t n = 0; n < 8; n++) {
        g_assert_cmpuint(open_slot(&f, 0, n, EV_TASK_CLOCK, PVPERF_NO_GROUP,
                                   PVPERF_OPEN_ENABLED), ==, PVPERF_ST_OK);
    }
    g_assert_cmpuint(set_block(&f, 0, BLOCK_GPA), ==, PVPERF_ST_OK);
    /* budget 4 * 8 = 32: four READs of 8 slots, not five */
    for (int i = 0; i < 6; i++) {
        e[i] = (Entry)E_SELF(PVPERF_CMD_READ, .mask = 0xff);
    }
    block_write(&f, BLOCK_GPA, e, 6);
    run_io(&f);
    g_assert_cmpuint(blk_status(&f, BLOCK_GPA), ==, PVPERF_ST_BUDGET);
    g_assert_cmpuint(blk_done(&f, BLOCK_GPA), ==, 4);
    g_assert_cmpuint(ent_status(&f, BLOCK_GPA, 3), ==, PVPERF_ST_OK);
    g_assert_cmpuint(ent_status(&f, BLOCK_GPA, 4), ==, PVPERF_ST_BUDGET);
    g_assert_cmpuint(ent_status(&f, BLOCK_GPA, 5), ==, PVPERF_ST_NOT_RUN);
    assert_logged(&f, "would cost 8 slots, 0 left of the block's budget");
    /*
     * ACK_OVERFLOW costs 1 whatever its mask (it writes the header
     * only): 3 READs of 8 (24), ACK 0xff (1), 7 NOPs: the 8th NOP is
     * over. An earlier revision charged the ACK 8 and refused every NOP.
     */
    for (int i = 0; i < 3; i++) {
        e[i] = (Entry)E_SELF(PVPERF_CMD_READ, .mask = 0xff);
    }
    e[3] = (Entry)E_SELF(PVPERF_CMD_ACK_OVERFLOW, .mask = 0xff);
    for (int i = 4; i < 12; i++) {
        e[i] = (Entry)E_SELF(PVPERF_CMD_NOP);
    }
    block_write(&f, BLOCK_GPA, e, 12);
    run_io(&f);
    g_assert_cmpuint(ent_status(&f, BLOCK_GPA, 3), ==, PVPERF_ST_OK);
    g_assert_cmpuint(blk_done(&f, BLOCK_GPA), ==, 11);
    g_assert_cmpuint(ent_status(&f, BLOCK_GPA, 11), ==, PVPERF_ST_BUDGET);
    /* SET_PAGE costs a page of records (8), the others 1 */
    e[0] = (Entry)E_SELF(PVPERF_CMD_SET_PAGE, .addr = PAGE_GPA);
    for (int i = 1; i < 26; i++) {
        e[i] = (Entry)E_SELF(PVPERF_CMD_NOP);
    }
    block_write(&f, BLOCK_GPA, e, 26);
    run_io(&f);
    g_assert_cmpuint(blk_status(&f, BLOCK_GPA), ==, PVPERF_ST_BUDGET);
    g_assert_cmpuint(blk_done(&f, BLOCK_GPA), ==, 25);
    fixture_stop(&f);

    /* the worst a block can do with 64 slots open, timed for the docs */
    fixture_start(&f, NULL, "-m 64");
    g_assert_cmpuint(set_page(&f, 0, PAGE_GPA), ==, PVPERF_ST_OK);
    for (uint32_t n = 0; n < 64; n++) {
        g_assert_cmpuint(open_slot(&f, 0, n, EV_TASK_CLOCK, PVPERF_NO_GROUP,
                                   PVPERF_OPEN_ENABLED), ==, PVPERF_ST_OK);
    }
    g_assert_cmpuint(set_block(&f, 0, BLOCK_GPA), ==, PVPERF_ST_OK);
    for (int i = 0; i < PVPERF_BLOCK_ENTRIES; i++) {
        e[i] = (Entry)E_SELF(PVPERF_CMD_READ, .mask = UINT64_MAX);
    }
    block_write(&f, BLOCK_GPA, e, PVPERF_BLOCK_ENTRIES);
    t0 = g_get_monotonic_time();
    run_io(&f);
    t1 = g_get_monotonic_time();
    g_assert_cmpuint(blk_done(&f, BLOCK_GPA), ==, PVPERF_BLOCK_BUDGET_SLOTS);
    g_test_message("RUN of %d READs of 64 slots: %d ran, %" PRId64 " us "
                   "(qtest round trip included)", PVPERF_BLOCK_ENTRIES,
                   PVPERF_BLOCK_BUDGET_SLOTS, t1 - t0);
    fixture_stop(&f);
}

/* Open slots never migrate silently ------------------------------------ */

static const char *run_state(QTestState *qts)
{
    static char status[32];
    QDict *r = qtest_qmp_assert_success_ref(qts,
                                            "{'execute': 'query-status'}");

    pstrcpy(status, sizeof(status), qdict_get_str(r, "status"));
    qobject_unref(r);
    return status;
}

/*
 * Open slots migrate, so nothing blocks OPEN any more: not
 * --only-migratable (an earlier revision refused OPEN there, EACCES), not
 * a migration that runs (EBUSY): a slot opened during it is in the stream.
 */
static void test_migration_open_anytime(void)
{
    g_autofree char *file = tmp_path("mig-open", "");
    g_autofree char *uri = g_strdup_printf("file:%s", file);
    Fixture f;

    fixture_start(&f, NULL, "-only-migratable -m 64");
    g_assert_cmpuint(open_slot(&f, 0, 0, EV_TASK_CLOCK, PVPERF_NO_GROUP,
                               PVPERF_OPEN_ENABLED), ==, PVPERF_ST_OK);
    migrate_to_file(&f, uri);
    g_assert_true(stream_has(file, "pvperf/slots"));
    fixture_stop(&f);
    unlink(file);

    fixture_start(&f, NULL, "-m 64");
    qtest_qmp_assert_success(f.qts, "{'execute': 'migrate-set-capabilities',"
                             " 'arguments': {'capabilities': [{'capability':"
                             " 'pause-before-switchover', 'state': true}]}}");
    qtest_qmp_assert_success(f.qts, "{'execute': 'migrate', 'arguments': "
                             "{'uri': %s}}", uri);
    for (int i = 0; i < 1000; i++) {
        QDict *r = qtest_qmp_assert_success_ref(f.qts,
                                               "{'execute': 'query-migrate'}");
        bool paused = !strcmp(qdict_get_str(r, "status"), "pre-switchover");

        qobject_unref(r);
        if (paused) {
            break;
        }
        g_usleep(10 * 1000);
    }
    g_assert_cmpuint(open_slot(&f, 0, 0, EV_TASK_CLOCK, PVPERF_NO_GROUP,
                               PVPERF_OPEN_ENABLED), ==, PVPERF_ST_OK);
    qtest_qmp_assert_success(f.qts, "{'execute': 'migrate-continue', "
                             "'arguments': {'state': 'pre-switchover'}}");
    g_assert_cmpstr(wait_migration(f.qts), ==, "completed");
    g_assert_true(stream_has(file, "pvperf/slots"));
    fixture_stop(&f);
    unlink(file);
}

/*
 * A command between an incoming migration's load and the VM's start (a
 * guest's vCPUs do not run then; qtest, or a paused VM's DMA, can) acts
 * on the migrated slots: they are restored first. An earlier revision
 * restored them only at the start, over whatever such a command had
 * opened: the slot's first fd leaked, the open-slot count went one too
 * high, and the next RESET aborted QEMU on it.
 */
static void test_migration_command_before_start(void)
{
    g_autofree char *file = tmp_path("mig-early", "");
    g_autofree char *uri = g_strdup_printf("file:%s", file);
    Fixture f;
    int fds;

    fixture_start(&f, NULL, "-m 64");
    g_assert_cmpuint(open_slot(&f, 0, 0, EV_TASK_CLOCK, PVPERF_NO_GROUP,
                               PVPERF_OPEN_ENABLED), ==, PVPERF_ST_OK);
    migrate_to_file(&f, uri);
    fixture_stop(&f);

    fixture_start(&f, NULL, "-m 64 -S -incoming defer");
    fds = count_fds(qtest_pid(f.qts));
    migrate_from_file(&f, uri);
    g_assert_cmpstr(run_state(f.qts), !=, "running");
    g_assert_cmpuint(open_slot(&f, 0, 0, EV_TASK_CLOCK, PVPERF_NO_GROUP,
                               PVPERF_OPEN_ENABLED), ==, PVPERF_ST_SLOT_BUSY);
    g_assert_cmpuint(open_slot(&f, 0, 1, EV_TASK_CLOCK, PVPERF_NO_GROUP,
                               PVPERF_OPEN_ENABLED), ==, PVPERF_ST_OK);
    qtest_qmp_assert_success(f.qts, "{'execute': 'cont'}");
    g_assert_cmpint(open_slots_of(&f), ==, 2);
    /* two slots and the vCPU's watch: no fd left behind */
    g_assert_cmpint(count_fds(qtest_pid(f.qts)), ==, fds + 3);
    g_assert_cmpuint(ring(&f, PVPERF_CMD_RESET), ==, PVPERF_ST_OK);
    g_assert_cmpint(open_slots_of(&f), ==, 0);
    g_assert_cmpint(count_fds(qtest_pid(f.qts)), ==, fds);
    fixture_stop(&f);
    unlink(file);
}

/*
 * Catalogs are compared by their names, not by a digest: these two
 * single-entry catalogs (task-clock and cpu-clock, spelled as libpfm4
 * accepts them) have the same 32-bit FNV-1a hash, which an earlier
 * revision compared.
 */
static void test_migration_catalog_names(void)
{
    g_autofree char *file = tmp_path("mig-names", "");
    g_autofree char *uri = g_strdup_printf("file:%s", file);
    Fixture f, d;

    fixture_start(&f, "events=PErf::peRF_cOuNT_SW_tasK_clock", "-m 64");
    migrate_to_file(&f, uri);
    fixture_start(&d, "events=PErF_COuNt_sw_cpu_clock",
                  "-m 64 -incoming defer");
    qtest_qmp_assert_success(d.qts, "{'execute': 'migrate-incoming', "
                             "'arguments': {'uri': %s, "
                             "'exit-on-error': false}}", uri);
    g_assert_cmpstr(wait_migration(d.qts), ==, "failed");
    fixture_stop(&d);
    /* the same names load */
    fixture_start(&d, "events=PErf::peRF_cOuNT_SW_tasK_clock",
                  "-m 64 -incoming defer");
    migrate_from_file(&d, uri);
    fixture_stop(&d);
    fixture_stop(&f);
    unlink(file);
}

/* vCPU hotplug --------------------------------------------------------- */

#define PIIX4_CPUHP_BASE        0xaf00  /* ACPI CPU hotplug registers */

static void cpu_plug(Fixture *f)
{
    qtest_qmp_assert_success(f->qts, "{'execute': 'device_add', 'arguments':"
                             " {'driver': 'qemu64-x86_64-cpu', 'id': 'cpu1',"
                             " 'socket-id': 1, 'core-id': 0,"
                             " 'thread-id': 0}}");
}

/* device_del, then eject as the guest's ACPI code would */
static void cpu_unplug(Fixture *f)
{
    qtest_outb(f->qts, PIIX4_CPUHP_BASE, 0);       /* modern interface */
    qtest_qmp_device_del_send(f->qts, "cpu1");
    qtest_outl(f->qts, PIIX4_CPUHP_BASE, 1);       /* select CPU 1 */
    qtest_outb(f->qts, PIIX4_CPUHP_BASE + 4, 8);   /* eject */
    qtest_qmp_eventwait(f->qts, "DEVICE_DELETED");
}

/* Sampling (ABI 1.2) ---------------------------------------------------- */

#define MSI_GPA         0x300000ull     /* where MSI-X messages land */

static void open_period(Fixture *f, uint64_t period)
{
    wr(f, PVPERF_REG_CMD_PERIOD_LO, (uint32_t)period);
    wr(f, PVPERF_REG_CMD_PERIOD_HI, period >> 32);
}

/* Point vCPU @v's vector at guest RAM: each message writes its data there */
static void msix_to_ram(Fixture *f, uint32_t v)
{
    uint64_t off = f->dev->msix_table_off + v * PCI_MSIX_ENTRY_SIZE;

    qpci_io_writel(f->dev, f->dev->msix_table_bar,
                   off + PCI_MSIX_ENTRY_LOWER_ADDR, MSI_GPA + 4 * v);
    qpci_io_writel(f->dev, f->dev->msix_table_bar,
                   off + PCI_MSIX_ENTRY_UPPER_ADDR, 0);
    qpci_io_writel(f->dev, f->dev->msix_table_bar,
                   off + PCI_MSIX_ENTRY_DATA, 0x5a00 + v);
    qpci_io_writel(f->dev, f->dev->msix_table_bar,
                   off + PCI_MSIX_ENTRY_VECTOR_CTRL, 0);
    qtest_writel(f->qts, MSI_GPA + 4 * v, 0);
}

static uint64_t pending_bits(Fixture *f, uint64_t page)
{
    g_assert_cmpuint(qtest_readl(f->qts, page + 16) % 2, ==, 0);
    return qtest_readq(f->qts, page + 24);
}

/* Wait (real time: the vCPU spins under TCG) until @pred or 5 s */
#define WAIT_FOR(pred) do {                                     \
        for (int i_ = 0; i_ < 500 && !(pred); i_++) {           \
            g_usleep(10 * 1000);                                \
        }                                                       \
    } while (0)

static void test_sample_basic(void)
{
    Fixture f;
    Rec r;

    fixture_start(&f, NULL, spin_args());
    g_assert_true(rd(&f, PVPERF_REG_FEATURES) & PVPERF_F_OVERFLOW);
    qpci_msix_enable(f.dev);
    msix_to_ram(&f, 0);
    g_assert_cmpuint(set_page(&f, 0, PAGE_GPA), ==, PVPERF_ST_OK);
    /* task-clock every 1 ms of vCPU thread time */
    open_period(&f, 1000000);
    g_assert_cmpuint(open_slot(&f, 0, 4, EV_TASK_CLOCK, PVPERF_NO_GROUP,
                               PVPERF_OPEN_ENABLED), ==, PVPERF_ST_OK);
    open_period(&f, 0);
    WAIT_FOR(qtest_readl(f.qts, MSI_GPA) == 0x5a00);
    g_assert_cmphex(qtest_readl(f.qts, MSI_GPA), ==, 0x5a00);
    g_assert_cmphex(pending_bits(&f, PAGE_GPA) & (1ull << 4), !=, 0);
    g_assert_cmpuint(get_rec(&f, PAGE_GPA, 4).overflows, >, 0);
    /* the pass writes overflows, not counts: a READ brings them */
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_READ, 0, 1ull << 4), ==,
                     PVPERF_ST_OK);
    r = get_rec(&f, PAGE_GPA, 4);
    g_assert_cmpuint(r.overflows, >, 0);
    g_assert_cmphex(r.flags & PVPERF_SLOT_SAMPLING, !=, 0);
    /*
     * at least a period of count per overflow, but for a few us: the
     * host times task-clock's overflows on an hrtimer and counts it on
     * perf's clock (seen: 1,997,941 ns for 2 overflows of 1 ms)
     */
    g_assert_cmpuint(r.count, >=, r.overflows * 990000);

    /* ACK_OVERFLOW clears the bit; later overflows set it again */
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_ACK_OVERFLOW, 0, 1ull << 4),
                     ==, PVPERF_ST_OK);
    qtest_writel(f.qts, MSI_GPA, 0);
    WAIT_FOR(qtest_readl(f.qts, MSI_GPA) == 0x5a00);
    g_assert_cmphex(qtest_readl(f.qts, MSI_GPA), ==, 0x5a00);
    g_assert_cmpuint(get_rec(&f, PAGE_GPA, 4).overflows, >, r.overflows);
    fixture_stop(&f);
}

/* What the guest sees of vCPU @v's vector: 0 until a message landed */
static uint32_t msi_word(Fixture *f, uint32_t v)
{
    return qtest_readl(f->qts, MSI_GPA + 4 * v);
}

static void msix_mask(Fixture *f, uint32_t v, bool mask)
{
    uint64_t off = f->dev->msix_table_off + v * PCI_MSIX_ENTRY_SIZE;

    qpci_io_writel(f->dev, f->dev->msix_table_bar,
                   off + PCI_MSIX_ENTRY_VECTOR_CTRL,
                   mask ? PCI_MSIX_ENTRY_CTRL_MASKBIT : 0);
}

/* OPEN with a period (CMD_PERIOD is 0 again afterwards: later OPENs count) */
static uint32_t open_sampling(Fixture *f, uint32_t vcpu, uint32_t slot,
                              uint32_t event, uint32_t flags, uint64_t period)
{
    uint32_t status;

    open_period(f, period);
    status = open_slot(f, vcpu, slot, event, PVPERF_NO_GROUP, flags);
    open_period(f, 0);
    return status;
}

static uint32_t set_period(Fixture *f, uint32_t vcpu, uint32_t slot,
                           uint64_t period)
{
    cmd_vcpu(f, vcpu);
    wr(f, PVPERF_REG_CMD_SLOT, slot);
    open_period(f, period);
    return ring(f, PVPERF_CMD_SET_PERIOD);
}

static uint32_t header_seq(Fixture *f, uint64_t page)
{
    return qtest_readl(f->qts, page + 16);
}

/* (vCPU, slot)'s entry in query-pvperf's slot list, or NULL */
static QDict *slot_of(QDict *info, uint32_t vcpu, uint32_t slot)
{
    QList *list = qdict_get_qlist(info, "slots");

    for (int i = 0; i < qlist_size(list); i++) {
        QDict *sl = list_at(list, i);

        if (qdict_get_int(sl, "vcpu") == vcpu &&
            qdict_get_int(sl, "slot") == slot) {
            return sl;
        }
    }
    return NULL;
}

/*
 * One field of (vCPU, slot)'s sampling state in query-pvperf, as a QObject
 * of its own (the answer is freed)
 */
static QObject *sampling_field(Fixture *f, uint32_t vcpu, uint32_t slot,
                               const char *key)
{
    QDict *info = query_one(f->qts);
    QDict *sl = slot_of(info, vcpu, slot);
    QObject *val;

    g_assert_nonnull(sl);
    g_assert_true(qdict_haskey(sl, "sampling"));
    val = qdict_get(qdict_get_qdict(sl, "sampling"), key);
    g_assert_nonnull(val);
    qobject_ref(val);
    qobject_unref(info);
    return val;
}

static int64_t sampling_int(Fixture *f, uint32_t vcpu, uint32_t slot,
                            const char *key)
{
    QObject *o = sampling_field(f, vcpu, slot, key);
    int64_t val;

    g_assert_true(qnum_get_try_int(qobject_to(QNum, o), &val));
    qobject_unref(o);
    return val;
}

static bool sampling_bool(Fixture *f, uint32_t vcpu, uint32_t slot,
                          const char *key)
{
    QObject *o = sampling_field(f, vcpu, slot, key);
    bool val = qbool_get_bool(qobject_to(QBool, o));

    qobject_unref(o);
    return val;
}

static int64_t stat_now(Fixture *f, const char *key)
{
    QDict *info = query_one(f->qts);
    int64_t val = stat_of(info, key);

    qobject_unref(info);
    return val;
}

/*
 * Let what overflowed before now reach the guest: QEMU's main loop drains
 * the host's records and runs the overflow pass within milliseconds;
 * 100 ms is plenty even on a loaded host.
 */
static void settle(Fixture *f)
{
    g_usleep(100 * 1000);
    ring(f, PVPERF_CMD_NOP);
}

/* perf ring buffers mapped into QEMU: the vCPU watches' and the slots' */
static int count_perf_maps(pid_t pid)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/maps", pid);
    g_autofree char *text = NULL;
    int n = 0;

    g_assert(g_file_get_contents(path, &text, NULL, NULL));
    for (char *p = text; (p = strstr(p, "anon_inode:[perf_event]")); p++) {
        n++;
    }
    return n;
}

/*
 * Each vCPU's overflows raise its own vector, never another's: the sample
 * must be taken on the vCPU whose event overflowed. vCPU 0 spins; vCPU 1
 * is an AP waiting for a SIPI, so its thread sleeps and its task-clock
 * hardly moves. Its thread does wake whenever QEMU kicks it: a change of
 * the memory map (here i440FX PAM, 0xc0000 RAM <-> PCI) queues work on
 * every TCG vCPU, so context-switches with period 1 overflow on vCPU 1.
 */
static void test_sample_vector_per_vcpu(void)
{
    g_autofree char *args = g_strdup_printf("-smp 2 %s", spin_args());
    QPCIDevice *host;
    Fixture f;
    Rec r;
    int kicks = 0;

    fixture_start(&f, NULL, args);
    g_assert_cmpuint(rd(&f, PVPERF_REG_NR_VECTORS), ==, 2);
    g_assert_cmpuint(qpci_msix_table_size(f.dev), ==, 2);
    host = qpci_device_find(f.bus, QPCI_DEVFN(0, 0));
    g_assert(host);
    qpci_msix_enable(f.dev);
    msix_to_ram(&f, 0);
    msix_to_ram(&f, 1);
    g_assert_cmpuint(set_page(&f, 0, PAGE_GPA), ==, PVPERF_ST_OK);
    g_assert_cmpuint(set_page(&f, 1, PAGE2_GPA), ==, PVPERF_ST_OK);
    g_assert_cmpuint(qtest_readl(f.qts, PAGE2_GPA + 8), ==, 1);

    /* vCPU 0 overflows: vector 0 only, vCPU 0's page only */
    g_assert_cmpuint(open_sampling(&f, 0, 2, EV_TASK_CLOCK,
                                   PVPERF_OPEN_ENABLED, 1000000), ==,
                     PVPERF_ST_OK);
    WAIT_FOR(get_rec(&f, PAGE_GPA, 2).overflows >= 20);
    g_assert_cmpuint(get_rec(&f, PAGE_GPA, 2).overflows, >=, 20);
    g_assert_cmphex(msi_word(&f, 0), ==, 0x5a00);
    g_assert_cmphex(msi_word(&f, 1), ==, 0);
    g_assert_cmphex(pending_bits(&f, PAGE_GPA), ==, 1ull << 2);
    g_assert_cmphex(pending_bits(&f, PAGE2_GPA), ==, 0);
    g_assert_cmpuint(close_slot(&f, 0, 2), ==, PVPERF_ST_OK);
    settle(&f);
    qtest_writel(f.qts, MSI_GPA, 0);

    /* vCPU 1 overflows: vector 1 only, vCPU 1's page only */
    g_assert_cmpuint(open_sampling(&f, 1, 5, EV_CSW, PVPERF_OPEN_ENABLED, 1),
                     ==, PVPERF_ST_OK);
    for (; kicks < 500 && msi_word(&f, 1) == 0; kicks++) {
        qpci_config_writeb(host, PAM_C0000, kicks & 1 ? PAM_PCI : PAM_RAM);
        g_usleep(1000);
    }
    qpci_config_writeb(host, PAM_C0000, PAM_PCI);
    g_test_message("vector 1 after %d memory map changes", kicks);
    g_assert_cmphex(msi_word(&f, 1), ==, 0x5a01);
    r = get_rec(&f, PAGE2_GPA, 5);
    g_assert_cmpuint(r.overflows, >, 0);
    g_assert_cmpuint(r.flags & PVPERF_SLOT_SAMPLING, !=, 0);
    g_assert_cmphex(pending_bits(&f, PAGE2_GPA), ==, 1ull << 5);
    /* more kicks, more overflows: none of them reach vCPU 0 */
    for (int i = 0; i < 20; i++) {
        qpci_config_writeb(host, PAM_C0000, i & 1 ? PAM_PCI : PAM_RAM);
        g_usleep(1000);
    }
    settle(&f);
    g_assert_cmpuint(get_rec(&f, PAGE2_GPA, 5).overflows, >, r.overflows);
    g_assert_cmphex(msi_word(&f, 0), ==, 0);
    g_assert_cmphex(pending_bits(&f, PAGE_GPA), ==, 0);
    g_free(host);
    fixture_stop(&f);
}

/*
 * ACK_OVERFLOW clears exactly the bits of its mask; a bad mask changes
 * nothing; CLOSE clears the closed slot's bit.
 */
static void test_sample_ack(void)
{
    g_autofree char *args = g_strdup_printf("-smp 2 %s", spin_args());
    Fixture f;
    uint32_t seq;
    uint64_t both = (1ull << 1) | (1ull << 6);
    Rec r6;

    fixture_start(&f, "slots-per-vcpu=8", args);
    g_assert_cmpuint(set_page(&f, 0, PAGE_GPA), ==, PVPERF_ST_OK);
    g_assert_cmpuint(open_sampling(&f, 0, 1, EV_TASK_CLOCK,
                                   PVPERF_OPEN_ENABLED, 1000000), ==,
                     PVPERF_ST_OK);
    g_assert_cmpuint(open_sampling(&f, 0, 6, EV_TASK_CLOCK,
                                   PVPERF_OPEN_ENABLED, 2000000), ==,
                     PVPERF_ST_OK);
    g_assert_cmpuint(open_slot(&f, 0, 3, EV_CSW, PVPERF_NO_GROUP, 0), ==,
                     PVPERF_ST_OK);
    WAIT_FOR(pending_bits(&f, PAGE_GPA) == both);
    g_assert_cmphex(pending_bits(&f, PAGE_GPA), ==, both);

    /* stop them, so that no overflow pass sets the bits again */
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_DISABLE, 0, both), ==,
                     PVPERF_ST_OK);
    settle(&f);
    seq = header_seq(&f, PAGE_GPA);
    r6 = get_rec(&f, PAGE_GPA, 6);
    settle(&f);
    g_assert_cmpuint(header_seq(&f, PAGE_GPA), ==, seq);
    g_assert_cmpuint(get_rec(&f, PAGE_GPA, 6).overflows, ==, r6.overflows);
    g_assert_cmphex(pending_bits(&f, PAGE_GPA), ==, both);

    /* a mask with a bad bit acts on none: BAD_SLOT, then SLOT_FREE */
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_ACK_OVERFLOW, 0, 1ull << 8), ==,
                     PVPERF_ST_BAD_SLOT);
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_ACK_OVERFLOW, 0,
                              both | (1ull << 63)), ==, PVPERF_ST_BAD_SLOT);
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_ACK_OVERFLOW, 0,
                              both | (1ull << 4)), ==, PVPERF_ST_SLOT_FREE);
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_ACK_OVERFLOW, 1, 1ull << 1), ==,
                     PVPERF_ST_SLOT_FREE);          /* vCPU 1 has no slot 1 */
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_ACK_OVERFLOW, 5, 1ull << 1), ==,
                     PVPERF_ST_BAD_VCPU);
    g_assert_cmphex(pending_bits(&f, PAGE_GPA), ==, both);
    g_assert_cmpuint(header_seq(&f, PAGE_GPA), ==, seq);
    assert_logged(&f, "names slots beyond 8");

    /* bits not set are no error, and an empty mask succeeds */
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_ACK_OVERFLOW, 0, 1ull << 3), ==,
                     PVPERF_ST_OK);
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_ACK_OVERFLOW, 0, 0), ==,
                     PVPERF_ST_OK);
    g_assert_cmphex(pending_bits(&f, PAGE_GPA), ==, both);

    /* slot 1's bit goes, slot 6's stays; the header is written once */
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_ACK_OVERFLOW, PVPERF_VCPU_SELF,
                              1ull << 1), ==, PVPERF_ST_OK);
    g_assert_cmphex(pending_bits(&f, PAGE_GPA), ==, 1ull << 6);
    g_assert_cmpuint(header_seq(&f, PAGE_GPA), ==, seq + 2);
    /* it writes no record */
    g_assert_cmpuint(get_rec(&f, PAGE_GPA, 6).seq, ==, r6.seq);
    g_assert_cmpuint(get_rec(&f, PAGE_GPA, 6).overflows, ==, r6.overflows);
    /* again: nothing to clear */
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_ACK_OVERFLOW, 0, 1ull << 1), ==,
                     PVPERF_ST_OK);
    g_assert_cmphex(pending_bits(&f, PAGE_GPA), ==, 1ull << 6);

    /* CLOSE clears the closed slot's bit, and only that */
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_ENABLE, 0, 1ull << 1), ==,
                     PVPERF_ST_OK);
    WAIT_FOR(pending_bits(&f, PAGE_GPA) == both);
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_DISABLE, 0, 1ull << 1), ==,
                     PVPERF_ST_OK);
    settle(&f);
    g_assert_cmphex(pending_bits(&f, PAGE_GPA), ==, both);
    g_assert_cmpuint(close_slot(&f, 0, 6), ==, PVPERF_ST_OK);
    g_assert_cmphex(pending_bits(&f, PAGE_GPA), ==, 1ull << 1);
    g_assert_cmpuint(close_slot(&f, 0, 1), ==, PVPERF_ST_OK);
    g_assert_cmphex(pending_bits(&f, PAGE_GPA), ==, 0);
    /*
     * reopened (disabled), slot 6 starts with nothing pending and no
     * overflows, and gets none: overflows come only while it is enabled
     */
    g_assert_cmpuint(open_sampling(&f, 0, 6, EV_TASK_CLOCK, 0, 1000000), ==,
                     PVPERF_ST_OK);
    g_assert_cmpuint(get_rec(&f, PAGE_GPA, 6).overflows, ==, 0);
    g_assert_cmphex(pending_bits(&f, PAGE_GPA), ==, 0);
    settle(&f);
    g_assert_cmpuint(get_rec(&f, PAGE_GPA, 6).overflows, ==, 0);
    g_assert_cmphex(pending_bits(&f, PAGE_GPA), ==, 0);
    fixture_stop(&f);
}

/*
 * Overflows of (vCPU 0, @slot), a task-clock slot, per second of its own
 * count, over @ms of real time.
 */
static double overflow_rate(Fixture *f, uint32_t slot, int ms)
{
    Rec a, b;

    g_assert_cmpuint(mask_cmd(f, PVPERF_CMD_READ, 0, 1ull << slot), ==,
                     PVPERF_ST_OK);
    a = get_rec(f, PAGE_GPA, slot);
    g_usleep(ms * 1000);
    g_assert_cmpuint(mask_cmd(f, PVPERF_CMD_READ, 0, 1ull << slot), ==,
                     PVPERF_ST_OK);
    b = get_rec(f, PAGE_GPA, slot);
    g_assert_cmpuint(b.count, >, a.count + 50 * 1000 * 1000ull);
    return (b.overflows - a.overflows) * 1e9 / (b.count - a.count);
}

static void test_sample_set_period(void)
{
    Fixture f;
    double fast, slow;
    uint64_t ovf;
    Rec r;
    Entry both[] = {
        E_SELF(PVPERF_CMD_SET_PERIOD, .slot = 0, .period = 3000000),
        E_SELF(PVPERF_CMD_ACK_OVERFLOW, .mask = 1),
    };
    Entry bad[] = {
        E_SELF(PVPERF_CMD_SET_PERIOD, .slot = 0, .period = 0),
        E_SELF(PVPERF_CMD_ACK_OVERFLOW, .mask = 1),
    };

    fixture_start(&f, "slots-per-vcpu=8", spin_args());
    g_assert_cmpuint(set_page(&f, 0, PAGE_GPA), ==, PVPERF_ST_OK);
    /* OPEN: periods are 1 to 2^63 - 1 */
    g_assert_cmpuint(open_sampling(&f, 0, 0, EV_TASK_CLOCK, 0,
                                   1ull << 63), ==, PVPERF_ST_BAD_ARG);
    g_assert_cmpuint(open_sampling(&f, 0, 0, EV_TASK_CLOCK, 0,
                                   UINT64_MAX), ==, PVPERF_ST_BAD_ARG);
    g_assert_cmpint(open_slots_of(&f), ==, 0);
    g_assert_cmpuint(open_sampling(&f, 0, 0, EV_TASK_CLOCK, 0,
                                   PVPERF_PERIOD_MAX), ==, PVPERF_ST_OK);
    g_assert_cmpuint(get_rec(&f, PAGE_GPA, 0).flags, ==,
                     PVPERF_SLOT_OPEN | PVPERF_SLOT_SAMPLING);
    g_assert_cmpuint(sampling_int(&f, 0, 0, "period"), ==, PVPERF_PERIOD_MAX);
    g_assert_cmpuint(open_slot(&f, 0, 1, EV_CSW, PVPERF_NO_GROUP, 0), ==,
                     PVPERF_ST_OK);
    /* OPEN: BAD_EVENT, then BAD_ARG, then SLOT_BUSY */
    g_assert_cmpuint(open_sampling(&f, 0, 0, 99, 0, 1ull << 63), ==,
                     PVPERF_ST_BAD_EVENT);
    g_assert_cmpuint(open_sampling(&f, 0, 0, EV_TASK_CLOCK, 0, 1ull << 63),
                     ==, PVPERF_ST_BAD_ARG);
    g_assert_cmpuint(open_sampling(&f, 0, 0, EV_TASK_CLOCK, 0, 1000), ==,
                     PVPERF_ST_SLOT_BUSY);
    g_assert_cmpint(open_slots_of(&f), ==, 2);

    /* SET_PERIOD's checks, in the documented order; none changes a thing */
    g_assert_cmpuint(set_period(&f, 0, 0, 0), ==, PVPERF_ST_BAD_ARG);
    g_assert_cmpuint(set_period(&f, 0, 0, 1ull << 63), ==, PVPERF_ST_BAD_ARG);
    g_assert_cmpuint(set_period(&f, 0, 0, UINT64_MAX), ==, PVPERF_ST_BAD_ARG);
    g_assert_cmpuint(set_period(&f, 0, 1, 1000), ==, PVPERF_ST_BAD_ARG);
    g_assert_cmpuint(set_period(&f, 0, 2, 1000), ==, PVPERF_ST_SLOT_FREE);
    g_assert_cmpuint(set_period(&f, 0, 2, 0), ==, PVPERF_ST_BAD_ARG);
    g_assert_cmpuint(set_period(&f, 0, 8, 1000), ==, PVPERF_ST_BAD_SLOT);
    g_assert_cmpuint(set_period(&f, 0, 8, 0), ==, PVPERF_ST_BAD_SLOT);
    g_assert_cmpuint(set_period(&f, 0, 0xffffffff, 1000), ==,
                     PVPERF_ST_BAD_SLOT);
    g_assert_cmpuint(set_period(&f, 7, 0, 1000), ==, PVPERF_ST_BAD_VCPU);
    g_assert_cmpuint(sampling_int(&f, 0, 0, "period"), ==, PVPERF_PERIOD_MAX);
    assert_logged(&f, "periods are 1 to 2^63 - 1");

    /* SET_PERIOD writes no record, and works on a disabled slot */
    r = get_rec(&f, PAGE_GPA, 0);
    g_assert_cmpuint(set_period(&f, 0, 0, 250000), ==, PVPERF_ST_OK);
    g_assert_cmpuint(rd(&f, PVPERF_REG_HOST_ERRNO), ==, 0);
    g_assert_cmpuint(get_rec(&f, PAGE_GPA, 0).seq, ==, r.seq);
    g_assert_cmpuint(sampling_int(&f, 0, 0, "period"), ==, 250000);

    /* it takes effect: 250 us of task-clock, then 10 ms (40 times fewer) */
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_ENABLE, 0, 1), ==,
                     PVPERF_ST_OK);
    fast = overflow_rate(&f, 0, 300);
    g_assert_cmpuint(set_period(&f, 0, 0, 10000000), ==, PVPERF_ST_OK);
    settle(&f);
    slow = overflow_rate(&f, 0, 500);
    g_test_message("overflows per second of task-clock: %.0f at 250 us, "
                   "%.1f at 10 ms", fast, slow);
    g_assert_cmpfloat(fast, >, 4000 * 0.5);
    g_assert_cmpfloat(fast, <, 4000 * 1.3);
    g_assert_cmpfloat(slow, >, 100 * 0.5);
    g_assert_cmpfloat(slow, <, 100 * 1.3);
    g_assert_cmpfloat(fast, >, 20 * slow);

    /* the next overflow comes PERIOD events after the command: never */
    g_assert_cmpuint(set_period(&f, 0, 0, PVPERF_PERIOD_MAX), ==,
                     PVPERF_ST_OK);
    settle(&f);
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_ACK_OVERFLOW, 0, 1), ==,
                     PVPERF_ST_OK);
    ovf = get_rec(&f, PAGE_GPA, 0).overflows;
    g_usleep(300 * 1000);
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_READ, 0, 1), ==, PVPERF_ST_OK);
    g_assert_cmpuint(get_rec(&f, PAGE_GPA, 0).overflows, ==, ovf);
    g_assert_cmphex(pending_bits(&f, PAGE_GPA), ==, 0);
    /* and back to 1 ms: overflowing again */
    g_assert_cmpuint(set_period(&f, 0, 0, 1000000), ==, PVPERF_ST_OK);
    WAIT_FOR(pending_bits(&f, PAGE_GPA) & 1);
    g_assert_cmphex(pending_bits(&f, PAGE_GPA), ==, 1);
    g_assert_cmpuint(get_rec(&f, PAGE_GPA, 0).overflows, >, ovf);

    /* a driver's handler: SET_PERIOD and ACK_OVERFLOW in one RUN */
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_DISABLE, 0, 1), ==,
                     PVPERF_ST_OK);
    settle(&f);
    g_assert_cmphex(pending_bits(&f, PAGE_GPA), ==, 1);
    g_assert_cmpuint(set_block(&f, 0, BLOCK_GPA), ==, PVPERF_ST_OK);
    block_write(&f, BLOCK_GPA, bad, ARRAY_SIZE(bad));
    run_io(&f);
    g_assert_cmpuint(blk_status(&f, BLOCK_GPA), ==, PVPERF_ST_BAD_ARG);
    g_assert_cmpuint(ent_status(&f, BLOCK_GPA, 1), ==, PVPERF_ST_NOT_RUN);
    g_assert_cmphex(pending_bits(&f, PAGE_GPA), ==, 1);
    g_assert_cmpuint(sampling_int(&f, 0, 0, "period"), ==, 1000000);
    block_write(&f, BLOCK_GPA, both, ARRAY_SIZE(both));
    run_io(&f);
    g_assert_cmpuint(blk_status(&f, BLOCK_GPA), ==, PVPERF_ST_OK);
    g_assert_cmpuint(blk_done(&f, BLOCK_GPA), ==, 2);
    g_assert_cmpuint(ent_status(&f, BLOCK_GPA, 0), ==, PVPERF_ST_OK);
    g_assert_cmpuint(ent_status(&f, BLOCK_GPA, 1), ==, PVPERF_ST_OK);
    g_assert_cmphex(pending_bits(&f, PAGE_GPA), ==, 0);
    g_assert_cmpuint(sampling_int(&f, 0, 0, "period"), ==, 3000000);
    fixture_stop(&f);
}

/* max-sample-rate: the register, the limits, the bounds at realize */
static void test_sample_rate_property(void)
{
    Fixture f;
    QDict *info;

    fixture_start(&f, "max-sample-rate=1000000", "-m 64");
    g_assert_cmpuint(rd(&f, PVPERF_REG_MAX_SAMPLE_RATE), ==, 1000000);
    info = query_one(f.qts);
    g_assert_cmpint(qdict_get_int(qdict_get_qdict(info, "limits"),
                                  "max-sample-rate"), ==, 1000000);
    qobject_unref(info);
    expect_realize_error(f.qts, "'max-sample-rate': 99",
                         "max-sample-rate must be 100 to 1000000");
    expect_realize_error(f.qts, "'max-sample-rate': 1000001",
                         "max-sample-rate must be 100 to 1000000");
    expect_realize_error(f.qts, "'max-sample-rate': 0",
                         "max-sample-rate must be");
    qtest_qmp_assert_success(f.qts, "{'execute': 'device_add', 'arguments': "
                             "{'driver': 'pvperf', 'id': 'low', "
                             "'max-sample-rate': 100}}");
    fixture_stop(&f);
}

/*
 * max-sample-rate=100, the minimum, against a task-clock period of 10 us
 * (100,000 overflows per second unthrottled): the device throttles the
 * slot and says so in the record and in query-pvperf.
 */
static void test_sample_throttle(void)
{
    Fixture f;
    QDict *info, *sl;
    bool seen_throttled = false, seen_query = false;
    Rec r;

    fixture_start(&f, "max-sample-rate=100", spin_args());
    g_assert_cmpuint(rd(&f, PVPERF_REG_MAX_SAMPLE_RATE), ==, 100);
    qpci_msix_enable(f.dev);
    msix_to_ram(&f, 0);
    g_assert_cmpuint(set_page(&f, 0, PAGE_GPA), ==, PVPERF_ST_OK);
    /* the limit is the vCPU's: a slot that never overflows is held too */
    g_assert_cmpuint(open_sampling(&f, 0, 5, EV_TASK_CLOCK,
                                   PVPERF_OPEN_ENABLED, 100000000000ull), ==,
                     PVPERF_ST_OK);
    /* ... but not a counting slot */
    g_assert_cmpuint(open_slot(&f, 0, 6, EV_CSW, PVPERF_NO_GROUP,
                               PVPERF_OPEN_ENABLED), ==, PVPERF_ST_OK);
    g_assert_cmpuint(open_sampling(&f, 0, 2, EV_TASK_CLOCK,
                                   PVPERF_OPEN_ENABLED, 10000), ==,
                     PVPERF_ST_OK);
    /* THROTTLED lasts to the end of a 10 ms window: poll every 1 ms */
    for (int i = 0; i < 2000 && !(seen_throttled && seen_query); i++) {
        r = get_rec(&f, PAGE_GPA, 2);
        if (r.flags & PVPERF_SLOT_THROTTLED) {
            /* the guest's ENABLED does not change */
            g_assert_cmphex(r.flags, ==, PVPERF_SLOT_OPEN |
                            PVPERF_SLOT_ENABLED | PVPERF_SLOT_SAMPLING |
                            PVPERF_SLOT_THROTTLED);
            g_assert_cmpuint(r.throttles, >, 0);
            seen_throttled = true;
        }
        if (!seen_query && i % 10 == 0) {
            info = query_one(f.qts);
            sl = qdict_get_qdict(slot_of(info, 0, 2), "sampling");
            if (qdict_get_bool(sl, "throttled")) {
                g_assert_cmpint(qdict_get_int(sl, "throttles"), >, 0);
                g_assert_cmpint(stat_of(info, "throttles"), >=,
                                qdict_get_int(sl, "throttles"));
                seen_query = true;
            }
            qobject_unref(info);
        }
        g_usleep(1000);
    }
    g_assert_true(seen_throttled);
    g_assert_true(seen_query);
    /* ENABLE of a throttled slot succeeds; it goes on being throttled */
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_ENABLE, 0, 1ull << 2), ==,
                     PVPERF_ST_OK);
    r = get_rec(&f, PAGE_GPA, 2);
    WAIT_FOR(get_rec(&f, PAGE_GPA, 2).throttles > r.throttles + 5);
    g_assert_cmpuint(get_rec(&f, PAGE_GPA, 2).throttles, >,
                     r.throttles + 5);
    g_assert_cmpint(sampling_int(&f, 0, 2, "throttles"), >, 5);
    r = get_rec(&f, PAGE_GPA, 5);
    g_assert_cmpuint(r.overflows, ==, 0);
    g_assert_cmpuint(r.throttles, >, 5);
    g_assert_cmpint(sampling_int(&f, 0, 5, "throttles"), >, 5);
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_READ, 0, 1ull << 6), ==,
                     PVPERF_ST_OK);
    g_assert_cmphex(get_rec(&f, PAGE_GPA, 6).flags, ==,
                    PVPERF_SLOT_OPEN | PVPERF_SLOT_ENABLED);
    g_assert_cmpuint(get_rec(&f, PAGE_GPA, 6).throttles, ==, 0);

    /* disabled: when the window ends, THROTTLED goes, and stays gone */
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_DISABLE, 0, 1ull << 2), ==,
                     PVPERF_ST_OK);
    WAIT_FOR(!(get_rec(&f, PAGE_GPA, 2).flags & PVPERF_SLOT_THROTTLED));
    settle(&f);
    r = get_rec(&f, PAGE_GPA, 2);
    g_assert_cmphex(r.flags, ==, PVPERF_SLOT_OPEN | PVPERF_SLOT_SAMPLING);
    g_assert_false(sampling_bool(&f, 0, 2, "throttled"));
    /* and the disabled slot neither overflows nor gets throttled */
    settle(&f);
    g_assert_cmpuint(get_rec(&f, PAGE_GPA, 2).overflows, ==, r.overflows);
    g_assert_cmpuint(get_rec(&f, PAGE_GPA, 2).throttles, ==, r.throttles);
    fixture_stop(&f);
}

/*
 * Overflows per second of vCPU 0 with @nr task-clock slots of a 10 us
 * period on a device with max-sample-rate=@rate, measured over 1 s of real
 * time (vCPU 0 spins all along).
 */
static double throttled_rate(uint32_t rate, uint32_t nr)
{
    g_autofree char *props = g_strdup_printf("max-sample-rate=%u", rate);
    Fixture f;
    int64_t ovf0, ovf1, t0, t1;
    QDict *info;

    fixture_start(&f, props, spin_args());
    qpci_msix_enable(f.dev);
    msix_to_ram(&f, 0);
    g_assert_cmpuint(set_page(&f, 0, PAGE_GPA), ==, PVPERF_ST_OK);
    for (uint32_t n = 0; n < nr; n++) {
        g_assert_cmpuint(open_sampling(&f, 0, n, EV_TASK_CLOCK,
                                       PVPERF_OPEN_ENABLED, 10000), ==,
                         PVPERF_ST_OK);
    }
    WAIT_FOR(stat_now(&f, "throttles") > 0);
    t0 = g_get_monotonic_time();
    ovf0 = stat_now(&f, "overflows");
    g_usleep(3 * 1000 * 1000);
    info = query_one(f.qts);
    t1 = g_get_monotonic_time();
    ovf1 = stat_of(info, "overflows");
    g_test_message("max-sample-rate=%u, %u slot%s: %" PRId64 " overflows in %"
                   PRId64 " ms (%" PRId64 " throttles in all)", rate, nr,
                   nr > 1 ? "s" : "", ovf1 - ovf0, (t1 - t0) / 1000,
                   stat_of(info, "throttles"));
    qobject_unref(info);
    g_assert_cmpint(ovf1, >, ovf0);           /* it does sample */
    fixture_stop(&f);
    return (ovf1 - ovf0) * 1e6 / (t1 - t0);
}

/*
 * docs/pvperf.rst, "Throttling and limits": over time no guest gets more
 * than MAX_SAMPLE_RATE overflows per second on a vCPU, whatever its
 * periods and however many slots: the overflows a window has beyond the
 * quota (found late by the main loop, or lost by a full ring buffer) hold
 * the slots for as many windows as they take at the quota. Once this let
 * 280 to 350 a second through with one slot and 7,300 with eight (the
 * excess was forgotten at each window's end). Measured over 3 s; the
 * bound, twice the limit, leaves room for the bursts the host kernel
 * takes before the device sees them (eight slots with a 10 us period
 * overflow 800,000 times a second: about 80 in the main loop's reaction
 * time), which the holds after them pay for.
 */
static void test_sample_throttle_rate(void)
{
    double one, eight;

    one = throttled_rate(100, 1);
    eight = throttled_rate(100, 8);

    g_assert_cmpfloat(eight, <=, 200);
    g_assert_cmpfloat(one, <=, 200);
}

/*
 * Overflows the host's ring buffer cannot hold are counted as lost, and
 * among the overflows. The buffer is one data page (a few hundred
 * overflow records); QEMU's main loop drains it, so a main loop kept busy
 * by a long QMP command (pmemsave of 512 MiB of guest memory to
 * /dev/null, 70 to 160 ms here) while vCPU 0 spins with a 10 us
 * task-clock period makes it overflow.
 */
static void test_sample_lost(void)
{
    g_autofree char *args = g_strdup_printf("%s -m 512", spin_args());
    Fixture f;
    int64_t t0, t1;
    Rec r;

    /*
     * The highest rate limit: 100,000 overflows a second never make the
     * device hold the slot, which would keep the ring empty meanwhile
     */
    fixture_start(&f, "max-sample-rate=1000000", args);
    g_assert_cmpuint(set_page(&f, 0, PAGE_GPA), ==, PVPERF_ST_OK);
    g_assert_cmpuint(open_sampling(&f, 0, 0, EV_TASK_CLOCK,
                                   PVPERF_OPEN_ENABLED, 10000), ==,
                     PVPERF_ST_OK);
    for (int i = 0; i < 5 && get_rec(&f, PAGE_GPA, 0).lost == 0; i++) {
        t0 = g_get_monotonic_time();
        qtest_qmp_assert_success(f.qts, "{'execute': 'pmemsave', "
                                 "'arguments': {'val': 0, 'size': %" PRIu64
                                 ", 'filename': '/dev/null'}}",
                                 (uint64_t)512 * MiB);
        t1 = g_get_monotonic_time();
        g_test_message("main loop busy for %" PRId64 " ms", (t1 - t0) / 1000);
        WAIT_FOR(get_rec(&f, PAGE_GPA, 0).lost > 0);
    }
    /* and it goes on: the next record reports what was lost */
    r = get_rec(&f, PAGE_GPA, 0);
    WAIT_FOR(get_rec(&f, PAGE_GPA, 0).overflows > r.overflows + 1000);
    g_assert_cmpuint(get_rec(&f, PAGE_GPA, 0).overflows, >,
                     r.overflows + 1000);
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_DISABLE, 0, 1), ==,
                     PVPERF_ST_OK);
    settle(&f);
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_READ, 0, 1), ==, PVPERF_ST_OK);
    r = get_rec(&f, PAGE_GPA, 0);
    g_test_message("%" PRIu64 " overflows, %u lost, %u throttles",
                   r.overflows, r.lost, r.throttles);
    g_assert_cmpuint(r.lost, >, 0);
    g_assert_cmpuint(r.lost, <, r.overflows);      /* some got through */
    g_assert_cmpuint(sampling_int(&f, 0, 0, "lost"), ==, r.lost);
    g_assert_cmpuint(sampling_int(&f, 0, 0, "overflows"), ==, r.overflows);
    /* overflows count events: lost ones included, at most one a period */
    g_assert_cmpuint(r.overflows, <=, r.count / 10000 + 1);
    fixture_stop(&f);
}

/*
 * Keep QEMU's main loop busy (pmemsave of 512 MiB to /dev/null) while
 * sampling slot @n of vCPU 0 overflows and nothing drains its ring
 * buffer, starting when the slot is not held (most often). Returns the
 * slot's lost overflows after.
 */
static int64_t lost_after_busy(Fixture *f, uint32_t n)
{
    int64_t o0, t0, lost;

    for (int i = 0; i < 1000 && sampling_bool(f, 0, n, "throttled"); i++) {
        g_usleep(1000);
    }
    o0 = sampling_int(f, 0, n, "overflows");
    t0 = g_get_monotonic_time();
    qtest_qmp_assert_success(f->qts, "{'execute': 'pmemsave', "
                             "'arguments': {'val': 0, 'size': %" PRIu64
                             ", 'filename': '/dev/null'}}",
                             (uint64_t)512 * MiB);
    settle(f);
    lost = sampling_int(f, 0, n, "lost");
    g_test_message("slot %u: %" PRId64 " overflows (%" PRId64 " lost in "
                   "all) in %" PRId64 " ms, the main loop busy", n,
                   sampling_int(f, 0, n, "overflows") - o0, lost,
                   (g_get_monotonic_time() - t0) / 1000);
    return lost;
}

/*
 * docs/pvperf.rst, "Throttling and limits": the host kernel enforces each
 * sampling slot's overflow budget, a quota (200 at the default rate)
 * between two drains, so however long the main loop does not drain, a
 * ring buffer (256 records) never fills: nothing is lost. Before budgets,
 * a slot below the rate limit (10,000 a second here) took all it could
 * while the main loop was busy, 1,700 in 170 ms, most of them lost, and a
 * hold paid for them after (a 3-s measure once saw 2.3 times the limit,
 * another none at all). For a lone slot, and for a sampling member that
 * its counting leader's ENABLE starts (never the group-wide ioctl, which
 * would start it without a budget).
 */
static void test_sample_budget(void)
{
    g_autofree char *args = g_strdup_printf("%s -m 512", spin_args());
    Fixture f;
    int64_t ovf;

    fixture_start(&f, NULL, args);
    g_assert_cmpuint(set_page(&f, 0, PAGE_GPA), ==, PVPERF_ST_OK);
    g_assert_cmpuint(open_sampling(&f, 0, 0, EV_TASK_CLOCK,
                                   PVPERF_OPEN_ENABLED, 100000), ==,
                     PVPERF_ST_OK);
    WAIT_FOR(sampling_int(&f, 0, 0, "overflows") > 100);
    for (int i = 0; i < 3; i++) {
        g_assert_cmpint(lost_after_busy(&f, 0), ==, 0);
    }
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_DISABLE, 0, 1), ==,
                     PVPERF_ST_OK);

    /* a sampling member of a counting leader, started by its ENABLE */
    g_assert_cmpuint(open_slot(&f, 0, 1, EV_CSW, PVPERF_NO_GROUP, 0), ==,
                     PVPERF_ST_OK);
    open_period(&f, 100000);
    g_assert_cmpuint(open_slot(&f, 0, 2, EV_TASK_CLOCK, 1, 0), ==,
                     PVPERF_ST_OK);
    open_period(&f, 0);
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_ENABLE, 0, 1 << 1), ==,
                     PVPERF_ST_OK);
    WAIT_FOR(sampling_int(&f, 0, 2, "overflows") > 100);
    for (int i = 0; i < 2; i++) {
        g_assert_cmpint(lost_after_busy(&f, 2), ==, 0);
    }
    /*
     * ... and it takes what its period gives (10,000 a second, less
     * under a slow host): a member re-armed alone while its leader ran
     * once stayed off until the vCPU thread was next scheduled in (a few
     * overflows a second)
     */
    ovf = sampling_int(&f, 0, 2, "overflows");
    g_usleep(1000 * 1000);
    ovf = sampling_int(&f, 0, 2, "overflows") - ovf;
    g_test_message("slot 2: %" PRId64 " overflows in 1 s", ovf);
    g_assert_cmpint(ovf, >=, 1000);
    /* and the leader counts on: the group runs */
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_READ, 0, 1 << 1), ==,
                     PVPERF_ST_OK);
    g_assert_cmpuint(get_rec(&f, PAGE_GPA, 1).time_running, >, 0);
    fixture_stop(&f);
}

/*
 * ACPI PCI unplug, as qpci_unplug_acpi_device_test() does, on a machine
 * whose vCPU 0 spins. DEVICE_DELETED comes when the device is finalized,
 * after an RCU grace period; a TCG vCPU that spins in one translation
 * block stays in its RCU read section until it is kicked, so the wait
 * kicks it with memory map changes (i440FX PAM, 0xc0000 RAM <-> PCI).
 */
static void unplug_spinning(Fixture *f, const char *id, uint8_t slot)
{
    QPCIDevice *host = qpci_device_find(f->bus, QPCI_DEVFN(0, 0));
    QDict *ev = NULL;

    g_assert(host);
    qtest_qmp_device_del_send(f->qts, id);
    qtest_outl(f->qts, 0xae00 + 8, 1 << slot);    /* PCI hotplug: eject */
    for (int i = 0; i < 500 && !ev; i++) {
        qpci_config_writeb(host, PAM_C0000, i & 1 ? PAM_PCI : PAM_RAM);
        qtest_qmp_assert_success(f->qts, "{'execute': 'query-status'}");
        ev = qtest_qmp_event_ref(f->qts, "DEVICE_DELETED");
        if (!ev) {
            g_usleep(10 * 1000);
        }
    }
    g_assert_nonnull(ev);
    g_assert_cmpstr(qdict_get_str(qdict_get_qdict(ev, "data"), "device"), ==,
                    id);
    qobject_unref(ev);
    qpci_config_writeb(host, PAM_C0000, PAM_PCI);
    g_free(host);
}

/*
 * A doorbell that reaches the device after it was unrealized. Under KVM a
 * vCPU resolves the target of its MMIO or PIO exit in the flatview it
 * holds under RCU, and only then takes the BQL (physmem.c:
 * flatview_write() translates, flatview_write_continue_step() locks); if
 * another vCPU's eject (PIIX4's B0EJ, a PCIe slot power-off, an SHPC slot
 * command) unrealized the device meanwhile, the handler still runs, on a
 * device whose vCPU table and run buffer pvperf_exit() freed. No thread
 * is needed to get there: one qtest write that starts at a pci-bridge's
 * SHPC command register and runs on into pvperf's DOORBELL behind that
 * bridge is dispatched part by part through the flatview it started
 * with, as the blocked vCPU's is. Its first part powers the slot off,
 * which unplugs pvperf; its last rings pvperf's doorbell. Every command
 * must then be ignored, logged, and leave QEMU running.
 */
#define EJECT_BRIDGE_DEVFN      QPCI_DEVFN(5, 0)
#define EJECT_WINDOW            0xe8000000u     /* the bridge's memory window */
#define EJECT_SHPC              (EJECT_WINDOW - 0x100)  /* its SHPC BAR */
#define EJECT_SHPC_CMD          0x14    /* SHPC_CMD_CODE, then SHPC_CMD_TRGT */

static void eject_cfg_writel(QTestState *qts, uint8_t bus, uint8_t devfn,
                             uint8_t off, uint32_t val)
{
    /* type 1 configuration cycles reach bus 1, which libqos does not scan */
    qtest_outl(qts, 0xcf8, 0x80000000u | bus << 16 | devfn << 8 | off);
    qtest_outl(qts, 0xcfc, val);
}

static void doorbell_after_eject(uint32_t cmd)
{
    g_autofree char *log_path = NULL;
    g_autofree char *text = NULL;
    g_autofree uint8_t *buf = NULL;
    uint64_t start = EJECT_SHPC + EJECT_SHPC_CMD;
    uint64_t len = EJECT_WINDOW + PVPERF_REG_DOORBELL + 4 - start;
    QTestState *qts;
    QPCIBus *bus;
    QPCIDevice *br;
    QDict *ev = NULL;
    int fd;

    fd = g_file_open_tmp("pvperf-test-XXXXXX.log", &log_path, NULL);
    g_assert(fd >= 0);
    close(fd);
    qts = qtest_initf("-d guest_errors -D %s "
                      "-global PIIX4_PM.acpi-pci-hotplug-with-bridge-support="
                      "off -device pci-bridge,id=br,chassis_nr=1,shpc=on,"
                      "addr=05.0 -device pvperf,id=pvb,bus=br,addr=01.0,"
                      "events=task-clock", log_path);
    bus = qpci_new_pc(qts, NULL);
    br = qpci_device_find(bus, EJECT_BRIDGE_DEVFN);
    g_assert(br);
    /* bus 1 behind the bridge, a 1 MiB window, the SHPC BAR below it */
    qpci_config_writeb(br, PCI_PRIMARY_BUS, 0);
    qpci_config_writeb(br, PCI_SECONDARY_BUS, 1);
    qpci_config_writeb(br, PCI_SUBORDINATE_BUS, 1);
    qpci_config_writew(br, PCI_MEMORY_BASE, EJECT_WINDOW >> 16);
    qpci_config_writew(br, PCI_MEMORY_LIMIT, EJECT_WINDOW >> 16);
    qpci_config_writel(br, PCI_BASE_ADDRESS_0, EJECT_SHPC);
    qpci_config_writel(br, PCI_BASE_ADDRESS_1, 0);
    qpci_config_writew(br, PCI_COMMAND,
                       PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    eject_cfg_writel(qts, 1, QPCI_DEVFN(1, 0), PCI_BASE_ADDRESS_0,
                     EJECT_WINDOW);
    eject_cfg_writel(qts, 1, QPCI_DEVFN(1, 0), PCI_COMMAND,
                     PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    g_assert_cmphex(qtest_readl(qts, EJECT_WINDOW + PVPERF_REG_MAGIC), ==,
                    PVPERF_MAGIC);

    /* SHPC: slot disabled, power LED off, target 1 (PCI slot 1); DOORBELL */
    buf = g_malloc0(len);
    buf[0] = 0x0f;
    buf[1] = 1;
    stl_le_p(buf + len - 4, cmd);
    qtest_memwrite(qts, start, buf, len);

    /*
     * QEMU is alive, the device is gone (DEVICE_DELETED comes when the
     * object is finalized: after RCU frees the old flatview, which held
     * it), and it said what it ignored
     */
    for (int i = 0; i < 500 && !ev; i++) {
        qtest_qmp_assert_success(qts, "{'execute': 'query-status'}");
        ev = qtest_qmp_event_ref(qts, "DEVICE_DELETED");
        if (!ev) {
            g_usleep(10 * 1000);
        }
    }
    g_assert_nonnull(ev);
    g_assert_cmpstr(qdict_get_str(qdict_get_qdict(ev, "data"), "device"), ==,
                    "pvb");
    qobject_unref(ev);
    g_assert_cmphex(qtest_readl(qts, EJECT_WINDOW + PVPERF_REG_MAGIC), !=,
                    PVPERF_MAGIC);
    g_assert(g_file_get_contents(log_path, &text, NULL, NULL));
    if (!strstr(text, "reached the device after its removal")) {
        g_test_message("command 0x%x; log was:\n%s", cmd, text);
    }
    g_assert_nonnull(strstr(text, "reached the device after its removal"));
    g_free(br);
    qpci_free_pc(bus);
    qtest_quit(qts);
    unlink(log_path);
}

static void test_doorbell_after_eject(void)
{
    /* every command, and one that is none (PVPERF_CMD_SET_PERIOD + 1) */
    for (uint32_t cmd = PVPERF_CMD_NOP; cmd <= PVPERF_CMD_SET_PERIOD + 1;
         cmd++) {
        doorbell_after_eject(cmd);
    }
}

/*
 * Sampling slots hold an fd and a mapped ring buffer each; every way of
 * getting rid of them releases both, overflows pending or not.
 */
static void test_sample_cleanup(void)
{
    Fixture f;
    pid_t pid;
    int base_fds, base_maps, fds, maps;
    QPCIDevice *dev2;
    QPCIBar bar2;

    fixture_start(&f, NULL, spin_args());
    pid = qtest_pid(f.qts);
    base_fds = count_fds(pid);
    base_maps = count_perf_maps(pid);
    qpci_msix_enable(f.dev);
    msix_to_ram(&f, 0);
    g_assert_cmpuint(set_page(&f, 0, PAGE_GPA), ==, PVPERF_ST_OK);

    /* 50 at once, overflowing (and throttled: 50,000 a second) */
    for (uint32_t n = 0; n < 50; n++) {
        g_assert_cmpuint(open_sampling(&f, 0, n, EV_TASK_CLOCK,
                                       PVPERF_OPEN_ENABLED, 1000000), ==,
                         PVPERF_ST_OK);
    }
    /* the slots, and the watch on vCPU 0's thread */
    g_assert_cmpint(count_fds(pid), ==, base_fds + 50 + 1);
    g_assert_cmpint(count_perf_maps(pid), ==, base_maps + 50 + 1);
    WAIT_FOR(msi_word(&f, 0) == 0x5a00);
    g_assert_cmphex(msi_word(&f, 0), ==, 0x5a00);
    for (uint32_t n = 0; n < 50; n++) {
        g_assert_cmpuint(close_slot(&f, 0, n), ==, PVPERF_ST_OK);
    }
    g_assert_cmpint(count_fds(pid), ==, base_fds + 1);
    g_assert_cmpint(count_perf_maps(pid), ==, base_maps + 1);
    g_assert_cmphex(pending_bits(&f, PAGE_GPA), ==, 0);
    /* 50 times one */
    for (uint32_t n = 0; n < 50; n++) {
        g_assert_cmpuint(open_sampling(&f, 0, n, EV_TASK_CLOCK,
                                       PVPERF_OPEN_ENABLED, 100000), ==,
                         PVPERF_ST_OK);
        g_usleep(1000);
        g_assert_cmpuint(close_slot(&f, 0, n), ==, PVPERF_ST_OK);
    }
    g_assert_cmpint(count_fds(pid), ==, base_fds + 1);
    g_assert_cmpint(count_perf_maps(pid), ==, base_maps + 1);

    /* RESET with overflows pending: all gone, and nothing is signalled */
    for (uint32_t n = 0; n < 4; n++) {
        g_assert_cmpuint(open_sampling(&f, 0, n, EV_TASK_CLOCK,
                                       PVPERF_OPEN_ENABLED, 1000000), ==,
                         PVPERF_ST_OK);
    }
    WAIT_FOR(pending_bits(&f, PAGE_GPA) == 0xf);
    g_assert_cmphex(pending_bits(&f, PAGE_GPA), ==, 0xf);
    g_assert_cmpuint(ring(&f, PVPERF_CMD_RESET), ==, PVPERF_ST_OK);
    g_assert_cmpint(count_fds(pid), ==, base_fds);
    g_assert_cmpint(count_perf_maps(pid), ==, base_maps);
    qtest_writel(f.qts, MSI_GPA, 0);
    settle(&f);
    g_assert_cmphex(msi_word(&f, 0), ==, 0);
    /* a page registered again shows no overflow state */
    qtest_memset(f.qts, PAGE_GPA, 0xff, PVPERF_PAGE_SIZE);
    g_assert_cmpuint(set_page(&f, 0, PAGE_GPA), ==, PVPERF_ST_OK);
    g_assert_cmphex(pending_bits(&f, PAGE_GPA), ==, 0);
    g_assert_cmpuint(get_rec(&f, PAGE_GPA, 0).overflows, ==, 0);

    /* a device reset */
    for (uint32_t n = 0; n < 4; n++) {
        g_assert_cmpuint(open_sampling(&f, 0, n, EV_TASK_CLOCK,
                                       PVPERF_OPEN_ENABLED, 1000000), ==,
                         PVPERF_ST_OK);
    }
    WAIT_FOR(pending_bits(&f, PAGE_GPA) == 0xf);
    g_assert_cmphex(pending_bits(&f, PAGE_GPA), ==, 0xf);
    qtest_qmp_assert_success(f.qts, "{'execute': 'system_reset'}");
    qtest_qmp_eventwait(f.qts, "RESET");
    g_assert_cmpint(count_fds(pid), ==, base_fds);
    g_assert_cmpint(count_perf_maps(pid), ==, base_maps);
    fixture_remap(&f);
    qtest_memset(f.qts, PAGE_GPA, 0xff, PVPERF_PAGE_SIZE);
    g_assert_cmpuint(set_page(&f, 0, PAGE_GPA), ==, PVPERF_ST_OK);
    g_assert_cmphex(pending_bits(&f, PAGE_GPA), ==, 0);
    g_assert_cmpuint(ring(&f, PVPERF_CMD_RESET), ==, PVPERF_ST_OK);

    /* device_del of a second device with sampling slots open */
    qtest_qmp_assert_success(f.qts, "{'execute': 'device_add', 'arguments': "
                             "{'driver': 'pvperf', 'id': 'pv2', "
                             "'addr': '05.0', 'events': 'task-clock'}}");
    dev2 = qpci_device_find(f.bus, QPCI_DEVFN(5, 0));
    g_assert(dev2);
    qpci_device_enable(dev2);
    bar2 = qpci_iomap(dev2, PVPERF_MMIO_BAR, NULL);
    fds = count_fds(pid);
    maps = count_perf_maps(pid);
    qpci_io_writel(dev2, bar2, PVPERF_REG_CMD_VCPU, 0);
    qpci_io_writel(dev2, bar2, PVPERF_REG_CMD_ADDR_LO, PAGE2_GPA);
    qpci_io_writel(dev2, bar2, PVPERF_REG_DOORBELL, PVPERF_CMD_SET_PAGE);
    g_assert_cmpuint(qpci_io_readl(dev2, bar2, PVPERF_REG_STATUS), ==,
                     PVPERF_ST_OK);
    for (uint32_t n = 0; n < 5; n++) {
        qpci_io_writel(dev2, bar2, PVPERF_REG_CMD_SLOT, n);
        qpci_io_writel(dev2, bar2, PVPERF_REG_CMD_PERIOD_LO, 1000000);
        qpci_io_writel(dev2, bar2, PVPERF_REG_CMD_FLAGS, PVPERF_OPEN_ENABLED);
        qpci_io_writel(dev2, bar2, PVPERF_REG_DOORBELL, PVPERF_CMD_OPEN);
        g_assert_cmpuint(qpci_io_readl(dev2, bar2, PVPERF_REG_STATUS), ==,
                         PVPERF_ST_OK);
    }
    g_assert_cmpint(count_fds(pid), ==, fds + 5 + 1);
    g_assert_cmpint(count_perf_maps(pid), ==, maps + 5 + 1);
    WAIT_FOR(pending_bits(&f, PAGE2_GPA) == 0x1f);
    g_assert_cmphex(pending_bits(&f, PAGE2_GPA), ==, 0x1f);
    unplug_spinning(&f, "pv2", 5);
    g_assert_cmpint(count_fds(pid), ==, base_fds);
    g_assert_cmpint(count_perf_maps(pid), ==, base_maps);
    g_free(dev2);
    check_still_works(&f);
    fixture_stop(&f);
}

/*
 * No message while MSI-X is off; a masked vector sets its PBA bit instead,
 * and unmasking it delivers the message. The overflows are counted and
 * overflow_pending is set either way.
 */
static void test_sample_msix_off(void)
{
    Fixture f;
    uint8_t cap;
    uint16_t ctrl;
    int64_t irqs;

    fixture_start(&f, NULL, spin_args());
    cap = qpci_find_capability(f.dev, PCI_CAP_ID_MSIX, 0);
    qpci_msix_enable(f.dev);
    msix_to_ram(&f, 0);
    ctrl = qpci_config_readw(f.dev, cap + PCI_MSIX_FLAGS);
    qpci_config_writew(f.dev, cap + PCI_MSIX_FLAGS,
                       ctrl & ~PCI_MSIX_FLAGS_ENABLE);
    g_assert_cmpuint(set_page(&f, 0, PAGE_GPA), ==, PVPERF_ST_OK);
    g_assert_cmpuint(open_sampling(&f, 0, 0, EV_TASK_CLOCK,
                                   PVPERF_OPEN_ENABLED, 1000000), ==,
                     PVPERF_ST_OK);

    /* MSI-X disabled */
    WAIT_FOR(get_rec(&f, PAGE_GPA, 0).overflows >= 20);
    g_assert_cmpuint(get_rec(&f, PAGE_GPA, 0).overflows, >=, 20);
    g_assert_cmphex(pending_bits(&f, PAGE_GPA), ==, 1);
    g_assert_cmphex(msi_word(&f, 0), ==, 0);
    g_assert_false(qpci_msix_pending(f.dev, 0));
    g_assert_cmpint(stat_now(&f, "interrupts"), ==, 0);

    /*
     * enabled, the vector masked: pending in the PBA, nothing written.
     * The pass that sets the PBA bit wrote overflow_pending before it, and
     * nothing clears that after the ACK here.
     */
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_ACK_OVERFLOW, 0, 1), ==,
                     PVPERF_ST_OK);
    msix_mask(&f, 0, true);
    qpci_config_writew(f.dev, cap + PCI_MSIX_FLAGS,
                       ctrl | PCI_MSIX_FLAGS_ENABLE);
    WAIT_FOR(qpci_msix_pending(f.dev, 0));
    g_assert_true(qpci_msix_pending(f.dev, 0));
    g_assert_cmphex(pending_bits(&f, PAGE_GPA), ==, 1);
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_DISABLE, 0, 1), ==,
                     PVPERF_ST_OK);
    settle(&f);
    g_assert_cmphex(msi_word(&f, 0), ==, 0);
    irqs = stat_now(&f, "interrupts");

    /* unmasked: the pending message is delivered, with no new overflow */
    msix_mask(&f, 0, false);
    g_assert_cmphex(msi_word(&f, 0), ==, 0x5a00);
    g_assert_false(qpci_msix_pending(f.dev, 0));
    qtest_writel(f.qts, MSI_GPA, 0);
    settle(&f);
    g_assert_cmphex(msi_word(&f, 0), ==, 0);
    g_assert_cmpint(stat_now(&f, "interrupts"), ==, irqs);

    /* and new overflows are signalled again */
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_ENABLE, 0, 1), ==,
                     PVPERF_ST_OK);
    WAIT_FOR(msi_word(&f, 0) == 0x5a00);
    g_assert_cmphex(msi_word(&f, 0), ==, 0x5a00);
    g_assert_cmpint(stat_now(&f, "interrupts"), >, irqs);
    fixture_stop(&f);
}

/* A vCPU without a count page: overflows counted, no message */
static void test_sample_no_page(void)
{
    Fixture f;
    int64_t ovf;

    fixture_start(&f, NULL, spin_args());
    qpci_msix_enable(f.dev);
    msix_to_ram(&f, 0);
    g_assert_cmpuint(open_sampling(&f, 0, 3, EV_TASK_CLOCK,
                                   PVPERF_OPEN_ENABLED, 1000000), ==,
                     PVPERF_ST_OK);
    WAIT_FOR(sampling_int(&f, 0, 3, "overflows") >= 20);
    ovf = sampling_int(&f, 0, 3, "overflows");
    g_assert_cmpint(ovf, >=, 20);
    g_assert_cmpint(stat_now(&f, "overflows"), >=, ovf);
    g_assert_cmphex(msi_word(&f, 0), ==, 0);
    g_assert_cmpint(stat_now(&f, "interrupts"), ==, 0);

    /* with a page, the next overflows are signalled; none was forgotten */
    g_assert_cmpuint(set_page(&f, 0, PAGE_GPA), ==, PVPERF_ST_OK);
    WAIT_FOR(msi_word(&f, 0) == 0x5a00);
    g_assert_cmphex(msi_word(&f, 0), ==, 0x5a00);
    g_assert_cmpint(stat_now(&f, "interrupts"), >, 0);
    g_assert_cmpuint(get_rec(&f, PAGE_GPA, 3).overflows, >, ovf);
    g_assert_cmphex(pending_bits(&f, PAGE_GPA), ==, 1ull << 3);
    fixture_stop(&f);
}

/*
 * A sampling leader with a counting member: the leader's overflows reach
 * its record and bit, the member has none of its own; the group is read
 * whole by DISABLE (times that match), while the overflow passes write
 * only the leader's record (they read nothing from the host).
 * Sampling and counting slots mix in groups either way round (the host
 * wants one clock in a group: once, the device timed only sampling slots
 * on CLOCK_MONOTONIC, and such an OPEN failed with EINVAL).
 */
/* Sampling leader 0 with counting member 1 on vCPU 0, both disabled */
static void check_group_pass(Fixture *f)
{
    Rec lead, mem, m0 = get_rec(f, PAGE_GPA, 1);

    g_assert_cmphex(m0.flags, ==, PVPERF_SLOT_OPEN);
    /* ENABLE of the leader starts the group */
    g_assert_cmpuint(mask_cmd(f, PVPERF_CMD_ENABLE, 0, 1), ==, PVPERF_ST_OK);
    WAIT_FOR(get_rec(f, PAGE_GPA, 0).overflows >= 10);
    g_assert_cmpuint(mask_cmd(f, PVPERF_CMD_DISABLE, 0, 1), ==,
                     PVPERF_ST_OK);
    settle(f);
    mem = get_rec(f, PAGE_GPA, 1);
    lead = get_rec(f, PAGE_GPA, 0);
    g_assert_cmpuint(lead.overflows, >=, 10);
    g_assert_cmpuint(lead.count, >=, lead.overflows * 1000000);
    /* the member is no sampling slot, and has no overflows of its own */
    g_assert_cmphex(mem.flags, ==, PVPERF_SLOT_OPEN);
    g_assert_cmpuint(mem.overflows, ==, 0);
    g_assert_cmpuint(mem.time_enabled, ==, lead.time_enabled);
    g_assert_cmpuint(mem.time_enabled, >=, lead.overflows * 1000000);
    /* ENABLE and DISABLE wrote it; the passes only the leader's record */
    g_assert_cmpuint(mem.seq, ==, m0.seq + 4);
    g_assert_cmphex(pending_bits(f, PAGE_GPA), ==, 1);
}

static void test_sample_group(void)
{
    Fixture f;

    fixture_start(&f, NULL, spin_args());
    g_assert_cmpuint(set_page(&f, 0, PAGE_GPA), ==, PVPERF_ST_OK);
    g_assert_cmpuint(open_sampling(&f, 0, 0, EV_TASK_CLOCK, 0, 1000000), ==,
                     PVPERF_ST_OK);
    g_assert_cmpuint(open_slot(&f, 0, 1, EV_CSW, 0, 0), ==, PVPERF_ST_OK);
    g_assert_cmpuint(rd(&f, PVPERF_REG_HOST_ERRNO), ==, 0);
    check_group_pass(&f);

    /* the other way round: a sampling member of a counting leader */
    g_assert_cmpuint(open_slot(&f, 0, 2, EV_TASK_CLOCK, PVPERF_NO_GROUP, 0),
                     ==, PVPERF_ST_OK);
    open_period(&f, 1000000);
    g_assert_cmpuint(open_slot(&f, 0, 3, EV_TASK_CLOCK, 2, 0), ==,
                     PVPERF_ST_OK);
    g_assert_cmpuint(rd(&f, PVPERF_REG_HOST_ERRNO), ==, 0);
    open_period(&f, 0);
    fixture_stop(&f);
}

/* query-pvperf and info pvperf show the sampling state */
static void test_sample_query(void)
{
    Fixture f;
    QDict *info, *sl, *smp, *st;
    g_autofree char *hmp = NULL;
    g_autofree char *slot_line = NULL;
    const char *line;
    uint64_t period = 0, ovf = 0, lost = 0, thr = 0, irqs = 0;
    Rec r;

    fixture_start(&f, "id=pv0", spin_args());
    info = query_one(f.qts);
    g_assert_cmpint(qdict_get_int(qdict_get_qdict(info, "limits"),
                                  "max-sample-rate"), ==, 20000);
    st = qdict_get_qdict(info, "stats");
    g_assert_cmpint(qdict_get_int(st, "overflows"), ==, 0);
    g_assert_cmpint(qdict_get_int(st, "interrupts"), ==, 0);
    g_assert_cmpint(qdict_get_int(st, "throttles"), ==, 0);
    g_assert_cmpint(qdict_get_int(st, "latency-avg-ns"), ==, 0);
    g_assert_cmpint(qdict_get_int(st, "latency-max-ns"), ==, 0);
    qobject_unref(info);
    hmp = qtest_hmp(f.qts, "info pvperf");
    g_assert_nonnull(strstr(hmp, "20000 overflows per second and vCPU at "
                            "most"));
    /* the statistics' sampling line comes once anything overflowed */
    g_assert_null(strstr(hmp, "sampling:"));
    g_free(hmp);

    qpci_msix_enable(f.dev);
    msix_to_ram(&f, 0);
    g_assert_cmpuint(set_page(&f, 0, PAGE_GPA), ==, PVPERF_ST_OK);
    g_assert_cmpuint(open_sampling(&f, 0, 2, EV_TASK_CLOCK,
                                   PVPERF_OPEN_ENABLED, 250000), ==,
                     PVPERF_ST_OK);
    g_assert_cmpuint(open_slot(&f, 0, 4, EV_CSW, PVPERF_NO_GROUP,
                               PVPERF_OPEN_ENABLED), ==, PVPERF_ST_OK);
    WAIT_FOR(get_rec(&f, PAGE_GPA, 2).overflows >= 50);
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_DISABLE, 0, 1ull << 2), ==,
                     PVPERF_ST_OK);
    settle(&f);
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_READ, 0, 1ull << 2), ==,
                     PVPERF_ST_OK);
    r = get_rec(&f, PAGE_GPA, 2);
    g_assert_cmpuint(r.overflows, >=, 50);
    g_assert_cmphex(pending_bits(&f, PAGE_GPA), ==, 1ull << 2);

    info = query_one(f.qts);
    sl = slot_of(info, 0, 2);
    g_assert_nonnull(sl);
    g_assert_true(qdict_haskey(sl, "sampling"));
    smp = qdict_get_qdict(sl, "sampling");
    g_assert_cmpuint(qdict_get_int(smp, "period"), ==, 250000);
    g_assert_cmpuint(qdict_get_int(smp, "overflows"), ==, r.overflows);
    g_assert_cmpuint(qdict_get_int(smp, "lost"), ==, r.lost);
    g_assert_cmpuint(qdict_get_int(smp, "throttles"), ==, r.throttles);
    g_assert_false(qdict_get_bool(smp, "throttled"));
    g_assert_true(qdict_get_bool(smp, "pending"));
    g_assert_cmpuint(qdict_get_int(sl, "count"), ==, r.count);
    /* a counting slot has no sampling state */
    g_assert_false(qdict_haskey(slot_of(info, 0, 4), "sampling"));
    st = qdict_get_qdict(info, "stats");
    g_assert_cmpint(qdict_get_int(st, "overflows"), ==, r.overflows);
    g_assert_cmpint(qdict_get_int(st, "interrupts"), >, 0);
    /* one message a pass, however many overflows it found */
    g_assert_cmpint(qdict_get_int(st, "interrupts"), <=, r.overflows);
    /* from overflow to message: something, and well below a second */
    g_assert_cmpint(qdict_get_int(st, "latency-avg-ns"), >, 0);
    g_assert_cmpint(qdict_get_int(st, "latency-max-ns"), >=,
                    qdict_get_int(st, "latency-avg-ns"));
    g_assert_cmpint(qdict_get_int(st, "latency-avg-ns"), <,
                    1000 * 1000 * 1000);
    g_assert_cmpint(cmd_count(info, "ack-overflow"), ==, 0);
    qobject_unref(info);

    hmp = qtest_hmp(f.qts, "info pvperf");
    g_test_message("info pvperf:\n%s", hmp);
    assert_width(hmp, 100);
    line = strstr(hmp, "sampling: period ");
    g_assert_nonnull(line);
    g_assert_cmpint(sscanf(line, "sampling: period %" SCNu64 ", %" SCNu64
                           " overflows, %" SCNu64 " lost, %" SCNu64
                           " throttles", &period, &ovf, &lost, &thr), ==, 4);
    g_assert_cmpuint(period, ==, 250000);
    g_assert_cmpuint(ovf, ==, r.overflows);
    g_assert_cmpuint(lost, ==, r.lost);
    g_assert_cmpuint(thr, ==, r.throttles);
    slot_line = g_strndup(line, strcspn(line, "\r\n"));
    g_assert_true(g_str_has_suffix(slot_line, " throttles, pending"));
    /* only the sampling slot has the line */
    g_assert_null(strstr(line + 1, "sampling: period "));
    line = strstr(hmp, "  sampling: ");
    while (line && !strncmp(line + 2, "sampling: period", 16)) {
        line = strstr(line + 1, "  sampling: ");
    }
    g_assert_nonnull(line);
    g_assert_cmpint(sscanf(line, "  sampling: %" SCNu64 " overflows, %"
                           SCNu64 " interrupts, %" SCNu64 " throttles",
                           &ovf, &irqs, &thr), ==, 3);
    g_assert_cmpuint(ovf, ==, r.overflows);
    g_assert_cmpuint(irqs, >, 0);

    /* acknowledged: not pending any more */
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_ACK_OVERFLOW, 0, 1ull << 2), ==,
                     PVPERF_ST_OK);
    g_assert_false(sampling_bool(&f, 0, 2, "pending"));
    info = query_one(f.qts);
    g_assert_cmpint(cmd_count(info, "ack-overflow"), ==, 1);
    qobject_unref(info);
    g_free(hmp);
    hmp = qtest_hmp(f.qts, "info pvperf");
    g_assert_nonnull(strstr(hmp, " throttles\r\n"));
    g_assert_null(strstr(hmp, ", pending"));

    fixture_stop(&f);
}

static void test_vcpu_hotplug(void)
{
    Fixture f;
    QDict *info;
    int base, fds = -1;

    fixture_start(&f, "refresh-ms=1", "-smp 1,sockets=2,maxcpus=2 -m 64");
    base = count_fds(qtest_pid(f.qts));
    /* vCPU 1 may be plugged in later, it is not there yet */
    g_assert_cmpuint(rd(&f, PVPERF_REG_NR_VCPUS), ==, 2);
    g_assert_cmpuint(open_slot(&f, 1, 0, EV_TASK_CLOCK, PVPERF_NO_GROUP, 0),
                     ==, PVPERF_ST_BAD_VCPU);
    g_assert_cmpuint(set_page(&f, 1, PAGE2_GPA), ==, PVPERF_ST_BAD_VCPU);

    g_assert_cmpuint(set_block(&f, 1, BLOCK_GPA), ==, PVPERF_ST_BAD_VCPU);
    cpu_plug(&f);
    g_assert_cmpuint(set_page(&f, 1, PAGE2_GPA), ==, PVPERF_ST_OK);
    g_assert_cmpuint(set_block(&f, 1, BLOCK_GPA), ==, PVPERF_ST_OK);
    g_assert_cmpuint(open_slot(&f, 1, 0, EV_TASK_CLOCK, PVPERF_NO_GROUP,
                               PVPERF_OPEN_ENABLED), ==, PVPERF_ST_OK);
    g_assert_cmpuint(open_slot(&f, 1, 1, EV_CSW, 0, 0), ==, PVPERF_ST_OK);
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_READ, 1, 3), ==, PVPERF_ST_OK);
    g_assert_cmpint(count_fds(qtest_pid(f.qts)), ==, base + 3);

    /* unplugged: its slots are closed, its page forgotten */
    qtest_clock_step(f.qts, 5 * 1000 * 1000);
    g_assert_cmpuint(get_rec(&f, PAGE2_GPA, 0).seq, >, 2);  /* refreshed */
    cpu_unplug(&f);
    qtest_memset(f.qts, PAGE2_GPA, 0xa5, PVPERF_PAGE_SIZE);
    refresh_ticks(&f, 5);
    for (int i = 0; i < 500 && fds != base; i++) {
        g_usleep(10 * 1000);
        fds = count_fds(qtest_pid(f.qts));
    }
    g_assert_cmpint(fds, ==, base);
    info = query_one(f.qts);
    g_assert_cmpint(qdict_get_int(info, "open-slots"), ==, 0);
    g_assert_null(page_of(info, 1));
    g_assert_null(block_of(info, 1));
    qobject_unref(info);
    g_assert_cmpuint(open_slot(&f, 1, 0, EV_TASK_CLOCK, PVPERF_NO_GROUP, 0),
                     ==, PVPERF_ST_BAD_VCPU);
    g_assert_cmpuint(close_slot(&f, 1, 0), ==, PVPERF_ST_SLOT_FREE);
    /* and nothing was written to its page since */
    for (int off = 0; off < PVPERF_PAGE_SIZE; off += 4) {
        g_assert_cmphex(qtest_readl(f.qts, PAGE2_GPA + off), ==, 0xa5a5a5a5);
    }

    /* plugged in again: a new vCPU, with nothing of the old one's */
    cpu_plug(&f);
    g_assert_cmpuint(open_slot(&f, 1, 0, EV_TASK_CLOCK, PVPERF_NO_GROUP, 0),
                     ==, PVPERF_ST_OK);
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_READ, 1, 1), ==,
                     PVPERF_ST_NO_PAGE);
    g_assert_cmpint(count_fds(qtest_pid(f.qts)), ==, base + 2);
    check_still_works(&f);
    fixture_stop(&f);
}

/* Migration of open slots (needs the sampling helpers) --------------- */

#define MIG_EVENTS  "events=task-clock,,context-switches,,page-faults"
#define MIG_CSW     1
#define MIG_PF      2

static void set_capability(QTestState *qts, const char *cap)
{
    qtest_qmp_assert_success(qts, "{'execute': 'migrate-set-capabilities', "
                             "'arguments': {'capabilities': [{'capability': "
                             "%s, 'state': true}]}}", cap);
}

/* The count query-pvperf shows for a slot: the last the device read */
static uint64_t slot_count(Fixture *f, uint32_t vcpu, uint32_t slot)
{
    QDict *info = query_one(f->qts);
    uint64_t count = qdict_get_int(slot_of(info, vcpu, slot), "count");

    qobject_unref(info);
    return count;
}

static void check_not_back(const char *what, Rec src, Rec dst)
{
    g_test_message("%s: count %" PRIu64 " -> %" PRIu64 ", enabled %" PRIu64
                   " -> %" PRIu64 ", seq %u -> %u", what, src.count,
                   dst.count, src.time_enabled, dst.time_enabled, src.seq,
                   dst.seq);
    g_assert_cmpuint(dst.count, >=, src.count);
    g_assert_cmpuint(dst.time_enabled, >=, src.time_enabled);
    g_assert_cmpuint(dst.time_running, >=, src.time_running);
    g_assert_cmpuint(dst.overflows, >=, src.overflows);
    /* the record's seqlock goes on from the source's */
    g_assert_cmpuint(dst.seq, >=, src.seq);
    g_assert_cmpuint(dst.seq % 2, ==, 0);
}

/*
 * docs/pvperf.rst, "Migration": open, enabled, disabled, grouped and
 * sampling slots on two vCPUs migrate to a second QEMU (through a file,
 * the path savevm and socket migrations take too). On the destination
 * the slots are the same, their values never below the source's last
 * and growing where the vCPU runs, the disabled one unchanged, the
 * sampling slot keeps its period, overflows and vector. An earlier
 * revision refused the migration ("pvperf: open slots").
 */
static void test_migration_open_slots(void)
{
    g_autofree char *file = tmp_path("mig-slots", "");
    g_autofree char *uri = g_strdup_printf("file:%s", file);
    g_autofree char *args = g_strdup_printf("%s -smp 2", spin_args());
    g_autofree char *dargs = g_strdup_printf("%s -smp 2 -incoming defer",
                                             spin_args());
    static const uint32_t v0_slots[] = { 0, 1, 2, 5 };
    Rec src[6], dst, later;
    Fixture f, d;
    QDict *info;

    fixture_start(&f, MIG_EVENTS, args);
    qpci_msix_enable(f.dev);
    msix_to_ram(&f, 0);
    g_assert_cmpuint(set_page(&f, 0, PAGE_GPA), ==, PVPERF_ST_OK);
    g_assert_cmpuint(set_page(&f, 1, PAGE2_GPA), ==, PVPERF_ST_OK);
    /* vCPU 0: a group, a disabled slot, a sampling slot; vCPU 1: one */
    g_assert_cmpuint(open_slot(&f, 0, 0, EV_TASK_CLOCK, PVPERF_NO_GROUP,
                               PVPERF_OPEN_ENABLED), ==, PVPERF_ST_OK);
    g_assert_cmpuint(open_slot(&f, 0, 1, MIG_CSW, 0, PVPERF_OPEN_ENABLED),
                     ==, PVPERF_ST_OK);
    g_assert_cmpuint(open_slot(&f, 0, 2, MIG_PF, PVPERF_NO_GROUP, 0), ==,
                     PVPERF_ST_OK);
    g_assert_cmpuint(open_sampling(&f, 0, 5, EV_TASK_CLOCK,
                                   PVPERF_OPEN_ENABLED, 1000000), ==,
                     PVPERF_ST_OK);
    g_assert_cmpuint(open_slot(&f, 1, 3, EV_TASK_CLOCK, PVPERF_NO_GROUP,
                               PVPERF_OPEN_ENABLED), ==, PVPERF_ST_OK);
    WAIT_FOR(get_rec(&f, PAGE_GPA, 5).overflows >= 20);
    g_assert_cmpuint(get_rec(&f, PAGE_GPA, 5).overflows, >=, 20);

    /* what the guest last saw on the source */
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_READ, 0, 0x27), ==,
                     PVPERF_ST_OK);
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_READ, 1, 1 << 3), ==,
                     PVPERF_ST_OK);
    for (int i = 0; i < ARRAY_SIZE(v0_slots); i++) {
        src[v0_slots[i]] = get_rec(&f, PAGE_GPA, v0_slots[i]);
    }
    src[3] = get_rec(&f, PAGE2_GPA, 3);
    g_assert_cmpuint(src[0].count, >, 0);
    migrate_to_file(&f, uri);
    g_assert_true(stream_has(file, "pvperf/slots"));
    /* the stopped source writes nothing to its guest's memory any more */
    settle(&f);
    g_assert_cmpuint(get_rec(&f, PAGE_GPA, 0).seq, ==, src[0].seq);

    fixture_start(&d, MIG_EVENTS, dargs);
    qtest_writel(d.qts, MSI_GPA, 0);
    migrate_from_file(&d, uri);
    g_assert_cmpstr(run_state(d.qts), ==, "running");
    settle(&d);
    info = query_one(d.qts);
    g_assert_cmpint(qdict_get_int(info, "open-slots"), ==, 5);
    g_assert_cmpint(qdict_get_int(slot_of(info, 0, 1), "leader"), ==, 0);
    g_assert_false(qdict_get_bool(slot_of(info, 0, 2), "enabled"));
    g_assert_true(qdict_get_bool(slot_of(info, 1, 3), "enabled"));
    qobject_unref(info);
    g_assert_cmpint(sampling_int(&d, 0, 5, "period"), ==, 1000000);

    g_assert_cmpuint(mask_cmd(&d, PVPERF_CMD_READ, 0, 0x27), ==,
                     PVPERF_ST_OK);
    g_assert_cmpuint(mask_cmd(&d, PVPERF_CMD_READ, 1, 1 << 3), ==,
                     PVPERF_ST_OK);
    for (int i = 0; i < ARRAY_SIZE(v0_slots); i++) {
        g_autofree char *what = g_strdup_printf("vCPU 0 slot %u",
                                                v0_slots[i]);

        dst = get_rec(&d, PAGE_GPA, v0_slots[i]);
        check_not_back(what, src[v0_slots[i]], dst);
    }
    dst = get_rec(&d, PAGE2_GPA, 3);
    check_not_back("vCPU 1 slot 3", src[3], dst);
    /* the disabled slot: the same values, still disabled */
    dst = get_rec(&d, PAGE_GPA, 2);
    g_assert_cmphex(dst.flags, ==, PVPERF_SLOT_OPEN);
    g_assert_cmpuint(dst.count, ==, src[2].count);
    g_assert_cmpuint(dst.time_enabled, ==, src[2].time_enabled);
    /* the member runs with its leader */
    g_assert_cmpuint(get_rec(&d, PAGE_GPA, 1).time_enabled, ==,
                     get_rec(&d, PAGE_GPA, 0).time_enabled);

    /* and they go on: vCPU 0 spins */
    g_usleep(200 * 1000);
    g_assert_cmpuint(mask_cmd(&d, PVPERF_CMD_READ, 0, 0x21), ==,
                     PVPERF_ST_OK);
    later = get_rec(&d, PAGE_GPA, 0);
    g_assert_cmpuint(later.count, >, src[0].count);
    g_assert_cmphex(later.flags, ==, PVPERF_SLOT_OPEN | PVPERF_SLOT_ENABLED);
    WAIT_FOR(get_rec(&d, PAGE_GPA, 5).overflows > src[5].overflows + 20);
    later = get_rec(&d, PAGE_GPA, 5);
    g_assert_cmpuint(later.overflows, >, src[5].overflows + 20);
    g_assert_cmphex(later.flags, ==, PVPERF_SLOT_OPEN | PVPERF_SLOT_ENABLED |
                    PVPERF_SLOT_SAMPLING);
    /* ... through vCPU 0's vector, as the source had it */
    WAIT_FOR(msi_word(&d, 0) == 0x5a00);
    g_assert_cmphex(msi_word(&d, 0), ==, 0x5a00);
    fixture_stop(&d);
    fixture_stop(&f);
    unlink(file);
}

/*
 * A destination with another catalog refuses the stream; over a socket
 * with a return path, the source learns it and goes on running, its
 * slots open and counting.
 */
static void test_migration_open_refused(void)
{
    g_autofree char *sock = tmp_path("mig", ".sock");
    g_autofree char *uri = g_strdup_printf("unix:%s", sock);
    g_autofree char *dargs = g_strdup_printf("%s -incoming defer",
                                             spin_args());
    const char *cap = "return-path";
    Fixture f, d;
    Rec r0, r1;

    fixture_start(&f, MIG_EVENTS, spin_args());
    g_assert_cmpuint(set_page(&f, 0, PAGE_GPA), ==, PVPERF_ST_OK);
    g_assert_cmpuint(open_slot(&f, 0, 0, EV_TASK_CLOCK, PVPERF_NO_GROUP,
                               PVPERF_OPEN_ENABLED), ==, PVPERF_ST_OK);
    fixture_start(&d, "events=task-clock,,context-switches", dargs);
    set_capability(f.qts, cap);
    set_capability(d.qts, cap);
    qtest_qmp_assert_success(d.qts, "{'execute': 'migrate-incoming', "
                             "'arguments': {'uri': %s, "
                             "'exit-on-error': false}}", uri);
    qtest_qmp_assert_success(f.qts, "{'execute': 'migrate', 'arguments': "
                             "{'uri': %s}}", uri);
    g_assert_cmpstr(wait_migration(f.qts), ==, "failed");
    g_assert_cmpstr(run_state(f.qts), ==, "running");
    fixture_stop(&d);
    g_assert_cmpint(open_slots_of(&f), ==, 1);
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_READ, 0, 1), ==, PVPERF_ST_OK);
    r0 = get_rec(&f, PAGE_GPA, 0);
    g_usleep(100 * 1000);
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_READ, 0, 1), ==, PVPERF_ST_OK);
    r1 = get_rec(&f, PAGE_GPA, 0);
    g_assert_cmpuint(r1.count, >, r0.count);
    fixture_stop(&f);
    unlink(sock);
}

/*
 * Postcopy would start the destination before its memory arrived: with
 * slots open the device refuses it at setup, with its reason, and the
 * source goes on. Without open slots it has nothing to refuse.
 */
static void test_migration_postcopy(void)
{
    g_autofree char *sock = tmp_path("mig-pc", ".sock");
    g_autofree char *uri = g_strdup_printf("unix:%s", sock);
    const char *cap = "postcopy-ram";
    Fixture f, d;
    QDict *r;

    fixture_start(&f, NULL, "-m 64");
    g_assert_cmpuint(open_slot(&f, 0, 0, EV_TASK_CLOCK, PVPERF_NO_GROUP,
                               PVPERF_OPEN_ENABLED), ==, PVPERF_ST_OK);
    fixture_start(&d, NULL, "-m 64 -incoming defer");
    set_capability(f.qts, cap);
    set_capability(d.qts, cap);
    qtest_qmp_assert_success(d.qts, "{'execute': 'migrate-incoming', "
                             "'arguments': {'uri': %s, "
                             "'exit-on-error': false}}", uri);
    qtest_qmp_assert_success(f.qts, "{'execute': 'migrate', 'arguments': "
                             "{'uri': %s}}", uri);
    g_assert_cmpstr(wait_migration(f.qts), ==, "failed");
    r = qtest_qmp_assert_success_ref(f.qts, "{'execute': 'query-migrate'}");
    g_assert_nonnull(strstr(qdict_get_str(r, "error-desc"),
                            "pvperf: 1 open slots cannot migrate with "
                            "postcopy-ram"));
    qobject_unref(r);
    g_assert_cmpint(open_slots_of(&f), ==, 1);
    fixture_stop(&d);
    fixture_stop(&f);
    unlink(sock);
}

/*
 * A slot whose host event cannot be opened on the destination (here
 * perf_event_open fails with EMFILE: the destination's RLIMIT_NOFILE is
 * lowered to its lowest free fd before it runs) stays open for the guest
 * with READ_ERROR and its last values; its member with it; query-pvperf
 * says why. The guest can close it and open it again.
 */
/*
 * Source @f: vCPU 0's group of task-clock (slot 0, leader) and
 * context-switches (slot 1), enabled; migrated to @d, started with the
 * destination's open-file limit at @spare fds above its lowest free one
 * (0: no new fd opens; not below the fds the main loop polls, where
 * poll(2) fails with EINVAL), then the limit is restored. Returns the
 * leader's count as the source's save read it.
 */
static uint64_t migrate_group_fd_limited(Fixture *f, Fixture *d,
                                         const char *uri, int spare)
{
    g_autofree char *dargs = g_strdup_printf("%s -S -incoming defer",
                                             spin_args());
    struct rlimit old, low;
    uint64_t count;

    fixture_start(f, MIG_EVENTS, spin_args());
    g_assert_cmpuint(set_page(f, 0, PAGE_GPA), ==, PVPERF_ST_OK);
    g_assert_cmpuint(open_slot(f, 0, 0, EV_TASK_CLOCK, PVPERF_NO_GROUP,
                               PVPERF_OPEN_ENABLED), ==, PVPERF_ST_OK);
    g_assert_cmpuint(open_slot(f, 0, 1, MIG_CSW, 0, PVPERF_OPEN_ENABLED),
                     ==, PVPERF_ST_OK);
    g_usleep(50 * 1000);
    migrate_to_file(f, uri);
    /* the values its save read, which the destination keeps */
    count = slot_count(f, 0, 0);

    fixture_start(d, MIG_EVENTS, dargs);
    migrate_from_file(d, uri);
    g_assert_cmpint(prlimit(qtest_pid(d->qts), RLIMIT_NOFILE, NULL, &old),
                    ==, 0);
    low = (struct rlimit) {
        .rlim_cur = lowest_free_fd(qtest_pid(d->qts)) + spare,
        .rlim_max = old.rlim_max,
    };
    g_assert_cmpint(prlimit(qtest_pid(d->qts), RLIMIT_NOFILE, &low, NULL),
                    ==, 0);
    qtest_qmp_assert_success(d->qts, "{'execute': 'cont'}");
    settle(d);
    g_assert_cmpint(prlimit(qtest_pid(d->qts), RLIMIT_NOFILE, &old, NULL),
                    ==, 0);
    return count;
}

/*
 * A migrated group whose leader reopens and whose member cannot (one fd
 * left): READ of the leader, which reads the whole group, fails with the
 * member's errno, as ENABLE does; the previous device answered OK.
 */
static void test_migration_member_unopenable(void)
{
    g_autofree char *file = tmp_path("mig-member", "");
    g_autofree char *uri = g_strdup_printf("file:%s", file);
    Fixture f, d;

    migrate_group_fd_limited(&f, &d, uri, 1);      /* the leader's */
    g_assert_cmphex(get_rec(&d, PAGE_GPA, 0).flags, ==,
                    PVPERF_SLOT_OPEN | PVPERF_SLOT_ENABLED);
    g_assert_cmphex(get_rec(&d, PAGE_GPA, 1).flags, ==, PVPERF_SLOT_OPEN |
                    PVPERF_SLOT_ENABLED | PVPERF_SLOT_READ_ERROR);
    g_assert_cmpuint(mask_cmd(&d, PVPERF_CMD_READ, 0, 1 << 0), ==,
                     PVPERF_ST_HOST_ERROR);
    g_assert_cmpuint(rd(&d, PVPERF_REG_HOST_ERRNO), ==, EMFILE);
    g_assert_cmpuint(mask_cmd(&d, PVPERF_CMD_READ, 0, 1 << 1), ==,
                     PVPERF_ST_HOST_ERROR);
    /* the leader alone again: it reads */
    g_assert_cmpuint(close_slot(&d, 0, 1), ==, PVPERF_ST_OK);
    g_assert_cmpuint(mask_cmd(&d, PVPERF_CMD_READ, 0, 1 << 0), ==,
                     PVPERF_ST_OK);
    fixture_stop(&d);
    fixture_stop(&f);
    unlink(file);
}

static void test_migration_unopenable(void)
{
    g_autofree char *hmp = NULL;
    g_autofree char *file = tmp_path("mig-emfile", "");
    g_autofree char *uri = g_strdup_printf("file:%s", file);
    Fixture f, d;
    Rec src0, dst;
    QDict *info, *err;

    src0.count = migrate_group_fd_limited(&f, &d, uri, 0);
    dst = get_rec(&d, PAGE_GPA, 0);
    g_assert_cmphex(dst.flags, ==, PVPERF_SLOT_OPEN | PVPERF_SLOT_ENABLED |
                    PVPERF_SLOT_READ_ERROR);
    g_assert_cmpuint(dst.count, ==, src0.count);
    g_assert_cmphex(get_rec(&d, PAGE_GPA, 1).flags, ==, PVPERF_SLOT_OPEN |
                    PVPERF_SLOT_ENABLED | PVPERF_SLOT_READ_ERROR);
    info = query_one(d.qts);
    g_assert_cmpint(qdict_get_int(info, "open-slots"), ==, 2);
    g_assert_cmpint(qdict_get_int(slot_of(info, 0, 0), "last-errno"), ==,
                    EMFILE);
    g_assert_cmpint(qdict_get_int(slot_of(info, 0, 1), "last-errno"), ==,
                    EMFILE);
    err = qdict_get_qdict(info, "last-host-error");
    g_assert_nonnull(strstr(qdict_get_str(err, "operation"),
                            "perf_event_open"));
    qobject_unref(info);
    /*
     * HMP within 100 columns: the last host error ("... perf_event_open
     * (its leader failed): Too many open files (errno 24)") was one line
     * of 101
     */
    hmp = qtest_hmp(d.qts, "info pvperf");
    g_test_message("info pvperf:\n%s", hmp);
    g_assert_nonnull(strstr(hmp, "last host error"));
    assert_width(hmp, 100);
    /* its commands say so; CLOSE and a new OPEN work */
    g_assert_cmpuint(mask_cmd(&d, PVPERF_CMD_READ, 0, 1), ==,
                     PVPERF_ST_HOST_ERROR);
    g_assert_cmpuint(rd(&d, PVPERF_REG_HOST_ERRNO), ==, EMFILE);
    g_assert_cmpuint(mask_cmd(&d, PVPERF_CMD_ENABLE, 0, 1), ==,
                     PVPERF_ST_HOST_ERROR);
    g_assert_cmpuint(get_rec(&d, PAGE_GPA, 0).count, ==, src0.count);
    g_assert_cmpuint(close_slot(&d, 0, 0), ==, PVPERF_ST_OK);
    g_assert_cmpuint(close_slot(&d, 0, 1), ==, PVPERF_ST_OK);
    g_assert_cmpuint(open_slot(&d, 0, 0, EV_TASK_CLOCK, PVPERF_NO_GROUP,
                               PVPERF_OPEN_ENABLED), ==, PVPERF_ST_OK);
    g_usleep(50 * 1000);
    g_assert_cmpuint(mask_cmd(&d, PVPERF_CMD_READ, 0, 1), ==, PVPERF_ST_OK);
    g_assert_cmpuint(get_rec(&d, PAGE_GPA, 0).count, >, 0);
    fixture_stop(&d);
    fixture_stop(&f);
    unlink(file);
}

/*
 * A destination that loaded the slots but has not run yet (-S) and is
 * migrated on sends them as it loaded them: an earlier version dropped
 * them silently (they are reopened only when the VM runs). The third
 * QEMU has them, with the first's values.
 */
static void test_migration_twice_paused(void)
{
    g_autofree char *f1 = tmp_path("mig-p1", "");
    g_autofree char *f2 = tmp_path("mig-p2", "");
    g_autofree char *u1 = g_strdup_printf("file:%s", f1);
    g_autofree char *u2 = g_strdup_printf("file:%s", f2);
    g_autofree char *paused = g_strdup_printf("%s -S -incoming defer",
                                              spin_args());
    g_autofree char *dargs = g_strdup_printf("%s -incoming defer",
                                             spin_args());
    Fixture f, m, d;
    uint64_t count;

    fixture_start(&f, MIG_EVENTS, spin_args());
    g_assert_cmpuint(set_page(&f, 0, PAGE_GPA), ==, PVPERF_ST_OK);
    g_assert_cmpuint(open_slot(&f, 0, 0, EV_TASK_CLOCK, PVPERF_NO_GROUP,
                               PVPERF_OPEN_ENABLED), ==, PVPERF_ST_OK);
    g_assert_cmpuint(open_slot(&f, 0, 1, MIG_CSW, 0, PVPERF_OPEN_ENABLED),
                     ==, PVPERF_ST_OK);
    g_usleep(50 * 1000);
    migrate_to_file(&f, u1);
    count = slot_count(&f, 0, 0);

    fixture_start(&m, MIG_EVENTS, paused);
    migrate_from_file(&m, u1);
    g_assert_cmpstr(run_state(m.qts), ==, "paused");
    migrate_to_file(&m, u2);
    g_assert_true(stream_has(f2, "pvperf/slots"));

    fixture_start(&d, MIG_EVENTS, dargs);
    migrate_from_file(&d, u2);
    /* paused, as its source was: the slots come back when it runs */
    g_assert_cmpstr(run_state(d.qts), ==, "paused");
    g_assert_cmpint(open_slots_of(&d), ==, 0);
    qtest_qmp_assert_success(d.qts, "{'execute': 'cont'}");
    g_assert_cmpint(open_slots_of(&d), ==, 2);
    g_assert_cmpuint(mask_cmd(&d, PVPERF_CMD_READ, 0, 3), ==, PVPERF_ST_OK);
    g_assert_cmpuint(get_rec(&d, PAGE_GPA, 0).count, >=, count);
    g_assert_cmphex(get_rec(&d, PAGE_GPA, 1).flags, ==,
                    PVPERF_SLOT_OPEN | PVPERF_SLOT_ENABLED);
    fixture_stop(&d);
    fixture_stop(&m);
    fixture_stop(&f);
    unlink(f1);
    unlink(f2);
}

/*
 * A sampling slot keeps what was left of its period: with a period of 1 s
 * of vCPU time, migrated half-way through its second period, the
 * destination's first overflow comes at 2 s of count, not 2.5 s (the
 * offset plus a whole period), and the next one a period later.
 */
static void test_migration_period_left(void)
{
    g_autofree char *file = tmp_path("mig-left", "");
    g_autofree char *uri = g_strdup_printf("file:%s", file);
    g_autofree char *dargs = g_strdup_printf("%s -incoming defer",
                                             spin_args());
    const uint64_t sec = 1000000000ull;
    Fixture f, d;
    Rec src, r;

    fixture_start(&f, MIG_EVENTS, spin_args());
    qpci_msix_enable(f.dev);
    msix_to_ram(&f, 0);
    g_assert_cmpuint(set_page(&f, 0, PAGE_GPA), ==, PVPERF_ST_OK);
    g_assert_cmpuint(open_sampling(&f, 0, 0, EV_TASK_CLOCK,
                                   PVPERF_OPEN_ENABLED, sec), ==,
                     PVPERF_ST_OK);
    WAIT_FOR(get_rec(&f, PAGE_GPA, 0).overflows >= 1);
    g_assert_cmpuint(get_rec(&f, PAGE_GPA, 0).overflows, ==, 1);
    g_usleep(500 * 1000);
    migrate_to_file(&f, uri);
    src = get_rec(&f, PAGE_GPA, 0);
    src.count = slot_count(&f, 0, 0);        /* as its save read it */
    g_test_message("source: count %" PRIu64 " ns, %" PRIu64 " overflows",
                   src.count, src.overflows);
    g_assert_cmpuint(src.overflows, ==, 1);
    g_assert_cmpuint(src.count, >, sec + sec / 5);
    g_assert_cmpuint(src.count, <, 2 * sec - sec / 5);

    fixture_start(&d, MIG_EVENTS, dargs);
    migrate_from_file(&d, uri);
    for (uint64_t n = 2; n <= 3; n++) {
        /*
         * Up to 10 s for 1 s of the vCPU thread's time: a loaded host
         * gives the spinning vCPU much less than its wall-clock time
         * (0.6 s a second seen), and the period is the vCPU's time
         */
        for (int i = 0; i < 2000 && get_rec(&d, PAGE_GPA, 0).overflows < n;
             i++) {
            g_usleep(5 * 1000);
        }
        g_assert_cmpuint(mask_cmd(&d, PVPERF_CMD_READ, 0, 1), ==,
                         PVPERF_ST_OK);
        r = get_rec(&d, PAGE_GPA, 0);
        g_test_message("overflow %" PRIu64 " seen at count %" PRIu64 " ns",
                       n, r.count);
        g_assert_cmpuint(r.overflows, ==, n);
        g_assert_cmpuint(r.count, >=, n * sec - sec / 100);
        g_assert_cmpuint(r.count, <, n * sec + sec / 4);
    }
    fixture_stop(&d);
    fixture_stop(&f);
    unlink(file);
}

/*
 * savevm and loadvm take the migration path within one QEMU: after a
 * loadvm the slots of the snapshot are open again with the snapshot's
 * values at least, and count on. The snapshot goes to a qcow2 image that
 * QEMU itself creates (blockdev-create).
 */
static void test_migration_savevm(void)
{
    g_autofree char *img = tmp_path("snap", ".qcow2");
    g_autofree char *out = NULL;
    Fixture f;
    Rec snap, now, later;
    QDict *info;

    g_assert(g_file_set_contents(img, "", 0, NULL));
    fixture_start(&f, MIG_EVENTS, spin_args());
    qtest_qmp_assert_success(f.qts, "{'execute': 'blockdev-add', "
                             "'arguments': {'driver': 'file', "
                             "'filename': %s, 'node-name': 'proto'}}", img);
    qtest_qmp_assert_success(f.qts, "{'execute': 'blockdev-create', "
                             "'arguments': {'job-id': 'mk', 'options': "
                             "{'driver': 'qcow2', 'file': 'proto', "
                             "'size': 67108864}}}");
    for (int i = 0; i < 500; i++) {
        QDict *r = qtest_qmp(f.qts, "{'execute': 'query-jobs'}");
        QList *jobs = qdict_get_qlist(r, "return");
        bool done = !strcmp(qdict_get_str(qobject_to(QDict,
                                          qlist_peek(jobs)), "status"),
                            "concluded");

        qobject_unref(r);
        if (done) {
            break;
        }
        g_usleep(10 * 1000);
    }
    qtest_qmp_assert_success(f.qts, "{'execute': 'job-dismiss', "
                             "'arguments': {'id': 'mk'}}");
    qtest_qmp_assert_success(f.qts, "{'execute': 'blockdev-add', "
                             "'arguments': {'driver': 'qcow2', "
                             "'node-name': 'snap', 'file': 'proto'}}");

    g_assert_cmpuint(set_page(&f, 0, PAGE_GPA), ==, PVPERF_ST_OK);
    g_assert_cmpuint(open_slot(&f, 0, 0, EV_TASK_CLOCK, PVPERF_NO_GROUP,
                               PVPERF_OPEN_ENABLED), ==, PVPERF_ST_OK);
    g_assert_cmpuint(open_slot(&f, 0, 1, MIG_CSW, 0, PVPERF_OPEN_ENABLED),
                     ==, PVPERF_ST_OK);
    g_usleep(100 * 1000);
    out = qtest_hmp(f.qts, "savevm s1");
    g_assert_cmpstr(out, ==, "");
    g_free(out);
    settle(&f);
    snap = get_rec(&f, PAGE_GPA, 0);
    /* after the snapshot: close the group, open something else */
    g_assert_cmpuint(close_slot(&f, 0, 1), ==, PVPERF_ST_OK);
    g_assert_cmpuint(close_slot(&f, 0, 0), ==, PVPERF_ST_OK);
    g_assert_cmpuint(open_slot(&f, 0, 7, MIG_PF, PVPERF_NO_GROUP, 0), ==,
                     PVPERF_ST_OK);

    out = qtest_hmp(f.qts, "loadvm s1");
    g_assert_cmpstr(out, ==, "");
    g_assert_cmpint(open_slots_of(&f), ==, 2);
    settle(&f);
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_READ, 0, 3), ==, PVPERF_ST_OK);
    now = get_rec(&f, PAGE_GPA, 0);
    check_not_back("after loadvm", snap, now);
    g_assert_cmphex(now.flags, ==, PVPERF_SLOT_OPEN | PVPERF_SLOT_ENABLED);
    info = query_one(f.qts);
    g_assert_cmpint(qdict_get_int(slot_of(info, 0, 1), "leader"), ==, 0);
    qobject_unref(info);
    g_usleep(100 * 1000);
    g_assert_cmpuint(mask_cmd(&f, PVPERF_CMD_READ, 0, 1), ==, PVPERF_ST_OK);
    later = get_rec(&f, PAGE_GPA, 0);
    g_assert_cmpuint(later.count, >, now.count);
    fixture_stop(&f);
    unlink(img);
}

int main(int argc, char **argv)
{
    int ret;

    g_test_init(&argc, &argv, NULL);
    qtest_add_func("/pvperf/pci-identity", test_pci_identity);
    qtest_add_func("/pvperf/limits-properties", test_limits_properties);
    qtest_add_func("/pvperf/catalog/default", test_catalog_default);
    qtest_add_func("/pvperf/catalog/property", test_catalog_property);
    qtest_add_func("/pvperf/catalog/select-out-of-range",
                   test_catalog_select_out_of_range);
    qtest_add_func("/pvperf/realize-errors", test_realize_errors);
    qtest_add_func("/pvperf/bad-accesses", test_bad_accesses);
    qtest_add_func("/pvperf/commands", test_commands);
    qtest_add_func("/pvperf/system-reset", test_system_reset);
    qtest_add_func("/pvperf/count/lifecycle", test_count_lifecycle);
    qtest_add_func("/pvperf/count/other-vcpu", test_count_other_vcpu);
    qtest_add_func("/pvperf/count/refresh", test_count_refresh);
    qtest_add_func("/pvperf/count/errors", test_count_errors);
    qtest_add_func("/pvperf/count/cleanup", test_count_cleanup);
    qtest_add_func("/pvperf/count/stress", test_count_stress);
    qtest_add_func("/pvperf/qmp/no-device", test_qmp_no_device);
    qtest_add_func("/pvperf/qmp/states", test_qmp_states);
    qtest_add_func("/pvperf/qmp/arguments", test_qmp_arguments);
    qtest_add_func("/pvperf/migration/pages", test_migration);
    qtest_add_func("/pvperf/migration/open-anytime",
                   test_migration_open_anytime);
    qtest_add_func("/pvperf/migration/command-before-start",
                   test_migration_command_before_start);
    qtest_add_func("/pvperf/migration/open-slots", test_migration_open_slots);
    qtest_add_func("/pvperf/migration/catalog-refused-source-runs",
                   test_migration_open_refused);
    qtest_add_func("/pvperf/migration/postcopy-refused",
                   test_migration_postcopy);
    qtest_add_func("/pvperf/migration/unopenable", test_migration_unopenable);
    qtest_add_func("/pvperf/migration/member-unopenable",
                   test_migration_member_unopenable);
    qtest_add_func("/pvperf/migration/twice-paused",
                   test_migration_twice_paused);
    qtest_add_func("/pvperf/migration/period-left",
                   test_migration_period_left);
    qtest_add_func("/pvperf/migration/savevm", test_migration_savevm);
    qtest_add_func("/pvperf/migration/catalog-names",
                   test_migration_catalog_names);
    qtest_add_func("/pvperf/page/remapped", test_page_remapped);
    qtest_add_func("/pvperf/vcpu-hotplug", test_vcpu_hotplug);
    qtest_add_func("/pvperf/block/run", test_block_run);
    qtest_add_func("/pvperf/block/errors", test_block_errors);
    qtest_add_func("/pvperf/block/budget", test_block_budget);
    qtest_add_func("/pvperf/sample/basic", test_sample_basic);
    qtest_add_func("/pvperf/sample/vector-per-vcpu",
                   test_sample_vector_per_vcpu);
    qtest_add_func("/pvperf/sample/ack", test_sample_ack);
    qtest_add_func("/pvperf/sample/set-period", test_sample_set_period);
    qtest_add_func("/pvperf/sample/rate-property", test_sample_rate_property);
    qtest_add_func("/pvperf/sample/throttle", test_sample_throttle);
    qtest_add_func("/pvperf/sample/lost", test_sample_lost);
    qtest_add_func("/pvperf/sample/cleanup", test_sample_cleanup);
    qtest_add_func("/pvperf/unplug/doorbell-after-eject",
                   test_doorbell_after_eject);
    qtest_add_func("/pvperf/sample/msix-off", test_sample_msix_off);
    qtest_add_func("/pvperf/sample/no-page", test_sample_no_page);
    qtest_add_func("/pvperf/sample/query", test_sample_query);
    /*
     * Last: they show device bugs, and make assertions non-fatal so that
     * both report; no test that needs fatal assertions may follow them.
     */
    qtest_add_func("/pvperf/sample/group", test_sample_group);
    qtest_add_func("/pvperf/sample/throttle-rate", test_sample_throttle_rate);
    qtest_add_func("/pvperf/sample/budget", test_sample_budget);
    ret = g_test_run();
    if (spin_bios) {
        unlink(spin_bios);
        g_free(spin_bios);
    }
    return ret;
}
