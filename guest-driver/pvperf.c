// SPDX-License-Identifier: GPL-2.0
/*
 * pvperf guest driver: host performance events through the pvperf PCI
 * device (1af4:10f0), as a perf PMU named "pvperf".
 *
 * The device and its ABI are specified in docs/pvperf.rst; the register
 * offsets, commands and page layout come from include/hw/misc/pvperf.h.
 *
 * Each guest CPU registers one count page with the device. A perf event
 * owns one device slot on each CPU it has run on (opened lazily on its
 * first add there, closed when the event is destroyed); add/start enable
 * the slot, stop/del disable it, and both leave the slot's count in the
 * page, so each costs one doorbell. A group added in a transaction is
 * enabled with one doorbell for the whole group.
 */
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/perf_event.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/dma-mapping.h>
#include <linux/bitops.h>

#include "hw/misc/pvperf.h"

#define DRV_NAME "pvperf"
#define PVPERF_KNOWN_FEATURES \
	(PVPERF_F_COUNTING | PVPERF_F_GROUPS | PVPERF_F_IO_DOORBELL)

/* hwc->state bit: started inside a transaction, not yet enabled */
#define PVPERF_HES_PENDING	PERF_HES_ARCH

struct pvperf_cpu {
	struct pvperf_page_header *page;	/* count page (coherent DMA) */
	dma_addr_t page_dma;
	u32 vcpu;				/* device vCPU index */
	u64 used;				/* slots in use on this CPU */
	/* transaction state (this CPU only, IRQs off) */
	unsigned int txn_flags;
	u64 txn_mask;
	struct perf_event *txn_events[PVPERF_SLOTS_MAX];
};

struct pvperf_entry {
	char name[PVPERF_NAME_SIZE];	/* catalog name */
	u32 info;
	u32 err;
};

struct pvperf_dev {
	struct pci_dev *pdev;
	void __iomem *regs;
	void __iomem *doorbell;		/* I/O BAR doorbell, or BAR 0's */
	raw_spinlock_t lock;		/* argument registers + doorbell */
	u32 features;
	u32 slots_per_vcpu;
	u32 nr_entries;
	struct pvperf_entry *catalog;
	struct pvperf_cpu __percpu *cpu;
	struct pmu pmu;
	/* sysfs events/ from the catalog */
	struct perf_pmu_events_attr *ev_attrs;
	struct attribute **ev_attr_ptrs;
	struct attribute_group events_group;
	const struct attribute_group *attr_groups[3];
};

/* One device: the PMU is a singleton ("pvperf") */
static struct pvperf_dev *pvperf;

static inline struct pvperf_dev *to_pvperf(struct pmu *pmu)
{
	return container_of(pmu, struct pvperf_dev, pmu);
}

static u32 pv_rd(struct pvperf_dev *pv, u32 reg)
{
	return ioread32(pv->regs + reg);
}

static void pv_wr(struct pvperf_dev *pv, u32 reg, u32 val)
{
	iowrite32(val, pv->regs + reg);
}

/* Ring a command with pv->lock held; the arguments are already written */
static u32 pv_ring_locked(struct pvperf_dev *pv, u32 cmd)
{
	u32 st;

	iowrite32(cmd, pv->doorbell);
	st = pv_rd(pv, PVPERF_REG_STATUS);
	if (st != PVPERF_ST_OK)
		pr_debug_ratelimited(DRV_NAME ": command %u: status %u errno %u\n",
				     cmd, st, pv_rd(pv, PVPERF_REG_HOST_ERRNO));
	return st;
}

static u32 pv_mask_cmd(struct pvperf_dev *pv, u32 cmd, u32 vcpu, u64 mask)
{
	unsigned long flags;
	u32 st;

	raw_spin_lock_irqsave(&pv->lock, flags);
	pv_wr(pv, PVPERF_REG_CMD_VCPU, vcpu);
	pv_wr(pv, PVPERF_REG_CMD_MASK_LO, lower_32_bits(mask));
	pv_wr(pv, PVPERF_REG_CMD_MASK_HI, upper_32_bits(mask));
	st = pv_ring_locked(pv, cmd);
	raw_spin_unlock_irqrestore(&pv->lock, flags);
	return st;
}

