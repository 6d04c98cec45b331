// The type parameter of CollectionSpec and Collection: what one object file
// holds, as `bpfkit gen types` writes it. With it, `spec.programs.x`,
// `coll.maps.counts.get(1)` and `coll.variables.threshold.get()` are typed
// end to end; without it every name is a string and every value unknown.

/** Program names, map key/value types and variable types of one object. */
export interface CollectionShape {
  /** The program names as a union of string literals. */
  programs: string
  /** Each map's decoded key and value (Uint8Array where the object gives only sizes). */
  maps: Record<string, { key: unknown; value: unknown }>
  /** Each global variable's decoded value. */
  variables: Record<string, unknown>
}

/** The shape of an object nothing is known about. */
export interface AnyCollectionShape extends CollectionShape {
  programs: string
  maps: Record<string, { key: unknown; value: unknown }>
  variables: Record<string, unknown>
}
