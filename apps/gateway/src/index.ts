export * from "./env.ts";
export * from "./gateway.ts";
export * from "./logger.ts";
export { main } from "./main.ts";
export { buildSurfaces } from "./surfaces.ts";
