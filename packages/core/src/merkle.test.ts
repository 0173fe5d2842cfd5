import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { inclusionProof, leafHash, merkleRoot, nodeHash, rootFromInclusionProof } from "./merkle.ts";

const sha = (...parts: Buffer[]) => createHash("sha256").update(Buffer.concat(parts)).digest();
const leaf = (i: number) => Buffer.from(`leaf-${i}`);
const leaves = (n: number) => Array.from({ length: n }, (_, i) => leaf(i));

/** RFC 9162 §2.1.1 written out independently: MTH(D[n]) = HASH(0x01 || MTH(D[0:k]) || MTH(D[k:n])). */
function reference(d: Buffer[]): Buffer {
  if (d.length === 0) return sha();
  if (d.length === 1) return sha(Buffer.of(0), d[0] as Buffer);
  let k = 1;
  while (k << 1 < d.length) k <<= 1;
  return sha(Buffer.of(1), reference(d.slice(0, k)), reference(d.slice(k)));
}

describe("RFC 9162 Merkle tree", () => {
  it("hashes the empty tree as SHA-256 of nothing, and a leaf with the 0x00 prefix", () => {
    expect(merkleRoot([]).toString("hex")).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    expect(merkleRoot([leaf(0)])).toEqual(sha(Buffer.of(0), leaf(0)));
    expect(leafHash(leaf(0))).not.toEqual(sha(leaf(0)));
  });

  it("splits at the largest power of two below n, for every size up to 40", () => {
    for (let n = 0; n <= 40; n++) expect(merkleRoot(leaves(n)).toString("hex"), `n=${n}`).toBe(reference(leaves(n)).toString("hex"));
  });

  it("is the 7-leaf tree of RFC 9162 §2.1.5 in shape: ((ab)(cd))((ef)g)", () => {
    const [a, b, c, d, e, f, g] = leaves(7).map(leafHash) as Buffer[];
    const expected = nodeHash(nodeHash(nodeHash(a!, b!), nodeHash(c!, d!)), nodeHash(nodeHash(e!, f!), g!));
    expect(merkleRoot(leaves(7))).toEqual(expected);
  });

  it("proves every leaf of every tree up to 33 leaves, and the path has the expected length", () => {
    for (let n = 1; n <= 33; n++) {
      const d = leaves(n);
      const root = merkleRoot(d);
      for (let m = 0; m < n; m++) {
        const path = inclusionProof(d, m);
        expect(rootFromInclusionProof(m, n, d[m] as Buffer, path), `n=${n} m=${m}`).toEqual(root);
      }
    }
  });

  it("refuses a proof for another leaf, index, size, or with a path node changed, added or dropped", () => {
    const d = leaves(11);
    const root = merkleRoot(d);
    const path = inclusionProof(d, 5);
    expect(rootFromInclusionProof(5, 11, leaf(6), path)).not.toEqual(root);
    expect(rootFromInclusionProof(4, 11, leaf(5), path)).not.toEqual(root);
    expect(rootFromInclusionProof(5, 6, leaf(5), path)).not.toEqual(root);
    expect(rootFromInclusionProof(5, 11, leaf(5), [Buffer.alloc(32), ...path.slice(1)])).not.toEqual(root);
    expect(rootFromInclusionProof(5, 11, leaf(5), [...path, Buffer.alloc(32)])).toBeNull();
    expect(rootFromInclusionProof(5, 11, leaf(5), path.slice(1))).toBeNull();
    expect(rootFromInclusionProof(11, 11, leaf(5), path)).toBeNull();
    expect(() => inclusionProof(d, 11)).toThrow(RangeError);
  });

  it("gives an empty path for the only leaf of a one-leaf tree", () => {
    expect(inclusionProof([leaf(0)], 0)).toEqual([]);
    expect(rootFromInclusionProof(0, 1, leaf(0), [])).toEqual(merkleRoot([leaf(0)]));
  });
});
