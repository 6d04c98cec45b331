// A NUL-terminated string in a fixed-size buffer (kernel names, ELF
// sections): the bytes up to the first NUL, or all of them when there is none.
export function cString(bytes: Uint8Array, encoding: 'utf8' | 'latin1' = 'utf8'): string {
  const end = bytes.indexOf(0)
  return Buffer.from(bytes.buffer, bytes.byteOffset, end < 0 ? bytes.length : end).toString(encoding)
}
