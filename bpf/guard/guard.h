// Shared by guard.bpf.c and, through the object's BTF, lib/guard/: the
// layouts of the guard's map keys, values and events. The TypeScript side
// reads these structs from BTF, so their names and members are its contract.
#ifndef BPFKIT_GUARD_H
#define BPFKIT_GUARD_H

#define GUARD_MAX_TENANTS 64
#define GUARD_MAX_CONTEXTS 64      // one bit each in a u64 mask
#define GUARD_HELPER_WORDS 4       // helper ids below 256
#define GUARD_MAX_MATCHES 1024
#define GUARD_MAX_TOKENS 4096
#define GUARD_MAX_TARGETS 65536
#define GUARD_MAX_KFUNCS 16384
#define GUARD_MAX_OBJECTS 65536
#define GUARD_MAX_CGROUP_DEPTH 32
#define GUARD_EVENTS_BYTES (256 * 1024)

enum guard_stat { GUARD_STAT_REFUSED, GUARD_STAT_LOST, GUARD_STAT_ALLOWED, GUARD_STATS };

enum guard_tenant_flags {
  GUARD_TENANT_CHECK_PROGRAMS = 1, // the policy has capabilities: walk programs against its contexts
};

enum guard_context_flags {
  GUARD_CTX_ANY_ATTACH = 1, // attach_types not given: any
  GUARD_CTX_TARGETS = 2,    // load-time targets must be in `targets`
  GUARD_CTX_MEMBERS = 4,    // struct_ops members must be in `members`
};

enum guard_object { GUARD_OBJECT_PROG = 1, GUARD_OBJECT_MAP = 2, GUARD_OBJECT_TOKEN = 3 };

enum guard_refusal {
  GUARD_REFUSED_HELPER = 1,        // id: helper id, insn
  GUARD_REFUSED_KFUNC = 2,         // id: kfunc BTF id (vmlinux), insn
  GUARD_REFUSED_MODULE_KFUNC = 3,  // id: BTF id in a module's BTF, insn
  GUARD_REFUSED_NO_CONTEXT = 4,    // no context matches the program
  GUARD_REFUSED_PROG_TYPE = 5,
  GUARD_REFUSED_ATTACH_TYPE = 6,
  GUARD_REFUSED_MAP_TYPE = 7,      // id: map type
  GUARD_REFUSED_MAP_COUNT = 8,     // limit, used
  GUARD_REFUSED_MAP_BYTES = 9,     // value: requested bytes; limit, used
  GUARD_REFUSED_FOREIGN = 10,      // id: the owning tenant
  GUARD_REFUSED_NO_RULES = 11,     // the tenant is being replaced or removed
  GUARD_REFUSED_FULL = 12,         // the guard's own tables are full
  GUARD_REFUSED_UNREADABLE = 13,   // an instruction could not be read
};

struct guard_tenant {
  __u32 version;       // of its contexts, targets and kfuncs
  __u32 flags;         // guard_tenant_flags
  __u32 ncontexts;
  __u32 pad;
  __u64 prog_types;    // bit per program type, as the token's delegate_progs
  __u64 attach_types[2];
  __u64 map_types[2];
  __u64 max_maps;
  __u64 max_bytes;     // sum of (key_size + value_size) * max_entries
};

struct guard_context_key {
  __u32 tenant;
  __u16 version;
  __u16 index;
};

struct guard_context {
  __u32 flags;         // guard_context_flags
  __u32 pad;
  __u64 prog_types;
  __u64 attach_types[2];
  __u64 members;       // struct_ops member indexes
  __u64 helpers[GUARD_HELPER_WORDS];
};

struct guard_target_key {
  __u32 tenant;
  __u16 version;
  __u16 index;
  __u32 btf_obj;       // BTF object id (vmlinux's or a module's)
  __u32 btf_id;
};

struct guard_kfunc_key {
  __u32 tenant;
  __u32 version;
  __u32 btf_id;        // in vmlinux's BTF
};

struct guard_usage {
  __u64 maps;
  __u64 bytes;
};

struct guard_owner {
  __u32 tenant;
  __u32 pad;
  __u64 bytes;
};

// What user space keeps per tenant to take the guard over after a restart.
struct guard_record {
  char name[64];
  __u32 doc_len;
  __u32 pad;
  char doc[16384];     // JSON: { match, policy, quota }
};

struct guard_event {
  __u64 time_ns;       // CLOCK_BOOTTIME
  __u32 tenant;
  __u32 kind;          // guard_refusal
  __u32 object;        // guard_object
  __s32 insn;          // -1: not about an instruction
  __u32 id;
  __u32 prog_type;
  __u32 attach_type;
  __u32 attach_btf_id;
  __u32 pid;
  __u32 pad;
  __u64 contexts;      // the contexts the program matched
  __u64 value;
  __u64 limit;
  __u64 used;
  char name[16];       // program or map name
  char comm[16];
};

#endif
