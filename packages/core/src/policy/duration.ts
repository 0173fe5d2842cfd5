const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** Parses "90s", "15m", "2h", "1d" (or a bare number of seconds) into seconds. */
export function parseDuration(input: string | number): number | undefined {
  if (typeof input === "number") return Number.isInteger(input) && input > 0 ? input : undefined;
  const m = /^(\d+)\s*([smhd])$/.exec(input.trim());
  if (!m) return undefined;
  const n = Number(m[1]) * (UNITS[m[2] as string] ?? 0);
  return n > 0 ? n : undefined;
}
