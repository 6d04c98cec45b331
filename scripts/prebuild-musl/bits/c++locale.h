// libstdc++'s "generic" C locale model, the one a musl GCC uses: a C
// locale is an opaque int* (not glibc's __locale_t, which would change the
// mangled names of the library's locale functions), and numbers are
// formatted in the "C" locale by switching LC_NUMERIC around the call.
#ifndef _GLIBCXX_CXX_LOCALE_H
#define _GLIBCXX_CXX_LOCALE_H 1
#pragma GCC system_header
#include <clocale>

#define _GLIBCXX_NUM_CATEGORIES 0

namespace std _GLIBCXX_VISIBILITY(default)
{
_GLIBCXX_BEGIN_NAMESPACE_VERSION
  typedef int* __c_locale;

  inline int
  __convert_from_v(const __c_locale&, char* __out, const int __size, const char* __fmt, ...)
  {
    // Remember the caller's LC_NUMERIC (a copy: setlocale reuses its buffer).
    const char* __cur = std::setlocale(LC_NUMERIC, 0);
    char* __saved = 0;
    if (__cur && __builtin_strcmp(__cur, "C") != 0)
      {
        const size_t __n = __builtin_strlen(__cur) + 1;
        __saved = new char[__n];
        __builtin_memcpy(__saved, __cur, __n);
        std::setlocale(LC_NUMERIC, "C");
      }
    __builtin_va_list __ap;
    __builtin_va_start(__ap, __fmt);
    const int __len = __builtin_vsnprintf(__out, __size, __fmt, __ap);
    __builtin_va_end(__ap);
    if (__saved)
      {
        std::setlocale(LC_NUMERIC, __saved);
        delete[] __saved;
      }
    return __len;
  }
_GLIBCXX_END_NAMESPACE_VERSION
}
#endif
