// SPDX-License-Identifier: GPL-2.0
/*
 * pvperf guest driver: host performance events through the pvperf PCI
 * device (1af4:10f0), as a perf PMU named "pvperf".
 *
 * The device and its ABI are specified in docs/pvperf.rst; the register
 * offsets, commands and page layout come from include/hw/misc/pvperf.h.
 *
 * Each online CPU registers one count page with the device (a cpuhp state:
 * CPUs onlined later get theirs, offlined ones give theirs back). A perf
 * event owns one device slot on each CPU it has run on (opened lazily on
 * its first add there, closed when the event is destroyed, or handed to
 * another event when the CPU runs out of slots while it is not added
 * there); add/start enable the slot, stop/del disable it, and both leave
 * the slot's count in the page, so each costs one doorbell. A group added
 * in a transaction is enabled with one doorbell for the whole group.
 *
 * Lifetimes. The PMU (a static struct pmu) is registered at the first
 * probe and unregistered only at module exit, when perf holds no module
 * reference any more, so no event and no perf path can still use it; a
 * device bound later attaches to it if its catalog is the same. The device
 * state (struct pvperf_dev) is reference counted by the binding and by
 * each perf event: events may outlive the device (sysfs unbind,
 * hot-unplug). remove() unpublishes the device (event_init finds it under
 * RCU), waits until no perf callback can still be using it, stops the
 * device and frees the count pages; the events left read frozen counts,
 * and the state goes with the last of them.
 *
 * Before Linux 6.2 perf keeps pointers to this PMU in the task contexts
 * that per-task pvperf events created, after those events are gone (see
 * pvperf_pin()): the first per-task event pins the module until reboot.
 *
 * Resets. Suspend, hibernation and PCI resets pause the device; afterwards
 * every CPU registers its page again and reopens the slots its events own
 * (a device reset closes every slot and forgets every page), and the slots
 * of running events are enabled again.
 *
 * Commands. With the device's CMD_BLOCK feature (ABI 1.1) each CPU has a
 * command block, a page it writes its command into before it rings RUN on
 * the doorbell: one exit per command, where the registers cost up to nine
 * (arguments, doorbell, STATUS). Devices of ABI 1.0 get the registers.
 *
 * Locking. pv->lock (raw, IRQs off) covers the command registers, the
 * device state and the reference count; it is taken to open, steal,
 * reopen and close the slots events own, and for the commands of a CPU
 * without a usable block. Each CPU's pc->lock (raw, IRQs off, taken after
 * pv->lock where both are) covers that CPU's slots: the owned ones (used,
 * lost, zombie, owner[], vcpu, and the events' slot[]), the shared ones
 * (sused, shared[], srefs[], sactive and the shared events' fields) and
 * block_ready. What a context switch does (the shared-slot path of
 * software events and tracepoints, and ENABLE, DISABLE and READ of the
 * slots events own) takes only its own CPU's pc->lock and uses only its
 * command block, so CPUs switching contexts do not wait for each other;
 * another CPU takes that lock only to close slots (an event destroyed,
 * the last event of a shared entry gone) or after a reset. The rest of a
 * CPU's state (ready, active[], the per-CPU transaction and bracket, the
 * use of its command block) belongs to that CPU and is only touched there
 * with IRQs off: in perf's callbacks, cpuhp callbacks and IPIs. ->read may
 * also come from NMI, and then touches nothing; elsewhere it only tries
 * the locks (a BPF program may read an event on a CPU that holds them).
 *
 * Shared slots. Software events and tracepoints (never multiplexed by the
 * host) count the deltas of one slot per CPU and catalog entry, kept open
 * and enabled while events of that entry exist: no host event per task or
 * per forked child, and no limit on the tasks counted at once.
 *
 * Groups. A perf group with two or more pvperf events is one host group
 * on each CPU: its first pvperf event (the host leader) owns a slot
 * opened without a group, and the others own slots opened with CMD_GROUP
 * = that slot, whatever their kind (a group never uses shared slots), so
 * the host schedules, multiplexes and scales them together. The group is
 * enabled in one exit (the add transaction) and read in one (perf's read
 * transaction, PERF_FORMAT_GROUP); stopping costs an exit per event, as
 * without groups (the device's DISABLE of a leader stops its members, so
 * a counting leader stopped while they run is read, and disabled with
 * the last of them: pvperf_stop_cmd()). A member slot is opened only
 * while its leader is added on the CPU; stealing a leader's slot closes
 * its members' too, and they reopen with it.
 */
#include <linux/bitops.h>
#include <linux/capability.h>
#include <linux/cpu.h>
#include <linux/atomic.h>
#include <linux/cpuhotplug.h>
#include <linux/interrupt.h>
#include <asm/irq_regs.h>
#include <linux/list.h>
#include <linux/dma-mapping.h>
#include <linux/math64.h>
#include <linux/module.h>
#include <linux/nospec.h>
#include <linux/mutex.h>
#include <linux/pci.h>
#include <linux/percpu.h>
#include <linux/perf_event.h>
#include <linux/trace_events.h>
#include <linux/pm.h>
#include <linux/preempt.h>
#include <linux/rcupdate.h>
#include <linux/slab.h>
#include <linux/sched/clock.h>
#include <linux/smp.h>
#include <linux/spinlock.h>
#include <linux/version.h>

#include "hw/misc/pvperf.h"

#define DRV_NAME "pvperf"
#define PVPERF_KNOWN_FEATURES \
	(PVPERF_F_COUNTING | PVPERF_F_GROUPS | PVPERF_F_IO_DOORBELL | \
	 PVPERF_F_CMD_BLOCK | PVPERF_F_OVERFLOW)

/* attr.config: the catalog index, the format's event field */
#define PVPERF_CONFIG_MASK	GENMASK_ULL(15, 0)

/* hwc->state bit: started inside a transaction, not yet enabled */
#define PVPERF_HES_PENDING	PERF_HES_ARCH

/* pc->vcpu of a CPU that never registered a page: the device rejects it */
#define PVPERF_VCPU_INVALID	0xfffffffeu

/* Driver-side statuses: the device may not be touched (paused or gone) */
#define PVPERF_ST_NODEV		0x10000u
/* this CPU has no usable command block: the registers may do */
#define PVPERF_ST_NOBLOCK	0x10001u
/*
 * this CPU's command block is in use by the code this one interrupted (a
 * BPF program reading an event in the middle of a command)
 */
#define PVPERF_ST_BUSY		0x10002u

/*
 * Tries of the seqlock read of a record before it counts as failed: the
 * host writes a record in a few stores, but a broken or hostile one could
 * leave its seq odd, and the reader has IRQs off.
 */
#define PVPERF_SEQ_TRIES	1000

enum pvperf_state {
	PVPERF_LIVE,
	PVPERF_PAUSED,		/* suspended or being reset: no MMIO */
	PVPERF_GONE,		/* removed: no MMIO ever again */
};

struct pvperf_cpu {
	struct pvperf_page_header *page;	/* count page (coherent DMA) */
	dma_addr_t page_dma;
	struct pvperf_block_header *block;	/* command block, or NULL */
	dma_addr_t block_dma;
	/*
	 * Set on this CPU with IRQs off under pv->lock or pc->lock, cleared
	 * by other CPUs under both.
	 */
	bool block_ready;		/* registered: this CPU's commands use it */
	bool block_busy;		/* this CPU, IRQs off: a command in it */
	/* under pv->lock */
	u32 vcpu;			/* device vCPU index, kept while offline */
	u64 used;			/* slots owned by events */
	u64 lost;			/* owned, but closed by the device */
	u64 zombie;			/* owner gone while the device was paused */
	struct perf_event *owner[PVPERF_SLOTS_MAX];
	/*
	 * Host groups (see "Groups" above), under pv->lock and pc->lock: a
	 * member slot's leader slot + 1 (0: the slot leads or is alone)
	 */
	u8 hlead[PVPERF_SLOTS_MAX];
	/*
	 * This CPU, IRQs off: counting host leaders that perf stopped while
	 * members of theirs ran, left enabled on the device (its DISABLE of
	 * a leader stops the members too); the last member's DISABLE takes
	 * them along (see pvperf_stop())
	 */
	u64 lead_on;
	/* this CPU only, IRQs off */
	bool ready;			/* page registered, slots in step */
	/*
	 * The page may be read: registered with the device, which writes it.
	 * Every read of it checks this on its CPU with IRQs off, and pause
	 * and remove clear it there (pvperf_cpu_quiesce(), by IPI) before the
	 * page can go: no reader is left once the IPIs are done.
	 */
	bool page_live;
	struct perf_event *active[PVPERF_SLOTS_MAX];	/* added here */
	/*
	 * Shared slots (software and tracepoint entries, see "Shared slots"
	 * above), under lock: one per catalog entry in use on this CPU, kept
	 * open and enabled; the events added here count deltas of them.
	 */
	raw_spinlock_t lock;
	u64 sused;			/* the shared slots */
	u8 shared[PVPERF_CATALOG_MAX];	/* entry's shared slot + 1, 0 = none */
	unsigned int srefs[PVPERF_CATALOG_MAX];	/* events added here on it */
	struct list_head sactive;	/* shared events added here */
	unsigned long fresh_gen;	/* bracket in which the records were read */
	unsigned long failed_gen;	/* bracket whose all-slot READ failed */
	/*
	 * Sampling: the period the device has for each owned slot (set with
	 * the slot, under pv->lock and pc->lock, or by this CPU with IRQs
	 * off), and the record's overflows this CPU has handled (this CPU,
	 * IRQs off).
	 */
	u64 period[PVPERF_SLOTS_MAX];
	u64 ovf_seen[PVPERF_SLOTS_MAX];
	/*
	 * Sampling slots added here and not enabled since: the overflows
	 * their record holds at the next ENABLE are from before (see
	 * pvperf_rebase_overflows()). This CPU, IRQs off.
	 */
	u64 since_add;
	/* events the overflows seen and not sampled yet stand for */
	u64 weight[PVPERF_SLOTS_MAX];
	/* samples taken in this jiffy (this CPU, IRQs off) */
	unsigned long sample_jiffy;
	u32 samples;
};

/* One MSI-X vector: vCPU @vcpu's overflows */
struct pvperf_vec {
	struct pvperf_dev *pv;
	u32 vcpu;
	char name[24];
};

/*
 * A perf transaction on this CPU. It is per CPU, not per device: before
 * Linux 6.2 perf calls the transaction hooks of a task context's PMU for
 * every software event group of the task, with or without a device.
 */
struct pvperf_txn {
	unsigned int flags;
	u64 mask;			/* slots of the events started or read */
	struct pvperf_dev *pv;		/* their device */
};

struct pvperf_entry {
	char name[PVPERF_NAME_SIZE];	/* catalog name */
	u32 info;
	u32 err;
};

struct pvperf_dev {
	struct pci_dev *pdev;		/* NULL once removed */
	void __iomem *regs;
	void __iomem *doorbell;		/* I/O BAR doorbell, or BAR 0's */
	raw_spinlock_t lock;		/* see "Locking" above */
	enum pvperf_state state;
	unsigned int refs;		/* the binding, and each perf event */
	u32 version;			/* VERSION, read at probe */
	u32 features;
	u32 slots_per_vcpu;
	u32 refresh_ms;			/* REFRESH_MS: the device's refresh */
	struct pvperf_cpu __percpu *cpu;
	struct hlist_node node;		/* cpuhp instance */
	struct pvperf_vec *vec;		/* OVERFLOW: a vector per vCPU index */
	u32 nvec;			/* of them requested */
	bool vectors;			/* MSI-X vectors allocated */
	u32 tick_samples;		/* MAX_SAMPLE_RATE per jiffy, per CPU */
	u64 clock_period_min;		/* see pvperf_period() */
	/* shared-slot events of this device in existence, per catalog entry */
	atomic_t entry_events[PVPERF_CATALOG_MAX];
};

/* Per event: the device, the times of the last read, a slot per CPU */
struct pvperf_event {
	struct pvperf_dev *pv;
	u64 prev_enabled;
	u64 prev_running;
	bool rebase;			/* record unreadable at start: resync */
	bool sampling;			/* has a period: owns sampling slots */
	struct perf_event *event;
	u32 idx;			/* catalog entry */
	/* a shared-slot kind (counted in entry_events) */
	bool shared;
	/*
	 * Added on a shared slot (a shared kind alone in its group: see
	 * "Groups" above), set by add for the callbacks until del
	 */
	bool on_shared;
	bool based;			/* prev_count is the slot's count then */
	/*
	 * perf stopped it from NMI (a throttled group, Linux >= 6.16):
	 * nothing was sent to the device, the slot still counts; the next
	 * start or stop outside NMI settles it (see pvperf_stop()).
	 */
	bool nmi_stopped;
	/*
	 * What samples added to the count ahead of the records (see
	 * pvperf_sample()): taken from the next deltas, on the CPU the
	 * event runs on, IRQs off
	 */
	u64 ahead;
	u8 sslot;			/* the shared slot + 1 while added */
	struct list_head snode;		/* in pc->sactive while added */
	u8 slot[];			/* slot + 1 on each CPU, 0 = none */
};

/*
 * One device at a time. pvperf_mutex serializes probe and remove; the
 * bound device is published for event_init under RCU.
 */
static DEFINE_MUTEX(pvperf_mutex);
static struct pvperf_dev __rcu *pvperf_live;
static enum cpuhp_state pvperf_hp_state;
static DEFINE_PER_CPU(struct pvperf_txn, pvperf_txn);
static struct pmu pvperf_pmu;

/*
 * Reads (perf stat -I, perf's read(2)) of a running software or
 * tracepoint event take the count from the page, with no exit, when the
 * device refreshes the page at least this often (REFRESH_MS, the
 * refresh-ms property); 0: every read asks the device.
 */
static unsigned int read_staleness_ms;
module_param(read_staleness_ms, uint, 0644);
MODULE_PARM_DESC(read_staleness_ms,
		 "reads use the count page, no exit, if the device refreshes it at least every N ms (0: never)");

/*
 * Join perf's hardware task context (pvperf_choose_context()): from
 * Linux 6.2 always, before only where no hardware PMU has it. 0 keeps
 * pvperf in the software context: for tests and benchmarks of that path
 * (the one a Linux < 6.2 guest with a hardware vPMU takes), not policy.
 */
static int hw_context = -1;
module_param(hw_context, int, 0444);
MODULE_PARM_DESC(hw_context,
		 "0: stay in perf's software task context (tests); any other value: join the hardware one (Linux >= 6.2), or on Linux < 6.2 where no hardware PMU has it (default)");

/*
 * perf's pmu_disable/pmu_enable bracket on this CPU: inside it, the first
 * shared-slot operation reads every shared slot of the CPU (one exit) and
 * the others use those records. A bracket's number is its generation.
 */
struct pvperf_bracket {
	bool open;
	unsigned long gen;
};

static DEFINE_PER_CPU(struct pvperf_bracket, pvperf_bracket);

/*
 * The PMU's catalog and its sysfs events/: read from the first device,
 * fixed while the PMU is registered (under pvperf_mutex until then).
 */
static bool pvperf_registered;
static u32 pvperf_nr_entries;
static struct pvperf_entry pvperf_catalog[PVPERF_CATALOG_MAX];
static char pvperf_ev_names[PVPERF_CATALOG_MAX][PVPERF_NAME_SIZE];
static struct perf_pmu_events_attr pvperf_ev_attrs[PVPERF_CATALOG_MAX];
/* <name>.unit and <name>.scale of the entries that count time */
static char pvperf_unit_names[PVPERF_CATALOG_MAX][PVPERF_NAME_SIZE + 8];
static char pvperf_scale_names[PVPERF_CATALOG_MAX][PVPERF_NAME_SIZE + 8];
static struct perf_pmu_events_attr pvperf_unit_attrs[PVPERF_CATALOG_MAX];
static struct perf_pmu_events_attr pvperf_scale_attrs[PVPERF_CATALOG_MAX];
static struct attribute *pvperf_ev_attr_ptrs[3 * PVPERF_CATALOG_MAX + 1];

static inline struct pvperf_event *to_pe(struct perf_event *event)
{
	return event->pmu_private;
}

static u32 pv_rd(struct pvperf_dev *pv, u32 reg)
{
	return ioread32(pv->regs + reg);
}

static void pv_wr(struct pvperf_dev *pv, u32 reg, u32 val)
{
	iowrite32(val, pv->regs + reg);
}

/* Count page fields are little-endian and written by the host at any time */
static inline u32 pv_le32(const u32 *p)
{
	return le32_to_cpu((__force __le32)READ_ONCE(*p));
}

static inline u64 pv_le64(const u64 *p)
{
	return le64_to_cpu((__force __le64)READ_ONCE(*p));
}

