/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * query-pvperf when QEMU is built without the pvperf device: there is
 * never a device to report, so the answer is an empty list.
 */

#include "qemu/osdep.h"
#include "qapi/qapi-commands-pvperf.h"

PvperfInfoList *qmp_query_pvperf(Error **errp)
{
    return NULL;
}
