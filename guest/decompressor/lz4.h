#ifndef MINIVISOR_LZ4_H
#define MINIVISOR_LZ4_H
#include <minivisor/guest.h>

/* One distinct code per way a block can be malformed (lz4_Block_format.md). */
#define LZ4_OK                        0
#define LZ4_ERR_TRUNCATED_TOKEN       (-1)  /* input ended where a token was due */
#define LZ4_ERR_TRUNCATED_LIT_LENGTH  (-2)  /* literal length extension bytes cut off */
#define LZ4_ERR_TRUNCATED_LITERALS    (-3)  /* fewer literal bytes left than announced */
#define LZ4_ERR_TRUNCATED_OFFSET      (-4)  /* one byte of the 2-byte offset left */
#define LZ4_ERR_TRUNCATED_MATCH_LENGTH (-5) /* match length extension bytes cut off */
#define LZ4_ERR_OFFSET_ZERO           (-6)
#define LZ4_ERR_OFFSET_BEYOND_OUTPUT  (-7)  /* offset reaches before the start of the output */
#define LZ4_ERR_LITERALS_OVERFLOW     (-8)  /* literals do not fit in the output buffer */
#define LZ4_ERR_MATCH_OVERFLOW        (-9)  /* match does not fit in the output buffer */
#define LZ4_ERR_LENGTH_OVERFLOW       (-10) /* a length does not fit in 64 bits */
#define LZ4_ERR_BAD_ARGUMENT          (-11) /* NULL pointer with a non-zero length */

/* Decodes one LZ4 block of in_len bytes into out[0, out_cap). On success returns LZ4_OK and
 * the decoded length in *out_len; otherwise a negative LZ4_ERR_* and *out_len is the number
 * of bytes produced before the error. Never reads in[] or writes out[] out of bounds. */
int lz4_decompress_block(const u8 *in, u64 in_len, u8 *out, u64 out_cap, u64 *out_len);

/* CRC-32 (IEEE 802.3: reflected, polynomial 0xEDB88320, init and final xor 0xFFFFFFFF),
 * the value Python's zlib.crc32 gives. crc is the running value, 0 to start. */
u32 mv_crc32(u32 crc, const u8 *data, u64 len);
#endif