static int pv_errno(u32 st)
{
	switch (st) {
	case PVPERF_ST_OK:
		return 0;
	case PVPERF_ST_LIMIT:
		return -ENOSPC;
	case PVPERF_ST_NODEV:
	case PVPERF_ST_NOBLOCK:
		return -ENODEV;
	case PVPERF_ST_BUSY:
		return -EBUSY;
	default:
		return -EIO;
	}
}

/* A command's arguments (docs/pvperf.rst, "Commands and status codes") */
struct pvperf_args {
	u32 vcpu;
	u32 slot;
	u32 event;
	u32 group;
	u32 flags;
	u64 mask;
	u64 addr;
	u64 period;
};

/*
 * One command through this CPU's command block: one exit, whatever the
 * arguments, and no register another CPU could be writing. The block is
 * this CPU's and is only used there with IRQs off, under pv->lock or
 * pc->lock, never from NMI; a BPF program reading an event may still
 * interrupt a command holding the other lock: PVPERF_ST_BUSY then.
 * Returns PVPERF_ST_PENDING when the device did not process it.
 */
static u32 pv_run_block_n(struct pvperf_dev *pv, struct pvperf_cpu *pc,
			  const u32 *cmd, const struct pvperf_args *a, u32 n)
{
	struct pvperf_block_entry *e = (void *)pc->block +
				       PVPERF_BLOCK_ENTRY_OFFSET(0);
	u32 st, i;

	if (pc->block_busy)
		return PVPERF_ST_BUSY;
	pc->block_busy = true;
	barrier();
	for (i = 0; i < n; i++)
		e[i] = (struct pvperf_block_entry) {
			.cmd = cpu_to_le32(cmd[i]),
			.vcpu = cpu_to_le32(a[i].vcpu),
			.slot = cpu_to_le32(a[i].slot),
			.event = cpu_to_le32(a[i].event),
			.group = cpu_to_le32(a[i].group),
			.flags = cpu_to_le32(a[i].flags),
			.mask = cpu_to_le64(a[i].mask),
			.addr = cpu_to_le64(a[i].addr),
			.period = cpu_to_le64(a[i].period),
		};
	pc->block->nr = cpu_to_le32(n);
	pc->block->status = cpu_to_le32(PVPERF_ST_PENDING);
	/* iowrite32 orders the block's stores before the doorbell */
	iowrite32(PVPERF_CMD_RUN, pv->doorbell);
	dma_rmb();
	st = le32_to_cpu(READ_ONCE(pc->block->status));
	if (st != PVPERF_ST_OK && st != PVPERF_ST_PENDING) {
		i = min(le32_to_cpu(READ_ONCE(pc->block->done)), n - 1);
		pr_debug_ratelimited(DRV_NAME ": command %u: status %u errno %u\n",
				     cmd[i], st,
				     le32_to_cpu(READ_ONCE(e[i].host_errno)));
	}
	barrier();
	pc->block_busy = false;
	return st;
}

static u32 pv_run_block(struct pvperf_dev *pv, struct pvperf_cpu *pc, u32 cmd,
			const struct pvperf_args *a)
{
	return pv_run_block_n(pv, pc, &cmd, a, 1);
}

/* The same through the registers: ABI 1.0 devices, and bring-up */
static u32 pv_run_regs(struct pvperf_dev *pv, u32 cmd,
		       const struct pvperf_args *a)
{
	u32 st;

	pv_wr(pv, PVPERF_REG_CMD_VCPU, a->vcpu);
	switch (cmd) {
	case PVPERF_CMD_OPEN:
		pv_wr(pv, PVPERF_REG_CMD_EVENT, a->event);
		pv_wr(pv, PVPERF_REG_CMD_GROUP, a->group);
		pv_wr(pv, PVPERF_REG_CMD_FLAGS, a->flags);
		fallthrough;
	case PVPERF_CMD_SET_PERIOD:
		pv_wr(pv, PVPERF_REG_CMD_SLOT, a->slot);
		pv_wr(pv, PVPERF_REG_CMD_PERIOD_LO, lower_32_bits(a->period));
		pv_wr(pv, PVPERF_REG_CMD_PERIOD_HI, upper_32_bits(a->period));
		break;
	case PVPERF_CMD_CLOSE:
		pv_wr(pv, PVPERF_REG_CMD_SLOT, a->slot);
		break;
	case PVPERF_CMD_SET_PAGE:
	case PVPERF_CMD_SET_BLOCK:
		pv_wr(pv, PVPERF_REG_CMD_ADDR_LO, lower_32_bits(a->addr));
		pv_wr(pv, PVPERF_REG_CMD_ADDR_HI, upper_32_bits(a->addr));
		break;
	default:
		pv_wr(pv, PVPERF_REG_CMD_MASK_LO, lower_32_bits(a->mask));
		pv_wr(pv, PVPERF_REG_CMD_MASK_HI, upper_32_bits(a->mask));
		break;
	}
	iowrite32(cmd, pv->doorbell);
	st = pv_rd(pv, PVPERF_REG_STATUS);
	if (st != PVPERF_ST_OK)
		pr_debug_ratelimited(DRV_NAME ": command %u: status %u errno %u\n",
				     cmd, st, pv_rd(pv, PVPERF_REG_HOST_ERRNO));
	return st;
}

/*
 * Run a command with pv->lock held. Every register access but probe's
 * and remove's goes through here or checks pv->state under the lock
 * first. A block the device did not process (it was reset under us, and
 * forgot it) is dropped, and the command runs through the registers; the
 * next sync of the CPU registers the block again.
 */
static u32 pv_cmd_locked(struct pvperf_dev *pv, u32 cmd,
			 const struct pvperf_args *a)
{
	struct pvperf_cpu *pc = this_cpu_ptr(pv->cpu);
	u32 st;

	lockdep_assert_held(&pv->lock);
	if (pv->state != PVPERF_LIVE)
		return PVPERF_ST_NODEV;
	if (pc->block_ready && cmd != PVPERF_CMD_SET_BLOCK) {
		st = pv_run_block(pv, pc, cmd, a);
		if (st != PVPERF_ST_PENDING)
			return st;
		pc->block_ready = false;
	}
	return pv_run_regs(pv, cmd, a);
}

static u32 pv_mask_cmd_locked(struct pvperf_dev *pv, u32 cmd, u32 vcpu,
			      u64 mask)
{
	struct pvperf_args a = { .vcpu = vcpu, .mask = mask };

	return pv_cmd_locked(pv, cmd, &a);
}

static u32 pv_cmd_cpu_n(struct pvperf_dev *pv, struct pvperf_cpu *pc,
			const u32 *cmd, const struct pvperf_args *a, u32 n);

static bool pv_lock(raw_spinlock_t *lock, bool try)
{
	if (try)
		return raw_spin_trylock(lock);
	raw_spin_lock(lock);
	return true;
}

/*
 * A mask command (ENABLE, DISABLE, READ) on this CPU's vCPU for slots the
 * CPU's events own: through the CPU's command block under its pc->lock
 * alone, no lock shared with other CPUs; without a usable block, through
 * the registers under pv->lock. @try: only try the locks (->read, which a
 * BPF program may call on a CPU holding them), PVPERF_ST_NODEV if busy.
 */
static u32 pv_cmds(struct pvperf_dev *pv, const u32 *cmd,
		   const struct pvperf_args *a, u32 n, bool try)
{
	struct pvperf_cpu *pc;
	unsigned long flags;
	u32 st = PVPERF_ST_NODEV, i;

	local_irq_save(flags);
	pc = this_cpu_ptr(pv->cpu);
	if (!pv_lock(&pc->lock, try))
		goto out;
	st = pv_cmd_cpu_n(pv, pc, cmd, a, n);
	raw_spin_unlock(&pc->lock);
	/* no block (or the device forgot it): the registers, one by one */
	if (st == PVPERF_ST_NOBLOCK) {
		st = PVPERF_ST_NODEV;
		if (pv_lock(&pv->lock, try)) {
			for (i = 0, st = PVPERF_ST_OK;
			     i < n && st == PVPERF_ST_OK; i++)
				st = pv_cmd_locked(pv, cmd[i], &a[i]);
			raw_spin_unlock(&pv->lock);
		}
	}
out:
	local_irq_restore(flags);
	return st;
}

static u32 pv_mask_cmd(struct pvperf_dev *pv, u32 cmd, u64 mask, bool try)
{
	struct pvperf_args a = { .vcpu = PVPERF_VCPU_SELF, .mask = mask };

	return pv_cmds(pv, &cmd, &a, 1, try);
}

/* Does catalog entry @idx count ns (a clock: docs/pvperf.rst, "Catalog")? */
static bool pvperf_entry_is_clock(u64 idx)
{
	return (pvperf_catalog[idx].info & PVPERF_INFO_UNIT_MASK) >>
	       PVPERF_INFO_UNIT_SHIFT == PVPERF_UNIT_NS;
}

/*
 * The period a sampling event's slot samples with (perf's, which frequency
 * mode changes as it goes), within the ABI's bounds; 0 for counting.
 * A clock's is time: one shorter than a second over MAX_SAMPLE_RATE makes
 * its host event overflow faster than the device lets overflows through
 * (docs/pvperf.rst, "Throttling and limits"): it takes a quota in a burst,
 * then is held off, neither counting nor sampling, for the rest of the
 * window, and the burst ends in about one interrupt (perf record -c 1 -e
 * pvperf/task-clock/ got 50 samples a second, and half the time). So a
 * clock samples at most at four fifths of that rate, evenly (the vCPU's
 * only sampling slot; the limit is per vCPU); each sample weighs the
 * period it covered, so perf report stays right.
 */
static u64 pvperf_period(struct perf_event *event)
{
	struct pvperf_event *pe = to_pe(event);
	u64 period;

	if (!is_sampling_event(event))
		return 0;
	period = clamp_t(u64, event->hw.sample_period, 1, PVPERF_PERIOD_MAX);
	if (pvperf_entry_is_clock(pe->idx))
		period = max(period, pe->pv->clock_period_min);
	return period;
}

/*
 * OPEN @slot on the calling CPU's vCPU for @event's catalog entry,
 * disabled, sampling with its period if it samples; a member of the
 * group that @group leads, or alone (PVPERF_NO_GROUP)
 */
static u32 pv_open_locked(struct pvperf_dev *pv, u32 slot,
			  struct perf_event *event, u32 group)
{
	struct pvperf_cpu *pc = this_cpu_ptr(pv->cpu);
	struct pvperf_args a = {
		.vcpu = PVPERF_VCPU_SELF, .slot = slot,
		.event = event->attr.config, .group = group,
		.period = pvperf_period(event),
	};
	u32 st = pv_cmd_locked(pv, PVPERF_CMD_OPEN, &a);

	if (st == PVPERF_ST_OK) {
		pc->period[slot] = a.period;
		pc->ovf_seen[slot] = 0;		/* a new slot counts from 0 */
		pc->weight[slot] = 0;		/* nothing of an earlier owner */
		pc->hlead[slot] = group == PVPERF_NO_GROUP ? 0 : group + 1;
		pc->lead_on &= ~BIT_ULL(slot);
	}
	return st;
}

/* Member slots of the host group that @slot leads on this CPU */
static u64 pvperf_members(struct pvperf_cpu *pc, u32 slot)
{
	u64 m = 0;
	u32 i;

	for (i = 0; i < PVPERF_SLOTS_MAX; i++)
		if (pc->hlead[i] == slot + 1)
			m |= BIT_ULL(i);
	return m;
}

/* @slot is closed: its members (if it led) carry on alone, as the host's */
static void pvperf_forget_group(struct pvperf_cpu *pc, u32 slot)
{
	u64 m;

	for (m = pvperf_members(pc, slot); m; m &= m - 1)
		pc->hlead[__ffs64(m)] = 0;
	pc->hlead[slot] = 0;
}

static u32 pv_close_locked(struct pvperf_dev *pv, u32 vcpu, u32 slot)
{
	struct pvperf_args a = { .vcpu = vcpu, .slot = slot };

	return pv_cmd_locked(pv, PVPERF_CMD_CLOSE, &a);
}

static u32 pv_set_page_locked(struct pvperf_dev *pv, u32 vcpu, u64 addr)
{
	struct pvperf_args a = { .vcpu = vcpu, .addr = addr };

	return pv_cmd_locked(pv, PVPERF_CMD_SET_PAGE, &a);
}

/* SET_BLOCK always goes through the registers */
static u32 pv_set_block_locked(struct pvperf_dev *pv, u32 vcpu, u64 addr)
{
	struct pvperf_args a = { .vcpu = vcpu, .addr = addr };

	return pv_cmd_locked(pv, PVPERF_CMD_SET_BLOCK, &a);
}

struct pvperf_snap {
	u32 flags;
	u64 count;
	u64 enabled;
	u64 running;
	u64 overflows;
};

/*
 * The documented seqlock read of a slot record, with a bound: a record
 * whose seq stays odd (or keeps moving) fails the read instead of
 * spinning with IRQs off for as long as the host likes.
 */
static bool pv_read_record(struct pvperf_cpu *pc, u32 slot,
			   struct pvperf_snap *snap)
{
	const struct pvperf_slot_record *rec = (void *)pc->page +
					       PVPERF_SLOT_RECORD_OFFSET(slot);
	unsigned int tries;
	u32 s1, s2 = 0;

	if (!pc->page_live)
		return false;
	for (tries = 0; tries < PVPERF_SEQ_TRIES; tries++) {
		s1 = pv_le32(&rec->seq);
		virt_rmb();	/* pairs with the host's barrier after seq++ */
		snap->flags = pv_le32(&rec->flags);
		snap->count = pv_le64(&rec->count);
		snap->enabled = pv_le64(&rec->time_enabled);
		snap->running = pv_le64(&rec->time_running);
		snap->overflows = pv_le64(&rec->overflows);
		virt_rmb();	/* pairs with the host's barrier before seq++ */
		s2 = pv_le32(&rec->seq);
		if (!(s1 & 1) && s1 == s2)
			return true;
		cpu_relax();
	}
	pr_warn_ratelimited(DRV_NAME ": slot %u: the host never finished writing its record (seq %u): not read\n",
			    slot, s2);
	return false;
}

static void pvperf_store_prev(struct perf_event *event,
			      const struct pvperf_snap *now)
{
	struct pvperf_event *pe = to_pe(event);

	local64_set(&event->hw.prev_count, now->count);
	pe->prev_enabled = now->enabled;
	pe->prev_running = now->running;
	pe->rebase = false;
}

/*
 * Start counting the event's deltas from what the slot's record says now.
 * If it cannot be read, the next update starts them from what it reads.
 */
static void pvperf_rebase_overflows(struct perf_event *event,
				    struct pvperf_cpu *pc,
				    const struct pvperf_snap *now);

static void pvperf_set_prev(struct perf_event *event, struct pvperf_cpu *pc)
{
	struct pvperf_snap now;

	if (pv_read_record(pc, event->hw.idx, &now)) {
		pvperf_store_prev(event, &now);
		pvperf_rebase_overflows(event, pc, &now);
	} else {
		to_pe(event)->rebase = true;
	}
}

/*
 * Add what the slot counted since the last update. When the host
 * multiplexed the event (hardware events with more of them than counters),
 * it ran for only part of the time it was enabled: scale the delta up, as
 * perf does for its own events, rather than report it silently low.
 */
static void pvperf_account(struct perf_event *event,
			   const struct pvperf_snap *now)
{
	struct pvperf_event *pe = to_pe(event);
	struct hw_perf_event *hwc = &event->hw;
	u64 delta, enabled, running;

	if (pe->rebase) {
		pvperf_store_prev(event, now);
		return;
	}
	delta = now->count - local64_read(&hwc->prev_count);
	enabled = now->enabled - pe->prev_enabled;
	running = now->running - pe->prev_running;
	pvperf_store_prev(event, now);

	/* the bound keeps the quotient within 64 bits (x86 divq traps) */
	if (running && running < enabled &&
	    delta <= div64_u64(U64_MAX, enabled) * running)
		delta = mul_u64_u64_div_u64(delta, enabled, running);
	if (pe->ahead) {
		u64 paid = min(delta, pe->ahead);

		pe->ahead -= paid;
		delta -= paid;
	}
	local64_add(delta, &event->count);
}

static void pvperf_update(struct perf_event *event, struct pvperf_cpu *pc)
{
	struct pvperf_snap now;

	if (pv_read_record(pc, event->hw.idx, &now))
		pvperf_account(event, &now);
	/* else the next update takes the delta */
}

/* Shared slots ---------------------------------------------------------- */

/*
 * Entries that the host never multiplexes (software events and
 * tracepoints) count exactly on shared slots, unless this is off (for
 * events created afterwards): then they own slots, as hardware events do
 * (the end-to-end tests use it to run that path here).
 */
