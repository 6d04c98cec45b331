'use strict'
// Public-API cases with objects of the wrong kind: an fd of one kind of
// object handed to another class's fromFd, IDs of the run's own objects
// (or IDs no object has) to fromId of every class, and fromPin of paths
// that are not pins. Only objects this case made are ever opened.

const makers = {
  map: "h.own(BpfMap.create({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 1 }))",
  prog: "h.own(BpfProgram.loadSync({ type: 'socket_filter', license: 'GPL', insns: [asm.mov64Imm(asm.R0, 0), asm.exit()] }))",
  btf: "h.own(Btf.loadSync((() => { const b = new BtfBuilder(); b.int('int', 4); return b.bytes() })()))",
}

const wrongKind = (rng) => {
  const kind = rng.pick(Object.keys(makers))
  const fdOf = rng.pick([
    `h.own(new Fd(h.native.dupFd(obj.fd)))`,
    'h.own(new Fd(h.devNull()))',
    'h.own(new Fd(h.socketFd()))',
    'obj.fd',
    'null',
    '{ fd: obj.fd }',
  ])
  const idOf = rng.pick(['obj.id', '0', '-1', '4294967295', 'NaN', "'1'", 'null', '2 ** 53'])
  const call = rng.pick([
    `BpfMap.fromFd(${fdOf})`, `BpfProgram.fromFd(${fdOf})`, `FdSocket.from(${fdOf})`,
    `BpfMap.fromId(${idOf})`, `BpfProgram.fromId(${idOf})`, `Btf.fromId(${idOf})`, `BpfLink.fromId(${idOf})`,
    `BpfMap.fromPin(${rng.pick(["h.tmpPath('x')", "h.tmpPath('')", "''", 'null', '5'])})`,
    `BpfProgram.fromPin(${rng.pick(["h.tmpPath('x')", "''", 'null'])})`,
  ])
  return `{
  const obj = await h.setup(() => ${makers[kind]})
  await h.call(${JSON.stringify(call.split('(')[0])}, () => h.own(${call}))
}`
}

module.exports = { wrongKind }
