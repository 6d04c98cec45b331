// Types for the BTF reader the generator and its tests share.
export declare const KIND: Record<string, number>
export declare function readBtf(path?: string): unknown
export declare function parseBtf(buf: Uint8Array): any
export declare class BtfTypes {
  constructor(parsed: unknown)
  [key: string]: any
}
