import { CDN_POP_CONFIG } from "./cdn-pop.ts";
import { CONFERENCE_CONFIG } from "./conference.ts";
import { PROGRAM_KEY } from "./project.ts";
import { TESTBED_CONFIG } from "./testbed.ts";

/** Every config key of the project's namespace that some stack program reads, by its short name. */
export const CONFIG_KEYS: readonly string[] = [PROGRAM_KEY, ...Object.values(TESTBED_CONFIG), ...Object.values(CONFERENCE_CONFIG), ...Object.values(CDN_POP_CONFIG)];
