// libstdc++'s OS configuration for musl, in place of the glibc one in the
// GCC headers Debian ships (see scripts/prebuild-musl/README.md). A GCC built
// for *-linux-musl uses libstdc++'s "generic" OS configuration: no glibc
// version macros, and pthreads always linked in (musl has them in libc).
#ifndef _GLIBCXX_OS_DEFINES
#define _GLIBCXX_OS_DEFINES 1
#define _GLIBCXX_GTHREAD_USE_WEAK 0
#endif
