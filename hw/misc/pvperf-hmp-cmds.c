/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * HMP "info pvperf": query-pvperf as tables for humans.
 */

#include "qemu/osdep.h"
#include "monitor/monitor.h"
#include "monitor/hmp.h"
#include "qapi/error.h"
#include "qapi/qapi-commands-pvperf.h"
#include "qapi/qapi-types-pvperf.h"

/* Count pages or command blocks, by vCPU; @none: say so when there is none */
static void hmp_pvperf_pages(Monitor *mon, const char *title,
                             const PvperfPageList *list, bool none)
{
    if (list || none) {
        monitor_printf(mon, "  %s:%s\n", title, list ? "" : " none");
    }
    for (; list; list = list->next) {
        monitor_printf(mon, "    vCPU %-3u 0x%" PRIx64 "%s\n",
                       list->value->vcpu, list->value->address,
                       list->value->writable ? "" : " (not writable now)");
    }
}

/* Accesses and commands, the commands wrapped to stay within 100 columns */
static void hmp_pvperf_stats(Monitor *mon, const PvperfStats *st)
{
    const PvperfCommandCountList *c;
    int col = 0;

    monitor_printf(mon, "  guest accesses: %" PRIu64 " (BAR 0 reads %" PRIu64
                   ", BAR 0 writes %" PRIu64 ", I/O doorbell %" PRIu64 ")\n",
                   st->exits, st->mmio_reads, st->mmio_writes, st->io_writes);
    monitor_printf(mon, "  commands: %" PRIu64 " from command blocks, %"
                   PRIu64 " failed\n", st->block_entries, st->failed);
    if (st->overflows || st->throttles) {
        monitor_printf(mon, "  sampling: %" PRIu64 " overflows, %" PRIu64
                       " interrupts, %" PRIu64 " throttles; overflow to "
                       "interrupt %" PRIu64 " us on average, %" PRIu64
                       " us at most\n", st->overflows, st->interrupts,
                       st->throttles, st->latency_avg_ns / 1000,
                       st->latency_max_ns / 1000);
    }
    for (c = st->commands; c; c = c->next) {
        char item[48];
        int len = snprintf(item, sizeof(item), " %s %" PRIu64,
                           c->value->command, c->value->count);

        if (col && col + len > 94) {
            monitor_printf(mon, "\n");
            col = 0;
        }
        if (!col) {
            monitor_printf(mon, "   ");
            col = 3;
        }
        monitor_printf(mon, "%s", item);
        col += len;
    }
    if (col) {
        monitor_printf(mon, "\n");
    }
}

static void hmp_pvperf_one(Monitor *mon, const PvperfInfo *info)
{
    const PvperfCatalogEntryList *e;
    const PvperfSlotList *sl;

    monitor_printf(mon, "%s%s%s%s: features 0x%x, driver features 0x%x\n",
                   info->qom_path, info->id ? " (id " : "",
                   info->id ? info->id : "", info->id ? ")" : "",
                   info->features, info->driver_features);
    monitor_printf(mon, "  limits: %u slots per vCPU, %u open slots at most "
                   "(%u open), ", info->limits->slots_per_vcpu,
                   info->limits->max_slots, info->open_slots);
    if (info->limits->refresh_ms) {
        monitor_printf(mon, "refresh every %u ms,\n",
                       info->limits->refresh_ms);
    } else {
        monitor_printf(mon, "refresh off,\n");
    }
    monitor_printf(mon, "          %u overflows per second and vCPU at most\n",
                   info->limits->max_sample_rate);
    monitor_printf(mon, "  catalog:\n");
    monitor_printf(mon, "    %-3s %-24s %-10s %4s %-18s %s\n", "idx", "name",
                   "kind", "type", "config", "status");
    for (e = info->catalog; e; e = e->next) {
        const PvperfCatalogEntry *c = e->value;

        monitor_printf(mon, "    %-3u %-24s %-10s %4u 0x%-16" PRIx64 " %s%s\n",
                       c->index, c->name, PvperfEventKind_str(c->kind),
                       c->perf_type, c->perf_config,
                       c->available ? "available" : "unavailable: ",
                       c->available ? "" : c->reason);
    }
    hmp_pvperf_pages(mon, "count pages", info->pages, true);
    hmp_pvperf_pages(mon, "command blocks", info->blocks, false);
    monitor_printf(mon, "  open slots:%s\n", info->slots ? "" : " none");
    if (info->slots) {
        monitor_printf(mon, "    %-4s %-4s %-20s %-6s %-7s %20s %16s %16s %s\n",
                       "vCPU", "slot", "event", "leader", "enabled", "count",
                       "enabled ns", "running ns", "last error");
    }
    for (sl = info->slots; sl; sl = sl->next) {
        const PvperfSlot *s = sl->value;
        char leader[16] = "-";

        if (s->has_leader) {
            snprintf(leader, sizeof(leader), "%u", s->leader);
        }
        monitor_printf(mon, "    %-4u %-4u %-20s %-6s %-7s %20" PRIu64
                       " %16" PRIu64 " %16" PRIu64 " %s\n",
                       s->vcpu, s->slot, s->event_name, leader,
                       s->enabled ? "yes" : "no", s->count, s->time_enabled,
                       s->time_running,
                       s->has_last_errno ? strerror(s->last_errno) : "-");
        if (s->sampling) {
            const PvperfSampling *p = s->sampling;

            monitor_printf(mon, "         sampling: period %" PRIu64
                           ", %" PRIu64 " overflows, %" PRIu64 " lost, %"
                           PRIu64 " throttles%s%s\n", p->period,
                           p->overflows, p->lost, p->throttles,
                           p->throttled ? ", throttled now" : "",
                           p->pending ? ", pending" : "");
        }
    }
    if (info->last_host_error) {
        const PvperfHostError *h = info->last_host_error;
        char slot[24] = "";

        if (h->slot != UINT32_MAX) {      /* else: the vCPU's thread watch */
            snprintf(slot, sizeof(slot), " slot %u", h->slot);
        }
        monitor_printf(mon, "  last host error: vCPU %u%s: %s: %s "
                       "(errno %" PRId64 ")\n", h->vcpu, slot, h->operation,
                       h->message, h->q_errno);
    }
    hmp_pvperf_stats(mon, info->stats);
}

void hmp_info_pvperf(Monitor *mon, const QDict *qdict)
{
    Error *err = NULL;
    PvperfInfoList *list = qmp_query_pvperf(NULL, false, false, &err), *l;

    if (hmp_handle_error(mon, err)) {
        return;
    }
    if (!list) {
        monitor_printf(mon, "no pvperf device\n");
    }
    for (l = list; l; l = l->next) {
        hmp_pvperf_one(mon, l->value);
    }
    qapi_free_PvperfInfoList(list);
}
