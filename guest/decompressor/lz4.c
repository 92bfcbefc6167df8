/*
 * LZ4 block decoder (lz4_Block_format.md), written from the format description.
 *
 * A block is a run of sequences: a token byte (high nibble: literal count, low nibble: match
 * length - 4; 15 in either means "add the following bytes, until one below 255"), the
 * literals, a 2-byte little-endian offset back into the output and the match copy, which may
 * overlap what it copies. The last sequence stops after its literals: the block ends there.
 *
 * Everything is index arithmetic on u64 positions checked against the remaining room before
 * any access, so a malformed block yields a negative LZ4_ERR_* and never touches memory
 * outside in[0, in_len) and out[0, out_cap).
 */
#include <minivisor/guest.h>
#include "lz4.h"

#define LZ4_MIN_MATCH 4

/* Adds the extension bytes of a nibble that was 15 to *len. */
static int read_length(const u8 *in, u64 in_len, u64 *pos, u64 *len, int truncated)
{
	for (;;) {
		if (*pos >= in_len)
			return truncated;
		u8 b = in[(*pos)++];
		if (*len > ~0ull - b)
			return LZ4_ERR_LENGTH_OVERFLOW;
		*len += b;
		if (b != 255)
			return LZ4_OK;
	}
}

static int decode(const u8 *in, u64 in_len, u8 *out, u64 out_cap, u64 *op_out)
{
	u64 ip = 0, op = 0;
	int err;
	for (;;) {
		*op_out = op;
		if (ip >= in_len)
			return LZ4_ERR_TRUNCATED_TOKEN;
		u8 token = in[ip++];

		u64 lit = token >> 4;
		if (lit == 15 && (err = read_length(in, in_len, &ip, &lit, LZ4_ERR_TRUNCATED_LIT_LENGTH)))
			return err;
		if (lit > in_len - ip)
			return LZ4_ERR_TRUNCATED_LITERALS;
		if (lit > out_cap - op)
			return LZ4_ERR_LITERALS_OVERFLOW;
		if (lit)
			memcpy(out + op, in + ip, lit);
		ip += lit;
		op += lit;
		*op_out = op;
		if (ip == in_len)
			return LZ4_OK; /* the last sequence: literals only */

		if (in_len - ip < 2)
			return LZ4_ERR_TRUNCATED_OFFSET;
		u64 offset = in[ip] | (u64)in[ip + 1] << 8;
		ip += 2;
		if (offset == 0)
			return LZ4_ERR_OFFSET_ZERO;
		if (offset > op)
			return LZ4_ERR_OFFSET_BEYOND_OUTPUT;

		u64 len = token & 15;
		if (len == 15 && (err = read_length(in, in_len, &ip, &len, LZ4_ERR_TRUNCATED_MATCH_LENGTH)))
			return err;
		if (len > ~0ull - LZ4_MIN_MATCH)
			return LZ4_ERR_LENGTH_OVERFLOW;
		len += LZ4_MIN_MATCH;
		if (len > out_cap - op)
			return LZ4_ERR_MATCH_OVERFLOW;
		/* Overlapping copy in non-overlapping pieces: [op - dist, op) repeats with period
		 * offset and dist stays a multiple of it, so each piece can double. */
		u64 dist = offset;
		while (len) {
			u64 piece = MIN(len, dist);
			memcpy(out + op, out + op - dist, piece);
			op += piece;
			len -= piece;
			dist += piece;
		}
	}
}

int lz4_decompress_block(const u8 *in, u64 in_len, u8 *out, u64 out_cap, u64 *out_len)
{
	u64 produced = 0;
	int err = LZ4_ERR_BAD_ARGUMENT;
	if ((in || !in_len) && (out || !out_cap))
		err = decode(in, in_len, out, out_cap, &produced);
	if (out_len)
		*out_len = produced;
	return err;
}

u32 mv_crc32(u32 crc, const u8 *data, u64 len)
{
	static u32 table[256];
	static bool ready;
	if (!ready) {
		for (u32 i = 0; i < 256; i++) {
			u32 c = i;
			for (int k = 0; k < 8; k++)
				c = (c >> 1) ^ (0xEDB88320u & -(c & 1));
			table[i] = c;
		}
		ready = true;
	}
	crc = ~crc;
	for (u64 i = 0; i < len; i++)
		crc = (crc >> 8) ^ table[(crc ^ data[i]) & 0xff];
	return ~crc;
}