static bool shared_slots = true;
module_param(shared_slots, bool, 0644);
MODULE_PARM_DESC(shared_slots,
		 "software events and tracepoints count on shared per-CPU slots (0: a slot per event)");

static bool pvperf_kind_shared(u64 idx)
{
	u32 kind = pvperf_catalog[idx].info & PVPERF_INFO_KIND_MASK;

	return READ_ONCE(shared_slots) &&
	       (kind == PVPERF_KIND_SOFTWARE || kind == PVPERF_KIND_TRACEPOINT);
}

/*
 * A command of the shared-slot path: pc->lock held, IRQs off, on pc's
 * CPU, through its command block only (no lock shared with other CPUs).
 */
static u32 pv_cmd_cpu_n(struct pvperf_dev *pv, struct pvperf_cpu *pc,
			const u32 *cmd, const struct pvperf_args *a, u32 n)
{
	u32 st;

	lockdep_assert_held(&pc->lock);
	/*
	 * pc->ready stands for pv->state here: pause and remove clear it on
	 * every CPU (pvperf_cpu_quiesce, with IRQs off there) before they
	 * change the state, and only a sync on this CPU sets it again.
	 */
	if (!pc->ready)
		return PVPERF_ST_NODEV;
	if (!pc->block_ready)
		return PVPERF_ST_NOBLOCK;
	st = pv_run_block_n(pv, pc, cmd, a, n);
	if (st == PVPERF_ST_PENDING) {
		/* the device forgot the block: the next sync registers it */
		pc->block_ready = false;
		return PVPERF_ST_NOBLOCK;
	}
	return st;
}

static u32 pv_cmd_cpu(struct pvperf_dev *pv, struct pvperf_cpu *pc, u32 cmd,
		      const struct pvperf_args *a)
{
	return pv_cmd_cpu_n(pv, pc, &cmd, a, 1);
}

/*
 * Make the record of shared @slot current. Inside perf's bracket, the
 * first call reads every shared slot of the CPU (one exit) and the later
 * ones use those records; outside, it reads @slot (one exit).
 */
static bool pvperf_shared_sync(struct pvperf_dev *pv, struct pvperf_cpu *pc,
			       u32 slot)
{
	struct pvperf_bracket *b = this_cpu_ptr(&pvperf_bracket);
	struct pvperf_args a = { .vcpu = PVPERF_VCPU_SELF };

	if (b->open && pc->fresh_gen == b->gen)
		return true;
	if (b->open && pc->failed_gen != b->gen) {
		a.mask = pc->sused;
		if (pv_cmd_cpu(pv, pc, PVPERF_CMD_READ, &a) == PVPERF_ST_OK) {
			pc->fresh_gen = b->gen;
			return true;
		}
		/*
		 * One bad slot fails the whole mask: this bracket reads each
		 * slot alone from here on.
		 */
		pc->failed_gen = b->gen;
	}
	a.mask = BIT_ULL(slot);
	return pv_cmd_cpu(pv, pc, PVPERF_CMD_READ, &a) == PVPERF_ST_OK;
}

/*
 * Bring a shared event's count up to its slot's record; from there it
 * counts on if @counting. Host counts only grow: a record below the last
 * one seen (a reset slot) starts the deltas again.
 */
static void pvperf_shared_update(struct pvperf_cpu *pc,
				 struct perf_event *event, bool counting)
{
	struct pvperf_event *pe = to_pe(event);
	struct hw_perf_event *hwc = &event->hw;
	struct pvperf_snap now;
	u64 prev = local64_read(&hwc->prev_count);

	if (!pe->sslot || !pv_read_record(pc, pe->sslot - 1, &now) ||
	    !(now.flags & PVPERF_SLOT_OPEN)) {
		pe->based = false;
		return;
	}
	if (pe->based && now.count < prev) {
		/* older than where the deltas start (a page not yet refreshed) */
		pe->based = counting;
		return;
	}
	if (pe->based)
		local64_add(now.count - prev, &event->count);
	local64_set(&hwc->prev_count, now.count);
	pe->based = counting;
}

/* The shared slot of entry @idx on this CPU, opened if needed; or -errno */
static int pvperf_shared_get(struct pvperf_dev *pv, struct pvperf_cpu *pc,
			     u32 idx)
{
	u64 all = GENMASK_ULL(pv->slots_per_vcpu - 1, 0), free;
	struct pvperf_args a = {
		.vcpu = PVPERF_VCPU_SELF, .event = idx,
		.group = PVPERF_NO_GROUP, .flags = PVPERF_OPEN_ENABLED,
	};
	u32 st;

	lockdep_assert_held(&pc->lock);
	/* paused or removed: what shared[] says is not to be used now */
	if (!pc->ready)
		return -ENODEV;
	if (pc->shared[idx])
		return pc->shared[idx] - 1;
	free = all & ~(pc->used | pc->sused);
	if (!free)
		return -ENOSPC;
	a.slot = __ffs64(free);
	st = pv_cmd_cpu(pv, pc, PVPERF_CMD_OPEN, &a);
	if (st != PVPERF_ST_OK)
		return pv_errno(st);
	pc->sused |= BIT_ULL(a.slot);
	pc->shared[idx] = a.slot + 1;
	return a.slot;
}

static void pvperf_shared_start(struct pvperf_dev *pv, struct pvperf_cpu *pc,
				struct perf_event *event)
{
	struct pvperf_event *pe = to_pe(event);

	if (!(event->hw.state & PERF_HES_STOPPED))
		return;
	event->hw.state = 0;
	pe->based = false;
	if (pe->sslot && pvperf_shared_sync(pv, pc, pe->sslot - 1))
		pvperf_shared_update(pc, event, true);
}

/*
 * Mark @event stopped, then forget a stop from NMI (see pvperf_stop()):
 * an NMI from here on finds it stopped and leaves it alone. Returns
 * whether it was running (its slot counting) until now.
 */
static bool pvperf_mark_stopped(struct perf_event *event)
{
	struct pvperf_event *pe = to_pe(event);
	bool running = !(event->hw.state & PERF_HES_STOPPED) ||
		       pe->nmi_stopped;

	event->hw.state |= PERF_HES_STOPPED;
	barrier();
	pe->nmi_stopped = false;
	return running;
}

/* Stop a shared event; @running: it was counting (its delta is taken) */
static void pvperf_shared_stop(struct pvperf_dev *pv, struct pvperf_cpu *pc,
			       struct perf_event *event, bool running)
{
	struct pvperf_event *pe = to_pe(event);

	event->hw.state = PERF_HES_STOPPED | PERF_HES_UPTODATE;
	if (!running)
		return;
	if (pe->sslot && pe->based && pvperf_shared_sync(pv, pc, pe->sslot - 1))
		pvperf_shared_update(pc, event, false);
	pe->based = false;
}

static int pvperf_shared_add(struct pvperf_dev *pv, struct perf_event *event,
			     int flags)
{
	struct pvperf_cpu *pc = this_cpu_ptr(pv->cpu);
	struct pvperf_event *pe = to_pe(event);
	u32 idx = pe->idx;
	unsigned long irqflags;
	int slot;

	pe->nmi_stopped = false;
	raw_spin_lock_irqsave(&pc->lock, irqflags);
	slot = pvperf_shared_get(pv, pc, idx);
	/*
	 * Without the device now (paused, or the CPU not set up yet) the
	 * event counts once the CPU is synced; but a CPU that is set up and
	 * cannot run commands (no command block) fails the add, so that perf
	 * shows the event not counted rather than counting 0.
	 */
	if (slot < 0 && (slot != -ENODEV || pc->ready)) {
		raw_spin_unlock_irqrestore(&pc->lock, irqflags);
		return slot;
	}
	pe->sslot = slot >= 0 ? slot + 1 : 0;
	if (pe->sslot)
		pc->srefs[idx]++;
	list_add(&pe->snode, &pc->sactive);
	event->hw.idx = -1;
	event->hw.state = PERF_HES_STOPPED | PERF_HES_UPTODATE;
	pe->based = false;
	if (flags & PERF_EF_START)
		pvperf_shared_start(pv, pc, event);
	raw_spin_unlock_irqrestore(&pc->lock, irqflags);
	return 0;
}

static void pvperf_shared_del(struct pvperf_dev *pv, struct perf_event *event)
{
	struct pvperf_cpu *pc = this_cpu_ptr(pv->cpu);
	struct pvperf_event *pe = to_pe(event);
	unsigned long irqflags;

	bool running = pvperf_mark_stopped(event);

	raw_spin_lock_irqsave(&pc->lock, irqflags);
	pvperf_shared_stop(pv, pc, event, running);
	list_del(&pe->snode);
	if (pe->sslot)
		pc->srefs[pe->idx]--;
	pe->sslot = 0;
	raw_spin_unlock_irqrestore(&pc->lock, irqflags);
}

/*
 * The last shared-slot event of entry @idx is gone: close the entry's
 * shared slots on every CPU that no event uses any more (one that came
 * meanwhile keeps its slot). Any CPU, process context.
 */
static void pvperf_shared_release(struct pvperf_dev *pv, u32 idx)
{
	unsigned long flags;
	int cpu;

	for_each_possible_cpu(cpu) {
		struct pvperf_cpu *pc = per_cpu_ptr(pv->cpu, cpu);
		u32 slot;

		raw_spin_lock_irqsave(&pv->lock, flags);
		raw_spin_lock(&pc->lock);
		if (!pc->shared[idx] || pc->srefs[idx] ||
		    atomic_read(&pv->entry_events[idx]))
			goto next;
		slot = pc->shared[idx] - 1;
		pc->shared[idx] = 0;
		pc->sused &= ~BIT_ULL(slot);
		if (pv->state == PVPERF_LIVE) {
			/* the CPU may be offline: name its vCPU explicitly */
			pv_close_locked(pv, pc->vcpu, slot);
		} else if (pv->state == PVPERF_PAUSED) {
			/* closed when the device is back, unless it was reset */
			pc->used |= BIT_ULL(slot);
			pc->zombie |= BIT_ULL(slot);
		}
next:
		raw_spin_unlock(&pc->lock);
		raw_spin_unlock_irqrestore(&pv->lock, flags);
	}
}

/*
 * This CPU's shared slots after a sync (page registered, pv->lock and
 * pc->lock held, IRQs off): drop those the device closed without the
 * driver knowing, open slots for the events added here without one, then
 * start every running one's deltas from the records as they are now.
 */
static void pvperf_shared_resync(struct pvperf_dev *pv, struct pvperf_cpu *pc)
{
	struct pvperf_args a = { .vcpu = PVPERF_VCPU_SELF };
	struct pvperf_event *pe;
	struct pvperf_snap rec;
	u32 idx;

	for (idx = 0; idx < pvperf_nr_entries; idx++) {
		u32 slot = pc->shared[idx] - 1;

		/* an unreadable record says nothing: keep the slot */
		if (!pc->shared[idx] || !pv_read_record(pc, slot, &rec) ||
		    (rec.flags & PVPERF_SLOT_OPEN))
			continue;
		pc->shared[idx] = 0;
		pc->sused &= ~BIT_ULL(slot);
		pc->srefs[idx] = 0;
		list_for_each_entry(pe, &pc->sactive, snode)
			if (pe->sslot == slot + 1)
				pe->sslot = 0;
	}
	list_for_each_entry(pe, &pc->sactive, snode) {
		int slot;

		if (pe->sslot)
			continue;
		slot = pvperf_shared_get(pv, pc, pe->idx);
		if (slot >= 0) {
			pe->sslot = slot + 1;
			pc->srefs[pe->idx]++;
		}
	}
	a.mask = pc->sused;
	if (a.mask)
		pv_cmd_cpu(pv, pc, PVPERF_CMD_READ, &a);
	list_for_each_entry(pe, &pc->sactive, snode) {
		pe->based = false;
		if (!(pe->event->hw.state & PERF_HES_STOPPED))
			pvperf_shared_update(pc, pe->event, true);
	}
}

/*
 * Before the device goes away or pauses (pc->lock held, IRQs off): bring
 * the running shared events' counts up to now; they count again from
 * the next sync.
 */
static void pvperf_shared_quiesce(struct pvperf_dev *pv, struct pvperf_cpu *pc)
{
	struct pvperf_args a = { .vcpu = PVPERF_VCPU_SELF, .mask = pc->sused };
	struct pvperf_event *pe;

	if (!a.mask || pv_cmd_cpu(pv, pc, PVPERF_CMD_READ, &a) != PVPERF_ST_OK)
		return;
	list_for_each_entry(pe, &pc->sactive, snode)
		if (pe->based)
			pvperf_shared_update(pc, pe->event, false);
}

/* Mask of the slots of events added and running on this CPU */
static u64 pvperf_running_mask(struct pvperf_cpu *pc, u64 among)
{
	u64 running = 0;

	for (; among; among &= among - 1) {
		u32 slot = __ffs64(among);
		struct perf_event *event = pc->active[slot];

		if (event && !event->hw.state)
			running |= BIT_ULL(slot);
	}
	return running;
}

/*
 * Free one of this CPU's slots for @event: the slot of another event that
 * is not added here now. Its del() took its count, so closing the slot
 * loses nothing; it gets a slot again when it comes back. Without this, a
 * CPU that events ever ran on would keep their slots until they are
 * destroyed, and SLOTS_PER_VCPU events that migrated over every CPU would
 * leave no slot for any other. A host group's leader goes with its
 * members (none of them is added here either: perf adds groups whole),
 * which reopen with it. Returns the slot, or -1 if every slot of this CPU
 * belongs to an event added here.
 */
static bool pvperf_free_owned(struct pvperf_dev *pv, struct pvperf_cpu *pc,
			      u32 slot)
{
	struct perf_event *owner = pc->owner[slot];
	u32 st;

	if (!(pc->lost & BIT_ULL(slot))) {
		st = pv_close_locked(pv, pc->vcpu, slot);
		if (st != PVPERF_ST_OK && st != PVPERF_ST_SLOT_FREE)
			return false;
	}
	to_pe(owner)->slot[smp_processor_id()] = 0;
	pc->owner[slot] = NULL;
	pc->used &= ~BIT_ULL(slot);
	pc->lost &= ~BIT_ULL(slot);
	return true;
}

static int pvperf_steal_slot(struct pvperf_dev *pv, struct pvperf_cpu *pc,
			     struct perf_event *event)
{
	u64 m, g;

	lockdep_assert_held(&pv->lock);
	for (m = pc->used & ~pc->zombie; m; m &= m - 1) {
		u32 slot = __ffs64(m), i;
		struct perf_event *owner = pc->owner[slot];
		u64 members = pvperf_members(pc, slot);

		if (!owner || owner == event || pc->active[slot])
			continue;
		for (g = members; g; g &= g - 1) {
			i = __ffs64(g);
			if (pc->active[i] || !pc->owner[i] ||
			    (pc->zombie & BIT_ULL(i)))
				break;
		}
		if (g)
			continue;
		/* the members first: closing the leader would set them free */
		for (g = members; g; g &= g - 1)
			if (!pvperf_free_owned(pv, pc, __ffs64(g)))
				break;
		if (g || !pvperf_free_owned(pv, pc, slot)) {
			/* kept: whatever stays open stays in step */
			for (g = members; g; g &= g - 1)
				if (!pc->owner[__ffs64(g)])
					pc->hlead[__ffs64(g)] = 0;
			continue;
		}
		pvperf_forget_group(pc, slot);
		return slot;
	}
	/* a shared slot that no event added here uses: opened again on use */
	lockdep_assert_held(&pc->lock);
	for (m = 0; m < pvperf_nr_entries; m++) {
		u32 slot = pc->shared[m] - 1, st;

		if (!pc->shared[m] || pc->srefs[m])
			continue;
		st = pv_close_locked(pv, pc->vcpu, slot);
		if (st != PVPERF_ST_OK && st != PVPERF_ST_SLOT_FREE)
			continue;
		pc->shared[m] = 0;
		pc->sused &= ~BIT_ULL(slot);
		return slot;
	}
	return -1;
}

/* OPEN @slot for @event; at the device's limit, give one of ours back */
static u32 pvperf_open_slot(struct pvperf_dev *pv, struct pvperf_cpu *pc,
			    struct perf_event *event, u32 slot, u32 group)
{
	u32 st = pv_open_locked(pv, slot, event, group);

	if (st == PVPERF_ST_LIMIT && pvperf_steal_slot(pv, pc, event) >= 0)
		st = pv_open_locked(pv, slot, event, group);
	return st;
}

/*
 * Under pc->lock: does @pe have a usable slot on @cpu (as *@slot), in the
 * host group @group leads (PVPERF_NO_GROUP: alone)?
 */
