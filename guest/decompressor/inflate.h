#ifndef MINIVISOR_INFLATE_H
#define MINIVISOR_INFLATE_H
#include <minivisor/guest.h>

#define INFLATE_ERR_TRUNCATED     (-1)
#define INFLATE_ERR_BAD_HEADER    (-2)
#define INFLATE_ERR_BAD_BLOCK     (-3)
#define INFLATE_ERR_BAD_CODE      (-4)
#define INFLATE_ERR_DISTANCE      (-5)
#define INFLATE_ERR_OUTPUT_FULL   (-6)
#define INFLATE_ERR_STORED_LENGTH (-7)
#define INFLATE_ERR_CHECKSUM      (-8)

/* Decodes a zlib stream into out; returns the decoded length or a negative INFLATE_ERR_*. */
long mv_zlib_inflate(u8 *out, u64 out_len, const u8 *in, u64 in_len);
#endif
