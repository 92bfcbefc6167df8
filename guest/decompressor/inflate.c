/*
 * A small, strict zlib (RFC 1950) / DEFLATE (RFC 1951) decoder, structured after Mark
 * Adler's puff.c (zlib/contrib/puff): canonical Huffman decoding bit by bit, no tables to
 * build beyond the code counts. Slow per bit but tiny, and the kernel is a few tens of KiB.
 * Every malformed input yields a negative error code, never an out-of-bounds access.
 */
#include <minivisor/guest.h>
#include "inflate.h"

#define MAXBITS 15
#define MAXLCODES 286
#define MAXDCODES 30
#define MAXCODES (MAXLCODES + MAXDCODES)
#define FIXLCODES 288

struct state {
	const u8 *in;
	u64 in_len, in_pos;
	u8 *out;
	u64 out_len, out_pos;
	u32 bitbuf, bitcnt;
	int error;
};

struct huffman {
	short *count;  /* codes of each length */
	short *symbol; /* symbols ordered by code */
};

static u32 bits(struct state *s, u32 need)
{
	u64 val = s->bitbuf;
	while (s->bitcnt < need) {
		if (s->in_pos == s->in_len) {
			s->error = INFLATE_ERR_TRUNCATED;
			return 0;
		}
		val |= (u64)s->in[s->in_pos++] << s->bitcnt;
		s->bitcnt += 8;
	}
	s->bitbuf = (u32)(val >> need);
	s->bitcnt -= need;
	return (u32)(val & ((1ull << need) - 1));
}

static int stored(struct state *s)
{
	s->bitbuf = 0;
	s->bitcnt = 0;
	if (s->in_pos + 4 > s->in_len)
		return INFLATE_ERR_TRUNCATED;
	u32 len = s->in[s->in_pos] | (u32)s->in[s->in_pos + 1] << 8;
	u32 nlen = s->in[s->in_pos + 2] | (u32)s->in[s->in_pos + 3] << 8;
	s->in_pos += 4;
	if (len != (~nlen & 0xffff))
		return INFLATE_ERR_STORED_LENGTH;
	if (s->in_pos + len > s->in_len)
		return INFLATE_ERR_TRUNCATED;
	if (s->out_pos + len > s->out_len)
		return INFLATE_ERR_OUTPUT_FULL;
	memcpy(s->out + s->out_pos, s->in + s->in_pos, len);
	s->in_pos += len;
	s->out_pos += len;
	return 0;
}

static int decode(struct state *s, const struct huffman *h)
{
	int code = 0, first = 0, index = 0;
	for (int len = 1; len <= MAXBITS; len++) {
		code |= (int)bits(s, 1);
		if (s->error)
			return s->error;
		int count = h->count[len];
		if (code - count < first)
			return h->symbol[index + (code - first)];
		index += count;
		first += count;
		first <<= 1;
		code <<= 1;
	}
	return INFLATE_ERR_BAD_CODE;
}

/* Builds the canonical code; returns 0 complete, >0 incomplete, <0 over-subscribed. */
static int construct(struct huffman *h, const short *length, int n)
{
	short offs[MAXBITS + 1];
	for (int len = 0; len <= MAXBITS; len++)
		h->count[len] = 0;
	for (int symbol = 0; symbol < n; symbol++)
		h->count[length[symbol]]++;
	if (h->count[0] == n)
		return 0;
	int left = 1;
	for (int len = 1; len <= MAXBITS; len++) {
		left <<= 1;
		left -= h->count[len];
		if (left < 0)
			return left;
	}
	offs[1] = 0;
	for (int len = 1; len < MAXBITS; len++)
		offs[len + 1] = (short)(offs[len] + h->count[len]);
	for (int symbol = 0; symbol < n; symbol++)
		if (length[symbol] != 0)
			h->symbol[offs[length[symbol]]++] = (short)symbol;
	return left;
}

static int codes(struct state *s, const struct huffman *lencode, const struct huffman *distcode)
{
	static const short lens[29] = { 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
					35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258 };
	static const short lext[29] = { 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
					3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0 };
	static const short dists[30] = { 1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129,
					 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097,
					 6145, 8193, 12289, 16385, 24577 };
	static const short dext[30] = { 0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6,
					7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13 };
	int symbol;
	do {
		symbol = decode(s, lencode);
		if (symbol < 0)
			return symbol;
		if (symbol < 256) {
			if (s->out_pos == s->out_len)
				return INFLATE_ERR_OUTPUT_FULL;
			s->out[s->out_pos++] = (u8)symbol;
		} else if (symbol > 256) {
			symbol -= 257;
			if (symbol >= 29)
				return INFLATE_ERR_BAD_CODE;
			u64 len = (u64)lens[symbol] + bits(s, (u32)lext[symbol]);
			int dsym = decode(s, distcode);
			if (dsym < 0)
				return dsym;
			if (dsym >= 30)
				return INFLATE_ERR_BAD_CODE;
			u64 dist = (u64)dists[dsym] + bits(s, (u32)dext[dsym]);
			if (s->error)
				return s->error;
			if (dist > s->out_pos)
				return INFLATE_ERR_DISTANCE;
			if (s->out_pos + len > s->out_len)
				return INFLATE_ERR_OUTPUT_FULL;
			while (len--) {
				s->out[s->out_pos] = s->out[s->out_pos - dist];
				s->out_pos++;
			}
		}
	} while (symbol != 256);
	return 0;
}

