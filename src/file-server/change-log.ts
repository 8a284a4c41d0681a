/** Most changes kept for main; past this the log is dropped and a full inventory sent instead. */
const MAX_PENDING = 200_000;

export interface Changes {
  added: string[];
  removed: string[];
}

/**
 * The chunks this server gained and lost since it last told main (the incremental half
 * of reconciliation; a full inventory is the other). A chunk that comes and goes again
 * is reported only by its latest state. If main stays unreachable long enough for the
 * log to grow past its bound, it is dropped and `overflowed` asks for a full inventory.
 */
export class ChangeLog {
  private readonly added = new Set<string>();
  private readonly removed = new Set<string>();
  overflowed = false;

  noteAdded(id: string): void {
    this.removed.delete(id);
    this.added.add(id);
    this.bound();
  }

  noteRemoved(id: string): void {
    this.added.delete(id);
    this.removed.add(id);
    this.bound();
  }

  get size(): number {
    return this.added.size + this.removed.size;
  }

  /** Takes up to `max` of each kind out of the log. */
  take(max: number): Changes {
    return { added: drain(this.added, max), removed: drain(this.removed, max) };
  }

  /** Puts back what could not be delivered, unless a newer change superseded it. */
  giveBack(changes: Changes): void {
    for (const id of changes.added) if (!this.removed.has(id)) this.added.add(id);
    for (const id of changes.removed) if (!this.added.has(id)) this.removed.add(id);
    this.bound();
  }

  /** Forgets everything: a full inventory is about to say it all. */
  clear(): void {
    this.added.clear();
    this.removed.clear();
    this.overflowed = false;
  }

  private bound(): void {
    if (this.size <= MAX_PENDING) return;
    this.added.clear();
    this.removed.clear();
    this.overflowed = true;
  }
}

function drain(set: Set<string>, max: number): string[] {
  const out: string[] = [];
  for (const id of set) {
    if (out.length === max) break;
    out.push(id);
  }
  for (const id of out) set.delete(id);
  return out;
}
