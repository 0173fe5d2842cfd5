import { createHash } from "node:crypto";

// RFC 9162 §2.1: Merkle Tree Hash with domain-separated leaves (0x00) and nodes (0x01),
// so a leaf can never be passed off as an interior node.

const sha256 = (...parts: Uint8Array[]): Buffer => {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest();
};

const LEAF = Uint8Array.of(0);
const NODE = Uint8Array.of(1);

export function leafHash(leaf: Uint8Array): Buffer {
  return sha256(LEAF, leaf);
}

export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  return sha256(NODE, left, right);
}

/** The largest power of two strictly less than n (n ≥ 2). */
function split(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function mth(leaves: readonly Uint8Array[], lo: number, hi: number): Buffer {
  const n = hi - lo;
  if (n === 0) return sha256();
  if (n === 1) return leafHash(leaves[lo] as Uint8Array);
  const k = split(n);
  return nodeHash(mth(leaves, lo, lo + k), mth(leaves, lo + k, hi));
}

/** MTH(D[n]): the root over the leaf inputs in order. */
export function merkleRoot(leaves: readonly Uint8Array[]): Buffer {
  return mth(leaves, 0, leaves.length);
}

/** PATH(m, D[n]) of RFC 9162 §2.1.3.1: the audit path for leaf `index`, bottom up. */
export function inclusionProof(leaves: readonly Uint8Array[], index: number): Buffer[] {
  if (!Number.isInteger(index) || index < 0 || index >= leaves.length) throw new RangeError(`leaf ${index} is outside a tree of ${leaves.length}`);
  const path: Buffer[] = [];
  const walk = (m: number, lo: number, hi: number): void => {
    const n = hi - lo;
    if (n <= 1) return;
    const k = split(n);
    if (m < k) {
      walk(m, lo, lo + k);
      path.push(mth(leaves, lo + k, hi));
    } else {
      walk(m - k, lo + k, hi);
      path.push(mth(leaves, lo, lo + k));
    }
  };
  walk(index, 0, leaves.length);
  return path;
}

/**
 * RFC 9162 §2.1.3.2: recomputes the root from a leaf hash and its audit path. Returns
 * null when the path has the wrong length for the index and tree size.
 */
export function rootFromInclusionProof(leafIndex: number, treeSize: number, leaf: Uint8Array, path: readonly Uint8Array[]): Buffer | null {
  if (!Number.isInteger(leafIndex) || !Number.isInteger(treeSize) || leafIndex < 0 || leafIndex >= treeSize) return null;
  let fn = leafIndex;
  let sn = treeSize - 1;
  let r = leafHash(leaf);
  for (const p of path) {
    if (sn === 0) return null;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 ? r : null;
}
