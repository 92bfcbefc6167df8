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

/* Fixed-size copies the compiler turns into unaligned loads and stores: most sequences of a
 * kernel image are a few literals and a short match, and a call to memcpy (a REP string setup
 * per call) cost more than the bytes it moved. Callers check that both ends are in bounds. */
static inline void copy8(u8 *dst, const u8 *src)
{
	u64 v;
	__builtin_memcpy(&v, src, 8);
	__builtin_memcpy(dst, &v, 8);
}

static inline void copy16(u8 *dst, const u8 *src)
{
	copy8(dst, src);
	copy8(dst + 8, src + 8);
}

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
		if (lit <= 16 && in_len - ip >= 16 && out_cap - op >= 16)
			copy16(out + op, in + ip); /* the bytes past lit are rewritten by what follows */
		else if (lit)
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
		if (offset >= 8 && out_cap - op - len >= 7) {
			/* Eight bytes at a time, each read ending at or before the first byte it writes
			 * (offset >= 8), so an overlapping match repeats as the format says; the up to
			 * seven bytes written past the match are rewritten by what follows. */
			for (u64 i = 0; i < len; i += 8)
				copy8(out + op + i, out + op - offset + i);
			op += len;
			continue;
		}
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

/* Slicing-by-8 (Kounavis and Berry, "A Systematic Approach to Building High Performance,
 * Software-based, CRC Generators", ISCC 2005): table[k][b] is the CRC state after byte b and
 * then k zero bytes, so eight bytes cost one load and eight lookups instead of eight rounds of
 * a byte loop. The decompressor checks every kernel image it unpacks, and this loop was a third
 * of the instructions from reset to the kernel (a fuzz campaign relaunches that often). */
u32 mv_crc32(u32 crc, const u8 *data, u64 len)
{
	static u32 table[8][256];
	static bool ready;
	if (!ready) {
		for (u32 i = 0; i < 256; i++) {
			u32 c = i;
			for (int k = 0; k < 8; k++)
				c = (c >> 1) ^ (0xEDB88320u & -(c & 1));
			table[0][i] = c;
		}
		for (u32 i = 0; i < 256; i++)
			for (int k = 1; k < 8; k++)
				table[k][i] = (table[k - 1][i] >> 8) ^ table[0][table[k - 1][i] & 0xff];
		ready = true;
	}
	crc = ~crc;
	for (; len >= 8; data += 8, len -= 8) {
		u64 v;
		__builtin_memcpy(&v, data, 8); /* x86: little-endian, unaligned loads allowed */
		v ^= crc;
		crc = table[7][v & 0xff] ^ table[6][(v >> 8) & 0xff] ^ table[5][(v >> 16) & 0xff] ^
		      table[4][(v >> 24) & 0xff] ^ table[3][(v >> 32) & 0xff] ^ table[2][(v >> 40) & 0xff] ^
		      table[1][(v >> 48) & 0xff] ^ table[0][v >> 56];
	}
	for (; len; data++, len--)
		crc = (crc >> 8) ^ table[0][(crc ^ *data) & 0xff];
	return ~crc;
}
