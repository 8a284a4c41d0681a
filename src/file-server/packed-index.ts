import { randomFillSync } from '../crypto/hash.js';

/** Where a packed chunk's bytes are: pack number (1 and up), byte offset in it, size. */
export interface PackedAt {
  pack: number;
  offset: number;
  size: number;
}

/**
 * The packed chunks of a file server, by id, in one flat buffer: an open-addressing hash
 * table of 44-byte slots (32-byte id, then pack number, offset and size as 32-bit
 * numbers; pack 0 marks an empty slot). A JavaScript Map keyed by the ids' hex text held
 * ~220 bytes per chunk (measured: 1,000,000 chunks took 218 MiB, past a server's 200 MiB
 * budget); this holds 59–88, outside the JavaScript heap, so collections never walk it.
 *
 * Linear probing, with deletions shifting later entries back instead of leaving
 * tombstones, so lookups stay short however many chunks come and go. The table grows by
 * half when three quarters full and shrinks when mostly empty. Slots are chosen by a hash
 * of the whole id keyed with a random secret: ids are SHA-256 of what clients upload, so
 * a client could grind ids that share their first bytes, but not ids that collide under
 * a key it never sees.
 */
export class PackedIndex {
  private slots: Buffer;
  private capacity: number;
  private count = 0;
  private readonly key: Uint32Array;
  /** the id being looked up, as bytes */
  private readonly probe = Buffer.alloc(ID_BYTES);

  /** `key` (nine 32-bit words) is for tests that replay one layout; random otherwise. */
  constructor(key: Uint32Array = randomFillSync(new Uint32Array(9))) {
    if (key.length !== 9) throw new RangeError('the key is nine 32-bit words');
    this.key = key;
    this.capacity = MIN_CAPACITY;
    this.slots = Buffer.alloc(this.capacity * SLOT_BYTES);
  }

  get size(): number {
    return this.count;
  }

  has(id: string): boolean {
    return this.find(id) >= 0;
  }

  get(id: string): PackedAt | undefined {
    const slot = this.find(id);
    return slot < 0 ? undefined : this.at(slot);
  }

  /** Adds `id`, or moves it if it is here already. */
  set(id: string, at: PackedAt): void {
    if (
      at.pack < 1 ||
      at.pack > MAX_U32 ||
      at.offset > MAX_U32 ||
      at.size > MAX_U32 ||
      at.offset < 0 ||
      at.size < 0
    )
      throw new RangeError(`packed chunk out of range: ${JSON.stringify(at)}`);
    const found = this.find(id);
    if (found >= 0) {
      this.write(found, at);
      return;
    }
    if ((this.count + 1) * 4 > this.capacity * 3) this.resize(Math.ceil(this.capacity * 1.5));
    // find() left the id in `probe`; resize() does not touch it.
    let slot = this.home(this.probe, 0);
    while (!this.empty(slot)) slot = this.after(slot);
    this.probe.copy(this.slots, slot * SLOT_BYTES);
    this.write(slot, at);
    this.count += 1;
  }

  /** Removes `id`; returns where it was, or undefined if it was not here. */
  delete(id: string): PackedAt | undefined {
    let hole = this.find(id);
    if (hole < 0) return undefined;
    const was = this.at(hole);
    // Entries after the hole that would no longer be found past it move back into it.
    for (let j = this.after(hole); !this.empty(j); j = this.after(j)) {
      const home = this.home(this.slots, j * SLOT_BYTES);
      const stays = hole <= j ? hole < home && home <= j : hole < home || home <= j;
      if (stays) continue;
      this.slots.copy(this.slots, hole * SLOT_BYTES, j * SLOT_BYTES, (j + 1) * SLOT_BYTES);
      hole = j;
    }
    this.slots.fill(0, hole * SLOT_BYTES, (hole + 1) * SLOT_BYTES);
    this.count -= 1;
    if (this.capacity > MIN_CAPACITY && this.count * 8 < this.capacity)
      this.resize(Math.ceil(this.capacity / 2));
    return was;
  }