static bool pvperf_has_slot(struct pvperf_cpu *pc, struct pvperf_event *pe,
			    int cpu, u32 *slot, u32 group)
{
	if (!pe->slot[cpu])
		return false;
	*slot = pe->slot[cpu] - 1;
	if (pc->ready && pc->hlead[*slot] !=
	    (group == PVPERF_NO_GROUP ? 0 : group + 1))
		return false;
	return !pc->ready || !(pc->lost & BIT_ULL(*slot));
}

/*
 * The event's slot on this CPU, opened if it has none, in the host group
 * whose leader has slot @group here (PVPERF_NO_GROUP: alone). A CPU that
 * has no count page registered (never brought up, offline, or being set
 * up again after a reset) opens nothing; an event that already owns a
 * slot here keeps it, and the slot is brought back in step when the CPU
 * is. A slot open in another group (which perf's groups never make, as
 * their members are fixed at open) is closed and opened in this one.
 */
static int pvperf_get_slot(struct pvperf_dev *pv, struct perf_event *event,
			   u32 group)
{
	struct pvperf_cpu *pc = this_cpu_ptr(pv->cpu);
	u64 all = GENMASK_ULL(pv->slots_per_vcpu - 1, 0);
	struct pvperf_event *pe = to_pe(event);
	int cpu = smp_processor_id();
	unsigned long flags;
	u32 st, slot;

	/* the event has its slot here: this CPU's lock alone */
	raw_spin_lock_irqsave(&pc->lock, flags);
	if (pvperf_has_slot(pc, pe, cpu, &slot, group)) {
		raw_spin_unlock_irqrestore(&pc->lock, flags);
		return slot;
	}
	raw_spin_unlock(&pc->lock);
	/* opening, stealing or reopening a slot: pv->lock too */
	raw_spin_lock(&pv->lock);
	raw_spin_lock(&pc->lock);
	if (pvperf_has_slot(pc, pe, cpu, &slot, group))
		goto out;
	if (pe->slot[cpu] && pc->ready && !(pc->lost & BIT_ULL(slot))) {
		/* open in another group: closed, then opened in this one */
		st = pv_close_locked(pv, pc->vcpu, slot);
		if (st != PVPERF_ST_OK && st != PVPERF_ST_SLOT_FREE)
			goto out_st;
		pvperf_forget_group(pc, slot);
		pc->lost |= BIT_ULL(slot);
	}
	if (pe->slot[cpu]) {
		/* the device closed it and reopening it failed: retry */
		st = pvperf_open_slot(pv, pc, event, slot, group);
		if (st == PVPERF_ST_OK)
			pc->lost &= ~BIT_ULL(slot);
		goto out_st;
	}
	if (!pc->ready) {
		st = PVPERF_ST_NODEV;
		goto out_st;
	}
	if ((pc->used | pc->sused) == all &&
	    pvperf_steal_slot(pv, pc, event) < 0) {
		st = PVPERF_ST_LIMIT;
		goto out_st;
	}
	slot = __ffs64(~(pc->used | pc->sused));
	st = pvperf_open_slot(pv, pc, event, slot, group);
	if (st == PVPERF_ST_OK) {
		pc->used |= BIT_ULL(slot);
		pc->owner[slot] = event;
		pe->slot[cpu] = slot + 1;
	}
out_st:
	raw_spin_unlock(&pc->lock);
	raw_spin_unlock(&pv->lock);
	local_irq_restore(flags);
	return st == PVPERF_ST_OK ? slot : pv_errno(st);
out:
	raw_spin_unlock(&pc->lock);
	raw_spin_unlock(&pv->lock);
	local_irq_restore(flags);
	return slot;
}

static void pvperf_free(struct pvperf_dev *pv)
{
	free_percpu(pv->cpu);
	kfree(pv);
}

/* Drop a reference (the binding's or an event's): the last frees the state */
static void pvperf_put(struct pvperf_dev *pv)
{
	unsigned long flags;
	bool last;

	raw_spin_lock_irqsave(&pv->lock, flags);
	last = !--pv->refs;
	raw_spin_unlock_irqrestore(&pv->lock, flags);
	if (last)
		pvperf_free(pv);
}

static void pvperf_event_destroy(struct perf_event *event)
{
	struct pvperf_event *pe = to_pe(event);
	struct pvperf_dev *pv = pe->pv;
	unsigned long flags;
	int cpu;

	for_each_possible_cpu(cpu) {
		struct pvperf_cpu *pc = per_cpu_ptr(pv->cpu, cpu);
		u32 slot;
		u64 bit;

		/* under the lock: another event may take the slot over */
		raw_spin_lock_irqsave(&pv->lock, flags);
		raw_spin_lock(&pc->lock);
		if (!pe->slot[cpu])
			goto next;
		slot = pe->slot[cpu] - 1;
		bit = BIT_ULL(slot);
		pc->owner[slot] = NULL;
		/* a leader's members carry on alone (perf detaches them too) */
		pvperf_forget_group(pc, slot);
		if ((pc->lost & bit) || pv->state == PVPERF_GONE) {
			/* not open on the device (any more) */
			pc->used &= ~bit;
		} else if (pv->state == PVPERF_PAUSED) {
			/* closed when the device is back, unless it was reset */
			pc->zombie |= bit;
		} else {
			/* the CPU may be offline: name its vCPU explicitly */
			pv_close_locked(pv, pc->vcpu, slot);
			pc->used &= ~bit;
		}
		pc->lost &= ~bit;
next:
		raw_spin_unlock(&pc->lock);
		raw_spin_unlock_irqrestore(&pv->lock, flags);
	}
	if (pe->shared &&
	    atomic_dec_and_test(&pv->entry_events[pe->idx]))
		pvperf_shared_release(pv, pe->idx);
	event->pmu_private = NULL;
	kfree(pe);
	pvperf_put(pv);
}

#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 2, 0)
/*
 * Before Linux 6.2, a task's perf_sw_context context has ctx->pmu = the
 * PMU of the event that created it, and keeps it after that event is
 * closed: perf calls that PMU's start_txn/commit_txn/cancel_txn and
 * perf_pmu_disable(ctx->pmu) for the software event groups of the task,
 * and free_ctx() reads it when the task exits. perf_pmu_unregister()
 * fixes none of that, so from the first per-task event on the PMU must
 * stay registered and the module loaded: take a module reference, once,
 * and never drop it. The transaction hooks work without a device.
 */
static void pvperf_pin(struct perf_event *event)
{
	static unsigned long pinned;

	if (!(event->attach_state & PERF_ATTACH_TASK) ||
	    test_and_set_bit(0, &pinned))
		return;
	__module_get(THIS_MODULE);
	pr_info(DRV_NAME ": per-task events on Linux < 6.2: perf keeps this PMU in task contexts, so it stays registered and the module loaded until reboot\n");
}

/*
 * Which task context the PMU joins (see hw_context). In perf_sw_context
 * (with the software PMU, whose bracket runs instead of pvperf's) each
 * shared-slot start and stop of a context switch is its own exit; in
 * perf_hw_context perf brackets the switch with pvperf_pmu_disable/enable,
 * and everything the switch does on a CPU costs one exit. Before Linux 6.2
 * that context belongs to the CPU's hardware PMU where there is one (a
 * vPMU): take it only where no PMU answers PERF_TYPE_RAW or
 * PERF_TYPE_HARDWARE events (x86 registers its PMU at boot or never), and
 * check after registering that perf gave pvperf a per-CPU context of its
 * own. HETEROGENEOUS_CPUS keeps perf_pmu_register() from refusing the
 * context when this module is loaded again (perf remembers that a PMU took
 * it once, not that it is gone); it changes nothing else on 6.1. Costs of
 * that context: perf never frees a hardware-context PMU's per-CPU context
 * (free_pmu_context()), so each unload leaks one; and an add that fails
 * (owned slots exhausted, a CPU without a block) starts perf's
 * multiplexing, as for hardware counters, where software contexts just
 * leave the event off.
 */

/* Does no PMU answer this event? (-ENOENT: before any context is made) */
static bool pvperf_no_pmu_for(u32 type, u64 config)
{
	struct perf_event_attr attr = {
		.type = type, .size = sizeof(attr), .config = config,
		.disabled = 1,
	};
	struct perf_event *ev;

	ev = perf_event_create_kernel_counter(&attr, raw_smp_processor_id(),
					      NULL, NULL, NULL);
	if (!IS_ERR(ev))
		perf_event_release_kernel(ev);
	return PTR_ERR_OR_ZERO(ev) == -ENOENT;
}

/*
 * The x86 core PMU registers as PERF_TYPE_RAW (hybrid ones answer it
 * too), and may answer -ENOENT for CPU cycles where a hypervisor hides
 * them: both must find no PMU.
 */
static void pvperf_choose_context(void)
{
	if (!hw_context || !pvperf_no_pmu_for(PERF_TYPE_RAW, 0) ||
	    !pvperf_no_pmu_for(PERF_TYPE_HARDWARE, PERF_COUNT_HW_CPU_CYCLES))
		return;
	pvperf_pmu.task_ctx_nr = perf_hw_context;
	pvperf_pmu.capabilities |= PERF_PMU_CAP_HETEROGENEOUS_CPUS;
}

/*
 * Registered in perf_hw_context: is the context pvperf's own (no other
 * PMU registered there, whose per-CPU context perf would have given it)?
 */
static bool pvperf_context_ok(void)
{
	return pvperf_pmu.task_ctx_nr != perf_hw_context ||
	       per_cpu_ptr(pvperf_pmu.pmu_cpu_context, 0)->ctx.pmu ==
	       &pvperf_pmu;
}

static void pvperf_software_context(void)
{
	pvperf_pmu.task_ctx_nr = perf_sw_context;
	pvperf_pmu.capabilities &= ~PERF_PMU_CAP_HETEROGENEOUS_CPUS;
}
#else
static inline void pvperf_pin(struct perf_event *event)
{
}

/*
 * From Linux 6.2 PMUs share perf's hardware task context, each with a
 * part of it of its own (and its own pmu_disable/enable bracket): pvperf
 * joins it unless hw_context=0. There, as for any hardware PMU, an add()
 * that fails (no slot free) makes perf rotate the events; no group mixes
 * pvperf with another PMU's hardware events (so perf never stops a pvperf
 * event from its PMI); and perf holds the group's context mutex across
 * event_init, which pvperf_validate_group() relies on. The software
 * context assumes its events never fail to schedule.
 */
static inline void pvperf_choose_context(void)
{
	if (hw_context)
		pvperf_pmu.task_ctx_nr = perf_hw_context;
}

static inline bool pvperf_context_ok(void)
{
	return true;
}

static inline void pvperf_software_context(void)
{
	pvperf_pmu.task_ctx_nr = perf_sw_context;
}
#endif

/*
 * May the opener of @event see the kernel's activity? perf's own rule
 * (perf_event_paranoid, and the LSM hook) where the kernel exports it,
 * Linux 6.12 on; before, CAP_PERFMON, which is stricter at paranoid <= 1.
 * Its attr argument went in 6.15.
 */
static int pvperf_allow_kernel(struct perf_event *event)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 15, 0)
	return perf_allow_kernel();
#elif LINUX_VERSION_CODE >= KERNEL_VERSION(6, 12, 0)
	return perf_allow_kernel(&event->attr);
#else
	return perfmon_capable() ? 0 : -EACCES;
#endif
}

/*
 * The exclude_* bits of an event of entry @idx. The host decides what its
 * events count (docs/pvperf.rst): a count cannot leave out the guest's
 * user or kernel activity. Samples can: a sampling event leaves contexts
 * out of its samples (perf's :u and :k, exclude_idle; pvperf_excluded()).
 * A clock's count is time, all of it, as with Linux's own task-clock:u;
 * any other entry's count with an exclude bit would lie: -EINVAL.
 * exclude_hv and exclude_guest leave out no sample a guest CPU takes in
 * its own context; exclude_host would leave out every one.
 */
static int pvperf_check_exclude(struct perf_event *event, u64 idx)
{
	bool clock = pvperf_entry_is_clock(idx);

	if (!event_has_any_exclude_flag(event))
		return 0;
	if (event->attr.exclude_host ||
	    (!clock && !is_sampling_event(event)))
		return -EINVAL;
	/*
	 * perf lets a user without kernel access (perf_event_paranoid 2)
	 * open an event that excludes the kernel. Its samples do, but its
	 * count, read(2) or PERF_SAMPLE_READ, is the host's, the guest
	 * kernel's activity in it: only a clock's (time, which the user can
	 * measure anyway) is given to such a user. An inherited child's
	 * parent passed this check.
	 */
	if (event->attr.exclude_kernel && !clock && !event->parent)
		return pvperf_allow_kernel(event);
	return 0;
}

/*
 * A clock samples time: like Linux's own cpu-clock and task-clock
 * (perf_swevent_init_hrtimer()), a frequency becomes the fixed period
 * it stands for, once. Frequency mode would move the period at every
 * tick from a rate measured over coalesced, delayed overflows (the
 * samples of a short program went astray), at two exits per tick.
 */
static void pvperf_fixed_clock_period(struct perf_event *event, u64 idx)
{
	struct hw_perf_event *hwc = &event->hw;

	if (!is_sampling_event(event) || !event->attr.freq ||
	    !pvperf_entry_is_clock(idx))
		return;
	event->attr.sample_period =
		max_t(u64, NSEC_PER_SEC / event->attr.sample_freq, 1);
	event->attr.freq = 0;
	hwc->sample_period = event->attr.sample_period;
	hwc->last_period = hwc->sample_period;
	local64_set(&hwc->period_left, hwc->sample_period);
}

/*
 * Does an event of entry @idx count on its CPU's shared slot of the entry
 * (software and tracepoint entries, counting), or own its slots?
 */
static bool pvperf_counts_shared(struct pvperf_dev *pv,
				 struct perf_event *event, u32 idx)
{
	return !is_sampling_event(event) && pvperf_kind_shared(idx) &&
	       (pv->features & PVPERF_F_CMD_BLOCK);
}

/*
 * What a group needs of a CPU's slots: owned ones, shared entries (of a
 * lone pvperf event: with another, every one owns its slot, see "Groups")
 */
struct pvperf_group_need {
	unsigned int owned;
	unsigned int pvperf;
	DECLARE_BITMAP(shared, PVPERF_CATALOG_MAX);
};

static void pvperf_need(struct pvperf_group_need *need, bool shared, u32 idx)
{
	need->pvperf++;
	if (shared)
		__set_bit(idx, need->shared);
	else
		need->owned++;
}

/* One member of @event's group: another PMU's must be a software event */
static bool pvperf_member_ok(struct perf_event *member,
			     struct pvperf_group_need *need)
{
	if (member->pmu != &pvperf_pmu)
		return is_software_event(member);
	pvperf_need(need, to_pe(member)->shared, to_pe(member)->idx);
	return true;
}

/*
 * As arm_pmu's validate_group(): a group that mixes pvperf with another
 * PMU's hardware events, or needs more of a CPU's slots than there are,
 * could never be scheduled as one: -EINVAL at open. The siblings are
 * walked where perf holds the leader's context mutex for event_init
 * (every context but the software one); in the software context (Linux
 * < 6.2 beside a hardware PMU, or hw_context=0) only the leader is
 * checked.
 */
static int pvperf_validate_group(struct perf_event *event,
				 struct pvperf_dev *pv, u32 idx)
{
	struct perf_event *leader = event->group_leader, *sibling;
	struct pvperf_group_need need = { 0 };

	if (leader == event)
		return 0;
	if (!pvperf_member_ok(leader, &need))
		return -EINVAL;
	if (pvperf_pmu.task_ctx_nr != perf_sw_context) {
		for_each_sibling_event(sibling, leader)
			if (!pvperf_member_ok(sibling, &need))
				return -EINVAL;
	}
	pvperf_need(&need, pvperf_counts_shared(pv, event, idx), idx);
	if (need.pvperf > 1)
		return need.pvperf > pv->slots_per_vcpu ? -EINVAL : 0;
	return need.owned + bitmap_weight(need.shared, PVPERF_CATALOG_MAX) >
	       pv->slots_per_vcpu ? -EINVAL : 0;
}

