/* For the tests only: Wine 8.0 (Debian 12) lacks bcryptprimitives.dll, whose ProcessPrng every
 * Rust program for Windows imports for its randomness (Windows 10 and later have it). This
 * stand-in asks advapi32's RtlGenRandom (SystemFunction036), which Wine has, for the same bytes.
 * scripts/test.sh builds it with mingw into the test's Wine prefix. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
  while (len > 0) {
    ULONG n = len > 0x40000000 ? 0x40000000 : (ULONG)len;
    if (!SystemFunction036(data, n)) return FALSE;
    data += n;
    len -= n;
  }
  return TRUE;
}