  /**
   * Every id, in ascending order, as lowercase hex. The ids are copied when iteration
   * starts (32 bytes each), so the table may change while the caller goes through them.
   */
  *sortedIds(): Generator<string> {
    const ids = Buffer.allocUnsafe(this.count * ID_BYTES);
    // Bucketed by their first two bytes (counting sort), then each small bucket sorted.
    const starts = new Uint32Array(BUCKETS + 1);
    let n = 0;
    for (let s = 0; s < this.capacity; s++) {
      if (this.empty(s)) continue;
      this.slots.copy(ids, n * ID_BYTES, s * SLOT_BYTES, s * SLOT_BYTES + ID_BYTES);
      const b = ids.readUInt16BE(n * ID_BYTES) + 1;
      starts[b] = (starts[b] as number) + 1;
      n += 1;
    }
    for (let b = 0; b < BUCKETS; b++) starts[b + 1] = (starts[b + 1] as number) + (starts[b] as number);
    const order = new Uint32Array(n);
    const fill = starts.slice(0, BUCKETS);
    for (let i = 0; i < n; i++) {
      const b = ids.readUInt16BE(i * ID_BYTES);
      order[fill[b] as number] = i;
      fill[b] = (fill[b] as number) + 1;
    }
    for (let b = 0; b < BUCKETS; b++) {
      const bucket: string[] = [];
      for (let k = starts[b] as number; k < (starts[b + 1] as number); k++) {
        const i = order[k] as number;
        bucket.push(ids.toString('hex', i * ID_BYTES, (i + 1) * ID_BYTES));
      }
      // Lowercase hex of equal length sorts as the bytes do.
      bucket.sort();
      yield* bucket;
    }
  }

  /** The slot holding `id`, or -1; leaves the id's bytes in `probe`. */
  private find(id: string): number {
    if (id.length !== ID_BYTES * 2 || this.probe.write(id, 0, 'hex') !== ID_BYTES)
      throw new RangeError('a chunk id is 64 hex digits');
    const first = this.probe.readUInt32LE(0);
    for (let slot = this.home(this.probe, 0); !this.empty(slot); slot = this.after(slot)) {
      const at = slot * SLOT_BYTES;
      // Comparing the first four bytes here rules out nearly every other id without a
      // call into native code.
      if (this.slots.readUInt32LE(at) === first && this.probe.compare(this.slots, at, at + ID_BYTES) === 0)
        return slot;
    }
    return -1;
  }

  /** The first slot an id at `buf[offset..]` may be in. */
  private home(buf: Buffer, offset: number): number {
    let h = this.key[8] as number;
    for (let w = 0; w < 8; w++) {
      h = Math.imul(h ^ buf.readUInt32LE(offset + w * 4) ^ (this.key[w] as number), 0x9e3779b1);
      h ^= h >>> 15;
    }
    return Math.floor(((h >>> 0) * this.capacity) / 2 ** 32);
  }

  private after(slot: number): number {
    return slot + 1 === this.capacity ? 0 : slot + 1;
  }

  private empty(slot: number): boolean {
    return this.slots.readUInt32LE(slot * SLOT_BYTES + ID_BYTES) === 0;
  }

  private at(slot: number): PackedAt {
    const o = slot * SLOT_BYTES + ID_BYTES;
    return {
      pack: this.slots.readUInt32LE(o),
      offset: this.slots.readUInt32LE(o + 4),
      size: this.slots.readUInt32LE(o + 8),
    };
  }

  private write(slot: number, at: PackedAt): void {
    const o = slot * SLOT_BYTES + ID_BYTES;
    this.slots.writeUInt32LE(at.pack, o);
    this.slots.writeUInt32LE(at.offset, o + 4);
    this.slots.writeUInt32LE(at.size, o + 8);
  }

  private resize(capacity: number): void {
    const old = this.slots;
    const oldCapacity = this.capacity;
    this.capacity = Math.max(MIN_CAPACITY, capacity);
    this.slots = Buffer.alloc(this.capacity * SLOT_BYTES);
    for (let s = 0; s < oldCapacity; s++) {
      const from = s * SLOT_BYTES;
      if (old.readUInt32LE(from + ID_BYTES) === 0) continue;
      let slot = this.home(old, from);
      while (!this.empty(slot)) slot = this.after(slot);
      old.copy(this.slots, slot * SLOT_BYTES, from, from + SLOT_BYTES);
    }
  }
}

const ID_BYTES = 32;
const SLOT_BYTES = ID_BYTES + 12;
const MIN_CAPACITY = 1024;
const MAX_U32 = 0xffff_ffff;
const BUCKETS = 65536;
