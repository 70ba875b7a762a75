import { kubeconfigWithoutCredentials } from "../../components/testbed/kubeconfig.ts";

/**
 * What stands in, offline, for the secrets an operator sets per stack and nothing offline has:
 * each says what it is wherever it shows, and none is usable.
 */

/** A kubeconfig the stack does not set; its server name says so. */
export const PLACEHOLDER_KUBECONFIG = kubeconfigWithoutCredentials("https://kubeconfig-not-set.invalid", "placeholder");
/** A report key the stack does not set (secret, so never shown). */
export const PLACEHOLDER_REPORT_KEY = "offline-placeholder-not-a-key";
/** An encrypted TLS certificate or key: PEM-shaped, and never a usable one. */
export const PLACEHOLDER_PEM = (label: string): string => `-----BEGIN ${label}-----\noffline placeholder\n-----END ${label}-----\n`;
