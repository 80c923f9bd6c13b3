/**
 * The id/mask filter of the capture stream and the dashboard:
 * `ID/MASK` in hex (`1D4C/FFFF`, `123/7F0`), a bare `ID` (exact match), or several separated by
 * commas (a frame passes if any matches). The mask applies to the arbitration id (11 or 29 bits,
 * without the EFF/RTR/ERR flags), as candump's `id:mask` does. Pure.
 */
import { arbitrationId, type CanFrame } from "../can/frame.ts";

export interface IdMask {
  readonly id: number;
  readonly mask: number;
}

export class IdFilterError extends Error {
  override readonly name = "IdFilterError";
}

export class IdFilter {
  private constructor(readonly terms: readonly IdMask[]) {}

  /** Parses `ID[/MASK][,ID[/MASK]...]`; empty text = pass everything. Throws IdFilterError. */
  static parse(text: string): IdFilter {
    const t = text.trim();
    if (t === "") return new IdFilter([]);
    const terms: IdMask[] = [];
    for (const part of t.split(",")) {
      const m = /^\s*(?:0x)?([0-9a-fA-F]{1,8})\s*(?:[/:]\s*(?:0x)?([0-9a-fA-F]{1,8}))?\s*$/.exec(part);
      if (!m) throw new IdFilterError(`bad filter "${part.slice(0, 40)}": expected ID/MASK in hex, e.g. 1D4C/FFFF`);
      const id = parseInt(m[1]!, 16) >>> 0;
      const mask = m[2] === undefined ? 0x1fffffff : parseInt(m[2], 16) >>> 0;
      if (id > 0x1fffffff || mask > 0x1fffffff) throw new IdFilterError(`bad filter "${part.slice(0, 40)}": ids and masks have at most 29 bits`);
      terms.push({ id: id & mask, mask });
    }
    if (terms.length > 32) throw new IdFilterError("at most 32 filter terms");
    return new IdFilter(terms);
  }

  get empty(): boolean {
    return this.terms.length === 0;
  }

  matches(frame: CanFrame): boolean {
    if (this.terms.length === 0) return true;
    const id = arbitrationId(frame);
    for (const t of this.terms) if ((id & t.mask) === t.id) return true;
    return false;
  }

  toString(): string {
    return this.terms.map((t) => `${t.id.toString(16).toUpperCase()}/${t.mask.toString(16).toUpperCase()}`).join(",");
  }
}
