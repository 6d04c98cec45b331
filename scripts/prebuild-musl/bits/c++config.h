// The glibc configuration of libstdc++ less what musl 1.2.3 lacks. Only
// settings that inline header code acts on matter here: the library itself
// is the target's own libstdc++.so.6 (Alpine's, built for musl).
#include_next <bits/c++config.h>
#ifndef BPFKIT_MUSL_CXXCONFIG
#define BPFKIT_MUSL_CXXCONFIG 1
// glibc 2.30+ only: pthread_cond_clockwait, pthread_mutex_clocklock, ...
#undef _GLIBCXX_USE_PTHREAD_COND_CLOCKWAIT
#undef _GLIBCXX_USE_PTHREAD_MUTEX_CLOCKLOCK
#undef _GLIBCXX_USE_PTHREAD_RWLOCK_CLOCKLOCK
#endif
