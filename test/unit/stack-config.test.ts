import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ENCRYPTED_PLACEHOLDER, readStackConfig } from "../../automation/engine/stack-config.ts";
import { invalidArgumentsMessage } from "../support/validation.ts";

function stackFile(text: string): string {
  const path = join(mkdtempSync(join(tmpdir(), "stack-config-")), "Pulumi.test.yaml");
  writeFileSync(path, text);
  return path;
}

describe("readStackConfig", () => {
  it("passes strings through, objects as JSON, and replaces ciphertext wherever it is nested", () => {
    const path = stackFile(`
encryptionsalt: v1:abc
config:
  switch-vaas:program: testbed
  switch-vaas:sites:
    - name: local
      nodes: 1
  switch-vaas:kubeconfigs:
    local:
      secure: v1:AAAA
  switch-vaas:token:
    secure: v1:BBBB
`);
    expect(readStackConfig(path)).toEqual({
      config: {
        "switch-vaas:program": "testbed",
        "switch-vaas:sites": JSON.stringify([{ name: "local", nodes: 1 }]),
        "switch-vaas:kubeconfigs": JSON.stringify({ local: ENCRYPTED_PLACEHOLDER }),
        "switch-vaas:token": ENCRYPTED_PLACEHOLDER,
      },
      secretKeys: ["switch-vaas:kubeconfigs", "switch-vaas:token"],
    });
  });

  it("reads a stack file without config as empty", () => {
    expect(readStackConfig(stackFile("encryptionsalt: v1:abc\n"))).toEqual({ config: {}, secretKeys: [] });
  });

  // Read as no config, any of these would preview the defaults; their text may hold secrets.
  it.each([
    ["an empty file", "", (path: string) => `${path} is empty; a stack file is a YAML map with a config: map, e.g. "config:" and under it "  switch-vaas:program: testbed"`],
    ["a list", "- a\n", (path: string) => `${path} is not a YAML map; a stack file is a YAML map with a config: map, e.g. "config:" and under it "  switch-vaas:program: testbed"`],
    ["a syntax error", "config:\n  switch-vaas:token: [tok-SECRET-1234567890\n", (path: string) => `${path} is not YAML (BAD_INDENT at line 3, column 1); correct the file there`],
    ["a config that is a word", "config: testbed\n", (path: string) => `${path}: config is not a map; give one key per line under it, e.g. "config:" and under it "  switch-vaas:program: testbed"`],
    ["a key without a value", "config:\n  switch-vaas:sites:\n  switch-vaas:reportKeys:\n", (path: string) => `${path}: switch-vaas:sites has no value; give it one or remove the key\n${path}: switch-vaas:reportKeys has no value; give it one or remove the key`],
  ])("refuses %s, naming the file and never its text", (_case, text, message) => {
    const path = stackFile(text);
    expect(invalidArgumentsMessage(() => readStackConfig(path))).toBe(message(path));
  });
});
