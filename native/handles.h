// Type tags for the native handles JavaScript holds (ring buffer consumers,
// fd waits, map mappings). A handle is an External or an object whose
// pointer native code trusts; without a tag, a handle of one kind passed where
// another is expected is reinterpreted as the wrong struct (garbage reads,
// heap writes, segfaults). Every handle is tagged when made and checked when
// used, as better-sqlite3 does for its objects; a wrong or foreign value is a
// TypeError that names the argument and the kind expected.
#pragma once
#include <napi.h>

#include <string>

namespace bpfkit {

// One random 128-bit tag per kind of handle. Never reuse a value for another
// kind: the tag is the whole check.
namespace tags {
constexpr napi_type_tag kRingbuf = {0x6270666b69745f72ULL, 0x696e676275665f31ULL};
constexpr napi_type_tag kFdWait = {0x6270666b69745f66ULL, 0x64776169745f5f31ULL};
constexpr napi_type_tag kMapping = {0x6270666b69745f6dULL, 0x6d617070696e6731ULL};
}  // namespace tags

// Marks a freshly made handle (an External, or an object such as the
// ArrayBuffer of a mapping) as one of `tag`'s kind. Call it before the
// handle is returned to JavaScript.
inline void TagHandle(const Napi::TypeTaggable& handle, const napi_type_tag& tag) { handle.TypeTag(&tag); }

// True when `v` is an External or object tagged with `tag`.
inline bool HasTag(const Napi::Value& v, const napi_type_tag& tag) {
  if (!v.IsExternal() && !v.IsObject()) return false;
  bool ok = false;
  return napi_check_object_type_tag(v.Env(), v, &tag, &ok) == napi_ok && ok;
}

// The pointer behind an External handle of `tag`'s kind; a TypeError
// ("<name> must be a <kind> handle") for anything else.
template <typename T>
T* HandleArg(const Napi::Value& v, const napi_type_tag& tag, const char* name, const char* kind) {
  if (!v.IsExternal() || !HasTag(v, tag)) {
    throw Napi::TypeError::New(v.Env(), std::string(name) + " must be a " + kind + " handle");
  }
  return v.As<Napi::External<T>>().Data();
}

}  // namespace bpfkit