static int pvperf_event_init(struct perf_event *event)
{
	u64 idx = event->attr.config;
	struct pvperf_event *pe;
	struct pvperf_dev *pv;
	unsigned long flags;
	bool ok = false;
	int ret;

	if (event->attr.type != event->pmu->type)
		return -ENOENT;
	/* only the format's event field (config:0-15) means anything */
	if ((idx & ~PVPERF_CONFIG_MASK) || event->attr.config1 ||
	    event->attr.config2)
		return -EINVAL;
	/*
	 * The sample is taken after the host's overflow, not at it: nothing
	 * precise; and there is no branch stack
	 */
	if (event->attr.precise_ip || has_branch_stack(event))
		return -EOPNOTSUPP;
	if (idx >= pvperf_nr_entries)
		return -ENOENT;
	idx = array_index_nospec((unsigned long)idx,
				 (unsigned long)pvperf_nr_entries);
	if (!(pvperf_catalog[idx].info & PVPERF_INFO_AVAILABLE))
		return -ENOENT;
	ret = pvperf_check_exclude(event, idx);
	if (ret)
		return ret;

	pe = kzalloc(struct_size(pe, slot, nr_cpu_ids), GFP_KERNEL);
	if (!pe)
		return -ENOMEM;
	/*
	 * The bound device, under RCU: remove() unpublishes it and waits for
	 * a grace period before it drops its reference. A removed device
	 * takes no new event, but still the children that perf inherits from
	 * a live event when its task forks (frozen, like their parent):
	 * failing those would fail the fork. They belong to their parent's
	 * device, which the parent keeps.
	 */
	rcu_read_lock();
	pv = event->parent ? to_pe(event->parent)->pv :
			     rcu_dereference(pvperf_live);
	if (pv) {
		raw_spin_lock_irqsave(&pv->lock, flags);
		ok = pv->state != PVPERF_GONE || event->parent;
		if (ok)
			pv->refs++;
		raw_spin_unlock_irqrestore(&pv->lock, flags);
	}
	rcu_read_unlock();
	if (!ok) {
		kfree(pe);
		return -ENODEV;
	}
	/*
	 * Sampling needs the device's OVERFLOW and its vectors; not the
	 * child of an event perf inherits at a fork (after remove() freed
	 * the vectors: failing it would fail the fork)
	 */
	ret = 0;
	if (is_sampling_event(event) && !pv->nvec && !event->parent)
		ret = -EOPNOTSUPP;
	else if (!event->parent)	/* a child's group is its parent's */
		ret = pvperf_validate_group(event, pv, idx);
	if (ret) {
		kfree(pe);
		pvperf_put(pv);
		return ret;
	}
	pvperf_fixed_clock_period(event, idx);

	pe->pv = pv;
	pe->event = event;
	pe->idx = idx;
	INIT_LIST_HEAD(&pe->snode);
	/*
	 * A software or tracepoint entry counts on its CPU's shared slot;
	 * a sampling event owns its slots (they have its period).
	 */
	pe->sampling = is_sampling_event(event);
	pe->shared = pvperf_counts_shared(pv, event, idx);
	if (pe->shared)
		atomic_inc(&pv->entry_events[idx]);
	event->pmu_private = pe;
	event->destroy = pvperf_event_destroy;
	pvperf_pin(event);
	return 0;
}

/* Sampling --------------------------------------------------------------- */

/*
 * Is @period, @event's now, worth a SET_PERIOD of a slot that has @cur?
 * A period set by the user (PERF_EVENT_IOC_PERIOD) is sent as it is.
 * Frequency mode moves it on every tick, and SET_PERIOD restarts the
 * host's period (what it counted towards the next overflow is lost):
 * only a move by more than an eighth is sent, so that once the period
 * has settled the host's periods run to their end.
 */
static bool pvperf_reperiod(struct perf_event *event, u64 cur, u64 period)
{
	u64 d = period > cur ? period - cur : cur - period;

	if (!period || period == cur)
		return false;
	return !event->attr.freq || !cur || d > cur / 8;
}

/*
 * Add what the overflows up to @overflows (a record's) weigh, at the
 * period the slot has, to the weight its next sample carries
 */
static void pvperf_weigh(struct pvperf_cpu *pc, u32 slot, u64 overflows)
{
	u64 k = overflows - pc->ovf_seen[slot], period = pc->period[slot];

	pc->ovf_seen[slot] = overflows;
	pc->weight[slot] = k && period > (S64_MAX - pc->weight[slot]) / k ?
			   S64_MAX : pc->weight[slot] + period * k;
}

/* @n samples perf will never see (PERF_FORMAT_LOST, perf's lost samples) */
static void pvperf_lost(struct perf_event *event, u64 n)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 0, 0)
	/* an inherited event's are its parent's, as perf's own are */
	if (event->parent)
		event = event->parent;
	atomic64_add(n, &event->lost_samples);
#endif
}

/*
 * After the ENABLE that starts a sampling slot added since its last run
 * here (since_add): ENABLE drained the host's buffer, so the overflows
 * the record holds beyond those seen were taken in that last run, and
 * reached the page after the event had left this CPU. No interrupt can
 * sample them where they happened any more: they are counted lost, with
 * the weight a capped interrupt left over, and sampling starts here.
 */
static void pvperf_rebase_overflows(struct perf_event *event,
				    struct pvperf_cpu *pc,
				    const struct pvperf_snap *now)
{
	u32 slot = event->hw.idx;
	u64 lost = 0;

	if (!to_pe(event)->sampling || !(pc->since_add & BIT_ULL(slot)))
		return;
	pc->since_add &= ~BIT_ULL(slot);
	if (now->overflows > pc->ovf_seen[slot])
		lost = now->overflows - pc->ovf_seen[slot];
	if (!lost && pc->weight[slot])
		lost = 1;
	pc->ovf_seen[slot] = now->overflows;
	pc->weight[slot] = 0;
	if (lost)
		pvperf_lost(event, lost);
}

/*
 * Does @event leave out of its samples the context @regs interrupted?
 * That is where the interrupt came, not where the host's overflow was: a
 * skid of the overflow's host delivery (docs/pvperf.rst, "Sampling").
 * Checked before pvperf_sample(): perf_tp_event() would drop a kernel
 * context of an exclude_kernel event itself, after the count was taken
 * back.
 */
static bool pvperf_excluded(struct perf_event *event, struct pt_regs *regs)
{
	const struct perf_event_attr *attr = &event->attr;

	if (!regs || (user_mode(regs) ? attr->exclude_user :
					attr->exclude_kernel))
		return true;
	return attr->exclude_idle && is_idle_task(current);
}

/*
 * Take one sample of @event, weighing @period, from @regs. A module cannot
 * call perf_event_overflow() (not exported), so the sample goes the way a
 * tracepoint's does: perf_tp_event() on a list holding only @event, with
 * period_left one short of an overflow, which makes perf_swevent_event()
 * overflow exactly once with data.period = @period, through perf's
 * frequency and output paths (perf_swevent_overflow() never throttles a
 * first overflow: pvperf_irq() bounds the rate).
 *
 * perf_swevent_event() adds @period to the count, which comes from the
 * records (@now, accounted here). Taking it back after would let a read
 * from another CPU see the count go back (perf_event_read() takes the
 * count after its IPI, which this interrupt can follow), and so would
 * taking it back before: it is taken from the record's delta instead,
 * which already holds what the overflows counted, and from later deltas
 * for what that delta lacks (pe->ahead: a read took part of it already,
 * or the weight was held back by the rate bound). The count never goes
 * back, and is ahead of the records by at most one weight meanwhile.
 * Called only where perf_tp_event() will take the sample (the event is
 * not stopped, the context is not one it excludes), so that it does add
 * @period.
 */
static void pvperf_sample(struct perf_event *event, u64 period,
			  struct pt_regs *regs, const struct pvperf_snap *now)
{
#ifdef CONFIG_EVENT_TRACING
	struct hw_perf_event *hwc = &event->hw;
	u64 record[2] = { 0, 0 };	/* the "raw" data perf_tp_event wants */
	struct hlist_head head;
	int rctx;

	/* 0 would divide by zero in perf_swevent_set_period() */
	period = clamp_t(u64, period, 1, S64_MAX);
	rctx = perf_swevent_get_recursion_context();
	if (rctx < 0) {
		pvperf_account(event, now);
		return;
	}
	INIT_HLIST_HEAD(&head);
	hlist_add_head(&event->hlist_entry, &head);
	hwc->last_period = period;
	local64_set(&hwc->period_left, -1);
	to_pe(event)->ahead = min_t(u64, to_pe(event)->ahead + period,
				    S64_MAX);
	pvperf_account(event, now);
	/*
	 * A count of @period: data.period is @period in every branch of
	 * perf_swevent_event(), that of PERF_SAMPLE_PERIOD with a fixed
	 * period (where it is the count) included, and period_left - 1 +
	 * @period overflows exactly once.
	 */
	perf_tp_event(0, period, record, sizeof(struct trace_entry), regs,
		      &head, rctx, NULL);
	hlist_del_init(&event->hlist_entry);
#else
	pvperf_account(event, now);
#endif
}

/*
 * The overflow interrupt of vCPU @vec->vcpu (docs/pvperf.rst, "Sampling"),
 * on the CPU that runs that vCPU, IRQs off, in the context the overflow
 * interrupted: each sampling event running here whose record counts
 * overflows it has not seen takes one sample, weighted by the overflows
 * it stands for. That needs no exit: the device wrote the records before
 * it sent the interrupt, and sends one for every pass that finds new
 * overflows, acknowledged or not (overflow_pending is never read, nor
 * acknowledged). No event is stopped here: perf never throttles these
 * samples (see pvperf_sample()), the handler bounds them itself. A period
 * that frequency mode changes here reaches the device when perf restarts
 * the event at its next tick (pvperf_enable(), in the same exit as the
 * ENABLE). Only the slots of events added on this CPU are touched, which
 * no other CPU changes, and no lock is taken.
 */
static irqreturn_t pvperf_irq(int irq, void *data)
{
	struct pvperf_vec *vec = data;
	struct pvperf_dev *pv = vec->pv;
	struct pvperf_cpu *pc = this_cpu_ptr(pv->cpu);
	struct pt_regs *regs = get_irq_regs();
	irqreturn_t ret = IRQ_NONE;
	u64 m;

	/* a vector that is not this CPU's (affinity changing): not ours */
	if (!pc->ready || pc->vcpu != vec->vcpu)
		return IRQ_NONE;
	if (pc->sample_jiffy != jiffies) {
		pc->sample_jiffy = jiffies;
		pc->samples = 0;
	}
	for (m = READ_ONCE(pc->used) & ~pc->lost; m; m &= m - 1) {
		u32 slot = __ffs64(m);
		struct perf_event *event = pc->active[slot];
		struct pvperf_snap now;

		if (!pv_read_record(pc, slot, &now) ||
		    (now.flags & (PVPERF_SLOT_OPEN | PVPERF_SLOT_SAMPLING)) !=
		    (PVPERF_SLOT_OPEN | PVPERF_SLOT_SAMPLING))
			continue;
		/*
		 * News of a slot whose event is not running here (it left
		 * this CPU after the overflow) are this interrupt's all the
		 * same: its next ENABLE counts them (pvperf_rebase_overflows)
		 */
		if (now.overflows != pc->ovf_seen[slot])
			ret = IRQ_HANDLED;
		if (!event || !to_pe(event)->sampling || event->hw.state)
			continue;
		if (now.overflows < pc->ovf_seen[slot]) {
			/* a slot that started again (reopened): from here */
			pvperf_account(event, &now);
			pc->ovf_seen[slot] = now.overflows;
			continue;
		}
		/*
		 * The k overflows since the last look, of the period the
		 * slot has now (a period changed by frequency mode counts
		 * for the overflows after it): what they weigh is added to
		 * the slot's weight, which the next sample carries.
		 */
		pvperf_weigh(pc, slot, now.overflows);
		/*
		 * Overflows in a context the event leaves out weigh nothing;
		 * frequency mode measures the rate from here, not over them
		 * (perf takes the time since the last sample for one period)
		 */
		if (pvperf_excluded(event, regs)) {
			pvperf_account(event, &now);
			pc->weight[slot] = 0;
			if (event->attr.freq)
				event->hw.freq_time_stamp = local_clock();
			continue;
		}
		/*
		 * perf never throttles these samples (see pvperf_sample()):
		 * at most MAX_SAMPLE_RATE a second per CPU; the overflows
		 * not sampled now weigh on the next sample.
		 */
		if (!pc->weight[slot] || pc->samples >= pv->tick_samples) {
			pvperf_account(event, &now);
			continue;
		}
		pc->samples++;
		/* the count, from @now, is taken there */
		pvperf_sample(event, pc->weight[slot], regs, &now);
		pc->weight[slot] = 0;
	}
	return ret;
}

/* Point each vCPU's vector at the CPU that runs it (process context) */
static void pvperf_irq_affinity(struct pvperf_dev *pv, unsigned int cpu)
{
	u32 vcpu = per_cpu_ptr(pv->cpu, cpu)->vcpu;

	/* PVPERF_VCPU_INVALID (never synced) is beyond any nvec */
	if (vcpu < pv->nvec &&
	    irq_set_affinity(pci_irq_vector(pv->pdev, vcpu), cpumask_of(cpu)))
		dev_warn(&pv->pdev->dev, "CPU %u: cannot route vCPU %u's overflow interrupt to it: samples there are taken elsewhere or lost\n",
			 cpu, vcpu);
}

static void pvperf_free_irqs(struct pvperf_dev *pv)
{
	u32 i;

	for (i = 0; i < pv->nvec; i++)
		free_irq(pci_irq_vector(pv->pdev, i), &pv->vec[i]);
	if (pv->vectors)
		pci_free_irq_vectors(pv->pdev);
	pv->vectors = false;
	kfree(pv->vec);
	pv->vec = NULL;
	pv->nvec = 0;
}

/*
 * OVERFLOW: one MSI-X vector per vCPU index the device has. Without them
 * the device still counts: the feature is dropped, and sampling events
 * get -EOPNOTSUPP.
 */
static void pvperf_setup_irqs(struct pvperf_dev *pv)
{
	struct pci_dev *pdev = pv->pdev;
	u32 nvec = pv_rd(pv, PVPERF_REG_NR_VECTORS), rate, i;
	int ret;

	if (!(pv->features & PVPERF_F_OVERFLOW))
		return;
	/* samples go through perf_tp_event(), see pvperf_sample() */
	ret = -EOPNOTSUPP;
	if (!IS_ENABLED(CONFIG_EVENT_TRACING))
		goto fail;
	/* the device's word, bounded: 1.25e9 / rate stays within 32 bits */
	rate = clamp_t(u32, pv_rd(pv, PVPERF_REG_MAX_SAMPLE_RATE), 1,
		       NSEC_PER_SEC);
	pv->tick_samples = max_t(u32, rate / HZ, 1);
	pv->clock_period_min = DIV_ROUND_UP(1250000000U, rate);
	nvec = min_t(u32, nvec, PVPERF_MSIX_VECTORS_MAX);
	pv->vec = kcalloc(nvec, sizeof(*pv->vec), GFP_KERNEL);
	ret = pv->vec && nvec ?
	      pci_alloc_irq_vectors(pdev, nvec, nvec, PCI_IRQ_MSIX) : -ENOMEM;
	if (ret < 0)
		goto fail;
	pv->vectors = true;
	for (i = 0; i < nvec; i++) {
		struct pvperf_vec *v = &pv->vec[i];

		v->pv = pv;
		v->vcpu = i;
		snprintf(v->name, sizeof(v->name), "pvperf-vcpu%u", i);
		ret = request_irq(pci_irq_vector(pdev, i), pvperf_irq,
				  IRQF_NOBALANCING | IRQF_NO_THREAD, v->name, v);
		if (ret)
			goto fail;
		pv->nvec = i + 1;
	}
	return;
fail:
	/* the vectors requested and allocated so far, and pv->vec */
	pvperf_free_irqs(pv);
	pv->features &= ~PVPERF_F_OVERFLOW;
	dev_warn(&pdev->dev, "no MSI-X vector per vCPU (%d): counting only, no sampling\n",
		 ret);
}

static void pvperf_read(struct perf_event *event)
{
	struct pvperf_dev *pv = to_pe(event)->pv;
	struct pvperf_cpu *pc = this_cpu_ptr(pv->cpu);
	struct hw_perf_event *hwc = &event->hw;
	struct pvperf_txn *txn;

	/*
	 * perf reads from NMI too: the siblings of a sampled hardware event
	 * with PERF_SAMPLE_READ, perf_event_read_local() from BPF. The NMI
	 * may have interrupted this CPU holding pv->lock or in the middle of
	 * an update of this event: leave the count as of its last update.
	 */
	if (in_nmi())
		return;
	if (to_pe(event)->on_shared) {
		unsigned long flags;

		/*
		 * A BPF program (perf_event_read_local) may run on this CPU
		 * while it holds the lock: then the count stays as it is.
		 */
		bool stale_ok = pv->refresh_ms &&
				pv->refresh_ms <= READ_ONCE(read_staleness_ms);

		if (!raw_spin_trylock_irqsave(&pc->lock, flags))
			return;
		if (!hwc->state && to_pe(event)->sslot &&
		    (stale_ok ||
		     pvperf_shared_sync(pv, pc, to_pe(event)->sslot - 1)))
			pvperf_shared_update(pc, event, true);
		raw_spin_unlock_irqrestore(&pc->lock, flags);
		return;
	}
	if (hwc->state || !pc->ready || hwc->idx < 0)
		return;
	txn = this_cpu_ptr(&pvperf_txn);
	if ((txn->flags & PERF_PMU_TXN_READ) && (!txn->pv || txn->pv == pv)) {
		/* a group read (PERF_FORMAT_GROUP): one READ at commit_txn */
		txn->pv = pv;
		txn->mask |= BIT_ULL(hwc->idx);
		return;
	}
	if (pv_mask_cmd(pv, PVPERF_CMD_READ, BIT_ULL(hwc->idx), true) ==
	    PVPERF_ST_OK)
		pvperf_update(event, pc);
}

