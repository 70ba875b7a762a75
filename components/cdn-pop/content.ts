import type { Role } from "../../domain/wae/model.ts";

/**
 * Which edge role serves a request, from its path: the load balancer cannot see a response's type
 * before it forwards the request, so the PoP's URL scheme decides (seed 002: small files up to
 * about 1 MB, large files, VoD, live). Live and VoD streams live under /live/ and /vod/; large
 * files are recognised by extension; everything else is small (images, scripts, pages).
 */
export interface ContentRule {
  role: Exclude<Role, "small">;
  /** A PCRE for nginx's `map` (case-insensitive) and for tests. */
  pattern: string;
}

export const CONTENT_RULES: readonly ContentRule[] = [
  { role: "live", pattern: "^/live/" },
  { role: "vod", pattern: "^/vod/" },
  { role: "large", pattern: "\\.(?:pdf|zip|tar|gz|tgz|iso|dmg|exe|msi|bin|mp4|mkv|mov|avi|mp3|flac|apk|deb|rpm)$" },
];

/** The role a path goes to; the same rules the load balancer applies. */
export function roleForPath(path: string): Role {
  return CONTENT_RULES.find((rule) => new RegExp(rule.pattern, "i").test(path))?.role ?? "small";
}
