import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { randomInt } from "node:crypto";
import { isIPv4 } from "node:net";
import { type ConferenceOutputs, type ConferenceSpecInput, conferenceName, parseConferenceSpec } from "../../domain/contracts/conference.ts";
import type { Exposure } from "../../domain/contracts/testbed.ts";
import { InvalidArgumentsError } from "../../domain/errors.ts";
import {
  CONTAINERS,
  type ContainerName,
  JITSI_IMAGE_TAG,
  JVB_MEDIA_PORT,
  PORTS,
  PUBLIC_HTTPS_PORT,
  XMPP,
  customConfigJs,
  customJvbConf,
  javaHeap,
  jitsiImage,
  splitResources,
} from "../../domain/jitsi.ts";
import { CONFERENCE_PRIORITY_CLASS, MANAGED_BY } from "../testbed/cluster-bootstrap.ts";

type EnvVar = k8s.types.input.core.v1.EnvVar;
type Container = k8s.types.input.core.v1.Container;
type Probe = k8s.types.input.core.v1.Probe;
type ProbeHandler = Pick<Probe, "httpGet" | "exec" | "tcpSocket">;

/** The conference as the service decided it (its fields are documented on the contract's schema), and where it runs. */
export interface JitsiConferenceArgs extends ConferenceSpecInput {
  /** The cluster's Kubernetes provider; every object is created through it. */
  provider: k8s.Provider;
  /** How the cluster exposes conferences: a load balancer per conference, or node ports. */
  exposure: Exposure;
  /** nodePort only: an address (IPv4 or DNS name) at which the cluster's nodes are reachable from the internet. */
  publicAddress?: string;
  /**
   * A certificate for `*.<domain>` (e.g. a wildcard per cluster): the conference is served at
   * `https://<id>.<domain>` with it. Defaults to none: the web container's own self-signed
   * certificate, at the conference's IP address, which browsers warn about.
   */
  tls?: { domain: string; certificate: pulumi.Input<string>; key: pulumi.Input<string> };
  /** Tag of the four ghcr.io/jitsi images. Defaults to JITSI_IMAGE_TAG. */
  imageTag?: string;
  /** PriorityClass of the conference pod. Defaults to the testbed bootstrap's CONFERENCE_PRIORITY_CLASS. */
  priorityClassName?: string;
}

const PASSWORD_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/** 32 letters and digits: about 190 bits, and nothing a shell, a URL or a config file would mangle. */
const PASSWORD_LENGTH = 32;

/** A password for the conference's XMPP accounts, from the system's CSPRNG. */
function newPassword(): string {
  return Array.from({ length: PASSWORD_LENGTH }, () => PASSWORD_ALPHABET[randomInt(PASSWORD_ALPHABET.length)]).join("");
}

/** The web container serves HTTPS itself; participants reach it on this Service port. */
const WEB_PORT_NAME = "https";
/** The bridge's UDP media port; named so the Service and NetworkPolicy follow JVB_PORT wherever it is. */
const MEDIA_PORT_NAME = "media";
/** s6-overlay refuses the world-writable /run an emptyDir gives unless told this is Kubernetes (jitsi.md §1.8). */
const S6_KUBERNETES = { name: "S6_YES_I_WANT_A_WORLD_WRITABLE_RUN_BECAUSE_KUBERNETES", value: "1" };
/** What HELM gives each container's /run and /tmp (jitsi.md §1.8). */
const SCRATCH_SIZE = "16Mi";
/** Prosody's accounts are re-created at each start (jitsi.md §1.2), so its data needs little room. */
const PROSODY_DATA_SIZE = "64Mi";
/** The image's uid/gid (jitsi.md §0). */
const JITSI_UID = 1000;
/** Quota headroom for objects other than the pod: the Service and nothing else. */
const MAX_SERVICES = "1";
/** pulumi-kubernetes' annotation that makes it return once the API server has taken an object (provider/pkg/metadata/annotations.go). */
const SKIP_AWAIT = "pulumi.com/skipAwait";
/**
 * The server-side-apply field manager of every object of a conference, in place of the
 * provider's per-resource random one (provider/pkg/provider/provider.go fieldManagerName: the
 * annotation first, then the name in state, then a new random name). An object whose create was
 * interrupted is adopted into the state by import, which records a new random manager; the next
 * update would then apply the program's fields as a second manager and be refused a conflict on
 * any value the interrupted create set differently. One name for every apply makes the update
 * the same manager's.
 */