static int fixed(struct state *s)
{
	static short lencnt[MAXBITS + 1], lensym[FIXLCODES];
	static short distcnt[MAXBITS + 1], distsym[MAXDCODES];
	static struct huffman lencode = { lencnt, lensym }, distcode = { distcnt, distsym };
	static bool built;
	if (!built) {
		short lengths[FIXLCODES];
		int symbol = 0;
		for (; symbol < 144; symbol++) lengths[symbol] = 8;
		for (; symbol < 256; symbol++) lengths[symbol] = 9;
		for (; symbol < 280; symbol++) lengths[symbol] = 7;
		for (; symbol < FIXLCODES; symbol++) lengths[symbol] = 8;
		construct(&lencode, lengths, FIXLCODES);
		for (symbol = 0; symbol < MAXDCODES; symbol++) lengths[symbol] = 5;
		construct(&distcode, lengths, MAXDCODES);
		built = true;
	}
	return codes(s, &lencode, &distcode);
}

static int dynamic(struct state *s)
{
	static const short order[19] = { 16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15 };
	short lengths[MAXCODES];
	short lencnt[MAXBITS + 1], lensym[MAXLCODES];
	short distcnt[MAXBITS + 1], distsym[MAXDCODES];
	struct huffman lencode = { lencnt, lensym }, distcode = { distcnt, distsym };

	int nlen = (int)bits(s, 5) + 257;
	int ndist = (int)bits(s, 5) + 1;
	int ncode = (int)bits(s, 4) + 4;
	if (s->error)
		return s->error;
	if (nlen > MAXLCODES || ndist > MAXDCODES)
		return INFLATE_ERR_BAD_HEADER;
	int index;
	for (index = 0; index < ncode; index++)
		lengths[order[index]] = (short)bits(s, 3);
	for (; index < 19; index++)
		lengths[order[index]] = 0;
	if (s->error)
		return s->error;
	if (construct(&lencode, lengths, 19) != 0)
		return INFLATE_ERR_BAD_HEADER;

	index = 0;
	while (index < nlen + ndist) {
		int symbol = decode(s, &lencode);
		if (symbol < 0)
			return symbol;
		if (symbol < 16) {
			lengths[index++] = (short)symbol;
			continue;
		}
		short len = 0;
		if (symbol == 16) {
			if (index == 0)
				return INFLATE_ERR_BAD_HEADER;
			len = lengths[index - 1];
			symbol = 3 + (int)bits(s, 2);
		} else if (symbol == 17) {
			symbol = 3 + (int)bits(s, 3);
		} else {
			symbol = 11 + (int)bits(s, 7);
		}
		if (s->error)
			return s->error;
		if (index + symbol > nlen + ndist)
			return INFLATE_ERR_BAD_HEADER;
		while (symbol--)
			lengths[index++] = len;
	}
	if (lengths[256] == 0)
		return INFLATE_ERR_BAD_HEADER;
	int err = construct(&lencode, lengths, nlen);
	if (err && (err < 0 || nlen != lencode.count[0] + lencode.count[1]))
		return INFLATE_ERR_BAD_HEADER;
	err = construct(&distcode, lengths + nlen, ndist);
	if (err && (err < 0 || ndist != distcode.count[0] + distcode.count[1]))
		return INFLATE_ERR_BAD_HEADER;
	return codes(s, &lencode, &distcode);
}

static u32 adler32(const u8 *p, u64 n)
{
	u32 a = 1, b = 0;
	while (n) {
		u64 chunk = n < 5552 ? n : 5552; /* the largest run without overflow (zlib NMAX) */
		n -= chunk;
		while (chunk--) {
			a += *p++;
			b += a;
		}
		a %= 65521;
		b %= 65521;
	}
	return (b << 16) | a;
}

long mv_zlib_inflate(u8 *out, u64 out_len, const u8 *in, u64 in_len)
{
	if (in_len < 6)
		return INFLATE_ERR_TRUNCATED;
	u32 cmf = in[0], flg = in[1];
	/* CM 8 (deflate), window <= 32K, header checksum, no preset dictionary. */
	if ((cmf & 0x0f) != 8 || (cmf >> 4) > 7 || ((cmf << 8) | flg) % 31 != 0 || (flg & 0x20))
		return INFLATE_ERR_BAD_HEADER;
	struct state s = { .in = in, .in_len = in_len - 4, .in_pos = 2, .out = out, .out_len = out_len };
	int last;
	do {
		last = (int)bits(&s, 1);
		u32 type = bits(&s, 2);
		if (s.error)
			return s.error;
		int err = type == 0 ? stored(&s) : type == 1 ? fixed(&s) : type == 2 ? dynamic(&s) : INFLATE_ERR_BAD_BLOCK;
		if (err)
			return err;
	} while (!last);
	const u8 *trailer = in + in_len - 4;
	u32 expected = (u32)trailer[0] << 24 | (u32)trailer[1] << 16 | (u32)trailer[2] << 8 | trailer[3];
	if (adler32(out, s.out_pos) != expected)
		return INFLATE_ERR_CHECKSUM;
	return (long)s.out_pos;
}