/* The documented seqlock read of a slot's count */
static u64 pv_read_count(struct pvperf_cpu *pc, u32 slot)
{
	struct pvperf_slot_record *rec = (void *)pc->page +
					 PVPERF_SLOT_RECORD_OFFSET(slot);
	u32 s1, s2;
	u64 count;

	do {
		s1 = READ_ONCE(rec->seq);
		smp_rmb();
		count = le64_to_cpu(READ_ONCE(rec->count));
		smp_rmb();
		s2 = READ_ONCE(rec->seq);
	} while ((s1 & 1) || s1 != s2);
	return count;
}

/* Per-event slot table: slot + 1 on each CPU, 0 = none yet */
static u8 *ev_slots(struct perf_event *event)
{
	return event->pmu_private;
}

static void pvperf_update(struct perf_event *event, u64 now)
{
	u64 prev = local64_xchg(&event->hw.prev_count, now);

	local64_add(now - prev, &event->count);
}

/* Open this event's slot on the current CPU if it has none */
static int pvperf_get_slot(struct pvperf_dev *pv, struct perf_event *event)
{
	struct pvperf_cpu *pc = this_cpu_ptr(pv->cpu);
	u8 *slots = ev_slots(event);
	int cpu = smp_processor_id();
	unsigned long flags;
	u32 st, slot;

	if (slots[cpu])
		return slots[cpu] - 1;

	raw_spin_lock_irqsave(&pv->lock, flags);
	if (pc->used == GENMASK_ULL(pv->slots_per_vcpu - 1, 0)) {
		raw_spin_unlock_irqrestore(&pv->lock, flags);
		return -ENOSPC;
	}
	slot = __ffs64(~pc->used);
	pv_wr(pv, PVPERF_REG_CMD_VCPU, PVPERF_VCPU_SELF);
	pv_wr(pv, PVPERF_REG_CMD_SLOT, slot);
	pv_wr(pv, PVPERF_REG_CMD_EVENT, event->attr.config);
	pv_wr(pv, PVPERF_REG_CMD_GROUP, PVPERF_NO_GROUP);
	pv_wr(pv, PVPERF_REG_CMD_FLAGS, 0);
	pv_wr(pv, PVPERF_REG_CMD_PERIOD_LO, 0);
	pv_wr(pv, PVPERF_REG_CMD_PERIOD_HI, 0);
	st = pv_ring_locked(pv, PVPERF_CMD_OPEN);
	if (st == PVPERF_ST_OK)
		pc->used |= BIT_ULL(slot);
	raw_spin_unlock_irqrestore(&pv->lock, flags);
	if (st != PVPERF_ST_OK)
		return st == PVPERF_ST_LIMIT ? -ENOSPC : -EIO;
	slots[cpu] = slot + 1;
	return slot;
}

static void pvperf_event_destroy(struct perf_event *event)
{
	struct pvperf_dev *pv = to_pvperf(event->pmu);
	u8 *slots = ev_slots(event);
	unsigned long flags;
	int cpu;

	for_each_possible_cpu(cpu) {
		struct pvperf_cpu *pc = per_cpu_ptr(pv->cpu, cpu);

		if (!slots[cpu])
			continue;
		raw_spin_lock_irqsave(&pv->lock, flags);
		pv_wr(pv, PVPERF_REG_CMD_VCPU, pc->vcpu);
		pv_wr(pv, PVPERF_REG_CMD_SLOT, slots[cpu] - 1);
		if (pv_ring_locked(pv, PVPERF_CMD_CLOSE) == PVPERF_ST_OK)
			pc->used &= ~BIT_ULL(slots[cpu] - 1);
		raw_spin_unlock_irqrestore(&pv->lock, flags);
	}
	kfree(slots);
	event->pmu_private = NULL;
}

