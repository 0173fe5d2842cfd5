import { CountersignError } from "@countersign/core";
import type { NextFunction, Request, Response } from "express";

/** Per-key token bucket for intake. In-process: each replica enforces its own share. */
export function rateLimitByKey(ratePerSecond: number, burst: number) {
  const buckets = new Map<string, { tokens: number; at: number }>();
  return (req: Request, _res: Response, next: NextFunction) => {
    if (ratePerSecond <= 0 || !req.apiKey) return next();
    const now = Date.now();
    const b = buckets.get(req.apiKey.id) ?? { tokens: burst, at: now };
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * ratePerSecond);
    b.at = now;
    buckets.set(req.apiKey.id, b);
    if (b.tokens < 1) {
      const retryAfter = Math.max(1, Math.ceil((1 - b.tokens) / ratePerSecond));
      throw new CountersignError("rate_limited", `This API key is limited to ${ratePerSecond} requests per second.`, { retryAfter });
    }
    b.tokens -= 1;
    next();
  };
}
