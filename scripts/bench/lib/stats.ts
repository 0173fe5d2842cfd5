/** Nearest-rank percentile of an unsorted sample. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] as number;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export function round(n: number, digits = 1): number {
  if (!Number.isFinite(n)) return n;
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

export interface LatencySummary {
  p50: number;
  p99: number;
  p999?: number;
  max: number;
}

export function latency(values: readonly number[], withP999 = false): LatencySummary {
  return {
    p50: round(percentile(values, 50), 2),
    p99: round(percentile(values, 99), 2),
    ...(withP999 ? { p999: round(percentile(values, 99.9), 2) } : {}),
    max: round(Math.max(...values), 2),
  };
}
