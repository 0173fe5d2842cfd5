import { describe, expect, it } from "vitest";
import { newId, secureRandom } from "./ids.ts";

describe("newId", () => {
  it("makes prefixed ULIDs that are unique and sort in creation order, across pool refills", () => {
    const ids = Array.from({ length: 5000 }, () => newId("dec"));
    for (const id of ids) expect(id).toMatch(/^dec_[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
  });

  it("draws from [0, 1) evenly, across pool refills", () => {
    const buckets = new Array<number>(32).fill(0);
    const n = 32 * 1000;
    for (let i = 0; i < n; i++) {
      const x = secureRandom();
      expect(x >= 0 && x < 1).toBe(true);
      buckets[Math.floor(x * 32)]! += 1;
    }
    // ~1000 per bucket; a stuck or biased source lands far outside this band.
    for (const b of buckets) expect(b).toBeGreaterThan(800);
    for (const b of buckets) expect(b).toBeLessThan(1200);
  });
});
