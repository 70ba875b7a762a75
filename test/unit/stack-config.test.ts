import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ENCRYPTED_PLACEHOLDER, readStackConfig } from "../../automation/engine/stack-config.ts";

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
});