/*
 * Enable the event's slot. On a CPU that is not in step with the device
 * (paused, gone, or being set up again) the event is marked running and
 * counts once the CPU is synced; a removed device's events stay frozen.
 */
static int pvperf_enable(struct perf_event *event)
{
	struct pvperf_txn *txn = this_cpu_ptr(&pvperf_txn);
	struct pvperf_dev *pv = to_pe(event)->pv;
	struct pvperf_cpu *pc = this_cpu_ptr(pv->cpu);
	struct hw_perf_event *hwc = &event->hw;
	u64 period = pvperf_period(event);
	struct pvperf_args a[2];
	u32 st, cmd[2], n;

	if (!(hwc->state & PERF_HES_STOPPED))
		return 0;
	/* paused or removed, or a removed device's event without a slot */
	if (!pc->ready || hwc->idx < 0) {
		hwc->state = 0;
		return 0;
	}
	if ((txn->flags & PERF_PMU_TXN_ADD) && (!txn->pv || txn->pv == pv)) {
		/*
		 * commit_txn enables the whole group with one doorbell; a
		 * changed period waits for a start outside a transaction
		 * (frequency mode's, at the tick)
		 */
		txn->pv = pv;
		txn->mask |= BIT_ULL(hwc->idx);
		hwc->state = PVPERF_HES_PENDING;
		return 0;
	}
	/*
	 * ENABLE leaves the slot's current count in the page; with a period
	 * that changed (frequency mode), SET_PERIOD first, in the same exit
	 */
	cmd[1] = PVPERF_CMD_ENABLE;
	a[1] = (struct pvperf_args) {
		.vcpu = PVPERF_VCPU_SELF, .mask = BIT_ULL(hwc->idx),
	};
	n = pvperf_reperiod(event, pc->period[hwc->idx], period) ? 2 : 1;
	cmd[0] = PVPERF_CMD_SET_PERIOD;
	a[0] = (struct pvperf_args) {
		.vcpu = PVPERF_VCPU_SELF, .slot = hwc->idx, .period = period,
	};
	st = pv_cmds(pv, cmd + 2 - n, a + 2 - n, n, false);
	if (st == PVPERF_ST_OK && n == 2) {
		struct pvperf_snap rec;

		/*
		 * SET_PERIOD took the old period's overflows from the host's
		 * buffer into the record ENABLE wrote: they weigh the old one
		 */
		if (!(pc->since_add & BIT_ULL(hwc->idx)) &&
		    pv_read_record(pc, hwc->idx, &rec) &&
		    rec.overflows >= pc->ovf_seen[hwc->idx])
			pvperf_weigh(pc, hwc->idx, rec.overflows);
		pc->period[hwc->idx] = period;
	}
	if (st == PVPERF_ST_OK) {
		pc->lead_on &= ~BIT_ULL(hwc->idx);
		pvperf_set_prev(event, pc);
	} else if (st != PVPERF_ST_NODEV) {
		/*
		 * Did SET_PERIOD run before ENABLE failed? Not known: the
		 * next start sends the period again. The event stays stopped.
		 */
		if (n == 2)
			pc->period[hwc->idx] = 0;
		return pv_errno(st);
	}
	hwc->state = 0;
	return 0;
}

static void pvperf_start(struct perf_event *event, int flags)
{
	struct pvperf_dev *pv = to_pe(event)->pv;

	/*
	 * Stopped from NMI, its slot never stopped: it goes on as it was.
	 * perf restarts throttled events from the tick, never from NMI; a
	 * start that did come from NMI could not reach the device: left.
	 */
	if (to_pe(event)->nmi_stopped) {
		to_pe(event)->nmi_stopped = false;
		event->hw.state = 0;
		return;
	}
	if (in_nmi())
		return;
	if (to_pe(event)->on_shared) {
		struct pvperf_cpu *pc = this_cpu_ptr(pv->cpu);
		unsigned long irqflags;

		raw_spin_lock_irqsave(&pc->lock, irqflags);
		pvperf_shared_start(pv, pc, event);
		raw_spin_unlock_irqrestore(&pc->lock, irqflags);
		return;
	}
	/* only pvperf_add() can report a failure to perf */
	pvperf_enable(event);
}

/* Does a member of the host group @slot leads run here (for perf)? */
static bool pvperf_members_run(struct pvperf_cpu *pc, u32 slot, u32 but)
{
	return pvperf_running_mask(pc, pvperf_members(pc, slot) &
				       ~BIT_ULL(but)) != 0;
}

/*
 * What stops @event's slot: DISABLE, which for a host leader stops its
 * members too; so a counting leader whose members still run is only read
 * (READ; its slot stays enabled on the device, its count stops here), and
 * the last of the group to stop disables it (pvperf_stop_slot()). In a
 * group's sched-out the leader goes first: the group costs an exit per
 * member, as without groups. A sampling leader is disabled: its members
 * do not count on the host until it starts again (perf before 6.16
 * throttles the leader alone).
 */
static u32 pvperf_stop_cmd(struct pvperf_cpu *pc, struct perf_event *event)
{
	u32 slot = event->hw.idx;

	if (pc->hlead[slot] || to_pe(event)->sampling ||
	    !pvperf_members_run(pc, slot, slot))
		return PVPERF_CMD_DISABLE;
	pc->lead_on |= BIT_ULL(slot);
	return PVPERF_CMD_READ;
}

/*
 * Stop @event's slot on the device (see pvperf_stop_cmd()): the last
 * member of a group whose leader was left on disables both; if that
 * fails (the leader's event closed meanwhile on another CPU), the member
 * alone.
 */
static u32 pvperf_stop_slot(struct pvperf_dev *pv, struct pvperf_cpu *pc,
			    struct perf_event *event)
{
	u32 slot = event->hw.idx, hl = READ_ONCE(pc->hlead[slot]), lead, st;
	u32 cmd = pvperf_stop_cmd(pc, event);

	lead = hl - 1;
	if (cmd == PVPERF_CMD_DISABLE && hl && lead < PVPERF_SLOTS_MAX &&
	    (pc->lead_on & BIT_ULL(lead)) &&
	    !pvperf_members_run(pc, lead, slot)) {
		st = pv_mask_cmd(pv, cmd, BIT_ULL(slot) | BIT_ULL(lead), false);
		if (st == PVPERF_ST_OK || st == PVPERF_ST_NODEV) {
			pc->lead_on &= ~BIT_ULL(lead);
			return st;
		}
	}
	return pv_mask_cmd(pv, cmd, BIT_ULL(slot), false);
}

/*
 * Stop counting. From Linux 6.16 perf stops every member of a throttled
 * group from the PMI, an NMI, which may have come in the middle of any
 * pvperf callback on this CPU (holding its locks, using its command
 * block): from NMI the event is only marked stopped, and its slot left
 * counting until the next start or stop (see nmi_stopped). In perf's
 * hardware context (the default, see pvperf_choose_context()) a pvperf
 * event has no hardware PMU's event in its group, and this never comes
 * from NMI.
 */
static void pvperf_stop(struct perf_event *event, int flags)
{
	struct pvperf_event *pe = to_pe(event);
	struct pvperf_dev *pv = pe->pv;
	struct pvperf_cpu *pc = this_cpu_ptr(pv->cpu);
	struct hw_perf_event *hwc = &event->hw;
	bool running;

	if (in_nmi()) {
		if (!hwc->state) {
			hwc->state = PERF_HES_STOPPED;
			pe->nmi_stopped = true;
		}
		return;
	}
	running = pvperf_mark_stopped(event);
	if (pe->on_shared) {
		unsigned long irqflags;

		raw_spin_lock_irqsave(&pc->lock, irqflags);
		pvperf_shared_stop(pv, pc, event, running);
		raw_spin_unlock_irqrestore(&pc->lock, irqflags);
		return;
	}
	if (hwc->idx >= 0 && (hwc->state & PVPERF_HES_PENDING))
		this_cpu_ptr(&pvperf_txn)->mask &= ~BIT_ULL(hwc->idx);
	if (!running || !pc->ready || hwc->idx < 0) {
		/* nothing runs on the device: the count is as it will stay */
		hwc->state = PERF_HES_STOPPED | PERF_HES_UPTODATE;
		return;
	}
	/*
	 * DISABLE leaves the final count in the page. If it fails, the
	 * event is stopped for perf, but its count is not up to date.
	 */
	hwc->state = PERF_HES_STOPPED;
	if (pvperf_stop_slot(pv, pc, event) == PVPERF_ST_OK) {
		pvperf_update(event, pc);
		hwc->state |= PERF_HES_UPTODATE;
	}
}

/*
 * The host leader of @event's group (see "Groups" above): its first pvperf
 * event, the perf leader or a sibling that perf adds (not one that is
 * off), when the group has two or more such; else NULL. Called from add, where perf holds the context's lock, which
 * keeps the group as it is.
 */
static struct perf_event *pvperf_host_leader(struct perf_event *event)
{
	struct perf_event *leader = event->group_leader, *sib, *first = NULL;
	unsigned int n = 0;

	if (leader->pmu == &pvperf_pmu) {
		first = leader;
		n++;
	}
	/* a sibling that is off is not added: not one of the host group */
	for_each_sibling_event(sib, leader) {
		if (sib->pmu != &pvperf_pmu ||
		    (sib != event && sib->state <= PERF_EVENT_STATE_OFF))
			continue;
		if (!first)
			first = sib;
		n++;
	}
	return n > 1 ? first : NULL;
}

/*
 * The slot of @event's host leader on this CPU for its OPEN, if that
 * leader is added here now (perf adds a group's events in order: a
 * disabled sibling is not), else PVPERF_NO_GROUP. hw.idx of an event not
 * added here may be its slot elsewhere: only active[] says.
 */
static u32 pvperf_group_slot(struct pvperf_cpu *pc, struct perf_event *event,
			     struct perf_event *hl)
{
	int lead;

	if (!hl || hl == event)
		return PVPERF_NO_GROUP;
	lead = hl->hw.idx;
	if (lead < 0 || lead >= PVPERF_SLOTS_MAX || pc->active[lead] != hl ||
	    pc->hlead[lead])
		return PVPERF_NO_GROUP;
	return lead;
}

static int pvperf_add(struct perf_event *event, int flags)
{
	struct pvperf_dev *pv = to_pe(event)->pv;
	struct pvperf_cpu *pc = this_cpu_ptr(pv->cpu);
	struct hw_perf_event *hwc = &event->hw;
	struct perf_event *hl = pvperf_host_leader(event);
	int slot, ret;

	/* a group's pvperf events own their slots: one host group */
	to_pe(event)->on_shared = to_pe(event)->shared && !hl;
	if (to_pe(event)->on_shared)
		return pvperf_shared_add(pv, event, flags);
	to_pe(event)->nmi_stopped = false;
	slot = pvperf_get_slot(pv, event, pvperf_group_slot(pc, event, hl));
	if (slot == -ENODEV && READ_ONCE(pv->state) == PVPERF_GONE) {
		/*
		 * A removed device's event without a slot here (an inherited
		 * child, or a CPU it never ran on): it is added, keeps its
		 * frozen count, and touches nothing. Failing it would leave
		 * perf's times running ahead of it and scale its count up.
		 */
		hwc->idx = -1;
		hwc->state = flags & PERF_EF_START ? 0 :
			     PERF_HES_STOPPED | PERF_HES_UPTODATE;
		return 0;
	}
	if (slot < 0)
		return slot;
	hwc->idx = slot;
	hwc->state = PERF_HES_STOPPED | PERF_HES_UPTODATE;
	pc->active[slot] = event;
	/*
	 * The overflows of the event's last run here that its record shows
	 * by the next ENABLE (which drains the host's buffer) are counted
	 * lost there, not sampled now, away from where they happened
	 */
	if (to_pe(event)->sampling)
		pc->since_add |= BIT_ULL(slot);
	if (flags & PERF_EF_START) {
		ret = pvperf_enable(event);
		if (ret) {
			pc->active[slot] = NULL;
			return ret;
		}
	}
	return 0;
}

static void pvperf_del(struct perf_event *event, int flags)
{
	struct pvperf_dev *pv = to_pe(event)->pv;
	struct pvperf_cpu *pc = this_cpu_ptr(pv->cpu);

	if (to_pe(event)->on_shared) {
		pvperf_shared_del(pv, event);
		return;
	}
	pvperf_stop(event, PERF_EF_UPDATE);
	if (event->hw.idx >= 0) {
		pc->active[event->hw.idx] = NULL;
		pc->since_add &= ~BIT_ULL(event->hw.idx);
	}
}

/*
 * perf's bracket around scheduling a context in or out (and around a
 * context swap between two tasks of one inherited tree): the shared-slot
 * events inside it take their counts from one READ. From Linux 6.2 perf
 * brackets each PMU's part of a context. Before, it brackets with the
 * context's PMU: all perf_sw_context PMUs share the software PMU's
 * per-CPU context, and a task context's PMU becomes the software PMU when
 * the task is first scheduled in with it, so pvperf's bracket practically
 * never runs there, and each shared-slot start and stop is its own exit.
 */
static void pvperf_pmu_disable(struct pmu *pmu)
{
	struct pvperf_bracket *b = this_cpu_ptr(&pvperf_bracket);

	b->open = true;
	b->gen++;
}

static void pvperf_pmu_enable(struct pmu *pmu)
{
	this_cpu_ptr(&pvperf_bracket)->open = false;
}

/*
 * The transaction hooks keep their state per CPU and touch a device only
 * through the events started in the transaction: before Linux 6.2 perf
 * also calls them for the software events of a task whose context a
 * pvperf event created, after the device or every pvperf event is gone.
 */
static void pvperf_start_txn(struct pmu *pmu, unsigned int txn_flags)
{
	struct pvperf_txn *txn = this_cpu_ptr(&pvperf_txn);

	txn->flags = txn_flags;
	txn->mask = 0;
	txn->pv = NULL;
}

static int pvperf_commit_txn(struct pmu *pmu)
{
	struct pvperf_txn *txn = this_cpu_ptr(&pvperf_txn);
	struct pvperf_dev *pv = txn->pv;
	unsigned int flags = txn->flags;
	u64 mask = txn->mask, m;
	struct pvperf_cpu *pc;
	u32 st;

	txn->flags = 0;
	txn->mask = 0;
	txn->pv = NULL;
	if (!mask)
		return 0;
	pc = this_cpu_ptr(pv->cpu);
	if (flags & PERF_PMU_TXN_READ) {
		/*
		 * The group's slots, read in one exit (pvperf_read()); a slot
		 * the device closed is not read (its count stays), and if one
		 * fails the whole READ, each is read alone
		 */
		mask &= ~pc->lost;
		st = mask ? pv_mask_cmd(pv, PVPERF_CMD_READ, mask, true) :
			    PVPERF_ST_NODEV;
		for (m = mask; m; m &= m - 1) {
			u32 slot = __ffs64(m);

			if (!pc->active[slot])
				continue;
			if (st == PVPERF_ST_OK ||
			    (st != PVPERF_ST_NODEV && st != PVPERF_ST_BUSY &&
			     pv_mask_cmd(pv, PVPERF_CMD_READ, BIT_ULL(slot),
					 true) == PVPERF_ST_OK))
				pvperf_update(pc->active[slot], pc);
		}
		return 0;
	}
	st = pv_mask_cmd(pv, PVPERF_CMD_ENABLE, mask, false);
	if (st != PVPERF_ST_OK && st != PVPERF_ST_NODEV) {
		/*
		 * ENABLE stops at the first slot whose host ioctl fails, and
		 * the slots before it stay enabled: disable the whole group
		 * so that the device agrees it is not running.
		 */
		pv_mask_cmd(pv, PVPERF_CMD_DISABLE, mask, false);
		for (m = mask; m; m &= m - 1)
			pc->active[__ffs64(m)]->hw.state =
				PERF_HES_STOPPED | PERF_HES_UPTODATE;
		return pv_errno(st);
	}
	if (st == PVPERF_ST_OK)
		pc->lead_on &= ~mask;
	for (m = mask; m; m &= m - 1) {
		struct perf_event *event = pc->active[__ffs64(m)];

		if (st == PVPERF_ST_OK)
			pvperf_set_prev(event, pc);
		event->hw.state = 0;
	}
	return 0;
}