const FIELD_MANAGER = { "pulumi.com/patchFieldManager": "switch-vaas" };

/**
 * One conference: its own namespace on the chosen cluster holding a Jitsi Meet pod (web, prosody,
 * jicofo, jvb) with guaranteed resources, isolated by quota, limits and network policy, and exposed
 * by the cluster's mode so that media reaches the bridge.
 */
export class JitsiConference extends pulumi.ComponentResource {
  /** The stack's outputs (domain/contracts/conference.ts documents each). */
  readonly url: pulumi.Output<ConferenceOutputs["url"]>;
  readonly namespace: ConferenceOutputs["namespace"];
  readonly cluster: ConferenceOutputs["cluster"];
  readonly mediaEndpoint: pulumi.Output<ConferenceOutputs["mediaEndpoint"]>;

  constructor(name: string, args: JitsiConferenceArgs, opts?: pulumi.ComponentResourceOptions) {
    const spec = parseConferenceSpec(
      { id: args.id, cluster: args.cluster, expectedParticipants: args.expectedParticipants, lastN: args.lastN, simulcast: args.simulcast, resources: args.resources },
      "",
    );
    if (args.exposure === "nodePort" && args.publicAddress === undefined) {
      throw new InvalidArgumentsError(["publicAddress is required with nodePort exposure; give an address at which the cluster's nodes are reachable"]);
    }
    super("switch-vaas:conference:JitsiConference", name, {}, opts);

    const childOpts = { parent: this, provider: args.provider };
    const id = spec.id;
    const labels = { ...MANAGED_BY, "switch-vaas/conference": id };
    const podLabels = { ...labels, "app.kubernetes.io/name": "jitsi-meet" };
    const tag = args.imageTag ?? JITSI_IMAGE_TAG;
    const parts = splitResources(spec.resources);

    this.namespace = conferenceName(id);
    this.cluster = spec.cluster;

    const namespace = new k8s.core.v1.Namespace(
      name,
      {
        metadata: {
          name: this.namespace,
          // The pod meets the restricted Pod Security Standard; enforcing it keeps it that way.
          labels: { ...labels, "pod-security.kubernetes.io/enforce": "restricted" },
          // A destroy returns once the namespace is Terminating, not once it is gone: the
          // namespace controller starts on a deleted namespace only after its 5 s grace
          // (namespaceDeletionGracePeriod, pkg/controller/namespace), which the stop would
          // otherwise wait out every time. The conference has ended by then: its Deployment, and
          // so its pod, is deleted and awaited first; what is left are the objects Kubernetes
          // deletes with the namespace, unconditionally.
          annotations: { ...FIELD_MANAGER, [SKIP_AWAIT]: "true" },
        },
      },
      childOpts,
    );
    const ns = namespace.metadata.name;
    // What else lives in the namespace Kubernetes deletes with it: a destroy need not delete and
    // await each object before the namespace (Pulumi's deletedWith). The Deployment is the exception.
    const namespacedOpts = { ...childOpts, deletedWith: namespace };

    new k8s.core.v1.ResourceQuota(
      name,
      {
        metadata: { name: `quota-${id}`, namespace: ns, labels, annotations: FIELD_MANAGER },
        spec: {
          hard: {
            "requests.cpu": spec.resources.cpu,
            "limits.cpu": spec.resources.cpu,
            "requests.memory": spec.resources.memory,
            "limits.memory": spec.resources.memory,
            // Recreate rollouts remove the old pod before starting the new one.
            pods: "1",
            services: MAX_SERVICES,
            "services.loadbalancers": args.exposure === "loadBalancer" ? "1" : "0",
          },
        },
      },
      namespacedOpts,
    );

    new k8s.core.v1.LimitRange(
      name,
      {
        metadata: { name: `limits-${id}`, namespace: ns, labels, annotations: FIELD_MANAGER },
        spec: {
          limits: [
            { type: "Pod", max: { cpu: spec.resources.cpu, memory: spec.resources.memory } },
            { type: "Container", max: { cpu: spec.resources.cpu, memory: spec.resources.memory } },
          ],
        },
      },
      namespacedOpts,
    );

    new k8s.networking.v1.NetworkPolicy(
      `${name}-deny-all`,
      {
        metadata: { name: `deny-all-${id}`, namespace: ns, labels, annotations: FIELD_MANAGER },
        // Selects every pod and allows nothing: all ingress not allowed below is dropped.
        spec: { podSelector: {}, policyTypes: ["Ingress"] },
      },
      namespacedOpts,
    );

    new k8s.networking.v1.NetworkPolicy(
      `${name}-allow-public`,
      {
        metadata: { name: `allow-public-${id}`, namespace: ns, labels, annotations: FIELD_MANAGER },
        spec: {
          podSelector: { matchLabels: podLabels },
          policyTypes: ["Ingress"],
          // Participants are anywhere, so the two public ports are open to any address and no
          // other port is open to anyone, other conference namespaces included.
          ingress: [
            {
              from: [{ ipBlock: { cidr: "0.0.0.0/0" } }],
              ports: [
                { protocol: "TCP", port: WEB_PORT_NAME },
                { protocol: "UDP", port: MEDIA_PORT_NAME },
              ],
            },
          ],
        },
      },
      namespacedOpts,
    );

    const secretName = `jitsi-auth-${id}`;
    // Drawn afresh each time the program runs, but only the first draw is ever used: the Secret
    // ignores later changes to its data, so the passwords stay what the conference started with
    // (in state, encrypted) until it is destroyed. This needs no provider plugin of its own. They
    // go in as `data`, not `stringData`: the provider turns stringData into data before diffing,
    // so ignoring stringData would compare fresh passwords with the stored ones and replace the
    // Secret.
    const encoded = () => pulumi.secret(Buffer.from(newPassword()).toString("base64"));
    new k8s.core.v1.Secret(
      name,
      {
        metadata: { name: secretName, namespace: ns, labels, annotations: FIELD_MANAGER },
        type: "Opaque",
        data: { JICOFO_AUTH_PASSWORD: encoded(), JVB_AUTH_PASSWORD: encoded() },
      },
      { ...namespacedOpts, ignoreChanges: ["data"] },
    );
    const fromSecret = (key: "JICOFO_AUTH_PASSWORD" | "JVB_AUTH_PASSWORD"): EnvVar => ({
      name: key,
      valueFrom: { secretKeyRef: { name: secretName, key } },
    });

    const configMapName = `jitsi-config-${id}`;
    new k8s.core.v1.ConfigMap(
      name,
      {
        metadata: { name: configMapName, namespace: ns, labels, annotations: FIELD_MANAGER },
        data: { "custom-config.js": customConfigJs(spec), "custom-jvb.conf": customJvbConf(spec) },
      },
      namespacedOpts,
    );

    let tlsSecretName: string | undefined;
    if (args.tls !== undefined) {
      tlsSecretName = `jitsi-tls-${id}`;
      new k8s.core.v1.Secret(
        `${name}-tls`,
        {
          metadata: { name: tlsSecretName, namespace: ns, labels, annotations: FIELD_MANAGER },
          type: "kubernetes.io/tls",
          stringData: { "tls.crt": args.tls.certificate, "tls.key": args.tls.key },
        },
        namespacedOpts,
      );
    }
    const hostname = args.tls === undefined ? undefined : `${id}.${args.tls.domain}`;

    const service = new k8s.core.v1.Service(
      name,
      {
        metadata: {
          name: `jitsi-${id}`,
          namespace: ns,
          labels,
          annotations: {
            ...FIELD_MANAGER,
            // Where external-dns runs, it publishes the conference's name for its address.
            ...(hostname === undefined ? {} : { "external-dns.alpha.kubernetes.io/hostname": hostname }),
            // The API server allocates node ports on create, so the create's answer holds all the
            // Deployment needs. The provider's Service await would add nothing but its wait for
            // endpoints to settle (10 s after each change, provider/pkg/await/service.go), which
            // the Deployment, made after the ports are known, would wait out; the conference is
            // ready when the Deployment is Available. A load balancer's address comes from that
            // await, so it keeps it.
            ...(args.exposure === "nodePort" ? { [SKIP_AWAIT]: "true" } : {}),
          },
        },
        spec: {
          type: args.exposure === "loadBalancer" ? "LoadBalancer" : "NodePort",
          // Behind a load balancer only the pod's node receives traffic, and the bridge sees
          // participants' own addresses. Node ports must work on every node's address.
          externalTrafficPolicy: args.exposure === "loadBalancer" ? "Local" : "Cluster",
          selector: podLabels,
          ports: [
            { name: WEB_PORT_NAME, protocol: "TCP", port: PUBLIC_HTTPS_PORT, targetPort: WEB_PORT_NAME },
            { name: MEDIA_PORT_NAME, protocol: "UDP", port: JVB_MEDIA_PORT, targetPort: MEDIA_PORT_NAME },
          ],
        },
      },
      // The API server allocates the cluster IP, and the provider replaces a Service whose
      // spec.clusterIP changes (provider/pkg/provider/diff.go). A Service adopted after an
      // interrupted create has the allocated address among its inputs, which the program never
      // sets: without this its next update would replace it, and the quota of one Service refuses
      // the replacement's create while the old one exists.
      { ...namespacedOpts, ignoreChanges: ["spec.clusterIP"] },
    );

    // Where participants reach web and media, and the port the bridge listens on: fixed behind a
    // load balancer, the node ports Kubernetes allocated (unique in the cluster) otherwise.
    const nodePort = (portName: string) =>
      service.spec.ports.apply((ports) => {
        const port = ports.find((candidate) => candidate.name === portName)?.nodePort;
        if (port === undefined) {
          // A preview of a new conference: the provider answers a Service it cannot dry-run (its
          // namespace does not exist yet) with its inputs, and the port is only allocated by the
          // API server on create. Unknown until then, as Pulumi shows any computed value.
          if (pulumi.runtime.isDryRun()) {
            return pulumi.unknown as unknown as number;
          }
          throw new Error(`Service jitsi-${id} was given no node port for ${portName}`);
        }
        return port;
      });
    let address: pulumi.Output<string>;
    let webPort: pulumi.Output<number>;
    let mediaPort: pulumi.Output<number>;
    let advertisedAddress: pulumi.Output<string>;
    if (args.exposure === "loadBalancer") {
      address = service.status.loadBalancer.ingress.apply((ingress) => {
        const ip = ingress?.[0]?.ip;
        if (ip === undefined) {
          throw new Error(`the load balancer of Service jitsi-${id} has no IP address; the bridge can only advertise IPs`);
        }
        return ip;
      });
      webPort = pulumi.output(PUBLIC_HTTPS_PORT);
      mediaPort = pulumi.output(JVB_MEDIA_PORT);
      advertisedAddress = address;
    } else {
      const publicAddress = args.publicAddress ?? "";
      address = pulumi.output(publicAddress);
      webPort = nodePort(WEB_PORT_NAME);
      mediaPort = nodePort(MEDIA_PORT_NAME);
      // An IP is advertised as it is; for a name, STUN finds the node's public address.
      advertisedAddress = pulumi.output(isIPv4(publicAddress) ? publicAddress : "");
    }

    const host = hostname ?? address;
    const portSuffix = webPort.apply((port) => (port === PUBLIC_HTTPS_PORT ? "" : `:${port}`));
    const publicUrl = pulumi.interpolate`https://${host}${portSuffix}`;

    const shared: EnvVar[] = [
      { name: "XMPP_DOMAIN", value: XMPP.domain },
      { name: "XMPP_AUTH_DOMAIN", value: XMPP.authDomain },
      { name: "XMPP_MUC_DOMAIN", value: XMPP.mucDomain },
      { name: "XMPP_INTERNAL_MUC_DOMAIN", value: XMPP.internalMucDomain },
      { name: "TZ", value: "UTC" },
      S6_KUBERNETES,
    ];
    // What every container gets: its image, the shared env, its share of the resources as
    // requests = limits, the rootless securityContext, and its own /run and /tmp.
    const jitsiContainer = (
      container: ContainerName,
      own: { env: EnvVar[]; ports: Container["ports"]; probe: ProbeHandler; volumeMounts?: k8s.types.input.core.v1.VolumeMount[] },
    ): Container => ({
      name: container,
      image: jitsiImage(container, tag),
      env: [...shared, ...own.env],
      ports: own.ports,
      ...probes(own.probe),
      resources: { requests: { ...parts[container] }, limits: { ...parts[container] } },
      securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, capabilities: { drop: ["ALL"] } },
      volumeMounts: [{ name: `${container}-run`, mountPath: "/run" }, { name: `${container}-tmp`, mountPath: "/tmp" }, ...(own.volumeMounts ?? [])],
    });

