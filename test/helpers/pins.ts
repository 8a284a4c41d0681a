import type { Pin } from '../../src/client/profile.js';
import type { PinStore } from '../../src/client/sharing.js';

/** The pins a profile keeps (users' keys as first seen), in memory. */
export class MemoryPins implements PinStore {
  readonly map: Record<string, Pin> = {};
  async pins() {
    return this.map;
  }
  async savePin(user: string, pin: Pin) {
    this.map[user] = pin;
  }
}