static void pvperf_cancel_txn(struct pmu *pmu)
{
	struct pvperf_txn *txn = this_cpu_ptr(&pvperf_txn);

	txn->flags = 0;
	txn->mask = 0;
	txn->pv = NULL;
}

/* sysfs ------------------------------------------------------------------ */

PMU_FORMAT_ATTR(event, "config:0-15");

static struct attribute *pvperf_format_attrs[] = {
	&format_attr_event.attr,
	NULL,
};

static const struct attribute_group pvperf_format_group = {
	.name = "format",
	.attrs = pvperf_format_attrs,
};

static struct attribute_group pvperf_events_group = {
	.name = "events",
	.attrs = pvperf_ev_attr_ptrs,
};

static const struct attribute_group *pvperf_attr_groups[] = {
	&pvperf_format_group,
	&pvperf_events_group,
	NULL,
};

static ssize_t pvperf_event_show(struct device *dev,
				 struct device_attribute *attr, char *page)
{
	struct perf_pmu_events_attr *pa =
		container_of(attr, struct perf_pmu_events_attr, attr);

	return sysfs_emit(page, "event=0x%llx\n", pa->id);
}

static ssize_t pvperf_str_show(struct device *dev,
			       struct device_attribute *attr, char *page)
{
	struct perf_pmu_events_attr *pa =
		container_of(attr, struct perf_pmu_events_attr, attr);

	return sysfs_emit(page, "%s\n", pa->event_str);
}

static void pvperf_str_attr(struct perf_pmu_events_attr *pa, char *name,
			    size_t size, const char *base, const char *suffix,
			    const char *value)
{
	snprintf(name, size, "%s.%s", base, suffix);
	sysfs_attr_init(&pa->attr.attr);
	pa->attr.attr.name = name;
	pa->attr.attr.mode = 0444;
	pa->attr.show = pvperf_str_show;
	pa->event_str = value;
}

/* sysfs name of a catalog entry: after the last ':', [A-Za-z0-9_.-] */
static void pvperf_sysfs_name(const char *name, char *out, size_t size)
{
	const char *p = strrchr(name, ':');
	size_t i;

	strscpy(out, p ? p + 1 : name, size);
	for (i = 0; out[i]; i++)
		if (!isalnum(out[i]) && out[i] != '_' && out[i] != '-' &&
		    out[i] != '.')
			out[i] = '_';
}

/* The PMU's events/ from its catalog; with pvperf_mutex, not registered */
static void pvperf_build_events(struct device *dev)
{
	u32 i, n = 0, k = 0;

	for (i = 0; i < pvperf_nr_entries; i++) {
		struct pvperf_entry *e = &pvperf_catalog[i];
		struct perf_pmu_events_attr *pa = &pvperf_ev_attrs[n];
		char *name = pvperf_ev_names[n];
		bool dup = false;
		u32 j;

		if (!(e->info & PVPERF_INFO_AVAILABLE)) {
			dev_info(dev, "event %u '%s' unavailable on the host (errno %u): not offered\n",
				 i, e->name, e->err);
			continue;
		}
		pvperf_sysfs_name(e->name, name, PVPERF_NAME_SIZE);
		for (j = 0; j < n; j++)
			dup |= !strcmp(pvperf_ev_names[j], name);
		if (dup) {
			dev_warn(dev, "event %u '%s': name '%s' taken, use pvperf/event=%u/\n",
				 i, e->name, name, i);
			continue;
		}
		sysfs_attr_init(&pa->attr.attr);
		pa->attr.attr.name = name;
		pa->attr.attr.mode = 0444;
		pa->attr.show = pvperf_event_show;
		pa->id = i;
		pvperf_ev_attr_ptrs[k++] = &pa->attr.attr;
		/*
		 * A count of ns is shown as perf shows its own task-clock:
		 * msec (docs/pvperf.rst, "Catalog")
		 */
		if (pvperf_entry_is_clock(i)) {
			pvperf_str_attr(&pvperf_unit_attrs[n],
					pvperf_unit_names[n],
					sizeof(pvperf_unit_names[n]), name,
					"unit", "msec");
			pvperf_str_attr(&pvperf_scale_attrs[n],
					pvperf_scale_names[n],
					sizeof(pvperf_scale_names[n]), name,
					"scale", "1e-6");
			pvperf_ev_attr_ptrs[k++] = &pvperf_unit_attrs[n].attr.attr;
			pvperf_ev_attr_ptrs[k++] = &pvperf_scale_attrs[n].attr.attr;
		}
		n++;
	}
	pvperf_ev_attr_ptrs[k] = NULL;
}

/* device ----------------------------------------------------------------- */

static void pvperf_read_entry(struct pvperf_dev *pv, u32 i,
			      struct pvperf_entry *e)
{
	u32 off;

	pv_wr(pv, PVPERF_REG_CATALOG_SELECT, i);
	e->info = pv_rd(pv, PVPERF_REG_CATALOG_INFO);
	e->err = pv_rd(pv, PVPERF_REG_CATALOG_ERRNO);
	for (off = 0; off < PVPERF_NAME_SIZE; off += 4) {
		__le32 w = cpu_to_le32(pv_rd(pv, PVPERF_REG_CATALOG_NAME + off));

		memcpy(e->name + off, &w, 4);
	}
	e->name[PVPERF_NAME_SIZE - 1] = 0;
	/*
	 * Devices before ABI 1.3 say no unit: the software clocks count ns
	 * all the same (the rule docs/pvperf.rst gives for them)
	 */
	if (PVPERF_VERSION_MINOR_OF(pv->version) < 3 &&
	    (e->info & PVPERF_INFO_KIND_MASK) == PVPERF_KIND_SOFTWARE &&
	    (!strcmp(e->name, "task-clock") || !strcmp(e->name, "cpu-clock")))
		e->info |= PVPERF_UNIT_NS << PVPERF_INFO_UNIT_SHIFT;
}

/*
 * The first device's catalog becomes the PMU's, events/ in sysfs; a device
 * bound later must have the same (names, kinds, availability), since the
 * PMU and its events stay registered until the module is unloaded.
 */
static int pvperf_read_catalog(struct pvperf_dev *pv)
{
	struct device *dev = &pv->pdev->dev;
	struct pvperf_entry e;
	u32 i, n;

	n = min_t(u32, pv_rd(pv, PVPERF_REG_CATALOG_COUNT),
		  PVPERF_CATALOG_MAX);
	if (!pvperf_registered) {
		pvperf_nr_entries = n;
		for (i = 0; i < n; i++)
			pvperf_read_entry(pv, i, &pvperf_catalog[i]);
		pvperf_build_events(dev);
		return 0;
	}
	for (i = 0; i < max(n, pvperf_nr_entries); i++) {
		const struct pvperf_entry *p = &pvperf_catalog[i];

		if (i < n)
			pvperf_read_entry(pv, i, &e);
		if (i < n && i < pvperf_nr_entries &&
		    !strcmp(e.name, p->name) && e.info == p->info)
			continue;
		dev_err(dev, "its event catalog is not the pvperf PMU's (entry %u: '%s' info 0x%x here, '%s' info 0x%x there): the PMU keeps its events until pvperf is unloaded, so bind this device after reloading pvperf (or rebooting, after per-task events on Linux < 6.2)\n",
			i, i < n ? e.name : "(none)", i < n ? e.info : 0,
			i < pvperf_nr_entries ? p->name : "(none)",
			i < pvperf_nr_entries ? p->info : 0);
		return -EBUSY;
	}
	return 0;
}

/*
 * Bring this CPU in step with the device: register its count page (and
 * learn its vCPU index from the page header), reopen the slots its events
 * own that the device closed, and enable the slots of the events running
 * here. IRQs are off, so none of this CPU's perf callbacks runs
 * meanwhile. While the CPU is not ready its slots are all disabled on the
 * device (pvperf_cpu_quiesce() left them so, or the device was reset).
 */
static u32 pvperf_cpu_sync(struct pvperf_dev *pv)
{
	struct pvperf_cpu *pc = this_cpu_ptr(pv->cpu);
	u64 running = 0, closed = 0, m;
	struct pvperf_snap rec;
	u32 st;

	lockdep_assert_irqs_disabled();
	if (!pc->page)
		return PVPERF_ST_NODEV;
	raw_spin_lock(&pv->lock);
	raw_spin_lock(&pc->lock);
	/* the command block first, so that what follows costs one exit each */
	if (pc->block && !pc->block_ready &&
	    pv_set_block_locked(pv, PVPERF_VCPU_SELF, pc->block_dma) ==
	    PVPERF_ST_OK)
		pc->block_ready = true;
	pc->page_live = false;
	st = pv_set_page_locked(pv, PVPERF_VCPU_SELF, pc->page_dma);
	if (st != PVPERF_ST_OK)
		goto unlock;
	if (pv_le32(&pc->page->magic) != PVPERF_PAGE_MAGIC) {
		st = PVPERF_ST_BAD_ADDRESS;
		goto unlock;
	}
	pc->page_live = true;
	pc->vcpu = pv_le32(&pc->page->vcpu);
	/*
	 * SET_PAGE wrote every record, so the page says which slots the
	 * device has open. One of ours that it closed without the driver
	 * knowing (the vCPU was unplugged and plugged in again, a reset
	 * nobody announced) is lost like those a known reset closed.
	 */
	for (m = pc->used & ~pc->lost & ~pc->zombie; m; m &= m - 1) {
		u32 slot = __ffs64(m);

		if (pv_read_record(pc, slot, &rec) &&
		    !(rec.flags & PVPERF_SLOT_OPEN))
			closed |= BIT_ULL(slot);
	}
	pc->lost |= closed;
	pc->lead_on = 0;
	/* leaders (and lone slots) first, then the members of those back */
	for (m = pc->lost; m; m &= m - 1) {
		u32 slot = __ffs64(m);

		if (!pc->hlead[slot] &&
		    pv_open_locked(pv, slot, pc->owner[slot], PVPERF_NO_GROUP) ==
		    PVPERF_ST_OK)
			pc->lost &= ~BIT_ULL(slot);
	}
	for (m = pc->lost; m; m &= m - 1) {
		u32 slot = __ffs64(m), lead = pc->hlead[slot] - 1;

		/* a member whose leader stays closed reopens with it later */
		if (pc->hlead[slot] && !(pc->lost & BIT_ULL(lead)) &&
		    pv_open_locked(pv, slot, pc->owner[slot], lead) ==
		    PVPERF_ST_OK)
			pc->lost &= ~BIT_ULL(slot);
	}
	running = pvperf_running_mask(pc, pc->used & ~pc->lost);
	/* a running member's leader runs on the device too (see lead_on) */
	for (m = running; m; m &= m - 1)
		if (pc->hlead[__ffs64(m)])
			pc->lead_on |= BIT_ULL(pc->hlead[__ffs64(m)] - 1);
	pc->lead_on &= ~running & ~pc->lost;
	if ((running | pc->lead_on) &&
	    pv_mask_cmd_locked(pv, PVPERF_CMD_ENABLE, PVPERF_VCPU_SELF,
			       pc->lead_on | running) != PVPERF_ST_OK) {
		pv_mask_cmd_locked(pv, PVPERF_CMD_DISABLE, PVPERF_VCPU_SELF,
				   pc->lead_on | running);
		pc->lead_on = 0;
		st = PVPERF_ST_HOST_ERROR;
	}
	pc->ready = true;
	pvperf_shared_resync(pv, pc);
unlock:
	raw_spin_unlock(&pc->lock);
	raw_spin_unlock(&pv->lock);
	/*
	 * Whatever ENABLE said, the records now hold what the slots count
	 * from (a reopened slot starts at 0): the deltas of the running
	 * events restart there, so their counts never go backwards.
	 */
	for (m = running; m; m &= m - 1)
		pvperf_set_prev(pc->active[__ffs64(m)], pc);
	if (closed)
		dev_info(&pv->pdev->dev, "CPU %d: the device had closed %u slots of its events (vCPU replugged or reset): %u reopened\n",
			 smp_processor_id(), (unsigned int)hweight64(closed),
			 (unsigned int)hweight64(closed & ~pc->lost));
	return st;
}

/*
 * Stop using the device on this CPU: disable the slots of the events
 * running here and take their final counts (they stay running for perf
 * and count again once the CPU is synced), and with @unregister give the
 * count page back. IRQs off.
 */
static void pvperf_cpu_quiesce(struct pvperf_dev *pv, bool unregister)
{
	struct pvperf_cpu *pc = this_cpu_ptr(pv->cpu);
	u64 running, m;
	u32 st;

	lockdep_assert_irqs_disabled();
	if (!pc->ready) {
		pc->page_live = false;
		return;
	}
	raw_spin_lock(&pv->lock);
	raw_spin_lock(&pc->lock);
	pvperf_shared_quiesce(pv, pc);
	pc->ready = false;
	running = pvperf_running_mask(pc, pc->used & ~pc->lost);
	/* and the leaders left on for their members (see pvperf_stop()) */
	if (running | pc->lead_on)
		st = pv_mask_cmd_locked(pv, PVPERF_CMD_DISABLE, PVPERF_VCPU_SELF,
					running | (pc->lead_on & pc->used &
						   ~pc->lost));
	else
		st = PVPERF_ST_NODEV;
	pc->lead_on = 0;
	if (unregister) {
		pv_set_page_locked(pv, pc->vcpu, 0);
		if (pc->block_ready)
			pv_set_block_locked(pv, pc->vcpu, 0);
		pc->block_ready = false;
	}
	raw_spin_unlock(&pc->lock);
	raw_spin_unlock(&pv->lock);
	if (st == PVPERF_ST_OK)
		for (m = running; m; m &= m - 1)
			pvperf_update(pc->active[__ffs64(m)], pc);
	/* the last read of the page until a sync registers it again */
	pc->page_live = false;
}

static int pvperf_cpu_online(unsigned int cpu, struct hlist_node *node)
{
	struct pvperf_dev *pv = hlist_entry_safe(node, struct pvperf_dev,
						 node);
	struct pvperf_cpu *pc = per_cpu_ptr(pv->cpu, cpu);
	u32 st;

	/* a CPU without a page cannot count: never fail the CPU for that */
	if (!pc->page)
		pc->page = dma_alloc_coherent(&pv->pdev->dev, PVPERF_PAGE_SIZE,
					      &pc->page_dma, GFP_KERNEL);
	if (!pc->page)
		return 0;
	/* without a block, commands go through the registers */
	if (!pc->block && (pv->features & PVPERF_F_CMD_BLOCK))
		pc->block = dma_alloc_coherent(&pv->pdev->dev,
					       PVPERF_BLOCK_SIZE,
					       &pc->block_dma, GFP_KERNEL);
	/* runs on @cpu, in its hotplug thread */
	local_irq_disable();
	WARN_ON_ONCE(smp_processor_id() != cpu);
	st = pvperf_cpu_sync(pv);
	local_irq_enable();
	/* also when the device is paused: its vCPU is known from before */
	pvperf_irq_affinity(pv, cpu);
	/* while the device is paused, resuming it syncs this CPU */
	if (st != PVPERF_ST_OK && st != PVPERF_ST_NODEV)
		dev_warn(&pv->pdev->dev, "CPU %u: cannot register its count page (status %u): pvperf events cannot count on it\n",
			 cpu, st);
	return 0;
}

static int pvperf_cpu_offline(unsigned int cpu, struct hlist_node *node)
{
	struct pvperf_dev *pv = hlist_entry_safe(node, struct pvperf_dev,
						 node);

	local_irq_disable();
	pvperf_cpu_quiesce(pv, true);
	local_irq_enable();
	return 0;
}

static void pvperf_quiesce_fn(void *data)
{
	pvperf_cpu_quiesce(data, false);
}

struct pvperf_sync_arg {
	struct pvperf_dev *pv;
	u32 status;
};

static void pvperf_sync_fn(void *data)
{
	struct pvperf_sync_arg *arg = data;

	arg->status = pvperf_cpu_sync(arg->pv);
}

/* Suspend, hibernation, PCI reset: stop touching the device */
static void pvperf_pause(struct pvperf_dev *pv)
{
	unsigned long flags;

	cpus_read_lock();
	on_each_cpu(pvperf_quiesce_fn, pv, 1);
	raw_spin_lock_irqsave(&pv->lock, flags);
	pv->state = PVPERF_PAUSED;
	raw_spin_unlock_irqrestore(&pv->lock, flags);
	cpus_read_unlock();
}

