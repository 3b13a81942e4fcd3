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

/*
 * @text after @indent spaces, words wrapped to stay within 100 columns
 * (every line of info pvperf does: an operator's terminal)
 */
static void hmp_pvperf_wrap(Monitor *mon, int indent, const char *text)
{
    g_auto(GStrv) words = g_strsplit(text, " ", -1);
    int col = 0;

    for (char **w = words; *w; w++) {
        int len = strlen(*w);

        if (col && col + 1 + len > 100) {
            monitor_printf(mon, "\n");
            col = 0;
        }
        if (!col) {
            monitor_printf(mon, "%*s%s", indent, "", *w);
            col = indent + len;
        } else {
            monitor_printf(mon, " %s", *w);
            col += 1 + len;
        }
    }
    monitor_printf(mon, "\n");
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
    if (st->rates) {
        const PvperfRates *r = st->rates;

        g_autofree char *now = g_strdup_printf(
            "now (%.1f s since the last query): %.0f exits, %.0f commands, "
            "%.0f overflows, %.0f interrupts per second",
            r->interval_ms / 1000.0, r->exits, r->commands, r->overflows,
            r->interrupts);

        hmp_pvperf_wrap(mon, 2, now);
    }
    if (st->overflows || st->throttles) {
        monitor_printf(mon, "  sampling: %" PRIu64 " overflows, %" PRIu64
                       " interrupts, %" PRIu64 " throttles; overflow to "
                       "interrupt\n            %" PRIu64 " us on average, %"
                       PRIu64 " us at most\n", st->overflows, st->interrupts,
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
    monitor_printf(mon, "    %-3s %-24s %-10s %4s %-18s %-4s %s\n", "idx",
                   "name", "kind", "type", "config", "unit", "status");
    for (e = info->catalog; e; e = e->next) {
        const PvperfCatalogEntry *c = e->value;
        const char *name = c->name;
        char idx[12];

        snprintf(idx, sizeof(idx), "%u", c->index);
        if (strlen(name) > 24) {    /* a long name on a line of its own */
            monitor_printf(mon, "    %-3s %s\n", idx, name);
            idx[0] = '\0';
            name = "";
        }
        monitor_printf(mon, "    %-3s %-24s %-10s %4u 0x%-16" PRIx64 " %-4s %s\n",
                       idx, name, PvperfEventKind_str(c->kind),
                       c->perf_type, c->perf_config,
                       c->unit ? c->unit : "-",
                       c->available ? "available" : "unavailable:");
        if (!c->available) {
            hmp_pvperf_wrap(mon, 8, c->reason);
        }
    }
    hmp_pvperf_pages(mon, "count pages", info->pages, true);
    hmp_pvperf_pages(mon, "command blocks", info->blocks, false);
    monitor_printf(mon, "  open slots:%s\n", info->slots ? "" : " none");
    if (info->slots) {
        monitor_printf(mon, "    %-4s %-4s %-20s %-6s %-7s %16s %15s %15s\n",
                       "vCPU", "slot", "event", "leader", "enabled", "count",
                       "enabled ns", "running ns");
    }
    for (sl = info->slots; sl; sl = sl->next) {
        const PvperfSlot *s = sl->value;
        const char *name = s->event_name;
        char leader[16] = "-";

        if (s->has_leader) {
            snprintf(leader, sizeof(leader), "%u", s->leader);
        }
        if (strlen(name) > 20) {    /* a long name on a line of its own */
            monitor_printf(mon, "    %-4u %-4u %s\n", s->vcpu, s->slot, name);
            name = "";
        }
        monitor_printf(mon, "    %-4u %-4u %-20s %-6s %-7s %16" PRIu64
                       " %15" PRIu64 " %15" PRIu64 "\n",
                       s->vcpu, s->slot, name, leader,
                       s->enabled ? "yes" : "no", s->count, s->time_enabled,
                       s->time_running);
        if (s->has_last_errno) {
            monitor_printf(mon, "         last error: %s (errno %" PRId64
                           ")\n", strerror(s->last_errno), s->last_errno);
        }
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
        g_autofree char *text = g_strdup_printf(
            "last host error: vCPU %u%s: %s: %s (errno %" PRId64 ")",
            h->vcpu, slot, h->operation, h->message, h->q_errno);

        hmp_pvperf_wrap(mon, 2, text);
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
