#ifndef MINIVISOR_MEMMAP_RECORD_H
#define MINIVISOR_MEMMAP_RECORD_H
#include <minivisor/guest.h>
/* Accepts the parts of [start, end) that the map shows unaccepted and records them in the map
 * as RAM (splitting entries); fatal "memmap_record_full" when the map has no room for the split. */
void mv_memmap_accept_and_record(struct mv_boot_params *bp, u64 start, u64 end);
#endif