static int pvperf_event_init(struct perf_event *event)
{
	struct pvperf_dev *pv = to_pvperf(event->pmu);
	u64 idx = event->attr.config;

	if (event->attr.type != event->pmu->type)
		return -ENOENT;
	if (is_sampling_event(event))
		return -EOPNOTSUPP;	/* counting only until OVERFLOW */
	if (idx >= pv->nr_entries ||
	    !(pv->catalog[idx].info & PVPERF_INFO_AVAILABLE))
		return -ENOENT;

	event->pmu_private = kcalloc(nr_cpu_ids, sizeof(u8), GFP_KERNEL);
	if (!event->pmu_private)
		return -ENOMEM;
	event->destroy = pvperf_event_destroy;
	return 0;
}

static void pvperf_read(struct perf_event *event)
{
	struct pvperf_dev *pv = to_pvperf(event->pmu);
	struct pvperf_cpu *pc = this_cpu_ptr(pv->cpu);
	struct hw_perf_event *hwc = &event->hw;

	if (hwc->state & (PERF_HES_STOPPED | PVPERF_HES_PENDING))
		return;
	if (pv_mask_cmd(pv, PVPERF_CMD_READ, PVPERF_VCPU_SELF,
			BIT_ULL(hwc->idx)) == PVPERF_ST_OK)
		pvperf_update(event, pv_read_count(pc, hwc->idx));
}

static void pvperf_start(struct perf_event *event, int flags)
{
	struct pvperf_dev *pv = to_pvperf(event->pmu);
	struct pvperf_cpu *pc = this_cpu_ptr(pv->cpu);
	struct hw_perf_event *hwc = &event->hw;

	if (!(hwc->state & PERF_HES_STOPPED))
		return;
	if (pc->txn_flags & PERF_PMU_TXN_ADD) {
		/* commit_txn enables the whole group with one doorbell */
		pc->txn_mask |= BIT_ULL(hwc->idx);
		pc->txn_events[hwc->idx] = event;
		hwc->state = PVPERF_HES_PENDING;
		return;
	}
	/* ENABLE leaves the slot's current count in the page */
	if (pv_mask_cmd(pv, PVPERF_CMD_ENABLE, PVPERF_VCPU_SELF,
			BIT_ULL(hwc->idx)) != PVPERF_ST_OK)
		return;
	local64_set(&hwc->prev_count, pv_read_count(pc, hwc->idx));
	hwc->state = 0;
}

static void pvperf_stop(struct perf_event *event, int flags)
{
	struct pvperf_dev *pv = to_pvperf(event->pmu);
	struct pvperf_cpu *pc = this_cpu_ptr(pv->cpu);
	struct hw_perf_event *hwc = &event->hw;

	if (hwc->state & PVPERF_HES_PENDING) {
		pc->txn_mask &= ~BIT_ULL(hwc->idx);
		pc->txn_events[hwc->idx] = NULL;
		hwc->state = PERF_HES_STOPPED | PERF_HES_UPTODATE;
		return;
	}
	if (hwc->state & PERF_HES_STOPPED)
		return;
	/* DISABLE leaves the final count in the page */
	if (pv_mask_cmd(pv, PVPERF_CMD_DISABLE, PVPERF_VCPU_SELF,
			BIT_ULL(hwc->idx)) == PVPERF_ST_OK)
		pvperf_update(event, pv_read_count(pc, hwc->idx));
	hwc->state = PERF_HES_STOPPED | PERF_HES_UPTODATE;
}

static int pvperf_add(struct perf_event *event, int flags)
{
	struct pvperf_dev *pv = to_pvperf(event->pmu);
	struct hw_perf_event *hwc = &event->hw;
	int slot = pvperf_get_slot(pv, event);

	if (slot < 0)
		return slot;
	hwc->idx = slot;
	hwc->state = PERF_HES_STOPPED | PERF_HES_UPTODATE;
	if (flags & PERF_EF_START)
		pvperf_start(event, PERF_EF_RELOAD);
	return 0;
}

static void pvperf_del(struct perf_event *event, int flags)
{
	pvperf_stop(event, PERF_EF_UPDATE);
}

static void pvperf_start_txn(struct pmu *pmu, unsigned int txn_flags)
{
	struct pvperf_cpu *pc = this_cpu_ptr(to_pvperf(pmu)->cpu);

	pc->txn_flags = txn_flags;
	pc->txn_mask = 0;
}