    const containers: Container[] = [
      jitsiContainer("web", {
        env: [
          { name: "PUBLIC_URL", value: publicUrl },
          { name: "XMPP_BOSH_URL_BASE", value: XMPP.boshUrlBase },
          { name: "ENABLE_XMPP_WEBSOCKET", value: "1" },
          { name: "DISABLE_HTTPS", value: "0" },
          // Pods on IPv4-only clusters may have no IPv6; nginx would fail to listen on [::].
          { name: "ENABLE_IPV6", value: "0" },
        ],
        ports: [
          { name: "http", containerPort: PORTS.webHttp, protocol: "TCP" },
          { name: WEB_PORT_NAME, containerPort: PORTS.webHttps, protocol: "TCP" },
        ],
        probe: { httpGet: { path: "/", port: PORTS.webHttp } },
        volumeMounts: [
          // HTTPS keeps its certificate (given or self-signed) here (jitsi.md §1.4).
          { name: "web-storage", mountPath: "/storage" },
          { name: "config", mountPath: "/config/custom-config.js", subPath: "custom-config.js", readOnly: true },
          ...(tlsSecretName === undefined ? [] : [{ name: "tls", mountPath: "/config/keys", readOnly: true }]),
        ],
      }),
      jitsiContainer("prosody", {
        env: [
          { name: "PUBLIC_URL", value: publicUrl },
          { name: "ENABLE_XMPP_WEBSOCKET", value: "1" },
          { name: "MAX_PARTICIPANTS", value: String(spec.expectedParticipants) },
          fromSecret("JICOFO_AUTH_PASSWORD"),
          fromSecret("JVB_AUTH_PASSWORD"),
        ],
        ports: [
          { name: "xmpp", containerPort: 5222, protocol: "TCP" },
          { name: "prosody-http", containerPort: PORTS.prosodyHttp, protocol: "TCP" },
        ],
        // /health answers only loopback callers (jitsi.md §1.5); the image's script asks from inside.
        probe: { exec: { command: ["/usr/local/bin/healthcheck.sh"] } },
        volumeMounts: [{ name: "prosody-data", mountPath: "/var/lib/prosody" }],
      }),
      jitsiContainer("jicofo", {
        env: [
          { name: "XMPP_SERVER", value: XMPP.server },
          { name: "JVB_BREWERY_MUC", value: XMPP.breweryMuc },
          // Binds the REST port beyond loopback, so the kubelet's TCP probe reaches it.
          { name: "JICOFO_ENABLE_REST", value: "1" },
          { name: "JICOFO_MAX_MEMORY", value: javaHeap(parts.jicofo.memory) },
          fromSecret("JICOFO_AUTH_PASSWORD"),
        ],
        ports: [{ name: "jicofo-rest", containerPort: PORTS.jicofoRest, protocol: "TCP" }],
        // /about/health exists only with health checks on, and then fails until a bridge joins (jitsi.md §1.6).
        probe: { tcpSocket: { port: PORTS.jicofoRest } },
      }),
      jitsiContainer("jvb", {
        env: [
          { name: "XMPP_SERVER", value: XMPP.server },
          { name: "JVB_BREWERY_MUC", value: XMPP.breweryMuc },
          { name: "JVB_PORT", value: pulumi.interpolate`${mediaPort}` },
          { name: "JVB_ADVERTISE_IPS", value: advertisedAddress },
          // With the address given, STUN would only report the node's egress address instead.
          { name: "JVB_DISABLE_STUN", value: advertisedAddress.apply((ip) => (ip === "" ? "false" : "true")) },
          { name: "VIDEOBRIDGE_MAX_MEMORY", value: javaHeap(parts.jvb.memory) },
          fromSecret("JVB_AUTH_PASSWORD"),
        ],
        ports: [
          { name: MEDIA_PORT_NAME, containerPort: mediaPort, protocol: "UDP" },
          { name: "jvb-http", containerPort: PORTS.jvbHttp, protocol: "TCP" },
        ],
        probe: { httpGet: { path: "/about/health", port: PORTS.jvbHttp } },
        volumeMounts: [{ name: "config", mountPath: "/config/custom-jvb.conf", subPath: "custom-jvb.conf", readOnly: true }],
      }),
    ];

