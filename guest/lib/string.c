/* The few libc routines GCC may emit calls to, plus the seed PRNG. */
#include <minivisor/guest.h>

/* Whole qwords with rep stosq / rep movsq, the rest byte by byte: the emulator counts every step
 * of a string instruction as an instruction (as a budget and a cost), so a byte-wide step would
 * make zeroing a kernel's bss or copying its image eight times as many. Unaligned qwords are
 * fine on x86; the copies callers make never overlap (lz4.c copies a match in pieces). */
void *memset(void *dst, int c, size_t n)
{
	void *d = dst;
	size_t qwords = n / 8, bytes = n % 8;
	u64 pattern = 0x0101010101010101ull * (u8)c;
	asm volatile("rep stosq" : "+D"(d), "+c"(qwords) : "a"(pattern) : "memory");
	asm volatile("rep stosb" : "+D"(d), "+c"(bytes) : "a"(c) : "memory");
	return dst;
}

void *memcpy(void *dst, const void *src, size_t n)
{
	void *d = dst;
	size_t qwords = n / 8, bytes = n % 8;
	asm volatile("rep movsq" : "+D"(d), "+S"(src), "+c"(qwords) : : "memory");
	asm volatile("rep movsb" : "+D"(d), "+S"(src), "+c"(bytes) : : "memory");
	return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const u8 *x = a, *y = b;
	for (size_t i = 0; i < n; i++)
		if (x[i] != y[i])
			return x[i] < y[i] ? -1 : 1;
	return 0;
}

size_t strlen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

u64 mv_splitmix64(u64 *state)
{
	u64 z = (*state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}