static int pvperf_commit_txn(struct pmu *pmu)
{
	struct pvperf_dev *pv = to_pvperf(pmu);
	struct pvperf_cpu *pc = this_cpu_ptr(pv->cpu);
	u64 mask = pc->txn_mask;

	pc->txn_flags = 0;
	pc->txn_mask = 0;
	if (!mask)
		return 0;
	if (pv_mask_cmd(pv, PVPERF_CMD_ENABLE, PVPERF_VCPU_SELF, mask) !=
	    PVPERF_ST_OK) {
		/* the group failed as a whole: leave every member stopped */
		for (; mask; mask &= mask - 1) {
			struct perf_event *ev = pc->txn_events[__ffs64(mask)];

			ev->hw.state = PERF_HES_STOPPED | PERF_HES_UPTODATE;
		}
		return -EIO;
	}
	for (; mask; mask &= mask - 1) {
		u32 slot = __ffs64(mask);
		struct perf_event *ev = pc->txn_events[slot];

		local64_set(&ev->hw.prev_count, pv_read_count(pc, slot));
		ev->hw.state = 0;
		pc->txn_events[slot] = NULL;
	}
	return 0;
}

static void pvperf_cancel_txn(struct pmu *pmu)
{
	struct pvperf_cpu *pc = this_cpu_ptr(to_pvperf(pmu)->cpu);

	pc->txn_flags = 0;
	pc->txn_mask = 0;
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

static ssize_t pvperf_event_show(struct device *dev,
				 struct device_attribute *attr, char *page)
{
	struct perf_pmu_events_attr *pa =
		container_of(attr, struct perf_pmu_events_attr, attr);

	return sysfs_emit(page, "event=0x%llx\n", pa->id);
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

static int pvperf_build_events(struct pvperf_dev *pv)
{
	struct device *dev = &pv->pdev->dev;
	u32 i, n = 0;

	pv->ev_attrs = devm_kcalloc(dev, pv->nr_entries, sizeof(*pv->ev_attrs),
				    GFP_KERNEL);
	pv->ev_attr_ptrs = devm_kcalloc(dev, pv->nr_entries + 1,
					sizeof(*pv->ev_attr_ptrs), GFP_KERNEL);
	if (!pv->ev_attrs || !pv->ev_attr_ptrs)
		return -ENOMEM;

	for (i = 0; i < pv->nr_entries; i++) {
		struct pvperf_entry *e = &pv->catalog[i];
		struct perf_pmu_events_attr *pa = &pv->ev_attrs[n];
		char buf[PVPERF_NAME_SIZE];
		bool dup = false;
		u32 j;

		if (!(e->info & PVPERF_INFO_AVAILABLE)) {
			dev_info(dev, "event %u '%s' unavailable on the host (errno %u): not offered\n",
				 i, e->name, e->err);
			continue;
		}
		pvperf_sysfs_name(e->name, buf, sizeof(buf));
		for (j = 0; j < n; j++)
			dup |= !strcmp(pv->ev_attrs[j].attr.attr.name, buf);
		if (dup) {
			dev_warn(dev, "event %u '%s': name '%s' taken, use pvperf/event=%u/\n",
				 i, e->name, buf, i);
			continue;
		}
		sysfs_attr_init(&pa->attr.attr);
		pa->attr.attr.name = devm_kstrdup(dev, buf, GFP_KERNEL);
		if (!pa->attr.attr.name)
			return -ENOMEM;
		pa->attr.attr.mode = 0444;
		pa->attr.show = pvperf_event_show;
		pa->id = i;
		pv->ev_attr_ptrs[n++] = &pa->attr.attr;
	}
	pv->events_group.name = "events";
	pv->events_group.attrs = pv->ev_attr_ptrs;
	pv->attr_groups[0] = &pvperf_format_group;
	pv->attr_groups[1] = &pv->events_group;
	return 0;
}

/* device ----------------------------------------------------------------- */

static int pvperf_read_catalog(struct pvperf_dev *pv)
{
	struct device *dev = &pv->pdev->dev;
	u32 i, off;

	pv->nr_entries = min_t(u32, pv_rd(pv, PVPERF_REG_CATALOG_COUNT),
			       PVPERF_CATALOG_MAX);
	pv->catalog = devm_kcalloc(dev, max(pv->nr_entries, 1u),
				   sizeof(*pv->catalog), GFP_KERNEL);
	if (!pv->catalog)
		return -ENOMEM;
	for (i = 0; i < pv->nr_entries; i++) {
		struct pvperf_entry *e = &pv->catalog[i];

		pv_wr(pv, PVPERF_REG_CATALOG_SELECT, i);
		e->info = pv_rd(pv, PVPERF_REG_CATALOG_INFO);
		e->err = pv_rd(pv, PVPERF_REG_CATALOG_ERRNO);
		for (off = 0; off < PVPERF_NAME_SIZE; off += 4) {
			__le32 w = cpu_to_le32(pv_rd(pv,
					PVPERF_REG_CATALOG_NAME + off));

			memcpy(e->name + off, &w, 4);
		}
		e->name[PVPERF_NAME_SIZE - 1] = 0;
	}
	return 0;
}

struct pvperf_page_arg {
	struct pvperf_dev *pv;
	u32 status;
};

/* On each CPU: register its page, learn its vCPU index from the header */
static void pvperf_set_page_on_cpu(void *data)
{
	struct pvperf_page_arg *arg = data;
	struct pvperf_dev *pv = arg->pv;
	struct pvperf_cpu *pc = this_cpu_ptr(pv->cpu);
	unsigned long flags;
	u32 st;

	raw_spin_lock_irqsave(&pv->lock, flags);
	pv_wr(pv, PVPERF_REG_CMD_VCPU, PVPERF_VCPU_SELF);
	pv_wr(pv, PVPERF_REG_CMD_ADDR_LO, lower_32_bits(pc->page_dma));
	pv_wr(pv, PVPERF_REG_CMD_ADDR_HI, upper_32_bits(pc->page_dma));
	st = pv_ring_locked(pv, PVPERF_CMD_SET_PAGE);
	raw_spin_unlock_irqrestore(&pv->lock, flags);
	if (st == PVPERF_ST_OK)
		pc->vcpu = le32_to_cpu(READ_ONCE(pc->page->vcpu));
	else
		WRITE_ONCE(arg->status, st);
}

static void pvperf_free_pages(struct pvperf_dev *pv)
{
	int cpu;

	for_each_possible_cpu(cpu) {
		struct pvperf_cpu *pc = per_cpu_ptr(pv->cpu, cpu);

		if (pc->page)
			dma_free_coherent(&pv->pdev->dev, PVPERF_PAGE_SIZE,
					  pc->page, pc->page_dma);
		pc->page = NULL;
	}
}

static int pvperf_setup_pages(struct pvperf_dev *pv)
{
	struct pvperf_page_arg arg = { .pv = pv };
	int cpu;

	for_each_possible_cpu(cpu) {
		struct pvperf_cpu *pc = per_cpu_ptr(pv->cpu, cpu);

		pc->page = dma_alloc_coherent(&pv->pdev->dev, PVPERF_PAGE_SIZE,
					      &pc->page_dma, GFP_KERNEL);
		if (!pc->page)
			return -ENOMEM;
	}
	cpus_read_lock();
	for_each_online_cpu(cpu)
		smp_call_function_single(cpu, pvperf_set_page_on_cpu, &arg, 1);
	cpus_read_unlock();
	if (arg.status) {
		dev_err(&pv->pdev->dev, "SET_PAGE failed: status %u\n",
			arg.status);
		return -EIO;
	}
	return 0;
}

static int pvperf_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct device *dev = &pdev->dev;
	struct pvperf_dev *pv;
	u32 magic, version;
	int ret;

	if (pvperf) {
		dev_err(dev, "only one pvperf device is supported\n");
		return -EBUSY;
	}
	pv = devm_kzalloc(dev, sizeof(*pv), GFP_KERNEL);
	if (!pv)
		return -ENOMEM;
	pv->pdev = pdev;
	raw_spin_lock_init(&pv->lock);

	ret = pcim_enable_device(pdev);
	if (ret)
		return ret;
	ret = pcim_iomap_regions(pdev, BIT(PVPERF_MMIO_BAR), DRV_NAME);
	if (ret)
		return ret;
	pv->regs = pcim_iomap_table(pdev)[PVPERF_MMIO_BAR];
	ret = dma_set_mask_and_coherent(dev, DMA_BIT_MASK(64));
	if (ret)
		return ret;

	magic = pv_rd(pv, PVPERF_REG_MAGIC);
	version = pv_rd(pv, PVPERF_REG_VERSION);
	if (magic != PVPERF_MAGIC) {
		dev_err(dev, "bad magic 0x%08x: not a pvperf device\n", magic);
		return -ENODEV;
	}
	if (PVPERF_VERSION_MAJOR_OF(version) != PVPERF_VERSION_MAJOR) {
		dev_err(dev, "device speaks pvperf ABI %u.%u; this driver speaks %u.x: refusing it\n",
			PVPERF_VERSION_MAJOR_OF(version),
			PVPERF_VERSION_MINOR_OF(version), PVPERF_VERSION_MAJOR);
		return -ENODEV;
	}
	pv->features = pv_rd(pv, PVPERF_REG_FEATURES) & PVPERF_KNOWN_FEATURES;
	if (!(pv->features & PVPERF_F_COUNTING)) {
		dev_err(dev, "device lacks the COUNTING feature (features 0x%x): refusing it\n",
			pv_rd(pv, PVPERF_REG_FEATURES));
		return -ENODEV;
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
	if (pv_rd(pv, PVPERF_REG_NR_VCPUS) < num_possible_cpus())
		dev_warn(dev, "device addresses %u vCPUs, guest has %u CPUs\n",
			 pv_rd(pv, PVPERF_REG_NR_VCPUS), num_possible_cpus());

	ret = pvperf_read_catalog(pv);
	if (ret)
		return ret;
	ret = pvperf_build_events(pv);
	if (ret)
		return ret;

	pv->cpu = alloc_percpu(struct pvperf_cpu);
	if (!pv->cpu)
		return -ENOMEM;
	ret = pvperf_setup_pages(pv);
	if (ret)
		goto err_pages;

	pv->pmu = (struct pmu) {
		.module		= THIS_MODULE,
		.task_ctx_nr	= perf_sw_context,
		.attr_groups	= pv->attr_groups,
		.event_init	= pvperf_event_init,
		.add		= pvperf_add,
		.del		= pvperf_del,
		.start		= pvperf_start,
		.stop		= pvperf_stop,
		.read		= pvperf_read,
		.start_txn	= pvperf_start_txn,
		.commit_txn	= pvperf_commit_txn,
		.cancel_txn	= pvperf_cancel_txn,
		.capabilities	= PERF_PMU_CAP_NO_INTERRUPT |
				  PERF_PMU_CAP_NO_EXCLUDE,
	};
	ret = perf_pmu_register(&pv->pmu, DRV_NAME, -1);
	if (ret)
		goto err_pages;

	pci_set_drvdata(pdev, pv);
	pvperf = pv;
	dev_info(dev, "pvperf ABI %u.%u, features 0x%x, %u catalog entries, %u slots per vCPU%s\n",
		 PVPERF_VERSION_MAJOR_OF(version),
		 PVPERF_VERSION_MINOR_OF(version), pv->features,
		 pv->nr_entries, pv->slots_per_vcpu,
		 pv->doorbell == pv->regs + PVPERF_REG_DOORBELL ?
		 "" : ", I/O doorbell");
	return 0;

err_pages:
	/* the device may hold our pages: make it forget them first */
	pv_wr(pv, PVPERF_REG_DOORBELL, PVPERF_CMD_RESET);
	pvperf_free_pages(pv);
	free_percpu(pv->cpu);
	return ret;
}

static void pvperf_remove(struct pci_dev *pdev)
{
	struct pvperf_dev *pv = pci_get_drvdata(pdev);

	perf_pmu_unregister(&pv->pmu);
	/* closes every slot on the host and forgets every page */
	pv_wr(pv, PVPERF_REG_DOORBELL, PVPERF_CMD_RESET);
	pvperf_free_pages(pv);
	free_percpu(pv->cpu);
	pvperf = NULL;
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
};
module_pci_driver(pvperf_driver);

MODULE_DESCRIPTION("pvperf: host performance events as a perf PMU");
MODULE_LICENSE("GPL");
