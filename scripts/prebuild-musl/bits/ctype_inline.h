// ctype<char> classification for the "generic" configuration: there is no
// table to index (musl's ctype is functions), so each mask bit is asked of
// the C library.
namespace std _GLIBCXX_VISIBILITY(default)
{
_GLIBCXX_BEGIN_NAMESPACE_VERSION
  inline ctype_base::mask
  __bpfkit_ctype_mask(char __ch)
  {
    const int __c = static_cast<unsigned char>(__ch);
    ctype_base::mask __m = 0;
    if (__builtin_isupper(__c)) __m |= ctype_base::upper;
    if (__builtin_islower(__c)) __m |= ctype_base::lower;
    if (__builtin_isalpha(__c)) __m |= ctype_base::alpha;
    if (__builtin_isdigit(__c)) __m |= ctype_base::digit;
    if (__builtin_isxdigit(__c)) __m |= ctype_base::xdigit;
    if (__builtin_isspace(__c)) __m |= ctype_base::space;
    if (__builtin_isprint(__c)) __m |= ctype_base::print;
    if (__builtin_iscntrl(__c)) __m |= ctype_base::cntrl;
    if (__builtin_ispunct(__c)) __m |= ctype_base::punct;
    if (__builtin_isblank(__c)) __m |= ctype_base::blank;
    return __m;
  }

  bool
  ctype<char>::is(mask __m, char __c) const
  { return (__bpfkit_ctype_mask(__c) & __m) != 0; }

  const char*
  ctype<char>::is(const char* __lo, const char* __hi, mask* __vec) const
  {
    for (; __lo < __hi; ++__lo, ++__vec)
      *__vec = __bpfkit_ctype_mask(*__lo);
    return __hi;
  }

  const char*
  ctype<char>::scan_is(mask __m, const char* __lo, const char* __hi) const
  {
    while (__lo < __hi && !this->is(__m, *__lo))
      ++__lo;
    return __lo;
  }

  const char*
  ctype<char>::scan_not(mask __m, const char* __lo, const char* __hi) const
  {
    while (__lo < __hi && this->is(__m, *__lo))
      ++__lo;
    return __lo;
  }
_GLIBCXX_END_NAMESPACE_VERSION
}