/*
 * The device is back. It was reset if it forgot the features the driver
 * wrote (one register read; any reset sets DRIVER_FEATURES to 0), or when
 * @reset says so: then every slot is closed and every page forgotten.
 * Register the pages again and reopen the owned slots, on each online CPU
 * in turn; offline CPUs do it when they come up.
 */
static void pvperf_restart(struct pvperf_dev *pv, bool reset)
{
	struct device *dev = &pv->pdev->dev;
	unsigned int closed = 0, left = 0;
	unsigned long flags;
	int cpu;

	if (reset)
		pv_wr(pv, PVPERF_REG_DOORBELL, PVPERF_CMD_RESET);
	else
		reset = !pv_rd(pv, PVPERF_REG_DRIVER_FEATURES);
	if (reset) {
		pv_wr(pv, PVPERF_REG_DRIVER_FEATURES, pv->features);
		pci_set_master(pv->pdev);
	}

	cpus_read_lock();
	raw_spin_lock_irqsave(&pv->lock, flags);
	pv->state = PVPERF_LIVE;
	for_each_possible_cpu(cpu) {
		struct pvperf_cpu *pc = per_cpu_ptr(pv->cpu, cpu);
		struct pvperf_event *pe;
		u64 m;

		raw_spin_lock(&pc->lock);
		if (reset) {
			pc->used &= ~pc->zombie;
			pc->lost = pc->used;
			closed += hweight64(pc->lost);
			pc->block_ready = false;	/* forgotten too */
			/* so are the shared slots: the sync opens them again */
			pc->sused = 0;
			memset(pc->shared, 0, sizeof(pc->shared));
			memset(pc->srefs, 0, sizeof(pc->srefs));
			list_for_each_entry(pe, &pc->sactive, snode)
				pe->sslot = 0;
		} else {
			for (m = pc->zombie; m; m &= m - 1)
				pv_close_locked(pv, pc->vcpu, __ffs64(m));
			pc->used &= ~pc->zombie;
		}
		pc->zombie = 0;
		raw_spin_unlock(&pc->lock);
	}
	raw_spin_unlock_irqrestore(&pv->lock, flags);

	for_each_online_cpu(cpu) {
		struct pvperf_sync_arg arg = { pv, PVPERF_ST_NODEV };

		smp_call_function_single(cpu, pvperf_sync_fn, &arg, 1);
		if (arg.status != PVPERF_ST_OK)
			dev_warn(dev, "CPU %d: cannot register its count page again (status %u)\n",
				 cpu, arg.status);
		/*
		 * A suspend offlines the other CPUs, and the IRQ core moved
		 * their vectors to the boot CPU for good: route them back.
		 */
		pvperf_irq_affinity(pv, cpu);
	}
	cpus_read_unlock();
	if (!reset)
		return;
	raw_spin_lock_irqsave(&pv->lock, flags);
	for_each_possible_cpu(cpu)
		left += hweight64(per_cpu_ptr(pv->cpu, cpu)->lost);
	raw_spin_unlock_irqrestore(&pv->lock, flags);
	dev_info(dev, "device was reset: count pages registered again, %u of %u open slots reopened\n",
		 closed - left, closed);
}

static int pvperf_suspend(struct device *dev)
{
	pvperf_pause(dev_get_drvdata(dev));
	return 0;
}

static int pvperf_resume(struct device *dev)
{
	pvperf_restart(dev_get_drvdata(dev), false);
	return 0;
}

/* After hibernation the boot kernel may have used the device: start over */
static int pvperf_restore(struct device *dev)
{
	pvperf_restart(dev_get_drvdata(dev), true);
	return 0;
}

static const struct dev_pm_ops pvperf_pm_ops = {
	.suspend	= pvperf_suspend,
	.resume		= pvperf_resume,
	.freeze		= pvperf_suspend,
	.thaw		= pvperf_resume,
	.poweroff	= pvperf_suspend,
	.restore	= pvperf_restore,
};

static void pvperf_reset_prepare(struct pci_dev *pdev)
{
	pvperf_pause(pci_get_drvdata(pdev));
}

static void pvperf_reset_done(struct pci_dev *pdev)
{
	pvperf_restart(pci_get_drvdata(pdev), false);
}

static const struct pci_error_handlers pvperf_err_handlers = {
	.reset_prepare	= pvperf_reset_prepare,
	.reset_done	= pvperf_reset_done,
};

static void pvperf_free_pages(struct pvperf_dev *pv)
{
	int cpu;

	for_each_possible_cpu(cpu) {
		struct pvperf_cpu *pc = per_cpu_ptr(pv->cpu, cpu);

		if (pc->page)
			dma_free_coherent(&pv->pdev->dev, PVPERF_PAGE_SIZE,
					  pc->page, pc->page_dma);
		pc->page = NULL;
		if (pc->block)
			dma_free_coherent(&pv->pdev->dev, PVPERF_BLOCK_SIZE,
					  pc->block, pc->block_dma);
		pc->block = NULL;
		pc->block_ready = false;
	}
}

/* Registered once, at the first probe; unregistered at module exit */
static struct pmu pvperf_pmu = {
	.module		= THIS_MODULE,
	.task_ctx_nr	= perf_sw_context,
	.attr_groups	= pvperf_attr_groups,
	.event_init	= pvperf_event_init,
	.pmu_enable	= pvperf_pmu_enable,
	.pmu_disable	= pvperf_pmu_disable,
	.add		= pvperf_add,
	.del		= pvperf_del,
	.start		= pvperf_start,
	.stop		= pvperf_stop,
	.read		= pvperf_read,
	.start_txn	= pvperf_start_txn,
	.commit_txn	= pvperf_commit_txn,
	.cancel_txn	= pvperf_cancel_txn,
	.capabilities	= PERF_PMU_CAP_NO_NMI,
};

/* With pvperf_mutex held and no device bound */
static int pvperf_setup(struct pci_dev *pdev)
{
	struct device *dev = &pdev->dev;
	struct pvperf_dev *pv;
	u32 magic, version;
	int ret, cpu;

	ret = pcim_enable_device(pdev);
	if (ret)
		return ret;
	ret = pcim_iomap_regions(pdev, BIT(PVPERF_MMIO_BAR), DRV_NAME);
	if (ret)
		return ret;
	ret = dma_set_mask_and_coherent(dev, DMA_BIT_MASK(64));
	if (ret)
		return ret;

	pv = kzalloc(sizeof(*pv), GFP_KERNEL);
	if (!pv)
		return -ENOMEM;
	pv->pdev = pdev;
	pv->state = PVPERF_LIVE;
	pv->refs = 1;		/* the binding's, dropped by remove() */
	raw_spin_lock_init(&pv->lock);
	pv->regs = pcim_iomap_table(pdev)[PVPERF_MMIO_BAR];

	magic = pv_rd(pv, PVPERF_REG_MAGIC);
	version = pv_rd(pv, PVPERF_REG_VERSION);
	pv->version = version;
	if (magic != PVPERF_MAGIC) {
		dev_err(dev, "bad magic 0x%08x: not a pvperf device\n", magic);
		ret = -ENODEV;
		goto err_free;
	}
	if (PVPERF_VERSION_MAJOR_OF(version) != PVPERF_VERSION_MAJOR) {
		dev_err(dev, "device speaks pvperf ABI %u.%u; this driver speaks %u.x: refusing it\n",
			PVPERF_VERSION_MAJOR_OF(version),
			PVPERF_VERSION_MINOR_OF(version), PVPERF_VERSION_MAJOR);
		ret = -ENODEV;
		goto err_free;
	}
	/* a previous kernel (kexec) may have left slots open and pages set */
	pv_wr(pv, PVPERF_REG_DOORBELL, PVPERF_CMD_RESET);

	pv->features = pv_rd(pv, PVPERF_REG_FEATURES) & PVPERF_KNOWN_FEATURES;
	if (!(pv->features & PVPERF_F_COUNTING)) {
		dev_err(dev, "device lacks the COUNTING feature (features 0x%x): refusing it\n",
			pv_rd(pv, PVPERF_REG_FEATURES));
		ret = -ENODEV;
		goto err_free;
	}
	pv_wr(pv, PVPERF_REG_DRIVER_FEATURES, pv->features);
	pv->doorbell = pv->regs + PVPERF_REG_DOORBELL;
	if ((pv->features & PVPERF_F_IO_DOORBELL) &&
	    !pcim_iomap_regions(pdev, BIT(PVPERF_IO_BAR), DRV_NAME))
		pv->doorbell = pcim_iomap_table(pdev)[PVPERF_IO_BAR] +
			       PVPERF_IO_DOORBELL;
	pci_set_master(pdev);

	pv->slots_per_vcpu = clamp_t(u32, pv_rd(pv, PVPERF_REG_SLOTS_PER_VCPU),
				     1, PVPERF_SLOTS_MAX);
	pv->refresh_ms = pv_rd(pv, PVPERF_REG_REFRESH_MS);
	if (pv_rd(pv, PVPERF_REG_NR_VCPUS) < num_possible_cpus())
		dev_warn(dev, "device addresses %u vCPUs, guest has %u CPUs\n",
			 pv_rd(pv, PVPERF_REG_NR_VCPUS), num_possible_cpus());

	ret = pvperf_read_catalog(pv);
	if (ret)
		goto err_free;

	pv->cpu = alloc_percpu(struct pvperf_cpu);
	if (!pv->cpu) {
		ret = -ENOMEM;
		goto err_free;
	}
	for_each_possible_cpu(cpu) {
		struct pvperf_cpu *pc = per_cpu_ptr(pv->cpu, cpu);

		pc->vcpu = PVPERF_VCPU_INVALID;
		raw_spin_lock_init(&pc->lock);
		INIT_LIST_HEAD(&pc->sactive);
	}
	/* the handler uses pv->cpu; the CPUs route the vectors as they sync */
	pvperf_setup_irqs(pv);
	pv_wr(pv, PVPERF_REG_DRIVER_FEATURES, pv->features);

	/* registers the page of each online CPU, on that CPU */
	ret = cpuhp_state_add_instance(pvperf_hp_state, &pv->node);
	if (ret)
		goto err_pages;
	cpus_read_lock();
	for_each_online_cpu(cpu)
		if (!per_cpu_ptr(pv->cpu, cpu)->ready)
			ret = -EIO;
	cpus_read_unlock();
	if (ret) {
		dev_err(dev, "cannot register the count pages\n");
		goto err_instance;
	}

	if (!pvperf_registered) {
		pvperf_choose_context();
		ret = perf_pmu_register(&pvperf_pmu, DRV_NAME, -1);
		if (!ret && !pvperf_context_ok()) {
			/* another PMU holds the hardware context after all */
			perf_pmu_unregister(&pvperf_pmu);
			ret = -EBUSY;
		}
		if (ret && pvperf_pmu.task_ctx_nr == perf_hw_context) {
			pvperf_software_context();
			ret = perf_pmu_register(&pvperf_pmu, DRV_NAME, -1);
		}
		if (ret)
			goto err_instance;
		pvperf_registered = true;
		dev_info(dev, "perf task context: %s\n",
			 pvperf_pmu.task_ctx_nr == perf_hw_context ?
			 "hardware (perf's bracket: one exit per context switched in or out)" :
			 LINUX_VERSION_CODE >= KERNEL_VERSION(6, 2, 0) ?
			 "software (perf's bracket: one exit per context switched in or out)" :
			 "software (one exit per event started or stopped)");
	}
	pci_set_drvdata(pdev, pv);
	rcu_assign_pointer(pvperf_live, pv);
	dev_info(dev, "pvperf ABI %u.%u, features 0x%x, %u catalog entries, %u slots per vCPU%s%s%s\n",
		 PVPERF_VERSION_MAJOR_OF(version),
		 PVPERF_VERSION_MINOR_OF(version), pv->features,
		 pvperf_nr_entries, pv->slots_per_vcpu,
		 pv->doorbell == pv->regs + PVPERF_REG_DOORBELL ?
		 "" : ", I/O doorbell",
		 pv->features & PVPERF_F_CMD_BLOCK ? ", command blocks" : "",
		 pv->nvec ? ", sampling" : "");
	return 0;

err_instance:
	cpuhp_state_remove_instance_nocalls(pvperf_hp_state, &pv->node);
err_pages:
	/* the device may hold our pages: make it forget them first */
	pv_wr(pv, PVPERF_REG_DOORBELL, PVPERF_CMD_RESET);
	pvperf_free_irqs(pv);
	pvperf_free_pages(pv);
err_free:
	pvperf_free(pv);
	return ret;
}

static int pvperf_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	int ret = -EBUSY;

	mutex_lock(&pvperf_mutex);
	if (rcu_access_pointer(pvperf_live))
		dev_err(&pdev->dev, "only one pvperf device is supported\n");
	else
		ret = pvperf_setup(pdev);
	mutex_unlock(&pvperf_mutex);
	return ret;
}

static void pvperf_remove(struct pci_dev *pdev)
{
	struct pvperf_dev *pv = pci_get_drvdata(pdev);
	unsigned long flags;
	unsigned int busy;
	int cpu;

	cpuhp_state_remove_instance_nocalls(pvperf_hp_state, &pv->node);
	mutex_lock(&pvperf_mutex);
	/* event_init finds no device from now on */
	RCU_INIT_POINTER(pvperf_live, NULL);
	/* running events keep what they counted until now */
	cpus_read_lock();
	on_each_cpu(pvperf_quiesce_fn, pv, 1);
	/*
	 * A CPU that went offline after the instance was removed (no
	 * offline callback ran) kept its flags: it must find its page gone
	 * when it comes back. No CPU changes state under cpus_read_lock().
	 */
	for_each_possible_cpu(cpu) {
		struct pvperf_cpu *pc = per_cpu_ptr(pv->cpu, cpu);

		if (cpu_online(cpu))
			continue;
		pc->ready = false;
		pc->page_live = false;
		pc->block_ready = false;
	}
	raw_spin_lock_irqsave(&pv->lock, flags);
	pv->state = PVPERF_GONE;
	busy = pv->refs - 1;
	raw_spin_unlock_irqrestore(&pv->lock, flags);
	cpus_read_unlock();
	/*
	 * perf's callbacks run with IRQs off, so after a grace period none
	 * is still using the registers or the pages, and no new one will;
	 * nor is any event_init that found the device without counting its
	 * event in pv->refs.
	 */
	synchronize_rcu();
	/* closes every slot on the host and forgets every page */
	pv_wr(pv, PVPERF_REG_DOORBELL, PVPERF_CMD_RESET);
	/* waits for a handler still running: then none uses the pages */
	pvperf_free_irqs(pv);
	pvperf_free_pages(pv);
	pv->pdev = NULL;
	mutex_unlock(&pvperf_mutex);
	if (busy)
		dev_info(&pdev->dev, "removed with %u perf events open: their counts stay as they are\n",
			 busy);
	pvperf_put(pv);
}

static const struct pci_device_id pvperf_ids[] = {
	{ PCI_DEVICE(PVPERF_PCI_VENDOR_ID, PVPERF_PCI_DEVICE_ID) },
	{ }
};
MODULE_DEVICE_TABLE(pci, pvperf_ids);

static struct pci_driver pvperf_driver = {
	.name		= DRV_NAME,
	.id_table	= pvperf_ids,
	.probe		= pvperf_probe,
	.remove		= pvperf_remove,
	.err_handler	= &pvperf_err_handlers,
	.driver.pm	= pm_sleep_ptr(&pvperf_pm_ops),
};

static int __init pvperf_init(void)
{
	int ret;

	ret = cpuhp_setup_state_multi(CPUHP_AP_ONLINE_DYN, "perf/pvperf:online",
				      pvperf_cpu_online, pvperf_cpu_offline);
	if (ret < 0)
		return ret;
	pvperf_hp_state = ret;
	ret = pci_register_driver(&pvperf_driver);
	if (ret)
		cpuhp_remove_multi_state(pvperf_hp_state);
	return ret;
}
module_init(pvperf_init);

static void __exit pvperf_exit(void)
{
	pci_unregister_driver(&pvperf_driver);
	/*
	 * Every perf event holds a module reference, which perf drops last,
	 * after it is done with the PMU (and, from Linux 6.2, its per-CPU
	 * contexts that unregistering frees); and the module is going, so
	 * perf creates no new event. None is left.
	 */
	if (pvperf_registered)
		perf_pmu_unregister(&pvperf_pmu);
	cpuhp_remove_multi_state(pvperf_hp_state);
	/* RCU callbacks freeing perf contexts may still read pvperf_pmu */
	rcu_barrier();
}
module_exit(pvperf_exit);

MODULE_DESCRIPTION("pvperf: host performance events as a perf PMU");
MODULE_LICENSE("GPL");
