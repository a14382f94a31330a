// One seeded pseudo-random source for the stand-in, the chaos suite and the bench, so a failing run
// can be repeated exactly with the same seed.

/** mulberry32: small, fast and good enough to pick faults, kills and gaps; not for secrets. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
