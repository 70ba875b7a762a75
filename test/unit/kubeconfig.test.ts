import { describe, expect, it } from "vitest";
import { apiServerHost, kubeconfigWithoutCredentials } from "../../components/testbed/kubeconfig.ts";
import { invalidArgumentsMessage } from "../support/validation.ts";

describe("apiServerHost", () => {
  it.each([
    ["https://193.2.1.10:6443", "193.2.1.10"],
    ["https://k8s.example.org", "k8s.example.org"],
    ["https://[2001:db8::1]:6443", "2001:db8::1"],
  ])("finds the host of %s", (server, host) => {
    expect(apiServerHost(kubeconfigWithoutCredentials(server, "test"), undefined, "kubeconfigs.test")).toBe(host);
  });

  it("follows the named context rather than the current one", () => {
    const two = `${kubeconfigWithoutCredentials("https://198.51.100.1:6443", "a")}`.replace("current-context: a", "current-context: b");
    expect(invalidArgumentsMessage(() => apiServerHost(two, undefined, "kubeconfigs.test"))).toBe(
      'kubeconfigs.test: the kubeconfig has no server for context "b"; give a kubeconfig whose context names a cluster with a server URL',
    );
    expect(apiServerHost(two, "a", "kubeconfigs.test")).toBe("198.51.100.1");
  });
});
