/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * query-pvperf when QEMU is built without the pvperf device: there is
 * never a device to report, so the answer is an empty list.
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qapi/qapi-commands-pvperf.h"

PvperfInfoList *qmp_query_pvperf(const char *id, bool has_slots, bool slots,
                                 Error **errp)
{
    if (id) {
        error_setg(errp, "no pvperf device '%s'", id);
    }
    return NULL;
}
