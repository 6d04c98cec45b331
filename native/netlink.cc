// (filled in by issue 14's netlink work)
#include "common.h"

namespace bpfkit {

void InitNetlink(Napi::Env, Napi::Object) {}

}  // namespace bpfkit
