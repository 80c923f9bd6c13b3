/** The Ampio decoder, module inventory and state-on-connect cache (pure; see docs/ampio.md). */
export * from "./decoder.ts";
export * from "./inventory.ts";
export * from "./state-cache.ts";
export * from "./names.ts";
export * from "./commands.ts";
