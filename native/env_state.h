// What the native layer keeps between calls, per Node environment (the main
// thread and each worker_thread have their own): the map op slots. Never a
// process-wide static: workers run on their own threads, and a table shared
// between them would need a lock on the fastest path, and would outlive the
// environment that made its entries.
//
// Nothing here trusts an fd number: a slot owns a dup of the fd it was
// opened from, so a number closed and reused behind bpfkit's back cannot
// reach another object through it.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common.h"

namespace bpfkit {

// A slot's key and value buffers. Shared by the slot and the
// ArrayBuffers that show them to JavaScript: freed when both are done, so
// neither the kernel (through the slot) nor JavaScript can touch freed memory.
struct SlotMemory {
  uint8_t* key = nullptr;
  uint8_t* value = nullptr;
  ~SlotMemory() {
    free(key);
    free(value);
  }
};

struct MapSlot {
  int fd = -1;      // the slot's own dup of the map fd; -1 while the slot is free
  int origin = -1;  // the number it was opened from: forgetting that number ends the slot
  uint32_t generation = 0;
  bool keyless = false;
  MapMeta meta{};  // the kernel's sizes for the map of `fd`, read from it when the slot opened
  std::shared_ptr<SlotMemory> memory;
};

// Slots by handle. A handle is the slot's index plus a generation, bumped
// each time the index is freed, so a closed slot's handle never names the
// slot that later reuses its index.
class SlotTable {
 public:
  SlotTable() = default;
  SlotTable(const SlotTable&) = delete;
  SlotTable& operator=(const SlotTable&) = delete;
  // Closes every slot's dup: an environment that ends (a worker exiting)
  // leaves no fd behind.
  ~SlotTable();

  // Takes ownership of `fd` (a dup); returns the new slot's handle, or -1
  // (fd not taken) when the table is full.
  double Open(int fd, int origin, const MapMeta& meta, std::shared_ptr<SlotMemory> memory);
  // The open slot `handle` names, or nullptr.
  const MapSlot* Find(int64_t handle) const;
  // Closes the slot's dup; a stale or unknown handle is ignored.
  void Close(int64_t handle);
  // Closes every slot opened from the fd number `origin`.
  void ForgetOrigin(int origin);

 private:
  void Release(uint32_t index);
  std::vector<MapSlot> slots_;
  std::vector<uint32_t> free_;
  std::unordered_multimap<int, uint32_t> by_origin_;
};

// The fd numbers this environment's Fd objects own (adoptFd until closeFd
// or forgetFd). An environment can end without running JavaScript (a
// terminated worker: no finalizers, no 'exit' event), and its Fds' numbers
// would stay open for the life of the process: they are closed here.
class OwnedFds {
 public:
  OwnedFds() = default;
  OwnedFds(const OwnedFds&) = delete;
  OwnedFds& operator=(const OwnedFds&) = delete;
  ~OwnedFds();
  void Adopt(int fd) { fds_.insert(fd); }
  void Drop(int fd) { fds_.erase(fd); }

 private:
  std::unordered_set<int> fds_;
};

struct EnvState {
  OwnedFds owned;  // closed after the slots (members go in reverse order)
  SlotTable slots;
  // The no-op function CanRunJs calls (promise_worker.cc), made once: making
  // one per settled promise cost ~6 us of each async load.
  Napi::FunctionReference no_op;
};

// This environment's state (kept in the addon's instance data, common.cc).
EnvState& StateOf(napi_env env);

// The open slot that `v` names: a TypeError for a non-number, a BpfError
// EBADF ("already closed") for a closed or unknown handle. The reference is
// good until JavaScript runs again (which could close the slot).
const MapSlot& SlotArg(const Napi::Value& v);

}  // namespace bpfkit
