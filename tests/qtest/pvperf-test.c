/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * QTest for the pvperf device: PCI identity, ABI registers, the event
 * catalog, property validation at realize and hostile register accesses.
 * The ABI is docs/pvperf.rst; the constants come from hw/misc/pvperf.h.
 */

#include "qemu/osdep.h"
#include "libqtest.h"
#include "libqos/pci.h"
#include "libqos/pci-pc.h"
#include "qobject/qdict.h"
#include "qobject/qjson.h"
#include "qapi/error.h"
#include "hw/pci/pci_regs.h"
#include "hw/misc/pvperf.h"

#include <linux/perf_event.h>
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

    cap = qpci_find_capability(f.dev, PCI_CAP_ID_MSI, 0);
    g_assert_cmpuint(cap, !=, 0);

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
    g_assert_cmphex(info & ~(PVPERF_INFO_KIND_MASK | PVPERF_INFO_AVAILABLE),
                    ==, 0);
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
    for (uint32_t off = 0x30; off < 0x40; off += 4) {
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
    g_assert_cmpuint(rd(&f, PVPERF_REG_CATALOG_SELECT), ==, 0);
    g_assert_cmpuint(rd(&f, PVPERF_REG_CMD_SLOT), ==, 0);
    g_assert_cmpuint(rd(&f, PVPERF_REG_DRIVER_FEATURES), ==, 0);
    g_assert_cmpuint(rd(&f, PVPERF_REG_STATUS), ==, PVPERF_ST_OK);
    fixture_stop(&f);
}

int main(int argc, char **argv)
{
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
    return g_test_run();
}
