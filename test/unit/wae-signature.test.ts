import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { sign, verify } from "../../domain/wae/signature.ts";

describe("report signatures", () => {
  it("are HMAC-SHA256 of the body, as RFC 4231 test case 2 computes it", () => {
    expect(sign("what do ya want for nothing?", "Jefe")).toBe("sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  });

  it("verify only the exact body with the same key", () => {
    fc.assert(
      fc.property(fc.string(), fc.string({ minLength: 1 }), fc.string({ minLength: 1 }), (body, key, other) => {
        const signature = sign(body, key);
        expect(verify(body, signature, key)).toBe(true);
        expect(verify(body, signature, `${key}${other}`)).toBe(false);
        expect(verify(`${body}${other}`, signature, key)).toBe(false);
        expect(verify(body, signature.slice(0, -1), key)).toBe(false);
      }),
    );
  });
});
