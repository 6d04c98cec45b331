// BTF types one by one, as `bpftool btf dump` prints them by default ("raw"):
// a line per type ("[2] INT 'int' size=4 bits_offset=0 nr_bits=32
// encoding=SIGNED") with its members, parameters, enumerators or variables on
// indented lines below; and with --json, the same fields under bpftool's keys.
import type { BtfReader, BtfTypeRecord } from '../btf/reader.js'

const linkages = ['static', 'global', 'extern']

/** Type `id` as bpftool -j btf dump writes it: id, kind, name, then the kind's own fields. */
export function rawTypeJson(btf: BtfReader, t: BtfTypeRecord): Record<string, unknown> {
  const j: Record<string, unknown> = { id: t.id, kind: t.kind, name: t.name || '(anon)' }
  const x = t.extra
  switch (t.kind) {
    case 'INT': {
      const enc = x[0] >>> 24
      Object.assign(j, { size: t.sizeOrType, bits_offset: (x[0] >>> 16) & 0xff, nr_bits: x[0] & 0xff, encoding: enc & 4 ? 'BOOL' : enc & 2 ? 'CHAR' : enc & 1 ? 'SIGNED' : '(none)' })
      break
    }
    case 'PTR': case 'TYPEDEF': case 'VOLATILE': case 'CONST': case 'RESTRICT': case 'TYPE_TAG':
      j.type_id = t.sizeOrType
      break
    case 'ARRAY': {
      const a = btf.array(t)
      Object.assign(j, { type_id: a.type, index_type_id: a.indexType, nr_elems: a.nelems })
      break
    }
    case 'STRUCT': case 'UNION':
      Object.assign(j, { size: t.sizeOrType, vlen: t.vlen })
      j.members = btf.members(t).map((m) => ({ name: m.name || '(anon)', type_id: m.type, bits_offset: m.bitOffset, ...(m.bitSize ? { bitfield_size: m.bitSize } : {}) }))
      break
    case 'ENUM': case 'ENUM64':
      Object.assign(j, { encoding: t.kindFlag ? 'SIGNED' : 'UNSIGNED', size: t.sizeOrType, vlen: t.vlen })
      j.values = btf.enumValues(t).map((e) => ({ name: e.name, val: e.value }))
      break
    case 'FWD':
      j.fwd_kind = t.kindFlag ? 'union' : 'struct'
      break
    case 'FUNC':
      Object.assign(j, { type_id: t.sizeOrType, linkage: linkages[t.vlen] ?? String(t.vlen) })
      break
    case 'FUNC_PROTO':
      Object.assign(j, { ret_type_id: t.sizeOrType, vlen: t.vlen })
      j.params = Array.from({ length: t.vlen }, (_, i) => ({ name: btf.string(x[2 * i]) || '(anon)', type_id: x[2 * i + 1] }))
      break
    case 'VAR':
      Object.assign(j, { type_id: t.sizeOrType, linkage: linkages[x[0]] ?? String(x[0]) })
      break
    case 'DATASEC':
      Object.assign(j, { size: t.sizeOrType, vlen: t.vlen })
      j.vars = Array.from({ length: t.vlen }, (_, i) => ({ type_id: x[3 * i], offset: x[3 * i + 1], size: x[3 * i + 2] }))
      break
    case 'FLOAT':
      j.size = t.sizeOrType
      break
    case 'DECL_TAG':
      Object.assign(j, { type_id: t.sizeOrType, component_idx: x[0] | 0 })
      break
  }
  return j
}

const lists = new Set(['members', 'values', 'params', 'vars'])

/** The same type as bpftool's plain text: its line, then one indented line per member, enumerator, parameter or variable. */
export function rawTypeText(btf: BtfReader, j: Record<string, unknown>): string {
  const fields = Object.entries(j).filter(([k]) => k !== 'id' && k !== 'kind' && k !== 'name' && !lists.has(k))
  // VAR is the one kind bpftool writes with a comma.
  const sep = j.kind === 'VAR' ? ', ' : ' '
  let s = `[${j.id}] ${j.kind} '${j.name}'${fields.length ? ' ' : ''}${fields.map(([k, v]) => `${k}=${v}`).join(sep)}`
  for (const k of lists) {
    for (const e of (j[k] as Record<string, unknown>[] | undefined) ?? []) {
      if (k === 'vars') {
        const v = btf.type(e.type_id as number)
        s += `\n\ttype_id=${e.type_id} offset=${e.offset} size=${e.size} (${v.kind} '${v.name}')`
      } else {
        // 64-bit enumerators carry their C suffix in bpftool's text.
        const suffix = k === 'values' && j.kind === 'ENUM64' ? (j.encoding === 'SIGNED' ? 'LL' : 'ULL') : ''
        const rest = Object.entries(e).filter(([key]) => key !== 'name').map(([key, v]) => `${key}=${v}${suffix}`).join(' ')
        s += `\n\t'${e.name}' ${rest}`
      }
    }
  }
  return s
}