    const scratchVolumes = CONTAINERS.flatMap((container) => [
      { name: `${container}-run`, emptyDir: { sizeLimit: SCRATCH_SIZE } },
      { name: `${container}-tmp`, emptyDir: { sizeLimit: SCRATCH_SIZE } },
    ]);

    new k8s.apps.v1.Deployment(
      name,
      {
        metadata: { name: `jitsi-${id}`, namespace: ns, labels, annotations: FIELD_MANAGER },
        spec: {
          replicas: 1,
          // One bridge per conference: never two pods at once (the quota allows one, and both would want the media port).
          strategy: { type: "Recreate" },
          selector: { matchLabels: podLabels },
          template: {
            metadata: { labels: podLabels },
            spec: {
              priorityClassName: args.priorityClassName ?? CONFERENCE_PRIORITY_CLASS,
              automountServiceAccountToken: false,
              enableServiceLinks: false,
              securityContext: {
                runAsUser: JITSI_UID,
                runAsGroup: JITSI_UID,
                runAsNonRoot: true,
                fsGroup: JITSI_UID,
                seccompProfile: { type: "RuntimeDefault" },
              },
              containers,
              volumes: [
                ...scratchVolumes,
                { name: "web-storage", emptyDir: { sizeLimit: SCRATCH_SIZE } },
                { name: "prosody-data", emptyDir: { sizeLimit: PROSODY_DATA_SIZE } },
                { name: "config", configMap: { name: configMapName } },
                ...(tlsSecretName === undefined
                  ? []
                  : [
                      {
                        name: "tls",
                        secret: {
                          secretName: tlsSecretName,
                          defaultMode: 0o440,
                          items: [
                            { key: "tls.crt", path: "cert.crt" },
                            { key: "tls.key", path: "cert.key" },
                          ],
                        },
                      },
                    ]),
              ],
            },
          },
        },
      },
      // Deleted on its own, first: its pod is then gone before the namespace goes, which the
      // namespace controller would otherwise wait for through the pod's grace period (11 s against
      // 5 s measured on the local cluster).
      childOpts,
    );

    this.url = publicUrl;
    this.mediaEndpoint = pulumi.interpolate`udp://${address}:${mediaPort}`;
    this.registerOutputs({ url: this.url, namespace: this.namespace, cluster: this.cluster, mediaEndpoint: this.mediaEndpoint });
  }
}

/**
 * The same check three ways: generous while the JVMs start on a small CPU share, then readiness
 * (traffic) and liveness (restart) once running.
 */
function probes(handler: ProbeHandler): { startupProbe: Probe; readinessProbe: Probe; livenessProbe: Probe } {
  return {
    startupProbe: { ...handler, periodSeconds: 5, failureThreshold: 36, timeoutSeconds: 5 },
    readinessProbe: { ...handler, periodSeconds: 10, failureThreshold: 3, timeoutSeconds: 5 },
    livenessProbe: { ...handler, periodSeconds: 20, failureThreshold: 3, timeoutSeconds: 5 },
  };
}
