/**
 * Deterministic test data: a xorshift32 stream, so a failing run can be replayed with
 * the same bytes. Not for anything secret.
 */
export function* seededPieces(seed: number, length: number, pieceBytes = 1024 * 1024): Generator<Buffer> {
  let x = seed >>> 0 || 0x9e3779b9;
  let left = length;
  while (left > 0) {
    const n = Math.min(pieceBytes, left);
    const words = new Uint32Array(Math.ceil(n / 4));
    for (let i = 0; i < words.length; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      words[i] = x >>> 0;
    }
    yield Buffer.from(words.buffer, 0, n);
    left -= n;
  }
}

export function seededBytes(seed: number, length: number): Buffer {
  return Buffer.concat([...seededPieces(seed, length)]);
}

/** Numbers in [0, 1) from the same xorshift32 stream: a failing draw can be replayed. */
export function seededRandom(seed: number): () => number {
  let x = seed >>> 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}
