// (filled in by issue 14's perfbuf work)
#include "common.h"

namespace bpfkit {

void InitPerfBuffer(Napi::Env, Napi::Object) {}

}  // namespace bpfkit
