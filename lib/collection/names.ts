// Kernel names for an object's maps and programs: at most 15 characters of
// [A-Za-z0-9_.] (BPF_OBJ_NAME_LEN), truncated as libbpf truncates them.

export const kernelName = (name: string): string => name.slice(0, 15).replace(/[^A-Za-z0-9_.]/g, '_')

/** A data section's map: a prefix of the object's name and the section ("counter.rodata"), as libbpf names its internal maps. */
export function dataMapName(object: string, section: string): string {
  // libbpf 1.0+: a section with a dot after the first ('.rodata.str1.1', '.data.custom') is its own name.
  if (section.indexOf('.', 1) !== -1) return kernelName(section)
  const prefix = object.slice(0, Math.max(0, Math.min(8, 15 - section.length)))
  return kernelName(prefix + section)
}
